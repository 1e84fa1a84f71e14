"""A model recipe: one model family's serving defaults, kept as data.

A recipe says what makes a family load and score like its model card: vLLM
engine arguments, ``max_model_len``, the processor's ``mm_processor_kwargs``
(the image resolution the card evaluated at), stop token ids, the HF class it
loads with and whether it needs remote code. It never turns remote code on:
``needs_remote_code`` only says the family needs it. Every setting that is not
its default names a source documenting it (``sources``: setting -> URL).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, TypeAlias

from ..errors import ConfigError

JsonValue: TypeAlias = (
    "str | int | float | bool | Sequence[JsonValue] | Mapping[str, JsonValue] | None"
)

DEFAULT_HF_MODEL_CLASS = "AutoModelForImageTextToText"

#: Flags that have their own field (or belong to the harness): a recipe's free
#: vLLM arguments may not hold them, so the integration code turns the fields
#: into argv in one place and an explicit ``server_args`` can override them.
RESERVED_VLLM_FLAGS = frozenset(
    {
        "--model",
        "--served-model-name",
        "--host",
        "--port",
        "--limit-mm-per-prompt",
        "--max-model-len",
        "--trust-remote-code",
        "--dtype",
        "--mm-processor-kwargs",
        "--chat-template",
    }
)
RESERVED_SGLANG_FLAGS = frozenset(
    {
        "--model-path",
        "--served-model-name",
        "--host",
        "--port",
        "--context-length",
        "--trust-remote-code",
        "--dtype",
        "--chat-template",
    }
)

#: The settings a source may document (every one that is not its default must).
SETTINGS = (
    "vllm_args",
    "sglang_args",
    "max_model_len",
    "mm_processor_kwargs",
    "hf_model_class",
    "needs_remote_code",
    "stop_token_ids",
)


class RecipeError(ConfigError, ValueError):
    """A bad recipe, an unknown recipe name or a bad ``vlmhb.recipes`` entry point."""


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


def freeze(value: Any, where: str = "value") -> Any:
    """A JSON value made immutable: mappings become read-only, lists tuples."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise RecipeError(f"{where}: key {key!r} is not a string")
            out[key] = freeze(item, f"{where}.{key}")
        return MappingProxyType(out)
    if isinstance(value, list | tuple):
        return tuple(freeze(item, f"{where}[{i}]") for i, item in enumerate(value))
    if isinstance(value, float) and not math.isfinite(value):
        raise RecipeError(f"{where}: {value!r} is not a JSON number")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise RecipeError(f"{where}: {type(value).__name__} is not a JSON value")


