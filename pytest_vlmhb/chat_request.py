"""The chat-completions request body of one sample (and of a user test's call)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .backends.base import Backend
from .config import Case
from .documents import preparer, user_content
from .errors import SampleError
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


def request_body(
    case: Case, sample: Sample, served_name: str, backend: Backend, cache_dir: Path
) -> dict[str, Any]:
    """The OpenAI-style request for ``sample``, its images prepared here (blocking:
    the runner prepares them off its event loop instead) and inlined as data URLs;
    a SampleError when the sample cannot run or its images cannot be prepared."""
    if sample.error:
        raise SampleError(sample.error)
    ready = preparer(cache_dir).prepare_blocking(
        images=sample.image_files,
        document=sample.document,
        pages=sample.pages,
        prep=case.image_prep,
    )
    return chat_body(case, served_name, backend, user_content(sample.prompt, ready))
