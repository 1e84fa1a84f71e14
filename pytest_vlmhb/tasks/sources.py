"""Where a task's data comes from: a manifest path or a built-in dataset."""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock

from ..errors import ConfigError
from .synthetic import SYNTHETIC_VERSION, generate_synthetic_docs

BUILTIN_PREFIX = "builtin:"
BUILTIN_DATASETS = ("synthetic-docs",)


def resolve_manifest(data: str, task_type: str, base_dir: Path, cache: Path) -> Path:
    """The JSONL manifest for a task row's ``data`` value."""
    if data.startswith(BUILTIN_PREFIX):
        name = data.removeprefix(BUILTIN_PREFIX)
        if name not in BUILTIN_DATASETS:
            raise ConfigError(
                f"unknown built-in dataset {name!r}",
                allowed=[BUILTIN_PREFIX + n for n in BUILTIN_DATASETS],
            )
        return synthetic_docs_dir(cache) / f"{task_type}.jsonl"
    path = Path(data)
    return path if path.is_absolute() else base_dir / path


def synthetic_docs_dir(cache: Path, n_per_type: int = 12) -> Path:
    """Generate the built-in synthetic documents once into the cache."""
    out = cache / "data" / f"synthetic-docs-{SYNTHETIC_VERSION}-n{n_per_type}"
    if not (out / ".complete").exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(out) + ".lock"):
            generate_synthetic_docs(out, n_per_type=n_per_type)
    return out
