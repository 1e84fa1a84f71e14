"""Model sources: hub ids resolved through huggingface_hub, folders fingerprinted.

A models.csv ``source`` is a folder (``./x``, ``../x``, ``/x``, ``~/x``),
``builtin:NAME``, or a hub id ``org/name`` with an optional ``@revision``
(a branch, tag or commit). A hub id is resolved by huggingface_hub itself
(``snapshot_download``): never by reading its cache here.

huggingface_hub reads ``HF_HOME``, ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE``
once, when ``huggingface_hub.constants`` is imported. So that a variable set
later (by a test's monkeypatch, or by the harness) still counts, this module
reads them again at each call with the same rules (:func:`hub_cache_dir`,
:func:`hub_offline`) and passes ``cache_dir`` and ``local_files_only``
explicitly. ``HF_TOKEN`` and ``HF_ENDPOINT`` are left to huggingface_hub:
the token is never read, passed or written here.

huggingface_hub is imported inside the functions: importing it costs ~200 ms,
which a run without hub ids should not pay.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

BUILTIN_PREFIX = "builtin:"
#: Where a folder source begins (the same test as models.check_source); hub
#: names never begin with '.', so ``./x``, ``../x`` and ``.`` are folders.
FOLDER_PREFIXES = (".", "/", "~")
DEFAULT_REVISION = "main"
#: config.json larger than this is refused (real ones are well under 2 MiB).
MAX_CONFIG_BYTES = 16 * 1024 * 1024
#: Files counted by :func:`folder_revision` (by name and size): weights in every
#: format transformers, vLLM and llama.cpp load, and shard index files.
WEIGHT_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".gguf",
    ".h5",
    ".msgpack",
    ".onnx",
    ".index.json",
)
_COMMIT = re.compile(r"[0-9a-f]{40}")
#: A branch, tag or commit: git ref characters, no '..', no leading or trailing '/'.
_REVISION = re.compile(r"(?!.*\.\.)(?!/)[A-Za-z0-9._/-]+(?<!/)")


@dataclass(frozen=True)
class HubId:
    """A hub model id and the revision asked for."""

    repo_id: str  # "org/name"
    revision: str | None  # a branch, tag or commit; None: "main"

    def __str__(self) -> str:
        return self.repo_id if self.revision is None else f"{self.repo_id}@{self.revision}"


@dataclass(frozen=True)
class ResolvedModel:
    """A model on disk: what a server loads and what a container mounts."""

    path: Path  # the folder a server loads (a snapshot dir, or the model folder)
    mount_root: Path  # mounted read-only: the repo cache folder, or the folder itself
    in_mount: str  # ``path`` relative to ``mount_root``, POSIX ("snapshots/<commit>" or "")
    revision: str  # a commit hash (hub id) or "sha256:<16 hex>" (folder)
    config: dict[str, Any] = field(hash=False)  # config.json ({} when absent)


def parse_hub_id(source: str) -> HubId | None:
    """The hub id in ``source``; None for a folder or ``builtin:NAME``.

    Raises ValueError, naming the source, for anything else that is not
    ``org/name`` or ``org/name@revision``.
    """
    # public, but re-exported lazily: mypy does not see the export
    from huggingface_hub.utils import validate_repo_id  # type: ignore[attr-defined]

    if source.startswith(BUILTIN_PREFIX) or source.startswith(FOLDER_PREFIXES):
        return None
    hint = (
        "write org/name or org/name@<branch, tag or commit>; a folder starts with ./, ../, / or ~"
    )
    if not source:
        raise ValueError(f"empty model source ({hint})")
    repo_id, at, revision = source.partition("@")
    if repo_id.count("/") != 1:
        raise ValueError(f"hub id {source!r} is not of the form org/name ({hint})")
    try:
        validate_repo_id(repo_id)
    except ValueError:
        raise ValueError(
            f"hub id {source!r} is not a valid org/name: letters, digits, '-', '_' and '.' "
            "only, not starting or ending with '-' or '.', no '--' or '..', at most 96 each"
        ) from None
    if at and not revision:
        raise ValueError(f"hub id {source!r} has an empty revision after '@' ({hint})")
    if at and not _REVISION.fullmatch(revision):
        raise ValueError(
            f"hub id {source!r}: revision {revision!r} is not a branch, tag or commit "
            "(letters, digits, '.', '_', '-', '/'; no '..')"
        )
    return HubId(repo_id, revision if at else None)


def hub_cache_dir() -> Path:
    """The hub cache huggingface_hub would use if imported now.

    Its own rule, read from the environment at call time: ``HF_HUB_CACHE``,
    else ``HUGGINGFACE_HUB_CACHE``, else ``$HF_HOME/hub``, else
    ``$XDG_CACHE_HOME/huggingface/hub``; with none of them set,
    ``huggingface_hub.constants.HF_HUB_CACHE`` (``~/.cache/huggingface/hub``).
    """
    from huggingface_hub import constants

    env = os.environ
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(name):
            return _expand(env[name])
    if env.get("HF_HOME"):
        return _expand(env["HF_HOME"]) / "hub"
    if env.get("XDG_CACHE_HOME"):
        return _expand(env["XDG_CACHE_HOME"]) / "huggingface" / "hub"
    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """Whether the hub may not be contacted: ``HF_HUB_OFFLINE`` (or
    ``TRANSFORMERS_OFFLINE``) true now, or already when huggingface_hub was
    imported (its sessions then refuse every request anyway)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return constants.HF_HUB_OFFLINE or value.upper() in constants.ENV_VARS_TRUE_VALUES


