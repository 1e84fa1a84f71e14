"""How a sample's images are prepared: the settings, their parsers, and the pixel work.

:class:`ImagePrep` holds the settings; :func:`fit_size` and :func:`render_scale`
apply its caps (to an image file's pixels, to a PDF page's points);
:func:`load_image_file` and :func:`encode` do the Pillow work. The PDFium side
is ``pdfrender.py``; the engine tying them together is ``pages.py``.

The default resolution, 144 dpi, is twice PDF's 72 points per inch: a 10 pt
font's text is about 20 px high, where document OCR by VLMs stays reliable,
and an A4 page is 1191x1684 px (US Letter 1224x1584).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops, ImageOps, UnidentifiedImageError

from .errors import SampleError


class PrepError(SampleError):
    """This sample's images cannot be prepared; the message says why."""


#: PDF pages are rendered at most this large (after the caps); larger is an error.
MAX_PAGE_PIXELS = 100_000_000
#: The highest page number :func:`parse_pages` accepts (it bounds a range's length).
MAX_PAGE_NUMBER = 99_999
DEFAULT_JPEG_QUALITY = 90
FORMATS = ("png", "jpeg", "jpeg:<quality 1-100>")
#: Image files sent as they are when no cap binds and no format is asked for.
SENT_AS_IS = frozenset({"PNG", "JPEG", "WEBP"})

_FORMAT = re.compile(r"(png|jpe?g)(?::([0-9]{1,3}))?")
_RANGE = re.compile(r"([0-9]+)(?:\s*-\s*([0-9]+))?")
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)


def parse_image_format(text: str) -> str:
    """``"png"`` or ``"jpeg:<quality>"`` from ``png``, ``jpeg``, ``jpg``, ``jpeg:85``...

    Case and surrounding blanks are ignored; ``jpeg`` alone means quality 90.
    ValueError, naming the allowed values, for anything else.
    """
    match = _FORMAT.fullmatch(text.strip().lower()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"image format {text!r} is not one of {', '.join(FORMATS)}")
    if match.group(1) == "png":
        if match.group(2) is not None:
            raise ValueError(f"image format {text!r}: png takes no quality ({', '.join(FORMATS)})")
        return "png"
    quality = int(match.group(2)) if match.group(2) is not None else DEFAULT_JPEG_QUALITY
    if not 1 <= quality <= 100:
        raise ValueError(f"image format {text!r}: jpeg quality must be 1-100")
    return f"jpeg:{quality}"


def parse_pages(spec: str | Sequence[int]) -> tuple[int, ...]:
    """1-based page numbers, in the order given: ``"1-3,7"`` or ``[1, 2, 3, 7]``.

    ValueError for a selection that can never be valid: empty, a page below 1 or
    above :data:`MAX_PAGE_NUMBER`, a descending range, a non-integer (booleans
    included), or a page listed twice (a mistake in every case we know of).
    Any order is kept: ``"3,1"`` sends page 3, then page 1.
    """
    pages: list[int] = []
    if isinstance(spec, str):
        if not spec.strip():
            raise ValueError("pages: empty selection")
        for part in spec.split(","):
            match = _RANGE.fullmatch(part.strip())
            if match is None:
                raise ValueError(f"pages: {part.strip()!r} is not a page or a range like 1-3")
            first = int(match.group(1))
            last = int(match.group(2)) if match.group(2) is not None else first
            for number in (first, last):
                _check_page(number)
            if last < first:
                raise ValueError(f"pages: range {first}-{last} runs backwards")
            pages.extend(range(first, last + 1))
    elif isinstance(spec, Sequence):
        for item in spec:
            if isinstance(item, bool) or not isinstance(item, int):
                raise ValueError(f"pages: {item!r} is not a page number")
            _check_page(item)
            pages.append(item)
        if not pages:
            raise ValueError("pages: empty selection")
    else:
        raise ValueError(f"pages: {spec!r} is neither a list of pages nor a text like 1-3,7")
    seen: set[int] = set()
    for page in pages:
        if page in seen:
            raise ValueError(f"pages: page {page} is listed twice")
        seen.add(page)
    return tuple(pages)


def _check_page(number: int) -> None:
    if not 1 <= number <= MAX_PAGE_NUMBER:
        raise ValueError(f"pages: page {number} is not between 1 and {MAX_PAGE_NUMBER}")


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")


