"""A served model's final settings: models.csv's columns over its recipe's defaults.

models.csv wins: ``max_model_len`` replaces the recipe's, ``mm_processor_kwargs``
is merged key by key over the recipe's, and ``server_args`` come after the
recipe's words on the command line (the last word wins). A recipe never turns
remote code on: only the ``trust_remote_code`` column does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from .backends.base import ModelOptions
from .config import ModelSpec
from .errors import ConfigError
from .models import locate, model_recipe, model_revision
from .recipes.base import DEFAULT_HF_MODEL_CLASS

if TYPE_CHECKING:
    from .recipes import Recipe

#: Which recipe field holds a backend's own command-line words.
_RECIPE_ARGS = {"vllm": "vllm_args", "sglang": "sglang_args"}


def model_options(
    model: ModelSpec,
    recipe: Recipe | None,
    backend: str,
    *,
    chat_template: str | None,
    config: Mapping[str, Any] | None = None,
) -> ModelOptions:
    """The options ``backend`` serves ``model`` with (``chat_template``: the template
    file as the server sees it). ``limit_mm_per_prompt`` is the column's, else what
    the plan set: the most images any sample on the server carries. A recipe's
    ``max_model_len`` is capped at the model's own context (``config``: its
    config.json, where known)."""
    kwargs = {
        **(dict(recipe.mm_processor_kwargs) if recipe else {}),
        **(model.mm_processor_kwargs or {}),
    }
    field = _RECIPE_ARGS.get(backend)
    return ModelOptions(
        dtype=model.dtype,
        max_model_len=model.max_model_len
        or (recipe.max_model_len_for(config or {}) if recipe else None),
        mm_processor_kwargs=kwargs or None,
        trust_remote_code=model.trust_remote_code,
        chat_template=chat_template,
        limit_mm_per_prompt=model.limit_mm_per_prompt or 1,
        recipe_args=tuple(getattr(recipe, field)) if recipe and field else (),
        hf_model_class=(
            recipe.hf_model_class
            if recipe and recipe.hf_model_class != DEFAULT_HF_MODEL_CLASS
            else None
        ),
    )


def served_identity(model: ModelSpec, backend: str) -> dict[str, Any]:
    """What decides the answers a served model gives, beyond the request: the
    weights' revision, the recipe and the final options (the chat template by
    its content's hash). Part of the results store's record key.

    A model that cannot be located here (a merge on another machine, a hub id
    not cached there) is identified by its columns alone.
    """
    key = (backend, model.model_dump_json())
    if key not in _IDENTITIES:
        try:
            revision, recipe, located = model_revision(model), model_recipe(model), locate(model)
        except ConfigError:
            revision, recipe, located = "", None, None
        options = model_options(
            model, recipe, backend, chat_template=None, config=located.config if located else None
        )
        template = model.chat_template
        _IDENTITIES[key] = {
            "model_revision": revision,
            "recipe": recipe.name if recipe else None,
            "options": {
                **asdict(options),
                "mm_processor_kwargs": dict(options.mm_processor_kwargs or {}),
                "chat_template": (
                    hashlib.sha256(template.read_bytes()).hexdigest()
                    if template and template.is_file()
                    else None
                ),
            },
        }
    return _IDENTITIES[key]


#: served_identity's answers in this process (a folder is fingerprinted once).
_IDENTITIES: dict[tuple[str, str], dict[str, Any]] = {}
