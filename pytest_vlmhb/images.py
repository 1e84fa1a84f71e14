"""Sample images -> data URLs for the chat request.

PNG, JPEG and WebP files are sent as they are (recognised by their magic
bytes, no decoding on the hot path); anything else Pillow can read is
converted to PNG. A corrupt PNG/JPEG/WebP is then reported by the server,
as an error of that sample alone.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import SampleError

_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))


def _mime(raw: bytes) -> str | None:
    for magic, mime in _MAGIC:
        if raw.startswith(magic):
            return mime
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_data_url(path: Path) -> str:
    """A ``data:`` URL of the image (re-encoded as PNG unless PNG/JPEG/WebP)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SampleError(f"image not found: {path}") from None
    except OSError as exc:
        raise SampleError(f"unreadable image {path}: {exc}") from None
    mime = _mime(raw)
    if mime is None:
        if not raw:
            raise SampleError(f"unreadable image {path}: empty file")
        try:
            with Image.open(io.BytesIO(raw)) as img:
                buf = io.BytesIO()
                img.convert("RGB").save(buf, format="PNG")
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
                Image.DecompressionBombError) as exc:
            raise SampleError(f"unreadable image {path}: {exc}") from None
        raw, mime = buf.getvalue(), "image/png"
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"
