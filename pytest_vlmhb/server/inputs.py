"""Turn OpenAI chat messages into chat-template messages plus PIL images."""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from PIL import Image, UnidentifiedImageError

from .protocol import ApiError, ChatMessage

Image.MAX_IMAGE_PIXELS = 64_000_000  # refuse decompression bombs early


def decode_data_url(url: str, *, param: str) -> Image.Image:
    """Decode ``data:image/...;base64,...`` into an RGB image; 400 otherwise."""
    if not url.startswith("data:"):
        raise ApiError("only data: image URLs are supported (no http(s) fetching)", param=param)
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise ApiError("image data URL must be base64: data:image/<fmt>;base64,...", param=param)
    try:
        raw = base64.b64decode(payload, validate=True)
        with Image.open(io.BytesIO(raw)) as image:
            image.load()
            return image.convert("RGB")
    except (binascii.Error, ValueError) as exc:
        raise ApiError(f"invalid base64 image data: {exc}", param=param) from exc
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ApiError(f"cannot decode image: {exc}", param=param) from exc


def convert_messages(
    messages: list[ChatMessage], *, max_images: int
) -> tuple[list[dict[str, Any]], list[Image.Image]]:
    """OpenAI messages -> template messages (``{"type": "image"|"text"}`` parts) and images."""
    converted: list[dict[str, Any]] = []
    images: list[Image.Image] = []
    for i, message in enumerate(messages):
        content = message.content
        parts: list[dict[str, Any]] = []
        if isinstance(content, str):
            parts.append({"type": "text", "text": content})
        elif content is not None:
            for j, part in enumerate(content):
                param = f"messages[{i}].content[{j}]"
                if part.type == "text":
                    if part.text is None:
                        raise ApiError("text part without 'text'", param=param)
                    parts.append({"type": "text", "text": part.text})
                elif part.type == "image_url":
                    url = part.image_url
                    url = url.url if url is not None and not isinstance(url, str) else url
                    if not url:
                        raise ApiError("image_url part without a url", param=param)
                    if len(images) >= max_images:
                        raise ApiError(
                            f"at most {max_images} image(s) per request", param="messages"
                        )
                    images.append(decode_data_url(url, param=param))
                    parts.append({"type": "image"})
                else:
                    raise ApiError(f"unsupported content part type {part.type!r}", param=param)
        if not parts:
            parts.append({"type": "text", "text": ""})
        role = "system" if message.role == "developer" else message.role
        converted.append({"role": role, "content": parts})
    return converted, images
