"""A sample's images, prepared for its request: image files, or a PDF's pages rendered.

:class:`PagePreparer` (one per process) turns ``images`` (files, in order) or
a ``document`` (a PDF, with optional 1-based ``pages``) into encoded images
under the settings of an :class:`ImagePrep`:

- at most ``max_pages`` images; the rest are dropped and counted;
- PDF pages are rendered by PDFium on one dedicated thread (``pdfrender.py``)
  straight at the scale the caps allow, and cached on disk (``pagecache.py``),
  keyed by the document's content hash; a page over 100 megapixels is an error;
- image files are sent unchanged unless a cap or a format asks otherwise
  (``imageprep.py``).

Reading, resizing and encoding run in a small thread pool; :meth:`prepare`
never blocks the event loop. What is wrong with one sample's files raises
:class:`PrepError` (a :class:`SampleError`: that sample fails, the run goes on).
Concurrent requests for a page not yet cached render it once.
"""

from __future__ import annotations

import asyncio
import io
import os
import struct
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from PIL import Image

from .errors import SampleError
from .imageprep import (
    MAX_PAGE_PIXELS,
    ImagePrep,
    PrepError,
    encode,
    load_image_file,
    parse_image_format,
    parse_pages,
    render_scale,
)
from .images import read_image
from .pagecache import PageCache, document_hash, known_hash, read_and_hash, settings_id
from .pdfrender import DocRef, PdfRenderer

__all__ = [
    "ImagePrep",
    "PagePreparer",
    "PrepError",
    "Prepared",
    "PreparedImage",
    "document_hash",
    "parse_image_format",
    "parse_pages",
]

T = TypeVar("T")
_MIME = {"png": "image/png", "jpeg": "image/jpeg"}
_PNG = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # the last chunk: a cut file lacks it
#: Render jobs one sample keeps queued ahead of its encoding (bounds its memory).
_RENDER_AHEAD = 2


@dataclass(frozen=True)
class PreparedImage:
    """One image as the request carries it."""

    data: bytes
    mime: str
    width: int
    height: int
    page: int | None  # 1-based page of the document; None for an image file


@dataclass(frozen=True)
class Prepared:
    """A sample's images, in order, and what preparing them cost."""

    images: tuple[PreparedImage, ...]
    pages_dropped: int
    #: Seconds of reading, rendering, resizing and encoding done for this call
    #: (time queued behind other samples' renders not counted; ~0 when cached).
    prep_s: float

    @property
    def image_bytes(self) -> int:
        return sum(len(image.data) for image in self.images)


