"""Page thumbnails for report.html: ``<output>/thumbs/``, one pair of files per page.

Each page a sample sent (its image files, or its document's pages, prepared
with its case's settings through the page preparer, whose cache makes this
cheap after a run) gets two files named by the sha256 of the page's bytes:

- ``<hash>.t.jpg``: a thumbnail, at most :data:`THUMB_SIDE` px on its longest side;
- ``<hash>.v.<png|jpg|webp>``: the view behind a click, the page exactly as the
  model got it when it is at most :data:`VIEW_MAX_BYTES`, else a JPEG of at most
  :data:`VIEW_SIDE` px.

Samples with the same pages share files; files already there are not written
again, and files of pages no longer shown are removed. A sample whose files
cannot be read or decoded gets a reason instead of pages (a placeholder in the
page), never an exception.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .config import Case
from .documents import preparer
from .errors import SampleError
from .outputdir import atomic_write_bytes
from .pages import PreparedImage
from .tasks.manifest import Sample

THUMBS_DIR = "thumbs"
THUMB_SIDE = 240
VIEW_SIDE = 1600
VIEW_MAX_BYTES = 1024 * 1024
_HASH_CHARS = 20
_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
_VIEW_EXTS = tuple(dict.fromkeys(_EXT.values()))
_OURS = re.compile(rf"[0-9a-f]{{{_HASH_CHARS}}}\.(t\.jpg|v\.(png|jpg|webp))")
_WORKERS = 4


@dataclass(frozen=True)
class Page:
    """One page's files, relative to the output dir."""

    thumb: str
    view: str


@dataclass(frozen=True)
class SampleThumbs:
    """A sample's pages in order, or why it has none (``problem``)."""

    pages: tuple[Page, ...] = ()
    problem: str | None = None


def default_cache_dir() -> Path:
    """The cache dir a run uses when none is given (``VLMHB_CACHE``, else the user's)."""
    env = os.environ.get("VLMHB_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("vlmhb"))


def _flat_rgb(image: Image.Image) -> Image.Image:
    """RGB (or L) pixels of any image, transparency flattened onto white."""
    if image.mode in ("L", "RGB"):
        return image
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, (255, 255, 255))
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


def shrink_jpeg(data: bytes, side: int, quality: int = 80) -> bytes:
    """An encoded image as a JPEG of at most ``side`` px on its longest side.

    Raises what Pillow raises on a corrupt image (mostly ``OSError``).
    """
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (side, side))  # JPEG: decode at a reduced scale
        image.load()
        small = _flat_rgb(image)
        small.thumbnail((side, side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        small.save(out, format="JPEG", quality=quality)
        return out.getvalue()


def _page_files(digest: str, image: PreparedImage) -> dict[str, bytes]:
    """{thumbnail name: bytes, view name: bytes} of one prepared page (decoding
    errors propagate)."""
    files = {f"{digest}.t.jpg": shrink_jpeg(image.data, THUMB_SIDE)}
    ext = _EXT.get(image.mime)
    if ext is not None and len(image.data) <= VIEW_MAX_BYTES:
        files[f"{digest}.v.{ext}"] = image.data
    else:
        files[f"{digest}.v.jpg"] = shrink_jpeg(image.data, VIEW_SIDE, quality=85)
    return files


def _sample_thumbs(
    folder: Path, existing: frozenset[str], case: Case, sample: Sample, cache_dir: Path
) -> SampleThumbs:
    if sample.error is not None:  # never read: it may escape its folder, or be a FIFO
        return SampleThumbs(problem=sample.error)
    try:
        prepared = preparer(cache_dir).prepare_blocking(
            images=sample.image_files,
            document=sample.document,
            pages=sample.pages,
            prep=case.image_prep,
        )
    except (SampleError, OSError, ValueError) as exc:
        return SampleThumbs(problem=str(exc) or type(exc).__name__)
    pages = []
    for number, image in enumerate(prepared.images, start=1):
        digest = hashlib.sha256(image.data).hexdigest()[:_HASH_CHARS]
        thumb = f"{digest}.t.jpg"
        views = [f"{digest}.v.{ext}" for ext in _VIEW_EXTS]
        view = next((name for name in views if name in existing), None)
        if thumb not in existing or view is None:
            try:
                files = _page_files(digest, image)
            except Exception as exc:  # whatever a corrupt file makes Pillow raise: a placeholder
                return SampleThumbs(problem=f"page {number} does not decode: {exc}")
            for name, data in files.items():
                atomic_write_bytes(folder / name, data)
            thumb, view = files
        pages.append(Page(f"{THUMBS_DIR}/{thumb}", f"{THUMBS_DIR}/{view}"))
    if not pages:
        return SampleThumbs(problem="no page was sent")
    return SampleThumbs(tuple(pages))


def write_thumbs(
    output: Path,
    samples: Iterable[tuple[Case, Sample]],
    cache_dir: Path | None = None,
) -> dict[tuple[str, str], SampleThumbs]:
    """Thumbnails of each (case, sample), by (case id, sample id); samples with the
    same files and image settings are prepared once. Stale files are removed."""
    folder = output / THUMBS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    existing = frozenset(path.name for path in folder.iterdir())
    cache = cache_dir or default_cache_dir()
    jobs: dict[tuple[object, ...], tuple[Case, Sample]] = {}
    keys: dict[tuple[str, str], tuple[object, ...]] = {}
    for case, sample in samples:
        key = (sample.files, sample.pages, sample.error, case.image_prep)
        jobs.setdefault(key, (case, sample))
        keys[case.id, sample.id] = key
    with ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="vlmhb-thumbs") as pool:
        futures = {
            key: pool.submit(_sample_thumbs, folder, existing, case, sample, cache)
            for key, (case, sample) in jobs.items()
        }
        done = {key: future.result() for key, future in futures.items()}
    _prune(folder, done.values())
    return {where: done[key] for where, key in keys.items()}


def _prune(folder: Path, kept: Iterable[SampleThumbs]) -> None:
    """Remove our files of pages no sample shows any more."""
    used = {Path(path).name for thumbs in kept for p in thumbs.pages for path in (p.thumb, p.view)}
    for path in folder.iterdir():
        if _OURS.fullmatch(path.name) and path.name not in used:
            path.unlink(missing_ok=True)
