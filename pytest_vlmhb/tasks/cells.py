"""Image cells of a dataset row: their encoded bytes, checked by decoding them."""

from __future__ import annotations

import base64
import binascii
import io
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from PIL import ExifTags, Image, ImageOps

S = TypeVar("S")
T = TypeVar("T")
EXTENSIONS = {
    "PNG": "png",
    "JPEG": "jpg",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tiff",
}


def image_bytes(value: Any) -> bytes:
    """The encoded image of a cell: an Image feature dict, raw bytes, or base64 text."""
    if isinstance(value, Mapping):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path") and os.path.isfile(value["path"]):
            return Path(value["path"]).read_bytes()
        raise ValueError("the image cell holds neither bytes nor a readable path")
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str) and value:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the image cell is text but not base64") from None
    raise ValueError(f"the image cell is {type(value).__name__}, not an image")


def image_extension(raw: bytes) -> str:
    """The file extension of a decodable image; raises on one that does not decode."""
    with Image.open(io.BytesIO(raw)) as img:
        fmt = img.format or ""
        img.load()
    return EXTENSIONS.get(fmt, fmt.lower() or "bin")


def decode_rgb(raw: bytes) -> Image.Image:
    """The image as ``datasets.Image`` decodes a cell (its EXIF orientation applied),
    then ``convert("RGB")``: what lmms-eval's ``doc_to_visual`` functions start from."""
    with Image.open(io.BytesIO(raw)) as img:
        img.load()
        if img.getexif().get(ExifTags.Base.Orientation) is not None:
            return ImageOps.exif_transpose(img).convert("RGB")
        return img.convert("RGB")


def png(image: Image.Image) -> bytes:
    """``image`` encoded as PNG (lossless; Pillow writes the same bytes every time)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


class CellError(ValueError):
    """An image cell that does not decode, naming its column."""

    def __init__(self, column: str, exc: BaseException) -> None:
        super().__init__(f"column {column!r}: {type(exc).__name__}: {exc}")
        self.column = column


def per_cell(cells: Sequence[tuple[str, S]], convert: Callable[[S], T]) -> list[T]:
    """``convert`` applied to each (column, cell) in order; CellError naming the
    column of the first cell it fails on (Pillow raises many exception types)."""
    out = []
    for column, raw in cells:
        try:
            out.append(convert(raw))
        except Exception as exc:
            raise CellError(column, exc) from None
    return out