class _Clock:
    """Wall time of one call, less the time blocked on others' work, plus our render jobs."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.blocked = 0.0
        self.jobs = 0.0

    def wait(self, future: Future[tuple[T, float]]) -> T:
        value, seconds = self.wait_other(future)
        self.jobs += seconds
        return value

    def wait_other(self, future: Future[T]) -> T:
        start = time.perf_counter()
        try:
            return future.result()
        finally:
            self.blocked += time.perf_counter() - start

    def seconds(self) -> float:
        wall = time.perf_counter() - self.start
        return max(0.0, min(wall, wall - self.blocked + self.jobs))


class PagePreparer:
    """One per process: ONE PDFium render thread, a small worker pool, a page cache on disk.

    PDFium is not thread-safe, even across documents: pypdfium2 is never
    called from any other thread than the renderer's.
    """

    def __init__(self, cache_dir: Path) -> None:
        self.cache = PageCache(cache_dir)
        self._renderer = PdfRenderer()
        workers = max(2, min(4, os.cpu_count() or 1))  # 2 at least: one encodes while one renders
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vlmhb-prep")
        self._inflight: dict[Path, Future[PreparedImage]] = {}
        self._lock = threading.Lock()

    @property
    def renders(self) -> int:
        """Pages rendered by PDFium so far (cache hits render none)."""
        return self._renderer.renders

    @property
    def render_thread_ids(self) -> frozenset[int]:
        """The threads PDFium jobs ran on: one."""
        return frozenset(self._renderer.thread_ids)

    async def prepare(
        self,
        *,
        images: Sequence[Path] = (),
        document: Path | None = None,
        pages: Sequence[int] | None = None,
        prep: ImagePrep,
    ) -> Prepared:
        """:meth:`prepare_blocking` in the worker pool: the event loop never waits on it."""
        future = self._pool.submit(
            self.prepare_blocking, images=images, document=document, pages=pages, prep=prep
        )
        return await asyncio.wrap_future(future)

    def prepare_blocking(
        self,
        *,
        images: Sequence[Path] = (),
        document: Path | None = None,
        pages: Sequence[int] | None = None,
        prep: ImagePrep,
    ) -> Prepared:
        """The sample's images: ``images`` (files) or ``document`` (a PDF) with ``pages``.

        PrepError when they cannot be prepared; ValueError when called with
        neither or both sources, or ``pages`` without a document.
        """
        if (document is None) == (not images):
            raise ValueError("give either images or a document")
        if document is None:
            if pages is not None:
                raise ValueError("pages select pages of a document")
            return self._image_files(images, prep)
        selection: tuple[int, ...] | None = None
        if pages is not None:
            try:
                selection = parse_pages(pages)
            except ValueError as exc:
                raise PrepError(f"{document}: {exc}") from None
        return self._document(Path(document), selection, prep)

    def page_count(self, document: Path) -> int:
        """The document's number of pages; PrepError for a corrupt, locked or empty PDF."""
        return self._doc_state(Path(document), _Clock())[2]

    def close(self) -> None:
        """Wait for the work under way, then end the pool and the render thread."""
        self._pool.shutdown(wait=True)
        self._renderer.close()

    def __enter__(self) -> PagePreparer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- image files ---------------------------------------------------------------

    def _image_files(self, paths: Sequence[Path], prep: ImagePrep) -> Prepared:
        clock = _Clock()
        kept = list(paths[: prep.max_pages])
        prepared = []
        for path in kept:
            try:
                raw = read_image(Path(path))
            except SampleError as exc:
                raise PrepError(str(exc)) from None
            data, mime, width, height = load_image_file(raw, Path(path), prep)
            prepared.append(PreparedImage(data, mime, width, height, None))
        return Prepared(tuple(prepared), len(paths) - len(kept), clock.seconds())

    # -- documents -----------------------------------------------------------------

    def _doc_state(self, path: Path, clock: _Clock) -> tuple[str, bytes | None, int]:
        """(sha256, the bytes if they had to be read, page count); nothing read when known."""
        digest = known_hash(path)
        count = self.cache.page_count(digest) if digest else None
        if digest is not None and count is not None:
            return digest, None, count
        data, digest = read_and_hash(path)
        count = self.cache.page_count(digest)
        if count is None:
            count = clock.wait(self._renderer.page_count(DocRef(str(path), digest, data)))
            self.cache.remember_count(digest, count)
        return digest, data, count

    def _document(
        self, path: Path, pages: tuple[int, ...] | None, prep: ImagePrep, retry: bool = True
    ) -> Prepared:
        clock = _Clock()
        digest, data, count = self._doc_state(path, clock)
        selection = pages or tuple(range(1, count + 1))
        outside = [page for page in selection if page > count]
        if outside:
            total = f"{count} page" + ("s" if count != 1 else "")
            raise PrepError(f"{path}: page {outside[0]} is outside the document ({total})")
        kept = selection[: prep.max_pages]
        files = self.cache.page_paths(digest, kept, settings_id(prep), prep.page_format)
        done = {page: hit for page in kept if (hit := self._cached(files[page], page)) is not None}
        missing = [page for page in kept if page not in done]
        if missing and data is None:
            data, fresh = read_and_hash(path)
            if fresh != digest:  # the file changed since its hash was memoised
                if not retry:
                    raise PrepError(f"{path}: changes while it is being read")
                return self._document(path, pages, prep, retry=False)
        if missing:
            assert data is not None
            mine, others = self._claim(files, missing)
            self._render_pages(DocRef(str(path), digest, data), mine, files, prep, clock, done)
            for page, future in others.items():
                done[page] = clock.wait_other(future)
        images = tuple(done[page] for page in kept)
        return Prepared(images, len(selection) - len(kept), clock.seconds())

    def _cached(self, file: Path, page: int) -> PreparedImage | None:
        raw = self.cache.read(file)
        if not raw:
            return None
        if raw.startswith(_PNG) and raw[12:16] == b"IHDR" and raw.endswith(_PNG_END):
            width, height = struct.unpack(">II", raw[16:24])  # the header, no decoder needed
            return PreparedImage(raw, "image/png", width, height, page)
        try:
            with Image.open(io.BytesIO(raw)) as image:
                size, fmt = image.size, (image.format or "").lower()
        except (OSError, SyntaxError, ValueError):
            return None  # damaged: rendered again
        mime = _MIME.get(fmt) if fmt == "jpeg" and raw.endswith(b"\xff\xd9") else None
        return None if mime is None else PreparedImage(raw, mime, size[0], size[1], page)

    def _claim(
        self, files: dict[int, Path], missing: list[int]
    ) -> tuple[dict[int, Future[PreparedImage]], dict[int, Future[PreparedImage]]]:
        """Pages this call renders, and pages another call is rendering already."""
        mine: dict[int, Future[PreparedImage]] = {}
        others: dict[int, Future[PreparedImage]] = {}
        with self._lock:
            for page in missing:
                running = self._inflight.get(files[page])
                if running is not None:
                    others[page] = running
                else:
                    mine[page] = self._inflight[files[page]] = Future()
        return mine, others

    def _render_pages(
        self,
        doc: DocRef,
        mine: dict[int, Future[PreparedImage]],
        files: dict[int, Path],
        prep: ImagePrep,
        clock: _Clock,
        done: dict[int, PreparedImage],
    ) -> None:
        """Render, encode and cache the claimed pages; their futures get the outcome."""
        try:
            for page, future in mine.items():  # finished while we claimed it
                hit = self._cached(files[page], page)
                if hit is not None:
                    self._settle(files[page], future, hit)
                    done[page] = hit
            todo = [page for page in mine if page not in done]
            if not todo:
                return
            sizes = clock.wait(self._renderer.page_sizes(doc, todo))
            scales = [
                self._scale(doc.name, page, size, prep)
                for page, size in zip(todo, sizes, strict=True)
            ]
            queued = [self._renderer.render(doc, *job) for job in scales[:_RENDER_AHEAD]]
            for n, (page, _) in enumerate(scales):
                image = clock.wait(queued[n])
                if n + _RENDER_AHEAD < len(scales):
                    queued.append(self._renderer.render(doc, *scales[n + _RENDER_AHEAD]))
                data, mime = encode(image, prep.page_format)
                self.cache.write(files[page], data)
                done[page] = PreparedImage(data, mime, image.width, image.height, page)
                self._settle(files[page], mine[page], done[page])
        except BaseException as exc:
            for page, future in mine.items():
                if not future.done():
                    self._settle(files[page], future, exc)
            raise

    @staticmethod
    def _scale(
        name: str, page: int, size: tuple[float, float], prep: ImagePrep
    ) -> tuple[int, float]:
        width_pt, height_pt = size
        if not (width_pt > 0 and height_pt > 0):
            raise PrepError(f"{name}: page {page} has no area ({width_pt:g}x{height_pt:g} pt)")
        scale, width, height = render_scale(width_pt, height_pt, prep)
        if width * height > MAX_PAGE_PIXELS:
            raise PrepError(
                f"{name}: page {page} would render at {width * height / 1e6:.1f} megapixels"
                f" (limit {MAX_PAGE_PIXELS // 1_000_000})"
            )
        return page, scale

    def _settle(
        self, file: Path, future: Future[PreparedImage], outcome: PreparedImage | BaseException
    ) -> None:
        with self._lock:
            self._inflight.pop(file, None)
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
