"""Sample images -> data URLs for the chat request."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import SampleError

_PASS_THROUGH = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


def image_data_url(path: Path) -> str:
    """A ``data:`` URL of the image, re-encoded as PNG unless already PNG/JPEG/WebP."""
    try:
        raw = path.read_bytes()
        with Image.open(io.BytesIO(raw)) as img:
            fmt = img.format or ""
            if fmt in _PASS_THROUGH:
                img.verify()
                mime = _PASS_THROUGH[fmt]
            else:
                buf = io.BytesIO()
                img.convert("RGB").save(buf, format="PNG")
                raw, mime = buf.getvalue(), "image/png"
    except FileNotFoundError:
        raise SampleError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise SampleError(f"unreadable image {path}: {exc}") from None
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"
