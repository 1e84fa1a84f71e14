"""Model sources: a folder, a hub id (``org/name[@revision]``, resolved through
huggingface_hub's cache), or a built-in model built offline; their recipes and
the checks made before any server starts."""

from __future__ import annotations

import hashlib
import subprocess
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from .config import ModelSpec
from .envs import Progress, clean_env, ensure_env, plugin_extra_requirements, venv_python
from .errors import ConfigError, ServerError
from .modelsource import (
    HubId,
    ResolvedModel,
    needs_remote_code,
    parse_hub_id,
    read_model_config,
    resolve_folder,
    resolve_hub_model,
)
from .redact import redact_then_truncate

if TYPE_CHECKING:
    from .recipes import Recipe

BUILTIN_PREFIX = "builtin:"
# name -> module run as ``python -m MODULE OUT_DIR`` inside the builder venv
BUILTIN_MODELS = {"tiny-idefics3": "pytest_vlmhb.tinymodel"}
# Built-in models are always built with the HF server's own venv (same spec,
# so the same cached venv), whichever backend serves them: one builder, one
# set of library versions, byte-identical files.
BUILDER_ENV = ("hf", "server")


def _builder_hash(module: str) -> str:
    path = Path(__file__).parent.joinpath(*module.split(".")[1:]).with_suffix(".py")
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def builtin_model_dir(cache_dir: Path, name: str) -> Path:
    """Where a built-in model lives in the cache (keyed by its builder's code)."""
    return cache_dir / "models" / f"{name}-{_builder_hash(BUILTIN_MODELS[name])}"


#: The recipe each built-in model is served with (they share architectures with
#: real families, so ``recipe=auto`` must not match them on their config).
BUILTIN_RECIPES = {"tiny-idefics3": "tiny-idefics3"}


def _model_path(source: str, base_dir: Path) -> Path:
    path = Path(source).expanduser()
    return path if path.is_absolute() else base_dir / path


def _is_folder_source(source: str, base_dir: Path) -> bool:
    """A path (``./``, ``../``, ``/``, ``~``) or an existing folder; else a hub id."""
    return source.startswith((".", "/", "~")) or _model_path(source, base_dir).exists()


def _locate(source: str, base_dir: Path, file: Path | None, line: int) -> ResolvedModel:
    """A folder or hub id resolved."""
    if _is_folder_source(source, base_dir):
        path = _model_path(source, base_dir)
        if not path.is_dir():
            raise ConfigError(
                f"model directory {path} does not exist", file=file, line=line, column="source"
            )
        return resolve_folder(path.resolve(), file=file, line=line)
    return _resolve_hub(source, file, line)


@cache
def _resolve_hub(source: str, file: Path | None, line: int) -> ResolvedModel:
    """A hub id resolved once per process (it may download)."""
    return resolve_hub_model(_hub_id(source, file, line), file=file, line=line)


def _hub_id(source: str, file: Path | None, line: int) -> HubId:
    try:
        hub = parse_hub_id(source)
    except ValueError as exc:
        raise ConfigError(str(exc), file=file, line=line, column="source") from None
    if hub is None:
        raise ConfigError(
            f"{source!r} is neither a model folder nor a hub id (org/name[@revision])",
            file=file,
            line=line,
            column="source",
        )
    return hub


def locate(spec: ModelSpec) -> ResolvedModel | None:
    """The model's folder or hub snapshot (None: a built-in model, built at start)."""
    if spec.source.startswith(BUILTIN_PREFIX):
        return None
    return _locate(spec.source, spec.base_dir, spec.source_file, spec.source_line)


def _builtin_name(spec: ModelSpec) -> str:
    name = spec.source.removeprefix(BUILTIN_PREFIX)
    if name not in BUILTIN_MODELS:
        raise ConfigError(
            f"unknown built-in model {spec.source!r}",
            file=spec.source_file,
            line=spec.source_line,
            column="source",
            allowed=[BUILTIN_PREFIX + n for n in BUILTIN_MODELS],
        )
    return name


def model_recipe(spec: ModelSpec) -> Recipe | None:
    """The recipe that applies: the ``recipe`` column's name, ``none``, or (``auto``)
    the built-in model's own or the one matched on config.json."""
    where: dict[str, Any] = {"file": spec.source_file, "line": spec.source_line}
    if spec.recipe == "none" or spec.endpoint:
        return None
    from .recipes import get_recipe, match_recipe, recipe_names

    if spec.recipe != "auto":
        if spec.recipe not in recipe_names():
            raise ConfigError(
                f"unknown recipe {spec.recipe!r}",
                column="recipe",
                allowed=["auto", "none", *recipe_names()],
                **where,
            )
        return get_recipe(spec.recipe)
    if spec.source.startswith(BUILTIN_PREFIX):
        return get_recipe(BUILTIN_RECIPES[_builtin_name(spec)])
    located = locate(spec)
    return match_recipe(located.config) if located else None


