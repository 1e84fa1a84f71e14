"""Entry-point registries: tasks, metrics, backends, launchers, dataset presets, recipes.

The core knows none of them by name; built-ins are registered in this
package's own pyproject.toml exactly like a third-party plugin would.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from .errors import ConfigError

TASKS = "vlmhb.tasks"
METRICS = "vlmhb.metrics"
BACKENDS = "vlmhb.backends"
LAUNCHERS = "vlmhb.launchers"
PRESETS = "vlmhb.presets"
RECIPES = "vlmhb.recipes"  # objects, not classes: see pytest_vlmhb/recipes/


@cache
def _entries(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=group)}


def names(group: str) -> list[str]:
    """Registered names of a group, sorted."""
    return sorted(_entries(group))


def load(group: str, name: str, **where: Any) -> Any:
    """The object registered under ``name``; ConfigError listing the allowed ones."""
    entry = _entries(group).get(name)
    if entry is None:
        kind = group.rsplit(".", 1)[-1].rstrip("s")
        raise ConfigError(f"unknown {kind} {name!r}", allowed=_entries(group), **where)
    return _loaded(group, name, entry)


@cache
def _loaded(group: str, name: str, entry: Any) -> Any:
    try:
        return entry.load()
    except Exception as exc:
        raise ConfigError(
            f"{group} entry point {name!r} ({entry.value}) failed to load: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def clear() -> None:
    """Forget cached entry points (tests install throwaway distributions)."""
    _entries.cache_clear()
    _loaded.cache_clear()
