"""The one thread that calls PDFium.

PDFium is not thread-safe, not even across documents, so every pypdfium2 call
of a :class:`PdfRenderer` runs on its single worker thread (a one-worker
``ThreadPoolExecutor`` never starts a second one, and a job's exception goes
to its future, never ending the thread). pypdfium2 is imported there on first
use: the plugin's import stays cheap. Every PDFium object is closed
explicitly on that thread, never left to a finalizer that could run elsewhere.

Documents stay open between a sample's page jobs in a small LRU keyed by
their content hash; pages are loaded only to be rendered (sizes come from
the page tree), so a 500-page PDF costs only the pages asked for.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from PIL import Image

from .imageprep import PrepError

T = TypeVar("T")


@dataclass(frozen=True)
class DocRef:
    """A PDF's bytes, its sha256 (the key of the open-document LRU) and its name in messages."""

    name: str
    digest: str
    data: bytes


def _pdfium() -> Any:
    import pypdfium2  # type: ignore[import-untyped]  # no py.typed; PDFium is Any here

    return pypdfium2


def _load_error(raw: Any, code: int) -> str:
    reasons = {
        raw.FPDF_ERR_PASSWORD: "needs a password",
        raw.FPDF_ERR_SECURITY: "uses an encryption PDFium does not support",
        raw.FPDF_ERR_FORMAT: "is not a readable PDF (damaged, or not a PDF)",
    }
    return reasons.get(code, f"is not a readable PDF (PDFium error {code})")


class PdfRenderer:
    """Runs PDFium jobs, one at a time, on one dedicated thread.

    Each job's future holds ``(result, seconds the job ran)``: time queued
    behind other jobs is not counted.
    """

    def __init__(self, open_documents: int = 4) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlmhb-pdfium")
        self._keep = open_documents
        # digest -> (PdfDocument, its bytes, which PDFium reads from); render thread only
        self._docs: OrderedDict[str, tuple[Any, bytes]] = OrderedDict()
        #: Pages rendered so far (written on the render thread only).
        self.renders = 0
        #: Every thread a job ran on: one, by construction.
        self.thread_ids: set[int] = set()

    def page_count(self, doc: DocRef) -> Future[tuple[int, float]]:
        """The number of pages; PrepError for a PDF PDFium cannot open."""
        return self._submit(lambda: len(self._open(doc)))

    def page_sizes(
        self, doc: DocRef, pages: Sequence[int]
    ) -> Future[tuple[list[tuple[float, float]], float]]:
        """(width, height) in points of each 1-based page, as rendered (rotation applied)."""
        return self._submit(lambda: [self._size(doc, page) for page in pages])

    def render(self, doc: DocRef, page: int, scale: float) -> Future[tuple[Image.Image, float]]:
        """The 1-based ``page`` rendered at ``scale`` pixels per point, as an RGB image."""
        return self._submit(lambda: self._render(doc, page, scale))

    def close(self) -> None:
        """Close the open documents and end the thread (waits for queued jobs)."""
        try:
            self._submit(self._close_all).result()
        except RuntimeError:  # already shut down
            return
        self._executor.shutdown(wait=True)

    def _submit(self, job: Callable[[], T]) -> Future[tuple[T, float]]:
        def timed() -> tuple[T, float]:
            self.thread_ids.add(threading.get_ident())
            start = time.perf_counter()
            return job(), time.perf_counter() - start

        return self._executor.submit(timed)

    def _open(self, doc: DocRef) -> Any:
        if doc.digest in self._docs:
            self._docs.move_to_end(doc.digest)
            return self._docs[doc.digest][0]
        pdfium = _pdfium()
        raw = pdfium.raw
        # The raw calls, not PdfDocument(bytes): that reports a document without
        # pages with a stale error code (PDFium sets none) and leaks its handle.
        handle = raw.FPDF_LoadMemDocument64(doc.data, len(doc.data), None)
        if not handle:
            raise PrepError(f"{doc.name}: {_load_error(raw, raw.FPDF_GetLastError())}")
        if raw.FPDF_GetPageCount(handle) < 1:
            raw.FPDF_CloseDocument(handle)
            raise PrepError(f"{doc.name}: has no pages")
        pdf = pdfium.PdfDocument(handle)
        try:
            pdf.init_forms()  # filled-in form fields are drawn
        except BaseException:
            pdf.close()
            raise
        self._docs[doc.digest] = (pdf, doc.data)
        while len(self._docs) > self._keep:
            self._docs.popitem(last=False)[1][0].close()
        return pdf

    def _size(self, doc: DocRef, page: int) -> tuple[float, float]:
        pdf = self._open(doc)
        try:
            width, height = pdf.get_page_size(page - 1)
        except _pdfium().PdfiumError:
            raise PrepError(f"{doc.name}: page {page} cannot be read") from None
        return float(width), float(height)

    def _render(self, doc: DocRef, page: int, scale: float) -> Image.Image:
        pdfium = _pdfium()
        pdf = self._open(doc)
        try:
            pdf_page = pdf[page - 1]
        except pdfium.PdfiumError:
            raise PrepError(f"{doc.name}: page {page} cannot be loaded") from None
        try:
            bitmap = pdf_page.render(scale=scale)
            try:
                # A BGR bitmap: Pillow copies it into an RGB image it owns.
                image: Image.Image = bitmap.to_pil()
            finally:
                bitmap.close()
        finally:
            pdf_page.close()
        self.renders += 1
        return image

    def _close_all(self) -> None:
        while self._docs:
            self._docs.popitem()[1][0].close()
