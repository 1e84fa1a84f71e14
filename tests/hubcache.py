"""A Hugging Face hub cache laid out on disk without the hub, for offline tests.

The layout is what huggingface_hub writes (``file_download.py``:
``hf_hub_download`` and ``_create_symlink``)::

    <cache>/models--org--name/
        blobs/<etag>                            the file's bytes
        snapshots/<commit>/<path in repo>       relative link to ../../blobs/<etag>
        refs/<branch or tag>                    the commit hash, no newline

A blob is named by the file's etag on the hub: the sha256 of its bytes for an
LFS file, the git blob sha1 (``sha1(b"blob <size>\\0" + bytes)``) for any
other. Which files are LFS is taken from the hub's default ``.gitattributes``
patterns by suffix. Local resolution reads only refs/ and snapshots/, so the
blob names matter only for realism.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from huggingface_hub.file_download import repo_folder_name

DEFAULT_COMMIT = "0123456789abcdef0123456789abcdef01234567"
#: Suffixes the hub's default .gitattributes stores in LFS (those tests use).
LFS_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".gguf",
    ".h5",
    ".msgpack",
    ".onnx",
    ".model",
    ".zip",
)


def blob_name(name: str, data: bytes) -> str:
    """The etag the hub gives a file: sha256 (LFS) or git blob sha1."""
    if name.endswith(LFS_SUFFIXES):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def make_hub_cache(
    src: Path,
    cache: Path,
    repo_id: str,
    *,
    commit: str = DEFAULT_COMMIT,
    refs: Sequence[str] = ("main",),
) -> Path:
    """Put every file under ``src`` into ``cache`` as model ``repo_id`` at
    ``commit``, with each ref in ``refs`` pointing at it; the snapshot dir.

    Calls for several commits of one repo share its blobs (as on the hub)."""
    repo = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for file in sorted(p for p in src.rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / blob_name(file.name, data)
        if not blob.exists():
            blob.write_bytes(data)
        pointer = snapshot / file.relative_to(src)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        if pointer.is_symlink() or pointer.exists():
            pointer.unlink()
        # as _create_symlink: relative to the link's own folder
        os.symlink(os.path.relpath(blob, pointer.parent), pointer)
    for ref in refs:
        ref_file = repo / "refs" / ref
        ref_file.parent.mkdir(parents=True, exist_ok=True)
        ref_file.write_text(commit)
    return snapshot


#: The tiny test model's id in the offline hub caches the tests make.
TINY_REPO = "vlmhb-test/tiny-idefics3"


def built_tiny_model() -> Path:
    """The built-in tiny model's folder in the tests' shared cache (built once)."""
    from pytest_vlmhb.config import ModelSpec
    from pytest_vlmhb.models import resolve_model

    spec = ModelSpec(
        name="tiny", source="builtin:tiny-idefics3", served_name="tiny", base_dir=Path.cwd()
    )
    return resolve_model(spec, Path(os.environ["VLMHB_CACHE"]), print).path


def tiny_hub_cache(cache: Path, src: Path | None = None, repo_id: str = TINY_REPO) -> Path:
    """A hub cache at ``cache`` holding the tiny model (or ``src``) as ``repo_id``
    at :data:`DEFAULT_COMMIT` (refs/main); returns its snapshot folder."""
    folder = src or built_tiny_model()
    return make_hub_cache(folder, cache, repo_id)
