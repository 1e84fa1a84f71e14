"""Lean async streaming client for OpenAI-compatible chat completions.

The OpenAI SDK cost about 44% of a vLLM server's throughput on these machines
(MACHINE-NOTES), so the hot path is a raw aiohttp SSE reader. Timing follows
vLLM's benchmark: TTFT is the first chunk carrying a generated token (text,
reasoning text or token ids), E2E the last such chunk, TPOT = (E2E - TTFT) /
(completion_tokens - 1), and token counts come from the server's ``usage``.

Reasoning a server streams apart from the answer (``delta.reasoning`` from
vLLM's ``--reasoning-parser``, ``delta.reasoning_content`` from SGLang and
older vLLM; ``message.reasoning``/``reasoning_content`` in a whole reply) is
kept in :attr:`Completion.reasoning`, never in :attr:`Completion.text`, so it
is never scored. TTFA (time to first answer token) is the first chunk with
non-empty answer text (``content``): after the reasoning, or TTFT without any.

Server output is untrusted: every message is validated by pydantic-core
straight from the raw bytes (TypedDicts through a TypeAdapter: about half the
cost of BaseModel instances, and less than ``json.loads`` alone). A message
that does not fit the protocol fails only its own sample, with a
:class:`StreamError` that names the problem and keeps what was received.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, NotRequired

import aiohttp
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from pydantic_core import from_json
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from .errors import ServerError
from .redact import redact_then_truncate

#: HTTP statuses that say "try again later": rate limited, or busy/starting up.
RETRYABLE_STATUSES = frozenset({429, 503})
#: A longer SSE line (no newline in sight) is an error, not a memory hog.
MAX_LINE_BYTES = 8 * 1024 * 1024
_ERROR_CHARS = 500  # of a server's error message
_EXCERPT_CHARS = 200  # of an offending message
_VALUE_CHARS = 60  # of an offending value

_Count = Annotated[int, Field(ge=0)]  # strict (config below): no bool, str or float


class RetryableError(ServerError):
    """A request that may succeed if sent again: connection error, 429 or 503."""


class StreamError(ServerError):
    """A reply that failed midway or broke the protocol; ``partial`` holds what was received."""

    def __init__(self, message: str, partial: Completion) -> None:
        super().__init__(message)
        self.partial = partial


# The wire format: only the fields the harness reads; any others are ignored.
# Strict: a count must be a JSON integer, a text a JSON string.
@with_config(ConfigDict(strict=True))
class _CompletionDetails(TypedDict):
    reasoning_tokens: NotRequired[_Count | None]  # null or absent: not reported


@with_config(ConfigDict(strict=True))
class _Usage(TypedDict):
    # prompt_tokens may be null or absent: some proxies do not count the prompt,
    # and only completion_tokens enters the timing figures.
    prompt_tokens: NotRequired[_Count | None]
    completion_tokens: _Count
    completion_tokens_details: NotRequired[_CompletionDetails | None]


@with_config(ConfigDict(strict=True))
class _Delta(TypedDict):
    content: NotRequired[str | None]
    reasoning: NotRequired[str | None]  # vLLM 0.10+ (--reasoning-parser)
    reasoning_content: NotRequired[str | None]  # SGLang, older vLLM


@with_config(ConfigDict(strict=True))
class _StreamChoice(TypedDict):
    index: NotRequired[_Count]
    delta: NotRequired[_Delta | None]
    token_ids: NotRequired[list[_Count] | None]
    finish_reason: NotRequired[str | None]


@with_config(ConfigDict(strict=True))
class _Chunk(TypedDict):
    """One ``data:`` message of the stream (``chat.completion.chunk``)."""

    choices: NotRequired[list[_StreamChoice] | None]
    usage: NotRequired[_Usage | None]
    error: NotRequired[Any]
    object: NotRequired[Any]  # "error" in vLLM's older in-stream errors


@with_config(ConfigDict(strict=True))
class _Message(TypedDict):
    content: NotRequired[str | None]
    reasoning: NotRequired[str | None]
    reasoning_content: NotRequired[str | None]


@with_config(ConfigDict(strict=True))
class _Choice(TypedDict):
    index: NotRequired[_Count]
    message: _Message
    token_ids: NotRequired[list[_Count] | None]
    finish_reason: NotRequired[str | None]


@with_config(ConfigDict(strict=True))
class _Reply(TypedDict):
    """A whole ``chat.completion``: from a server that ignores ``stream: true``."""

    choices: Annotated[list[_Choice], Field(min_length=1)]
    usage: NotRequired[_Usage | None]
    error: NotRequired[Any]
    object: NotRequired[Any]


_CHUNK = TypeAdapter(_Chunk)
_REPLY = TypeAdapter(_Reply)


@dataclass
class Completion:
    """One streamed answer with its timing (seconds, perf_counter based)."""

    #: The answer text (``content``) exactly as the server sent it.
    text: str = ""
    #: Reasoning the server streamed apart from the answer ("" when none).
    reasoning: str = ""
    ttft_s: float | None = None  #: first token of any kind (reasoning or answer)
    ttfa_s: float | None = None  #: first non-empty answer text
    e2e_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    #: ``usage.completion_tokens_details.reasoning_tokens`` (None: not reported).
    reasoning_tokens: int | None = None
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


def _server_message(payload: object) -> str:
    """The human part of any JSON error body: ``error``/``detail``/``message``, else all."""
    for _ in range(8):  # {"error": {"message": ...}} and the like
        if not isinstance(payload, dict):
            break
        inner = next(
            (payload[k] for k in ("error", "detail", "message") if payload.get(k) is not None), None
        )
        if inner is None:
            break
        payload = inner
    if isinstance(payload, str):
        return payload
    return json.dumps(payload, ensure_ascii=False)


def _error_message(status: int, body: bytes) -> str:
    """``HTTP <status>: <message>`` from an error body of any shape, redacted, then cut."""
    try:
        message = _server_message(from_json(body))
    except ValueError:  # not JSON (also: nested too deep)
        message = body.decode("utf-8", "replace").strip()
    return f"HTTP {status}: {_cut(message or '(empty body)')}"


def _error_in(data: bytes) -> str | None:
    """The message of an ``error`` object the server sent instead of a chunk, if it is one."""
    try:
        payload = from_json(data)
    except ValueError:
        return None
    if isinstance(payload, dict) and (
        payload.get("error") is not None or payload.get("object") == "error"
    ):
        return _server_message(payload)
    return None


def _cut(message: str) -> str:
    """A server's error message, redacted, then cut."""
    return redact_then_truncate(message, _ERROR_CHARS, keep="head")


