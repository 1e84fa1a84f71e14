"""Where a task's data comes from: a manifest path, a built-in dataset, a
hub or parquet dataset (materialised into the cache), or a preset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from .. import registry
from ..errors import ConfigError
from .hub import DataSource, HubUnreachable, is_dataset_source, parse_source
from .materialise import materialise
from .presets import Layout, TypeLayout, load_preset, preset_of_data
from .synthetic import SYNTHETIC_VERSION, generate_synthetic_docs
from .synthetic import TASK_TYPES as SYNTHETIC_TYPES
from .synthetic_pdf import MULTIPAGE_VERSION, generate_multipage_docs
from .synthetic_pdf import TASK_TYPES as MULTIPAGE_TYPES

BUILTIN_PREFIX = "builtin:"
BUILTIN_DATASETS = ("synthetic-docs", "synthetic-multipage")


def resolve_manifest(
    data: str, task_type: str, base_dir: Path, cache: Path, preset: str | None = None
) -> Path:
    """The JSONL manifest for a task row's ``data`` value.

    ``preset:<name>`` reads the preset's hub dataset (its mirrors tried in
    turn); ``hf:``/``parquet:`` read that source in the preset's layout, or in
    the task type's own field names when the row names no preset.
    """
    own = preset_of_data(data)
    if own is not None:
        return _preset_manifest(own, cache)
    if is_dataset_source(data):
        layout: Layout
        if preset is not None:
            chosen = load_preset(preset)
            layout = chosen
            source = parse_source(data, base_dir).with_defaults(chosen.config, chosen.split)
        else:
            layout = TypeLayout(registry.load(registry.TASKS, task_type)())
            source = parse_source(data, base_dir)
        return materialise(source, layout, cache)
    if data.startswith(BUILTIN_PREFIX):
        name = data.removeprefix(BUILTIN_PREFIX)
        if name not in BUILTIN_DATASETS:
            raise ConfigError(
                f"unknown built-in dataset {name!r}",
                allowed=[BUILTIN_PREFIX + n for n in BUILTIN_DATASETS],
            )
        folder, types = _BUILTINS[name]
        if task_type not in types:
            raise ConfigError(
                f"built-in dataset {data!r} has no {task_type!r} samples",
                column="type",
                allowed=list(types),
            )
        return folder(cache) / f"{task_type}.jsonl"
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


def synthetic_multipage_dir(cache: Path, n_docs: int = 6) -> Path:
    """Generate the built-in synthetic multi-page PDFs once into the cache."""
    out = cache / "data" / f"synthetic-multipage-{MULTIPAGE_VERSION}-n{n_docs}"
    if not (out / ".complete").exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(out) + ".lock"):
            generate_multipage_docs(out, n_docs=n_docs)
    return out


#: Built-in dataset -> (its folder, generated on first use; the task types it serves).
_BUILTINS: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "synthetic-docs": (synthetic_docs_dir, SYNTHETIC_TYPES),
    "synthetic-multipage": (synthetic_multipage_dir, MULTIPAGE_TYPES),
}


def _preset_manifest(name: str, cache: Path) -> Path:
    """A preset's own hub data: the first of its repositories that loads."""
    preset = load_preset(name, column="data")
    errors: list[HubUnreachable] = []
    for spec in preset.hub_sources():
        source: DataSource = parse_source(spec, Path.cwd())
        try:
            return materialise(source, preset, cache)
        except HubUnreachable as exc:  # other errors: the data is there but wrong
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    raise HubUnreachable(" / ".join(e.message for e in errors))
