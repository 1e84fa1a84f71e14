"""Model recipes: per-family serving defaults, registered under ``vlmhb.recipes``.

A recipe is data (``base.Recipe``), never an if/else chain: the built-in ones
live in ``families.py`` and are registered in pyproject.toml exactly as a
third-party package would register its own. ``match_recipe`` picks one from a
model's config.json (``architectures`` first, then ``model_type``);
``python -m pytest_vlmhb.recipes`` prints the table README shows.
"""

from .base import (
    DEFAULT_HF_MODEL_CLASS,
    RESERVED_SGLANG_FLAGS,
    RESERVED_VLLM_FLAGS,
    SETTINGS,
    JsonValue,
    Recipe,
    RecipeError,
)
from .lookup import (
    README_END,
    README_START,
    clear,
    get_recipe,
    load_recipes,
    match_recipe,
    recipe_names,
    recipe_table,
    table_in,
    with_table,
)

__all__ = [
    "DEFAULT_HF_MODEL_CLASS",
    "README_END",
    "README_START",
    "RESERVED_SGLANG_FLAGS",
    "RESERVED_VLLM_FLAGS",
    "SETTINGS",
    "JsonValue",
    "Recipe",
    "RecipeError",
    "clear",
    "get_recipe",
    "load_recipes",
    "match_recipe",
    "recipe_names",
    "recipe_table",
    "table_in",
    "with_table",
]
