"""The chat-completions request body of one sample."""

from __future__ import annotations

from typing import Any

from .backends.base import Backend
from .config import Case
from .errors import SampleError
from .images import image_data_url
from .tasks.manifest import Sample


def request_body(case: Case, sample: Sample, served_name: str, backend: Backend) -> dict[str, Any]:
    """The OpenAI-style request for ``sample`` (the image inlined as a data URL);
    a SampleError when the sample cannot run or its image cannot be read."""
    if sample.error:
        raise SampleError(sample.error)
    return {
        "model": served_name,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": image_data_url(sample.image)}},
                    {"type": "text", "text": sample.prompt},
                ],
            }
        ],
        "max_tokens": case.max_tokens,
        "temperature": case.temperature,
        **backend.request_extras(),
        **case.request_params,
    }