def repo_cache_folder(repo_id: str, cache_dir: Path | None = None) -> Path:
    """The cache folder of a model repo (``models--org--name``), named by huggingface_hub."""
    from huggingface_hub.file_download import repo_folder_name

    cache = (cache_dir or hub_cache_dir()).expanduser().resolve()
    return cache / repo_folder_name(repo_id=repo_id, repo_type="model")


def resolve_hub_model(hub: HubId, *, file: Path | None, line: int) -> ResolvedModel:
    """The snapshot of ``hub`` in the hub cache, downloaded first where the hub
    is reachable (huggingface_hub prints progress); offline, what is cached.

    Anything huggingface_hub raises becomes a ConfigError (column ``source``)
    naming the id, the revision and the cache searched.
    """
    from huggingface_hub import snapshot_download

    cache = hub_cache_dir()
    offline = hub_offline()
    revision = hub.revision or DEFAULT_REVISION

    def fail(reason: str) -> ConfigError:
        return ConfigError(
            f"hub model {hub.repo_id} (revision {revision}) cannot be resolved: {reason}; "
            f"cache searched: {cache}",
            file=file,
            line=line,
            column="source",
        )

    try:
        snapshot = snapshot_download(
            hub.repo_id, revision=revision, cache_dir=cache, local_files_only=offline
        )
    except Exception as exc:  # its own errors, OSError, and its HTTP client's (any of 3 libraries)
        raise fail(_why(exc, hub.repo_id, cache, offline)) from exc
    path = Path(snapshot)
    root = repo_cache_folder(hub.repo_id, cache)
    if not path.is_dir() or not path.is_relative_to(root) or not _COMMIT.fullmatch(path.name):
        raise fail(f"huggingface_hub answered {path}, not a snapshot folder under {root}")
    return ResolvedModel(
        path=path,
        mount_root=root,
        in_mount=path.relative_to(root).as_posix(),
        revision=path.name,
        config=read_model_config(path),
    )


def resolve_folder(
    path: Path, *, file: Path | None = None, line: int | None = None
) -> ResolvedModel:
    """A model folder, absolute; ``revision`` is its :func:`folder_revision`.

    A folder that is a snapshot inside a hub cache (``models--*/snapshots/<x>``,
    whose files are links into ``../../blobs``) is mounted from its repo folder,
    so the links still resolve inside a container.
    """
    folder = path.expanduser().resolve()
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ConfigError(f"model folder {folder} {what}", file=file, line=line, column="source")
    root = folder
    repo = folder.parent.parent
    if (
        folder.parent.name == "snapshots"
        and repo.name.startswith("models--")
        and (repo / "blobs").is_dir()
    ):
        root = repo
    return ResolvedModel(
        path=folder,
        mount_root=root,
        in_mount="" if root == folder else folder.relative_to(root).as_posix(),
        revision=folder_revision(folder),
        config=read_model_config(folder),
    )


