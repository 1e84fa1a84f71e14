"""The recipes registered under ``vlmhb.recipes``: loading, lookup, matching, the table."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import Any

from .. import registry
from .base import DEFAULT_HF_MODEL_CLASS, Recipe, RecipeError

README_START = "<!-- recipes:start -->"
README_END = "<!-- recipes:end -->"


def _is_recipe(obj: object) -> bool:
    """A Recipe, also one made by an earlier import of this package (the registry
    caches loaded objects; pytest's in-process runs re-import plugin modules)."""
    kind = type(obj)
    return isinstance(obj, Recipe) or (
        kind.__module__ == Recipe.__module__ and kind.__qualname__ == Recipe.__qualname__
    )


@cache
def _recipes() -> Mapping[str, Recipe]:
    out: dict[str, Recipe] = {}
    for name in registry.names(registry.RECIPES):
        obj = registry.load(registry.RECIPES, name)
        target = registry._entries(registry.RECIPES)[name].value
        if not _is_recipe(obj):
            raise RecipeError(
                f"{registry.RECIPES} entry point {name!r} ({target}) is a "
                f"{type(obj).__name__}, not a pytest_vlmhb.recipes.Recipe"
            )
        if obj.name != name:
            raise RecipeError(
                f"{registry.RECIPES} entry point {name!r} ({target}) holds the recipe "
                f"named {obj.name!r}: the entry point's name must be the recipe's name"
            )
        out[name] = obj
    _index(out)  # two auto-matching recipes claiming one key fail here, at load
    return MappingProxyType(out)


def _index(recipes: Mapping[str, Recipe]) -> tuple[dict[str, Recipe], dict[str, Recipe]]:
    """architecture -> recipe and model_type -> recipe, over auto-matching recipes."""
    by_arch: dict[str, Recipe] = {}
    by_type: dict[str, Recipe] = {}
    for recipe in recipes.values():
        if not recipe.auto_match:
            continue
        for kind, keys, index in (
            ("architecture", recipe.architectures, by_arch),
            ("model_type", recipe.model_types, by_type),
        ):
            for key in keys:
                other = index.setdefault(key, recipe)
                if other is not recipe:
                    raise RecipeError(
                        f"recipes {other.name!r} and {recipe.name!r} both auto-match "
                        f"{kind} {key!r}: set auto_match=False on one of them"
                    )
    return by_arch, by_type


@cache
def _match_index() -> tuple[dict[str, Recipe], dict[str, Recipe]]:
    return _index(_recipes())


def clear() -> None:
    """Forget loaded recipes (tests swap the entry points)."""
    _recipes.cache_clear()
    _match_index.cache_clear()


def load_recipes() -> dict[str, Recipe]:
    """Every registered recipe by name (loaded once; a fresh dict each call).

    A ``vlmhb.recipes`` entry point that is not a Recipe, or whose recipe has
    another name, is a RecipeError (a ConfigError and a ValueError) naming it.
    """
    return dict(_recipes())


def recipe_names() -> list[str]:
    """The registered recipe names, sorted."""
    return sorted(_recipes())


def get_recipe(name: str) -> Recipe:
    """The recipe of that name; a RecipeError (a ValueError) listing the allowed names."""
    recipes = _recipes()
    if name not in recipes:
        raise RecipeError(f"unknown recipe {name!r}", allowed=recipes)
    return recipes[name]


def match_recipe(config: Mapping[str, Any]) -> Recipe | None:
    """The auto-matching recipe for a model's config.json, or None.

    Any entry of the top-level ``architectures`` first (in the config's order),
    else the top-level ``model_type``. Recipes with ``auto_match=False`` (the
    built-in tiny model's) are never chosen here.
    """
    by_arch, by_type = _match_index()
    architectures = config.get("architectures")
    if isinstance(architectures, str):
        architectures = [architectures]
    if isinstance(architectures, list | tuple):
        for arch in architectures:
            if isinstance(arch, str) and arch in by_arch:
                return by_arch[arch]
    model_type = config.get("model_type")
    if isinstance(model_type, str):
        return by_type.get(model_type)
    return None


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(words: list[str] | tuple[str, ...]) -> str:
    return "<br>".join(f"`{_cell(w)}`" for w in words)


def _row(recipe: Recipe) -> list[str]:
    if recipe.auto_match:
        matched = _code(recipe.architectures)
        if recipe.model_types:
            types = ", ".join(f"`{t}`" for t in recipe.model_types)
            matched += ("<br>" if matched else "") + f"model_type {types}"
    else:
        matched = "named only"
    vllm = []
    if recipe.max_model_len is not None:
        vllm.append(f"--max-model-len {recipe.max_model_len}")
    if recipe.vllm_args:
        vllm.append(shlex.join(recipe.vllm_args))
    urls: dict[str, list[str]] = {}
    for setting in recipe.settings():
        urls.setdefault(recipe.sources[setting], []).append(setting)
    sources = " ".join(f"[{', '.join(keys)}]({url})" for url, keys in urls.items())
    return [
        f"`{recipe.name}`",
        _cell(recipe.family),
        matched,
        _code(vllm),
        f"`{_cell(recipe.mm_processor_kwargs_json())}`" if recipe.mm_processor_kwargs else "",
        ", ".join(str(i) for i in recipe.stop_token_ids),
        f"`{recipe.hf_model_class}`" if recipe.hf_model_class != DEFAULT_HF_MODEL_CLASS else "",
        "needed" if recipe.needs_remote_code else "",
        sources,
    ]


def recipe_table() -> str:
    """A Markdown table of every recipe (README's "Model recipes" section)."""
    header = [
        "recipe",
        "family",
        "matched on",
        "vLLM args",
        "mm_processor_kwargs",
        "stop token ids",
        "HF class",
        "remote code",
        "sources",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    recipes = _recipes()
    for name in sorted(recipes):
        lines.append("| " + " | ".join(_row(recipes[name])) + " |")
    lines.append("")
    lines.append(
        f"Blank cells keep the default: no vLLM arguments, no processor kwargs, "
        f"no stop token ids, `{DEFAULT_HF_MODEL_CLASS}`, no remote code."
    )
    return "\n".join(lines) + "\n"


def with_table(readme: str, table: str) -> str:
    """README's text with the table between its recipes markers replaced."""
    start = readme.find(README_START)
    end = readme.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"README has no {README_START} ... {README_END} markers")
    head = readme[: start + len(README_START)]
    return head + "\n" + table + readme[end:]


def table_in(readme: str) -> str:
    """The text between README's recipes markers (the table as last written)."""
    start = readme.find(README_START)
    end = readme.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"README has no {README_START} ... {README_END} markers")
    return readme[start + len(README_START) : end].removeprefix("\n")
