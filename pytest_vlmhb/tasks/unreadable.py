"""The image path of a dataset row whose image did not decode.

The runner reads each sample's image through ``Path.read_bytes``; this path
raises there with the message recorded when the split was materialised
(naming dataset, split and row), so that sample fails alone and its error
says why. The error is an ``OSError`` too, which the image loader and the
report's dataset hash already treat as an unreadable file.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SampleError


class ImageDecodeError(SampleError, OSError):
    """A dataset row's image does not decode."""


class UnreadableImage(type(Path())):  # type: ignore[misc]  # the concrete Path flavour
    """A path whose ``read_bytes`` raises :class:`ImageDecodeError`."""

    reason: str = "image does not decode"

    @classmethod
    def of(cls, path: Path, reason: str) -> UnreadableImage:
        made = cls(path)
        made.reason = reason
        return made

    def read_bytes(self) -> bytes:
        raise ImageDecodeError(self.reason)