def thaw(value: Any) -> Any:
    """A frozen JSON value as plain dicts and lists (for ``json.dumps``)."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(item) for item in value]
    return value


def _flag(word: str) -> str:
    """``--max_model_len=8`` -> ``--max-model-len`` (vLLM takes either spelling)."""
    return "--" + word[2:].split("=", 1)[0].replace("_", "-")


def _is_source(value: object) -> bool:
    """An https URL, or a path inside this project (the built-in tiny model's)."""
    if not isinstance(value, str) or not value or value != value.strip():
        return False
    return value.startswith("https://") or ("://" not in value and not value.startswith("/"))


@dataclass(frozen=True)
class Recipe:
    """One model family's serving defaults (see the module docstring)."""

    name: str
    family: str
    architectures: tuple[str, ...] = ()
    model_types: tuple[str, ...] = ()
    vllm_args: tuple[str, ...] = ()
    sglang_args: tuple[str, ...] = ()
    max_model_len: int | None = None
    mm_processor_kwargs: Mapping[str, JsonValue] = field(default_factory=_empty, hash=False)
    hf_model_class: str = DEFAULT_HF_MODEL_CLASS
    needs_remote_code: bool = False
    stop_token_ids: tuple[int, ...] = ()
    auto_match: bool = True
    sources: Mapping[str, str] = field(default_factory=_empty, hash=False)

    def __post_init__(self) -> None:
        where = f"recipe {self.name!r}"
        for name in ("name", "family", "hf_model_class"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise RecipeError(f"{where}: {name} must be a non-empty string")
        for name in ("architectures", "model_types", "vllm_args", "sglang_args"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise RecipeError(f"{where}: {name} must be a sequence of non-empty strings")
            object.__setattr__(self, name, tuple(value))
        if self.auto_match and not (self.architectures or self.model_types):
            raise RecipeError(f"{where}: auto_match needs architectures or model_types")
        self._check_flags(where, "vllm_args", RESERVED_VLLM_FLAGS)
        self._check_flags(where, "sglang_args", RESERVED_SGLANG_FLAGS)
        if self.max_model_len is not None and (
            isinstance(self.max_model_len, bool)
            or not isinstance(self.max_model_len, int)
            or self.max_model_len < 1
        ):
            raise RecipeError(f"{where}: max_model_len must be a positive integer or None")
        ids = self.stop_token_ids
        if isinstance(ids, str) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids
        ):
            raise RecipeError(f"{where}: stop_token_ids must be non-negative integers")
        object.__setattr__(self, "stop_token_ids", tuple(ids))
        if not isinstance(self.needs_remote_code, bool) or not isinstance(self.auto_match, bool):
            raise RecipeError(f"{where}: needs_remote_code and auto_match must be booleans")
        if not isinstance(self.mm_processor_kwargs, Mapping):
            raise RecipeError(f"{where}: mm_processor_kwargs must be a mapping")
        object.__setattr__(
            self,
            "mm_processor_kwargs",
            freeze(self.mm_processor_kwargs, f"{where}: mm_processor_kwargs"),
        )
        self._check_sources(where)

    def _check_flags(self, where: str, name: str, reserved: frozenset[str]) -> None:
        for word in getattr(self, name):
            if word.startswith("--") and _flag(word) in reserved:
                raise RecipeError(
                    f"{where}: {name} may not hold {_flag(word)} "
                    "(it has its own field, or belongs to the harness)"
                )

    def _check_sources(self, where: str) -> None:
        if not isinstance(self.sources, Mapping):
            raise RecipeError(f"{where}: sources must be a mapping of setting -> URL")
        sources = dict(self.sources)
        unknown = sorted(set(sources) - set(SETTINGS))
        if unknown:
            raise RecipeError(f"{where}: sources for unknown settings {unknown}", allowed=SETTINGS)
        bad = sorted(key for key, url in sources.items() if not _is_source(url))
        if bad:
            raise RecipeError(f"{where}: sources of {bad} are not https URLs or project paths")
        missing = [key for key in self.settings() if key not in sources]
        if missing:
            raise RecipeError(f"{where}: no source for the non-default settings {missing}")
        object.__setattr__(self, "sources", MappingProxyType(sources))

    def settings(self) -> list[str]:
        """The names of the settings that differ from their defaults, in SETTINGS order."""
        defaults = {f.name: f for f in fields(self)}
        out = []
        for name in SETTINGS:
            spec = defaults[name]
            default = spec.default_factory() if callable(spec.default_factory) else spec.default
            if getattr(self, name) != default:
                out.append(name)
        return out

    def mm_processor_kwargs_json(self) -> str:
        """``mm_processor_kwargs`` as the JSON ``--mm-processor-kwargs`` takes ("" if none)."""
        if not self.mm_processor_kwargs:
            return ""
        return json.dumps(thaw(self.mm_processor_kwargs), sort_keys=True, separators=(",", ":"))

    def vllm_argv(self) -> list[str]:
        """The recipe's vLLM flags: ``--max-model-len``, ``--mm-processor-kwargs`` and
        the free ``vllm_args``. Never ``--trust-remote-code``: a recipe does not turn
        remote code on."""
        argv: list[str] = []
        if self.max_model_len is not None:
            argv += ["--max-model-len", str(self.max_model_len)]
        if self.mm_processor_kwargs:
            argv += ["--mm-processor-kwargs", self.mm_processor_kwargs_json()]
        return argv + list(self.vllm_args)

    def max_model_len_for(self, config: Mapping[str, Any]) -> int | None:
        """``max_model_len`` capped at the checkpoint's own context, where its
        config.json states one (a family's members differ: LLaVA-NeXT on Vicuna
        has 4096 positions, on Mistral 32768, and vLLM refuses a longer one)."""
        if self.max_model_len is None:
            return None
        limits = []
        for part in (config, config.get("text_config"), config.get("llm_config")):
            if isinstance(part, Mapping):
                value = part.get("max_position_embeddings")
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    limits.append(value)
        return min([self.max_model_len, *limits[:1]])

    def describe(self) -> str:
        """One line for a report's provenance: the recipe and what it sets."""
        parts = []
        if self.max_model_len is not None:
            parts.append(f"max_model_len={self.max_model_len}")
        if self.mm_processor_kwargs:
            parts.append(f"mm_processor_kwargs={self.mm_processor_kwargs_json()}")
        if self.vllm_args:
            parts.append(f"vllm_args={' '.join(self.vllm_args)}")
        if self.sglang_args:
            parts.append(f"sglang_args={' '.join(self.sglang_args)}")
        if self.stop_token_ids:
            parts.append(f"stop_token_ids={list(self.stop_token_ids)}")
        if self.hf_model_class != DEFAULT_HF_MODEL_CLASS:
            parts.append(f"hf_model_class={self.hf_model_class}")
        if self.needs_remote_code:
            parts.append("needs remote code (not turned on by the recipe)")
        return f"recipe {self.name} ({self.family}): " + ("; ".join(parts) or "no settings")
