"""Sample images -> data URLs for the chat request.

PNG, JPEG and WebP files are sent as they are (recognised by their magic
bytes, no decoding on the hot path); anything else Pillow can read is
converted to PNG. A corrupt PNG/JPEG/WebP is then reported by the server,
as an error of that sample alone.

Files are read through :func:`read_image`: opened without blocking (a FIFO
cannot hang the run), checked to be a regular file on the open descriptor,
and read up to :data:`MAX_IMAGE_BYTES`.
"""

from __future__ import annotations

import base64
import io
import os
import stat
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import SampleError

_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))


#: Largest image file a sample may name.
MAX_IMAGE_BYTES = 64 * 1024 * 1024
_MIB = 1024 * 1024
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)


def not_regular(mode: int) -> str | None:
    """``"is a FIFO, not a regular file"`` and the like; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return f"is {kind}, not a regular file"


def too_large(size: int, limit: int = MAX_IMAGE_BYTES) -> str | None:
    """``"is 70.0 MiB, over the 64 MiB limit"``; None within the limit."""
    if size <= limit:
        return None
    shown = f"{size / _MIB:.1f} MiB"
    if shown == f"{limit / _MIB:.1f} MiB":
        shown = f"{size} bytes"
    return f"is {shown}, over the {limit / _MIB:g} MiB limit"


def _open_error(path: Path, exc: OSError) -> str:
    try:
        problem = not_regular(os.stat(path).st_mode)
    except OSError:
        problem = None
    if problem:
        return f"image {path} {problem}"
    return f"unreadable image {path}: {exc.strerror or exc}"


def read_image(path: Path, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; SampleError otherwise.

    Opened with ``O_NONBLOCK`` and checked with ``fstat`` on the descriptor, so a
    file swapped for a FIFO or a device after the manifest was loaded never blocks.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SampleError(f"image not found: {path}") from None
    except OSError as exc:  # a socket (ENXIO), no permission...
        raise SampleError(_open_error(path, exc)) from None
    try:
        info = os.fstat(fd)
        problem = not_regular(info.st_mode) or too_large(info.st_size, limit)
        if problem:
            raise SampleError(f"image {path} {problem}")
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, _MIB))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise SampleError(f"unreadable image {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    problem = too_large(len(raw), limit)  # grew after fstat
    if problem:
        raise SampleError(f"image {path} {problem}")
    return raw


def _mime(raw: bytes) -> str | None:
    for magic, mime in _MAGIC:
        if raw.startswith(magic):
            return mime
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_data_url(path: Path) -> str:
    """A ``data:`` URL of the image (re-encoded as PNG unless PNG/JPEG/WebP)."""
    raw = read_image(path)
    mime = _mime(raw)
    if mime is None:
        if not raw:
            raise SampleError(f"unreadable image {path}: empty file")
        try:
            with Image.open(io.BytesIO(raw)) as img:
                buf = io.BytesIO()
                img.convert("RGB").save(buf, format="PNG")
        except (
            UnidentifiedImageError,
            OSError,
            SyntaxError,
            ValueError,
            Image.DecompressionBombError,
        ) as exc:
            raise SampleError(f"unreadable image {path}: {exc}") from None
        raw, mime = buf.getvalue(), "image/png"
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


#: Largest PDF document a sample may name.
MAX_DOCUMENT_BYTES = 256 * _MIB


def read_document(path: Path, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """:func:`read_image`'s bounded, non-blocking read of a PDF; messages say "document"."""
    try:
        return read_image(path, limit)
    except SampleError as exc:
        # Every read_image message names the file as "image" before anything else.
        raise SampleError(str(exc).replace("image", "document", 1)) from None
