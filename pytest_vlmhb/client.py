"""Lean async streaming client for OpenAI-compatible chat completions.

The OpenAI SDK cost about 44% of a vLLM server's throughput on these machines
(MACHINE-NOTES), so the hot path is a raw aiohttp SSE reader. Timing follows
vLLM's benchmark: TTFT is the first chunk with non-empty content, E2E the last
content chunk, TPOT = (E2E - TTFT) / (completion_tokens - 1), and token counts
come from the server's ``usage``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .errors import ServerError

#: HTTP statuses that say "try again later": rate limited, or busy/starting up.
RETRYABLE_STATUSES = frozenset({429, 503})


class RetryableError(ServerError):
    """A request that may succeed if sent again: connection error, 429 or 503."""


@dataclass
class Completion:
    """One streamed answer with its timing (seconds, perf_counter based)."""

    text: str = ""
    ttft_s: float | None = None
    e2e_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    token_ids: list[int] | None = None
    sent_at: float = 0.0  # wall clock (time.time), for throughput spans
    finished_at: float = 0.0

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first; None with fewer than 2 tokens."""
        if self.ttft_s is None or self.e2e_s is None or not self.completion_tokens:
            return None
        if self.completion_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.completion_tokens - 1)


def _error_message(status: int, body: bytes) -> str:
    try:
        payload = json.loads(body)
        message = payload.get("error", payload)
        if isinstance(message, dict):
            message = message.get("message", message)
    except (ValueError, AttributeError):
        message = body.decode("utf-8", "replace")[:500]
    return f"HTTP {status}: {message}"


def _absorb(chunk: dict[str, Any], out: Completion, now: float, start: float,
            last: list[float]) -> None:
    """Fold one SSE chunk into the completion."""
    usage = chunk.get("usage")
    if usage:
        out.prompt_tokens = usage.get("prompt_tokens")
        out.completion_tokens = usage.get("completion_tokens")
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        content = delta.get("content")
        ids = choice.get("token_ids")
        # A chunk carries a generated token when it has text, or the token's id
        # (a first token whose text the server withholds, a partial UTF-8
        # sequence, still counts). A role chunk carries neither: servers send it
        # with the first token (vLLM) or at once (the HF wrapper).
        if content or ids:
            if out.ttft_s is None:
                out.ttft_s = now - start
            else:
                out.itl_s.append(now - last[0])
            last[0] = now
            out.e2e_s = now - start
        if content:
            out.text += content
        if ids:
            if out.token_ids is None:
                out.token_ids = []
            out.token_ids.extend(ids)
        if choice.get("finish_reason"):
            out.finish_reason = choice["finish_reason"]


async def stream_chat(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
    timeout_s: float = 300.0,
) -> Completion:
    """POST a streaming chat request and time its chunks."""
    payload = {**body, "stream": True, "stream_options": {"include_usage": True}}
    out = Completion(sent_at=time.time())
    start = time.perf_counter()
    last = [start]
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with session.post(url, json=payload, headers=headers, timeout=timeout) as resp:
            if resp.status != 200:
                error = (RetryableError if resp.status in RETRYABLE_STATUSES else ServerError)
                raise error(_error_message(resp.status, await resp.read()))
            buffer = b""
            async for raw in resp.content:
                buffer += raw
                if not buffer.endswith(b"\n"):
                    continue
                line, buffer = buffer.strip(), b""
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    raise ServerError(f"stream error: {_error_message(200, data)}")
                _absorb(chunk, out, time.perf_counter(), start, last)
    except TimeoutError:
        raise ServerError(f"request timed out after {timeout_s:g} s") from None
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
        # A refused, reset or dropped connection, also one cut mid-stream.
        raise RetryableError(f"{type(exc).__name__}: {exc}") from None
    except aiohttp.ClientError as exc:
        raise ServerError(f"{type(exc).__name__}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ServerError(f"malformed stream chunk: {exc}") from None
    out.finished_at = time.time()
    if out.completion_tokens is None:
        raise ServerError("the server sent no usage (stream_options.include_usage)")
    return out