def _short(value: object) -> str:
    """An offending value as JSON, redacted, then cut."""
    return redact_then_truncate(json.dumps(value, ensure_ascii=False), _VALUE_CHARS, keep="head")


def _describe(exc: ValidationError, data: bytes) -> str:
    """What was wrong, e.g. ``usage.completion_tokens: Input should be ... (got "12")``."""
    problems = []
    for err in exc.errors(include_url=False)[:3]:
        if err["type"] == "json_invalid":
            problems.append(f"not valid JSON ({err['msg'].removeprefix('Invalid JSON: ')})")
            continue
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        got = "" if err["type"] == "missing" else f" (got {_short(err['input'])})"
        problems.append(f"{where.lstrip('.') or 'top level'}: {err['msg']}{got}")
    more = exc.error_count() - len(problems)
    excerpt = redact_then_truncate(data.decode("utf-8", "replace"), _EXCERPT_CHARS, keep="head")
    return "; ".join(problems) + (f" (+{more} more)" if more > 0 else "") + f"; message: {excerpt}"


class _Reader:
    """Folds the server's messages into one Completion."""

    __slots__ = ("chunks", "last", "out", "pieces", "start", "thoughts")

    def __init__(self, out: Completion, start: float) -> None:
        self.out, self.start, self.last = out, start, start
        self.pieces: list[str] = []
        self.thoughts: list[str] = []  # reasoning streamed apart
        self.chunks = 0

    def result(self) -> Completion:
        """The completion as received so far."""
        self.out.text = "".join(self.pieces)
        self.out.reasoning = "".join(self.thoughts)
        self.out.finished_at = time.time()
        return self.out

    def fail(self, message: str) -> StreamError:
        """The error for this sample, carrying what was received."""
        return StreamError(message, self.result())

    def data(self, data: bytes, now: float) -> bool:
        """Fold one SSE ``data:`` payload; True at ``[DONE]``."""
        data = data.strip()
        if not data:
            return False  # an empty data line: nothing to fold
        if data == b"[DONE]":
            return True
        self.chunks += 1
        try:
            chunk = _CHUNK.validate_json(data)
        except ValidationError as exc:
            error = _error_in(data)
            if error is not None:
                raise self.fail(f"stream error: {_cut(error)}") from None
            raise self.fail(
                f"malformed stream chunk {self.chunks}: {_describe(exc, data)}"
            ) from None
        if chunk.get("error") is not None or chunk.get("object") == "error":
            raise self.fail(f"stream error: {_cut(_error_in(data) or '')}")
        usage = chunk.get("usage")
        if usage:
            self.usage(usage)
        choices = chunk.get("choices")
        if not choices:
            return False
        choice = choices[0]
        if len(choices) > 1 or choice.get("index", 0):
            what = (
                f"{len(choices)} choices"
                if len(choices) > 1
                else f"choice index {choice.get('index')}"
            )
            raise self.fail(
                f"the server streamed more than one choice (n>1): chunk "
                f"{self.chunks} carries {what}; the harness asks for one"
            )
        delta = choice.get("delta")
        content = reasoning = None
        if delta:
            content = delta.get("content")
            reasoning = _reasoning_of(delta)
        ids = choice.get("token_ids")
        # A chunk carries a generated token when it has text (answer or
        # reasoning), or the token's id (a first token whose text the server
        # withholds, a partial UTF-8 sequence, still counts). A role chunk
        # carries none: servers send it with the first token (vLLM) or at once
        # (the HF wrapper).
        out = self.out
        if content or reasoning or ids:
            if out.ttft_s is None:
                out.ttft_s = now - self.start
            else:
                out.itl_s.append(now - self.last)
            self.last = now
            out.e2e_s = now - self.start
        if content:
            if out.ttfa_s is None:
                out.ttfa_s = now - self.start
            self.pieces.append(content)
        if reasoning:
            self.thoughts.append(reasoning)
        if ids:
            if out.token_ids is None:
                out.token_ids = []
            out.token_ids.extend(ids)
        reason = choice.get("finish_reason")
        if reason:
            out.finish_reason = reason
        return False

    def reply(self, body: bytes, now: float) -> None:
        """Take a whole non-stream ``chat.completion`` body."""
        self.chunks += 1
        try:
            reply = _REPLY.validate_json(body)
        except ValidationError as exc:
            error = _error_in(body)
            if error is not None:
                raise self.fail(f"HTTP 200: {_cut(error)}") from None
            raise self.fail(f"malformed non-stream reply: {_describe(exc, body)}") from None
        if reply.get("error") is not None or reply.get("object") == "error":
            raise self.fail(_error_message(200, body))
        choices = reply["choices"]
        if len(choices) > 1 or choices[0].get("index", 0):
            raise self.fail(
                f"the server answered {len(choices)} choices (n>1); the harness asks for one"
            )
        choice = choices[0]
        message = choice["message"]
        content = message.get("content")
        reasoning = _reasoning_of(message)
        ids = choice.get("token_ids")
        if content or reasoning or ids:
            self.out.ttft_s = self.out.e2e_s = now - self.start
        if content:
            self.out.ttfa_s = now - self.start
            self.pieces.append(content)
        if reasoning:
            self.thoughts.append(reasoning)
        if ids:
            self.out.token_ids = list(ids)
        self.out.finish_reason = choice.get("finish_reason") or None
        usage = reply.get("usage")
        if usage:
            self.usage(usage)

    def usage(self, usage: _Usage) -> None:
        """Take the token counts of a ``usage`` object."""
        self.out.prompt_tokens = usage.get("prompt_tokens")
        self.out.completion_tokens = usage["completion_tokens"]
        details = usage.get("completion_tokens_details")
        self.out.reasoning_tokens = details.get("reasoning_tokens") if details else None