def check_source(source: str, base_dir: Path, *, file: Path | None, line: int) -> None:
    """A models.csv ``source`` exists: a known built-in model, a model folder, or a
    hub id that resolves (from the cache, or downloaded where the hub answers)."""
    if source.startswith(BUILTIN_PREFIX):
        if source.removeprefix(BUILTIN_PREFIX) not in BUILTIN_MODELS:
            raise ConfigError(
                f"unknown built-in model {source!r}",
                file=file,
                line=line,
                column="source",
                allowed=[BUILTIN_PREFIX + n for n in BUILTIN_MODELS],
            )
        return
    _locate(source, base_dir, file, line)


def check_model(spec: ModelSpec) -> None:
    """Config-time checks of a served model (before any server starts): the source
    exists (a hub id resolves, downloading where the hub is reachable), the recipe
    is known, and a model that runs its own code has ``trust_remote_code``."""
    if spec.endpoint:
        return
    check_source(spec.source, spec.base_dir, file=spec.source_file, line=spec.source_line)
    recipe = model_recipe(spec)
    located = locate(spec)
    if located is None:  # a built-in model: no remote code
        return
    remote = needs_remote_code(located.config) or bool(recipe and recipe.needs_remote_code)
    if remote and not spec.trust_remote_code:
        why = (
            "its config.json has auto_map (the model's own Python code)"
            if needs_remote_code(located.config)
            else f"its recipe {recipe.name if recipe else ''!r} says the family runs its own code"
        )
        raise ConfigError(
            f"model {spec.name!r} ({spec.source}) needs remote code: {why}; set "
            "trust_remote_code=true to allow running it (a recipe never turns it on)",
            file=spec.source_file,
            line=spec.source_line,
            column="trust_remote_code",
        )


def model_revision(spec: ModelSpec) -> str:
    """What identifies the weights served: a hub commit, ``sha256:<16 hex>`` of a
    folder, ``builtin:<name>-<builder hash>``; '' for an external endpoint."""
    if spec.endpoint:
        return ""
    if spec.source.startswith(BUILTIN_PREFIX):
        name = _builtin_name(spec)
        return f"{BUILTIN_PREFIX}{name}-{_builder_hash(BUILTIN_MODELS[name])}"
    located = locate(spec)
    return located.revision if located else ""


def planned_model(spec: ModelSpec, cache_dir: Path) -> ResolvedModel:
    """Where the model is or will be, without building anything (for the plan)."""
    if spec.source.startswith(BUILTIN_PREFIX):
        path = builtin_model_dir(cache_dir, _builtin_name(spec))
        return ResolvedModel(path, path, "", model_revision(spec), {})
    located = locate(spec)
    assert located is not None
    return located


def resolve_model(spec: ModelSpec, cache_dir: Path, progress: Progress) -> ResolvedModel:
    """The model's folder (a built-in model is built first, once per cache)."""
    if spec.source.startswith(BUILTIN_PREFIX):
        path = _build_builtin(_builtin_name(spec), cache_dir, progress)
        return ResolvedModel(path, path, "", model_revision(spec), read_model_config(path))
    located = locate(spec)
    assert located is not None
    return located


def _build_builtin(name: str, cache_dir: Path, progress: Progress) -> Path:
    out = builtin_model_dir(cache_dir, name)
    if (out / ".complete").exists():
        return out
    env_name, extra = BUILDER_ENV
    python = venv_python(
        ensure_env(cache_dir, env_name, plugin_extra_requirements(extra), progress)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if not (out / ".complete").exists():
            progress(f"building built-in model {name} into {out} (once)")
            proc = subprocess.run(
                [str(python), "-m", BUILTIN_MODELS[name], str(out)],
                capture_output=True,
                text=True,
                env=clean_env(),
            )
            if proc.returncode != 0 or not (out / ".complete").exists():
                raise ServerError(
                    f"building {name} failed (exit {proc.returncode}):\n"
                    f"{redact_then_truncate(proc.stderr, 3000, keep='tail')}"
                )
    return out
