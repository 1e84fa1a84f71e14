"""Rendered PDF pages on disk, and the documents' content hashes.

Layout under ``<cache_dir>/pages/``::

    <sha[:2]>/<sha>/info.json               {"pypdfium2": "<version>", "pages": N}
    <sha[:2]>/<sha>/<page>-<settings>.png   one rendered page (.jpg for JPEG)

``<sha>`` is the sha256 of the PDF's bytes and ``<settings>`` 16 hex digits of
a sha256 over what shapes a rendered page: dpi, caps, format, pypdfium2's
version (it pins the PDFium build) and :data:`CACHE_VERSION`. Files are
written under a temporary name in their folder and ``os.replace``'d into
place, so processes sharing the cache (xdist workers) never read half a file.
A file that is there but unreadable is a miss, rendered again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cache, lru_cache
from pathlib import Path

from .errors import SampleError
from .imageprep import ImagePrep, PrepError
from .images import read_document

#: Bump when rendering changes in a way the settings do not show.
CACHE_VERSION = 1
_MEMO_SIZE = 4096

_StatKey = tuple[str, int, int, int, int]
_hashes: OrderedDict[_StatKey, str] = OrderedDict()
_hashes_lock = threading.Lock()


@cache
def _pypdfium2() -> str:
    """pypdfium2's version (looked up on first use: importing this module stays cheap)."""
    from importlib.metadata import version

    return version("pypdfium2")


def _stat_key(path: Path) -> _StatKey:
    info = os.stat(path)
    return (os.path.abspath(path), info.st_size, info.st_mtime_ns, info.st_ino, info.st_dev)


def _memo_get(key: _StatKey) -> str | None:
    with _hashes_lock:
        digest = _hashes.get(key)
        if digest is not None:
            _hashes.move_to_end(key)
        return digest


def known_hash(path: Path) -> str | None:
    """The memoised hash of ``path`` as it is now, without reading it; None if unknown."""
    try:
        return _memo_get(_stat_key(path))
    except OSError:
        return None


def read_and_hash(path: Path) -> tuple[bytes, str]:
    """The PDF's bytes (bounded, non-blocking read) and their sha256, memoised.

    The hash is remembered only when the file's size, mtime, inode and device
    are the same before and after the read, and its size is what was read.
    """
    try:
        before: _StatKey | None = _stat_key(path)
    except OSError:
        before = None  # read_document names the problem
    try:
        data = read_document(path)
    except SampleError as exc:
        raise PrepError(str(exc)) from None
    digest = hashlib.sha256(data).hexdigest()
    try:
        after = _stat_key(path)
    except OSError:
        return data, digest
    if after == before and after[1] == len(data):
        with _hashes_lock:
            _hashes[after] = digest
            while len(_hashes) > _MEMO_SIZE:
                _hashes.popitem(last=False)
    return data, digest


def document_hash(path: Path) -> str:
    """sha256 hex of the file's bytes, memoised by (path, size, mtime_ns, inode, device)."""
    return known_hash(path) or read_and_hash(path)[1]


def clear_hash_memo() -> None:
    """Forget every memoised hash (as a new process would)."""
    with _hashes_lock:
        _hashes.clear()


@lru_cache(maxsize=256)
def settings_id(prep: ImagePrep) -> str:
    """16 hex digits naming what shapes one rendered page under ``prep``."""
    shape = {
        "cache_version": CACHE_VERSION,
        "pypdfium2": _pypdfium2(),
        "dpi": prep.dpi,
        "max_image_side": prep.max_image_side,
        "max_image_pixels": prep.max_image_pixels,
        "format": prep.page_format,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


class PageCache:
    """Rendered pages and page counts under ``<cache_dir>/pages``."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = Path(cache_dir) / "pages"
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def folder(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def page_paths(
        self, digest: str, pages: Sequence[int], settings: str, fmt: str
    ) -> dict[int, Path]:
        """Where each page of the document is cached under these settings."""
        folder, ext = self.folder(digest), "png" if fmt == "png" else "jpg"
        return {page: folder / f"{page}-{settings}.{ext}" for page in pages}

    def page_count(self, digest: str) -> int | None:
        """The page count remembered for a document, or None."""
        with self._lock:
            if digest in self._counts:
                return self._counts[digest]
        raw = self.read(self.folder(digest) / "info.json")
        try:
            info = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        if not isinstance(info, dict) or info.get("pypdfium2") != _pypdfium2():
            return None
        count = info.get("pages")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            return None
        with self._lock:
            self._counts[digest] = count
        return count

    def remember_count(self, digest: str, count: int) -> None:
        with self._lock:
            self._counts[digest] = count
        info = {"pypdfium2": _pypdfium2(), "pages": count}
        self.write(self.folder(digest) / "info.json", json.dumps(info).encode())

    @staticmethod
    def read(path: Path) -> bytes | None:
        """The file's bytes, or None when it is missing or unreadable."""
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError:
            return None

    @staticmethod
    def write(path: Path, data: bytes) -> None:
        """Write atomically (temporary file + ``os.replace``); best effort.

        A cache that cannot be written (full disk, read-only) costs a render
        next time, never the sample.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