def _reasoning_of(part: _Delta | _Message) -> str | None:
    """The reasoning text of a delta or message: ``reasoning``, else ``reasoning_content``
    (never both: a server that sends the two names sends the same text twice)."""
    return part.get("reasoning") or part.get("reasoning_content")


async def _read_sse(content: aiohttp.StreamReader, reader: _Reader) -> None:
    """Feed each ``data:`` line to the reader until ``[DONE]`` or the end of the body."""
    buffer = b""
    async for raw in content.iter_any():
        if b"\n" not in raw:
            buffer += raw
            if len(buffer) > MAX_LINE_BYTES:
                raise reader.fail(f"a stream line longer than {MAX_LINE_BYTES} bytes")
            continue
        lines = (buffer + raw).split(b"\n") if buffer else raw.split(b"\n")
        buffer = lines.pop()
        now = time.perf_counter()
        for line in lines:  # CR of CRLF goes with the strip in data()
            if line.startswith(b"data:") and reader.data(line[5:], now):
                return
    if buffer.startswith(b"data:"):  # a last line without its newline
        reader.data(buffer[5:], time.perf_counter())


async def stream_chat(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
    timeout_s: float = 300.0,
) -> Completion:
    """POST a streaming chat request and time its chunks.

    Raises RetryableError (429, 503, connection errors), StreamError (a broken
    or incomplete reply; carries what was received) or ServerError.
    """
    payload = {**body, "stream": True, "stream_options": {"include_usage": True}}
    out = Completion(sent_at=time.time())
    reader = _Reader(out, time.perf_counter())
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    kind = "?"
    try:
        async with session.post(url, json=payload, headers=headers, timeout=timeout) as resp:
            if resp.status != 200:
                error = RetryableError if resp.status in RETRYABLE_STATUSES else ServerError
                raise error(_error_message(resp.status, await resp.read()))
            kind = resp.content_type
            if kind == "application/json" or kind.endswith("+json"):
                body_bytes = await resp.read()
                reader.reply(body_bytes, time.perf_counter())
            else:
                await _read_sse(resp.content, reader)
    except TimeoutError:
        raise reader.fail(
            f"request timed out after {timeout_s:g} s (stream chunks received: {reader.chunks})"
        ) from None
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
        # A refused, reset or dropped connection, also one cut mid-stream.
        raise RetryableError(f"{type(exc).__name__}: {exc}") from None
    except aiohttp.ClientError as exc:
        raise ServerError(f"{type(exc).__name__}: {exc}") from None
    if out.completion_tokens is None:
        if not reader.chunks:
            raise reader.fail(f"the server sent no stream data (Content-Type {kind})")
        raise reader.fail("the server sent no usage (stream_options.include_usage)")
    return reader.result()