def folder_revision(path: Path) -> str:
    """A fingerprint of a model folder: ``"sha256:"`` + 16 hex digits.

    Hashed: config.json's bytes, then the relative POSIX path and size of every
    weight file (names ending in :data:`WEIGHT_SUFFIXES`, in any subfolder
    except hidden ones like ``.cache``), sorted. Weights' contents are never
    read (a same-size rewrite keeps the value); other files (tokenizer,
    processor, README) do not count. Links are followed, so a hub snapshot
    counts its blobs' sizes.
    """
    digest = hashlib.sha256()
    config = path / "config.json"
    digest.update(b"config.json\0")
    if config.is_file():
        with config.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    else:
        digest.update(b"(none)")
    digest.update(b"\0")
    for rel, size in sorted(_weight_files(path)):
        digest.update(f"{rel}\0{size}\n".encode())
    return "sha256:" + digest.hexdigest()[:16]


def _weight_files(folder: Path) -> list[tuple[str, int]]:
    """(relative POSIX path, size) of the weight files under ``folder``."""
    found = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.endswith(WEIGHT_SUFFIXES):
                continue
            full = Path(top, name)
            try:
                size = full.stat().st_size
            except OSError as exc:
                raise ConfigError(
                    f"model file {full} cannot be read ({exc.strerror or 'broken link'})"
                ) from None
            found.append((full.relative_to(folder).as_posix(), size))
    return found


def read_model_config(folder: Path) -> dict[str, Any]:
    """``folder/config.json`` as a dict; {} when there is none.

    A file over :data:`MAX_CONFIG_BYTES`, not UTF-8, not JSON, not a JSON
    object, or a broken link is a ConfigError naming the file.
    """
    config = folder / "config.json"
    try:
        with config.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        if config.is_symlink():
            raise ConfigError("is a broken link", file=config) from None
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror or 'I/O error'}", file=config) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"is larger than {MAX_CONFIG_BYTES // 2**20} MiB", file=config)
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("is not UTF-8 text", file=config) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"is not valid JSON: {exc.msg} (column {exc.colno})", file=config, line=exc.lineno
        ) from None
    if not isinstance(value, dict):
        raise ConfigError(f"holds a JSON {type(value).__name__}, not an object", file=config)
    return value


def needs_remote_code(config: Mapping[str, Any]) -> bool:
    """Whether loading the model runs code from its repo (``trust_remote_code``).

    The rule: config.json has a non-empty ``auto_map``. It maps transformers'
    Auto classes to classes in the repo's own Python files (or another repo's,
    ``org/name--module.Class``), which transformers runs only with
    ``trust_remote_code=True``. No ``auto_map`` (or an empty one): the
    architecture ships with transformers.
    """
    return bool(config.get("auto_map"))


def _why(exc: Exception, repo_id: str, cache: Path, offline: bool) -> str:
    """Why huggingface_hub failed, in words (never an exception's class name)."""
    from huggingface_hub import errors

    incomplete = getattr(errors, "IncompleteSnapshotError", ())  # huggingface_hub >= 1.x
    if isinstance(exc, errors.RevisionNotFoundError):
        return "the hub has no such revision (branch, tag or commit)"
    if isinstance(exc, errors.GatedRepoError):
        return "the repository is gated: accept its terms on the hub and set HF_TOKEN"
    if isinstance(exc, errors.RepositoryNotFoundError):
        return "the hub has no such repository, or it is private and HF_TOKEN gives no access"
    if isinstance(exc, incomplete):
        return "the cached snapshot is incomplete (an interrupted download) and the hub is offline"
    if isinstance(exc, errors.LocalEntryNotFoundError):
        cached = repo_cache_folder(repo_id, cache).is_dir()
        where = "this revision is not in the cache" if cached else "not in the cache"
        if offline:
            return f"{where} and the hub is offline (HF_HUB_OFFLINE); download it while online"
        return f"{where} and the hub cannot be reached"
    if isinstance(exc, errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        first = str(exc).splitlines()[0] if str(exc) else ""
        return f"the hub answered HTTP {status}: {first}" if status else "the hub request failed"
    if isinstance(exc, OSError):
        name = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or 'the download failed'}{name}"
    return "the hub cannot be reached or the download failed"


def _expand(value: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(value)))
