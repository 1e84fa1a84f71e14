"""The chat-completions request body of one sample (and of a user test's call)."""

from __future__ import annotations

from typing import Any

from .backends.base import Backend
from .config import Case
from .errors import SampleError
from .images import image_data_url
from .tasks.manifest import Sample


def chat_body(
    case: Case, served_name: str, backend: Backend, content: list[dict[str, Any]]
) -> dict[str, Any]:
    """The request for one user turn of ``content`` parts: the case's system turn
    before it (when set), its generation settings, the backend's extra fields,
    ``chat_template_kwargs`` (top level, when set: vLLM, SGLang and the HF wrapper
    read it there) and the case's ``request_params``."""
    system: list[dict[str, Any]] = []
    if case.system_prompt is not None:
        system.append({"role": "system", "content": case.system_prompt})
    kwargs = case.chat_template_kwargs
    template = {"chat_template_kwargs": kwargs} if kwargs else {}
    return {
        "model": served_name,
        "messages": [*system, {"role": "user", "content": content}],
        "max_tokens": case.max_tokens,
        "temperature": case.temperature,
        **backend.request_extras(),
        **template,
        **case.request_params,
    }


def request_body(case: Case, sample: Sample, served_name: str, backend: Backend) -> dict[str, Any]:
    """The OpenAI-style request for ``sample`` (the image inlined as a data URL);
    a SampleError when the sample cannot run or its image cannot be read."""
    if sample.error:
        raise SampleError(sample.error)
    content: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": image_data_url(sample.image)}},
        {"type": "text", "text": sample.prompt},
    ]
    return chat_body(case, served_name, backend, content)