@dataclass(frozen=True)
class ImagePrep:
    """How a sample's images are prepared; validated and normalised on creation."""

    #: PDF render resolution: 144 = 2x PDF's 72 pt/inch (see the module's docstring).
    dpi: float = 144.0
    #: Pages of a document (or images of a sample) beyond it are dropped and counted.
    max_pages: int = 20
    #: Client-side cap on the longer side, keeping the aspect ratio.
    max_image_side: int | None = None
    #: Client-side cap on width*height, keeping the aspect ratio; the stricter cap wins.
    max_image_pixels: int | None = None
    #: ``png`` or ``jpeg:<quality>``; None: image files unchanged, pages as PNG.
    image_format: str | None = None

    def __post_init__(self) -> None:
        dpi = self.dpi
        if isinstance(dpi, bool) or not isinstance(dpi, int | float) or not 1 <= dpi <= 1200:
            raise ValueError(f"dpi must be a number from 1 to 1200, not {dpi!r}")
        object.__setattr__(self, "dpi", float(dpi))
        _positive_int("max_pages", self.max_pages)
        for name in ("max_image_side", "max_image_pixels"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        if self.image_format is not None:
            object.__setattr__(self, "image_format", parse_image_format(self.image_format))

    @property
    def page_format(self) -> str:
        """The format rendered pages are encoded in."""
        return self.image_format or "png"

    def describe(self) -> str:
        """For provenance, e.g. ``144 dpi, max side 1536, up to 20 pages, png``."""
        parts = [f"{self.dpi:g} dpi"]
        if self.max_image_side is not None:
            parts.append(f"max side {self.max_image_side}")
        if self.max_image_pixels is not None:
            parts.append(f"max {self.max_image_pixels} px")
        parts.append(f"up to {self.max_pages} pages")
        fmt = self.image_format or "files as sent, pages png"
        parts.append(fmt.replace("jpeg:", "jpeg q"))
        return ", ".join(parts)

    def key(self) -> dict[str, object]:
        """The settings as a JSON-able dict, for record and cache keys."""
        return {
            "dpi": self.dpi,
            "max_pages": self.max_pages,
            "max_image_side": self.max_image_side,
            "max_image_pixels": self.max_image_pixels,
            "image_format": self.image_format,
        }

    def binds(self, width: int, height: int) -> bool:
        """Whether a cap makes a ``width`` x ``height`` image smaller."""
        return fit_size(width, height, self) != (width, height)


def fit_size(width: int, height: int, prep: ImagePrep) -> tuple[int, int]:
    """The size an image is resized to under the caps (never enlarged).

    Both sides are scaled by the same factor and rounded down, so the caps
    hold and the aspect ratio is kept within a pixel.
    """
    factor = _cap_factor(width, height, prep, 1.0)
    if factor >= 1.0:
        return width, height
    return _target(width, height, factor, prep)


def render_scale(width_pt: float, height_pt: float, prep: ImagePrep) -> tuple[float, int, int]:
    """PDFium's render scale for a page of this size in points, and the pixel size.

    ``min(dpi / 72, the caps' scale)``: the page is rendered at its final size,
    never larger and then shrunk. PDFium makes ``ceil(points * scale)`` pixels,
    so under a cap the scale is the largest whose rounded-up size obeys the caps.
    """

    def size(scale: float) -> tuple[int, int]:
        return math.ceil(width_pt * scale), math.ceil(height_pt * scale)

    high = _cap_factor(width_pt, height_pt, prep, prep.dpi / 72.0)
    if _within(size(high), prep):
        return high, *size(high)
    # fit_size's rounded-down sides obey the caps; search up from there (sizes
    # only grow with the scale).
    target = _target(width_pt, height_pt, high, prep)
    low = min(target[0] / width_pt, target[1] / height_pt) * (1.0 - 1e-12)
    for _ in range(60):
        middle = (low + high) / 2
        if _within(size(middle), prep):
            low = middle
        else:
            high = middle
    return low, *size(low)


def _target(width: float, height: float, factor: float, prep: ImagePrep) -> tuple[int, int]:
    """Both sides times ``factor``, rounded down (at least 1 px), within the caps."""
    size = (max(1, math.floor(width * factor + 1e-6)), max(1, math.floor(height * factor + 1e-6)))
    if not _within(size, prep):  # the 1e-6 rounded up over a cap
        size = (max(1, math.floor(width * factor)), max(1, math.floor(height * factor)))
    pixels = prep.max_image_pixels
    if pixels is not None and size[0] * size[1] > pixels:  # a 1 px side: cap the other
        size = (min(size[0], pixels), 1) if size[1] == 1 else (1, min(size[1], pixels))
    return size


def _cap_factor(width: float, height: float, prep: ImagePrep, factor: float) -> float:
    if prep.max_image_side is not None:
        factor = min(factor, prep.max_image_side / max(width, height))
    if prep.max_image_pixels is not None:
        factor = min(factor, math.sqrt(prep.max_image_pixels / (width * height)))
    return factor


def _within(size: tuple[int, int], prep: ImagePrep) -> bool:
    side_ok = prep.max_image_side is None or max(size) <= prep.max_image_side
    return side_ok and (prep.max_image_pixels is None or size[0] * size[1] <= prep.max_image_pixels)


def encode(image: Image.Image, fmt: str) -> tuple[bytes, str]:
    """``image`` encoded as ``png`` or ``jpeg:<quality>``; the bytes and their MIME type.

    An RGB image whose every pixel is gray (most rendered text pages) is
    encoded as grayscale: the same pixels, and for a dense A4 text page at
    144 dpi a PNG of ~30 KB in ~25 ms instead of ~420 KB in ~90 ms.
    """
    buf = io.BytesIO()
    if image.mode == "RGB" and _is_gray(image):
        image = image.convert("L")  # exact: L = (299 R + 587 G + 114 B) / 1000
    if fmt == "png":
        if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
            image = image.convert("RGBA" if _has_alpha(image) else "RGB")
        image.save(buf, format="PNG")
        return buf.getvalue(), "image/png"
    if _has_alpha(image):  # JPEG has no alpha: flatten onto white, as a page is
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, (255, 255, 255))
        image.paste(rgba, mask=rgba.getchannel("A"))
    elif image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    image.save(buf, format="JPEG", quality=int(fmt.partition(":")[2]))
    return buf.getvalue(), "image/jpeg"


