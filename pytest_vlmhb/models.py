"""Model sources: a local dir, a hub id, or a built-in model built offline."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from filelock import FileLock

from .config import ModelSpec
from .envs import Progress, clean_env, ensure_env, plugin_extra_requirements, venv_python
from .errors import ConfigError, ServerError
from .redact import redact_then_truncate

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


def builtin_model_dir(cache: Path, name: str) -> Path:
    """Where a built-in model lives in the cache (keyed by its builder's code)."""
    return cache / "models" / f"{name}-{_builder_hash(BUILTIN_MODELS[name])}"


def check_source(source: str, base_dir: Path, *, file: Path | None, line: int) -> None:
    """Config-time check of a models.csv ``source``: a known built-in model, or a
    model directory that exists when the value is a path (``./``, ``../``, ``/``,
    ``~``); anything else is a hub id, resolved later."""
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
    path = Path(source).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    if not path.exists() and source.startswith((".", "/", "~")):
        raise ConfigError(
            f"model directory {path} does not exist", file=file, line=line, column="source"
        )


def resolve_model(spec: ModelSpec, cache: Path, progress: Progress) -> str:
    """What to pass to the server's ``--model``: a directory or a hub id."""
    source = spec.source
    if source.startswith(BUILTIN_PREFIX):
        name = source.removeprefix(BUILTIN_PREFIX)
        if name not in BUILTIN_MODELS:
            raise ConfigError(
                f"unknown built-in model {source!r}",
                allowed=[BUILTIN_PREFIX + n for n in BUILTIN_MODELS],
            )
        return str(_build_builtin(name, cache, progress))
    path = Path(source).expanduser()
    if not path.is_absolute():
        path = spec.base_dir / path
    if path.exists():
        return str(path.resolve())
    if source.startswith((".", "/", "~")):
        raise ConfigError(f"model directory {path} does not exist (model {spec.name!r})")
    return source  # a hub id, resolved by the server


def _build_builtin(name: str, cache: Path, progress: Progress) -> Path:
    out = builtin_model_dir(cache, name)
    if (out / ".complete").exists():
        return out
    env_name, extra = BUILDER_ENV
    python = venv_python(ensure_env(cache, env_name, plugin_extra_requirements(extra), progress))
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
