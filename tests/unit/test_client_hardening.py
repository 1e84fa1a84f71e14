"""The streaming client against hostile servers: each reply is accepted exactly or fails clearly.

A scripted aiohttp app on 127.0.0.1 (same event loop) writes raw bytes, so
every malformation reaches the client as a real server would send it.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pytest_vlmhb import client as client_module
from pytest_vlmhb import redact as redact_module
from pytest_vlmhb.client import (
    Completion,
    RetryableError,
    StreamError,
    _error_message,
    stream_chat,
)
from pytest_vlmhb.errors import ServerError
from pytest_vlmhb.redact import COMMON_SECRET_ENV, register_env

Part = bytes | float  # bytes to write, or a pause (s): the next write is a separate TCP segment


@dataclass
class Script:
    parts: list[Part] = field(default_factory=list)
    status: int = 200
    content_type: str = "text/event-stream"


async def _call(script: Script, timeout_s: float) -> Completion:
    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(
            status=script.status, headers={"Content-Type": script.content_type}
        )
        await resp.prepare(request)
        for part in script.parts:
            if isinstance(part, float):
                await asyncio.sleep(part)
            else:
                await resp.write(part)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        url = str(server.make_url("/v1/chat/completions"))
        body = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
        return await stream_chat(session, url, body, timeout_s=timeout_s)


def run(script: Script, timeout_s: float = 5.0) -> Completion | ServerError:
    try:
        return asyncio.run(_call(script, timeout_s))
    except ServerError as exc:
        return exc


def ev(payload: Any) -> bytes:
    """One SSE event carrying this JSON."""
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def tok(text: str, index: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": index, "delta": {"content": text}, "finish_reason": None, **extra}],
    }


ROLE = ev({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
FINISH = ev({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
USAGE = ev(
    {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
)
DONE = b"data: [DONE]\n\n"


def usage(**fields: Any) -> bytes:
    return ev({"choices": [], "usage": fields})


def stream(*middle: Part, tail: tuple[bytes, ...] = (FINISH, USAGE, DONE)) -> Script:
    """Role chunk, the given events, then finish, usage and [DONE]."""
    return Script([ROLE, *middle, *tail])


AB_CD = (ev(tok("ab")), ev(tok("cd")))
SPLIT = b"data: " + json.dumps(tok("é€"), ensure_ascii=False).encode() + b"\n\n"
CUT_AT = SPLIT.index("é".encode()) + 1  # between the two bytes of "é"
REPLY: dict[str, Any] = {
    "id": "x",
    "object": "chat.completion",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def reply(**changes: Any) -> Script:
    """A non-stream chat.completion body (the server ignored stream: true)."""
    return Script([json.dumps({**REPLY, **changes}).encode()], content_type="application/json")


# name -> (script, expected Completion fields)
ACCEPTED: dict[str, tuple[Script, dict[str, Any]]] = {
    "plain": (
        stream(*AB_CD),
        {"text": "abcd", "completion_tokens": 2, "prompt_tokens": 5, "finish_reason": "stop"},
    ),
    "empty data lines before, between, after": (
        Script(
            [
                b"data:\n\n",
                ROLE,
                b"data: \n\n",
                ev(tok("ab")),
                b"data:\n\n",
                ev(tok("cd")),
                FINISH,
                USAGE,
                b"data: \n\n",
                DONE,
                b"data:\n\n",
            ]
        ),
        {"text": "abcd", "completion_tokens": 2},
    ),
    "data: with only whitespace": (
        stream(ev(tok("ab")), b"data: \t  \r\n\r\n", ev(tok("cd"))),
        {"text": "abcd"},
    ),
    "CRLF line endings": (
        Script([p.replace(b"\n", b"\r\n") for p in (ROLE, *AB_CD, FINISH, USAGE, DONE)]),
        {"text": "abcd", "completion_tokens": 2, "finish_reason": "stop"},
    ),
    "chunk split across TCP writes, inside a UTF-8 character": (
        stream(ev(tok("ab"))[:9], 0.01, ev(tok("ab"))[9:], SPLIT[:CUT_AT], 0.01, SPLIT[CUT_AT:]),
        {"text": "abé€"},
    ),
    "no [DONE], stream just ends": (stream(*AB_CD, tail=(FINISH, USAGE)), {"text": "abcd"}),
    "last line without a newline": (
        stream(*AB_CD, tail=(FINISH, USAGE.rstrip())),
        {"text": "abcd", "completion_tokens": 2},
    ),
    "data: without a space": (
        stream(b'data:{"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'),
        {"text": "x"},
    ),
    "comments, event and id lines are ignored": (
        stream(b": ping\n\n", b"event: message\nid: 1\n" + ev(tok("ab"))),
        {"text": "ab"},
    ),
    "usage null in every chunk (OpenAI style)": (
        stream(ev({**tok("ab"), "usage": None})),
        {"text": "ab", "completion_tokens": 2},
    ),
    "extra fields ignored, reasoning_content kept apart": (
        stream(
            ev(
                {
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": "ab", "reasoning_content": "r"},
                            "logprobs": None,
                            "stop_reason": None,
                        }
                    ],
                    "system_fingerprint": "fp",
                    "created": 1,
                }
            )
        ),
        {"text": "ab", "reasoning": "r"},
    ),
    "vLLM reasoning deltas before the answer": (
        stream(
            ev({"choices": [{"index": 0, "delta": {"reasoning": "th"}}]}),
            ev({"choices": [{"index": 0, "delta": {"reasoning": "ink", "content": None}}]}),
            *AB_CD,
        ),
        {"text": "abcd", "reasoning": "think"},
    ),
    "both reasoning names with the same text: taken once": (
        stream(ev({"choices": [{"delta": {"reasoning": "r", "reasoning_content": "r"}}]}), *AB_CD),
        {"text": "abcd", "reasoning": "r"},
    ),
    "reasoning_tokens in usage details": (
        stream(
            *AB_CD,
            tail=(
                usage(
                    completion_tokens=2,
                    completion_tokens_details={"reasoning_tokens": 1, "audio_tokens": 0},
                ),
            ),
        ),
        {"completion_tokens": 2, "reasoning_tokens": 1},
    ),
    "reasoning_tokens null, details null": (
        stream(
            *AB_CD,
            tail=(
                usage(completion_tokens=2, completion_tokens_details={"reasoning_tokens": None}),
                usage(completion_tokens=2, completion_tokens_details=None),
            ),
        ),
        {"completion_tokens": 2, "reasoning_tokens": None},
    ),
    "prompt_tokens null": (
        stream(*AB_CD, tail=(usage(prompt_tokens=None, completion_tokens=2),)),
        {"prompt_tokens": None, "completion_tokens": 2},
    ),
    "completion_tokens 0 with text (suspicious, allowed)": (
        stream(*AB_CD, tail=(usage(prompt_tokens=1, completion_tokens=0), DONE)),
        {"text": "abcd", "completion_tokens": 0, "tpot_s": None},
    ),
    "garbage after [DONE] is never read": (
        stream(*AB_CD, tail=(FINISH, USAGE, DONE, b"data: not json\n\n")),
        {"text": "abcd"},
    ),
    "token ids without text count as tokens": (
        stream(ev(tok("", token_ids=[7])), ev(tok("ab", token_ids=[8]))),
        {"text": "ab", "token_ids": [7, 8]},
    ),
    "non-stream JSON reply": (
        reply(),
        {
            "text": "hello",
            "completion_tokens": 2,
            "prompt_tokens": 3,
            "finish_reason": "stop",
            "itl_s": [],
        },
    ),
    "non-stream JSON reply with reasoning apart": (
        reply(
            choices=[
                {
                    "index": 0,
                    "message": {"content": "hello", "reasoning_content": "hmm"},
                    "finish_reason": "stop",
                }
            ],
            usage={
                "completion_tokens": 3,
                "completion_tokens_details": {"reasoning_tokens": 1},
            },
        ),
        {"text": "hello", "reasoning": "hmm", "reasoning_tokens": 1},
    ),
    "non-stream JSON reply with charset": (
        Script([json.dumps(REPLY).encode()], content_type="application/json; charset=utf-8"),
        {"text": "hello"},
    ),
}


@pytest.mark.parametrize(("script", "expected"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted(script: Script, expected: dict[str, Any]) -> None:
    out = run(script)
    assert isinstance(out, Completion), out
    for name, value in expected.items():
        assert getattr(out, name) == value, name
    assert out.ttft_s is not None and out.e2e_s is not None and out.ttft_s <= out.e2e_s


def test_a_non_stream_reply_has_ttft_equal_to_e2e() -> None:
    out = run(reply())
    assert isinstance(out, Completion) and out.ttft_s == out.e2e_s


PYTHON_INTERNALS = re.compile(
    r"Traceback|object has no attribute|\b\w*(Error|Exception)\b|pydantic|"
    r"TypedDict|_Chunk|_Reply|_Usage|Expecting value|\bb'|\bNone\b"
)
TWO_CHOICES = "more than one choice.*n>1.*asks for one"

# name -> (script, message regex, text received before the failure, or None: no StreamError)
REJECTED: dict[str, tuple[Script, str, str | None]] = {
    "usage count a string": (
        stream(*AB_CD, tail=(usage(prompt_tokens=1, completion_tokens="12"),)),
        r"malformed stream chunk 4: usage\.completion_tokens: Input should be a valid integer"
        r' \(got "12"\); message: \{',
        "abcd",
    ),
    "usage count a bool": (
        stream(*AB_CD, tail=(usage(completion_tokens=True),)),
        r"usage\.completion_tokens: .*valid integer \(got true\)",
        "abcd",
    ),
    "usage count a list": (
        stream(*AB_CD, tail=(usage(completion_tokens=[2]),)),
        r"usage\.completion_tokens: .*valid integer \(got \[2\]\)",
        "abcd",
    ),
    "usage count a float": (
        stream(*AB_CD, tail=(usage(completion_tokens=1.5),)),
        r"usage\.completion_tokens: .*valid integer \(got 1\.5\)",
        "abcd",
    ),
    "usage count null": (
        stream(*AB_CD, tail=(usage(completion_tokens=None),)),
        r"usage\.completion_tokens: .*valid integer \(got null\)",
        "abcd",
    ),
    "usage count missing": (
        stream(*AB_CD, tail=(usage(prompt_tokens=3),)),
        r"usage\.completion_tokens: Field required",
        "abcd",
    ),
    "usage negative completion_tokens": (
        stream(*AB_CD, tail=(usage(completion_tokens=-2),)),
        r"usage\.completion_tokens: Input should be greater than or equal to 0 \(got -2\)",
        "abcd",
    ),
    "usage negative prompt_tokens": (
        stream(*AB_CD, tail=(usage(prompt_tokens=-1, completion_tokens=2),)),
        r"usage\.prompt_tokens: Input should be greater than or equal to 0",
        "abcd",
    ),
    "reasoning_tokens a string": (
        stream(
            *AB_CD,
            tail=(usage(completion_tokens=2, completion_tokens_details={"reasoning_tokens": "1"}),),
        ),
        r"usage\.completion_tokens_details\.reasoning_tokens: .*valid integer \(got \"1\"\)",
        "abcd",
    ),
    "reasoning_tokens negative": (
        stream(
            *AB_CD,
            tail=(usage(completion_tokens=2, completion_tokens_details={"reasoning_tokens": -1}),),
        ),
        r"reasoning_tokens: Input should be greater than or equal to 0 \(got -1\)",
        "abcd",
    ),
    "completion_tokens_details not an object": (
        stream(*AB_CD, tail=(usage(completion_tokens=2, completion_tokens_details=[1]),)),
        r"usage\.completion_tokens_details: Input should be an object",
        "abcd",
    ),
    "reasoning a number": (
        stream(ev(tok("ab")), ev({"choices": [{"delta": {"reasoning": 5}}]})),
        r"choices\[0\]\.delta\.reasoning: Input should be a valid string \(got 5\)",
        "ab",
    ),
    "a second choice in its own chunk": (
        stream(ev(tok("ab")), ev(tok("XY", index=1)), ev(tok("cd"))),
        TWO_CHOICES + "|chunk 3 carries choice index 1",
        "ab",
    ),
    "two choices in one chunk": (
        stream(
            ev(tok("ab")),
            ev(
                {
                    "choices": [
                        {"index": 0, "delta": {"content": "cd"}},
                        {"index": 1, "delta": {"content": "XY"}},
                    ]
                }
            ),
        ),
        r"more than one choice \(n>1\): chunk 3 carries 2 choices",
        "ab",
    ),
    "chunk not JSON": (
        stream(ev(tok("ab")), b"data: {oops\n\n"),
        r"malformed stream chunk 3: not valid JSON \(.*line 1 column \d+\); "
        r"message: \{oops",
        "ab",
    ),
    "chunk a JSON array": (
        stream(b"data: [1, 2]\n\n"),
        r"chunk 2: top level: Input should be an object \(got \[1, 2\]\)",
        "",
    ),
    "chunk a JSON string": (
        stream(b'data: "hello"\n\n'),
        r'chunk 2: top level: Input should be an object \(got "hello"\)',
        "",
    ),
    "choices not a list": (
        stream(ev({"choices": {"index": 0}})),
        r"chunk 2: choices: Input should be a valid array",
        "",
    ),
    "delta not an object": (
        stream(ev({"choices": [{"index": 0, "delta": "ab"}]})),
        r'choices\[0\]\.delta: Input should be an object \(got "ab"\)',
        "",
    ),
    "content a number": (
        stream(ev(tok("ab")), ev({"choices": [{"delta": {"content": 5}}]})),
        r"choices\[0\]\.delta\.content: Input should be a valid string",
        "ab",
    ),
    "token_ids with strings": (
        stream(ev(tok("ab", token_ids=["1", 2, "3"]))),
        r'choices\[0\]\.token_ids\[0\]: .*valid integer \(got "1"\); .*token_ids\[2\]',
        "",
    ),
    "finish_reason not a string": (
        stream(ev(tok("ab")), ev({"choices": [{"index": 0, "delta": {}, "finish_reason": 1}]})),
        r"choices\[0\]\.finish_reason: Input should be a valid string \(got 1\)",
        "ab",
    ),
    "invalid UTF-8 in a chunk": (
        stream(b'data: {"choices": [{"delta": {"content": "\xff"}}]}\n\n'),
        r"malformed stream chunk 2: not valid JSON",
        "",
    ),
    "error object mid-stream": (
        stream(*AB_CD, ev({"error": {"message": "KV cache exhausted", "code": 500}})),
        r"^stream error: KV cache exhausted$",
        "abcd",
    ),
    "vLLM's older in-stream error": (
        stream(ev(tok("ab")), ev({"object": "error", "message": "bad request", "code": 400})),
        r"^stream error: bad request$",
        "ab",
    ),
    "error object of an odd shape mid-stream": (
        stream(ev(tok("ab")), ev({"error": [1, {"x": 2}], "choices": "junk"})),
        r'^stream error: \[1, \{"x": 2\}\]$',
        "ab",
    ),
    "no usage": (stream(*AB_CD, tail=(FINISH, DONE)), r"no usage", "abcd"),
    "no data lines at all": (
        Script([b"hello\n", b"world"], content_type="text/plain"),
        r"no stream data \(Content-Type text/plain\)",
        "",
    ),
    "non-stream reply, content a number": (
        reply(choices=[{"index": 0, "message": {"content": 5}, "finish_reason": "stop"}]),
        r"malformed non-stream reply: choices\[0\]\.message\.content: .*valid string \(got 5\)",
        "",
    ),
    "non-stream reply, no choices": (
        reply(choices=[]),
        r"malformed non-stream reply: choices: .*at least 1 item",
        "",
    ),
    "non-stream reply, usage a string": (
        reply(usage="lots"),
        r"malformed non-stream reply: usage: Input should be an object",
        "",
    ),
    "non-stream reply, two choices": (
        reply(choices=[REPLY["choices"][0], {**REPLY["choices"][0], "index": 1}]),
        r"answered 2 choices \(n>1\)",
        "",
    ),
    "non-stream reply without usage": (reply(usage=None), r"no usage", "hello"),
    "non-stream reply not JSON": (
        Script([b"<html>"], content_type="application/json"),
        r"malformed non-stream reply: not valid JSON",
        "",
    ),
    "non-stream error object with HTTP 200": (
        Script([b'{"error": {"message": "model not loaded"}}'], content_type="application/json"),
        r"^HTTP 200: model not loaded$",
        "",
    ),
    "HTTP 400 with a list body": (
        Script([b'[{"msg": "bad"}]'], status=400, content_type="application/json"),
        r'^HTTP 400: \[\{"msg": "bad"\}\]$',
        None,
    ),
    "HTTP 500 with a JSON string body": (
        Script([b'"boom"'], status=500),
        r"^HTTP 500: boom$",
        None,
    ),
    "HTTP 500 with a number body": (Script([b"42"], status=500), r"^HTTP 500: 42$", None),
    "HTTP 500 with an empty body": (Script([], status=500), r"^HTTP 500: \(empty body\)$", None),
    "HTTP 422 FastAPI detail": (
        Script([b'{"detail": [{"loc": ["body"], "msg": "field required"}]}'], status=422),
        r'^HTTP 422: \[\{"loc": \["body"\], "msg": "field required"\}\]$',
        None,
    ),
    "HTTP 500 nested too deep": (
        Script([b"[" * 5000 + b"]" * 5000], status=500),
        r"^HTTP 500: \[\[\[",
        None,
    ),
}


@pytest.mark.parametrize(("script", "pattern", "partial"), REJECTED.values(), ids=REJECTED.keys())
def test_rejected(script: Script, pattern: str, partial: str | None) -> None:
    out = run(script)
    assert isinstance(out, ServerError), out
    message = str(out)
    assert re.search(pattern, message), message
    assert not PYTHON_INTERNALS.search(message), message
    assert len(message) < 900
    assert not isinstance(out, RetryableError)
    if partial is None:
        assert not isinstance(out, StreamError)
    else:
        assert isinstance(out, StreamError)
        assert out.partial.text == partial


def test_an_error_keeps_the_timing_of_what_was_received() -> None:
    out = run(stream(*AB_CD, ev({"error": {"message": "gone"}})))
    assert isinstance(out, StreamError)
    assert out.partial.ttft_s is not None and len(out.partial.itl_s) == 1
    assert out.partial.finished_at >= out.partial.sent_at > 0


def test_a_timeout_keeps_what_was_received() -> None:
    out = run(stream(ev(tok("ab")), 1.0), timeout_s=0.1)
    assert isinstance(out, StreamError) and "timed out after 0.1 s" in str(out)
    assert out.partial.text == "ab"


def test_an_endless_line_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "MAX_LINE_BYTES", 1000)
    out = run(Script([b"data: " + b"x" * 400, 0.01, b"x" * 400, 0.01, b"x" * 400]))
    assert isinstance(out, StreamError) and "longer than 1000 bytes" in str(out)


def test_an_offending_payload_is_shown_short() -> None:
    out = run(stream(ev({"choices": [{"delta": {"content": 5}}], "pad": "p" * 5000})))
    assert isinstance(out, StreamError) and len(str(out)) < 400 and str(out).endswith("…")


@pytest.mark.parametrize("status", [429, 503])
def test_busy_statuses_are_retryable(status: int) -> None:
    out = run(Script([b'{"error": {"message": "busy"}}'], status=status))
    assert isinstance(out, RetryableError) and str(out) == f"HTTP {status}: busy"


KEY = "hf_SECRETSECRETSECRET"


@pytest.fixture
def registered_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(redact_module, "_secrets", [])
    for name in COMMON_SECRET_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_TOKEN", KEY)
    register_env([])
    return KEY


def _leaks(message: str) -> bool:
    """Any 4+ character piece of the key left in the message."""
    return any(KEY[i : i + 4] in message for i in range(len(KEY) - 3))


@pytest.mark.parametrize("offset", [480, 490, 495, 499, 500])
def test_a_key_at_the_truncation_boundary_is_masked(registered_key: str, offset: int) -> None:
    message = "." * offset + registered_key + "." * 3000
    out = run(Script([json.dumps({"error": {"message": message}}).encode()], status=401))
    assert isinstance(out, ServerError) and not _leaks(str(out)), str(out)
    assert str(out).startswith("HTTP 401: ...") and str(out).endswith("…")


@pytest.mark.parametrize(
    "body",
    [
        b"x" * 495 + KEY.encode() + b"x" * 100,  # not JSON
        json.dumps({"error": {"detail": {"key": "." * 480 + KEY}}}).encode(),  # re-serialised
    ],
    ids=["text", "json-object"],
)
def test_a_key_in_any_error_body_is_masked(registered_key: str, body: bytes) -> None:
    assert not _leaks(_error_message(400, body))


def test_a_key_in_an_offending_chunk_is_masked(registered_key: str) -> None:
    out = run(stream(ev({"choices": [{"delta": {"content": 5}}], "pad": "." * 170 + KEY})))
    assert isinstance(out, StreamError) and not _leaks(str(out)), str(out)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": {"message": "m"}}', "m"),
        (b'{"error": "m"}', "m"),
        (b'{"error": {"code": 1}}', '{"code": 1}'),
        (b'{"message": {"deeper": {"error": "m"}}}', '{"deeper": {"error": "m"}}'),
        (b"null", "null"),
        (b"true", "true"),
        (b"1.5", "1.5"),
        (b'["a"]', '["a"]'),
        (b"not json", "not json"),
        (b"\xff\xfe", "\ufffd\ufffd"),
        (b"", "(empty body)"),
    ],
)
def test_error_message_copes_with_any_shape(body: bytes, expected: str) -> None:
    assert _error_message(500, body) == f"HTTP 500: {expected}"