def _is_gray(image: Image.Image) -> bool:
    red, green, blue = image.split()
    return (
        ImageChops.difference(red, green).getbbox() is None
        and ImageChops.difference(green, blue).getbbox() is None
    )


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("LA", "RGBA", "PA", "La", "RGBa") or "transparency" in image.info


def _open(raw: bytes, path: Path) -> Image.Image:
    if not raw:
        raise PrepError(f"unreadable image {path}: empty file")
    try:
        image = Image.open(io.BytesIO(raw))
    except UnidentifiedImageError:
        raise PrepError(f"unreadable image {path}: not an image format Pillow reads") from None
    except Image.DecompressionBombError:
        raise PrepError(f"image {path} is over Pillow's decompression-bomb limit") from None
    except _DECODE_ERRORS as exc:
        raise PrepError(f"unreadable image {path}: {exc}") from None
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and image.width * image.height > limit:
        megapixels = image.width * image.height / 1e6
        image.close()
        raise PrepError(
            f"image {path} is {image.width}x{image.height} ({megapixels:.1f} megapixels), over"
            f" Pillow's decompression-bomb limit of {limit / 1e6:.1f} megapixels"
        )
    return image


def load_image_file(raw: bytes, path: Path, prep: ImagePrep) -> tuple[bytes, str, int, int]:
    """An image file's bytes as sent: (data, mime, width, height).

    Sent unchanged when no cap binds and either no format is asked for and the
    file is PNG, JPEG or WebP, or PNG is asked for and it is a PNG (the MIME
    type from what Pillow reads, not the extension). Otherwise decoded (EXIF
    orientation applied), resized with LANCZOS and encoded in the format asked
    for, PNG by default.
    """
    with _open(raw, path) as image:
        width, height = image.size
        fmt = image.format or ""
        if prep.image_format is None:
            as_is = fmt in SENT_AS_IS
        else:
            as_is = prep.image_format == "png" and fmt == "PNG"
        if as_is and not prep.binds(width, height):
            return raw, Image.MIME[fmt], width, height
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
            if upright.mode.startswith("I;16"):  # 16-bit gray: keep the range, in 8 bits
                upright = upright.convert("I").point(lambda v: v / 257).convert("L")
            elif upright.mode in ("1", "P", "PA", "I", "F", "CMYK"):
                upright = upright.convert("RGBA" if _has_alpha(upright) else "RGB")
            size = fit_size(upright.width, upright.height, prep)
            if size != upright.size:
                upright = upright.resize(size, Image.Resampling.LANCZOS)
            data, mime = encode(upright, prep.image_format or "png")
        except _DECODE_ERRORS as exc:
            raise PrepError(f"unreadable image {path}: {exc}") from None
        return data, mime, size[0], size[1]
