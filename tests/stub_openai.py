"""A scripted OpenAI-compatible chat server for client and external-launcher tests.

It answers from a prompt -> answer table, streams the answer in small chunks
with a fixed delay between them, and counts what it received. It exists to
test the client's timing and error handling; every feature is also exercised
against the real HF server elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class StubScript:
    answers: dict[str, str] = field(default_factory=dict)  # prompt text -> answer
    default_answer: str = "stub"
    chunk_chars: int = 2
    first_delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    status: int = 200
    send_usage: bool = True
    required_key: str | None = None
    #: Scripted failures of the first requests, in order: an HTTP status, or 0 for
    #: a connection dropped before any response.
    fail_first: list[int] = field(default_factory=list)
    #: Send a first token whose text is withheld (empty content), like vLLM's
    #: detokenizer on a partial UTF-8 sequence; it carries its id when asked.
    withheld_first_token: bool = False
    #: Answer only the first ``hold_from`` chat requests at once; later ones get
    #: no response at all until ``release()`` (a server stuck mid-run, on cue).
    hold_from: int | None = None
    #: Reasoning streamed apart before the answer (in ``chunk_chars`` pieces), in
    #: the delta field ``reasoning_field`` (vLLM: ``reasoning``; SGLang: ``reasoning_content``).
    reasoning: str = ""
    reasoning_field: str = "reasoning"
    #: Pause between the last reasoning chunk and the first answer chunk.
    answer_delay_s: float = 0.0
    #: Sent as ``usage.completion_tokens_details`` when not None.
    completion_tokens_details: Any = None
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event, repr=False)

    def held(self) -> int:
        """How many received chat requests are (or were) held back."""
        if self.hold_from is None:
            return 0
        return max(0, len(self.received) - self.hold_from)

    def release(self) -> None:
        """Answer the held requests (and every later one) normally."""
        self.released.set()


def _prompt(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def make_app(script: StubScript) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        script.received.append(body)
        script.headers.append(dict(request.headers))
        if script.hold_from is not None and len(script.received) > script.hold_from:
            while not script.released.is_set():
                await asyncio.sleep(0.01)
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=499)  # the client has gone: nothing to answer
        if script.required_key and request.headers.get("Authorization") != (
            f"Bearer {script.required_key}"
        ):
            # Like some real servers, echo what was sent: the harness must mask it.
            sent = request.headers.get("Authorization", "")
            return web.json_response({"error": {"message": f"invalid key {sent!r}"}}, status=401)
        if script.fail_first:
            status = script.fail_first.pop(0)
            if status == 0:
                assert request.transport is not None
                request.transport.close()  # the client sees a dropped connection
                return web.Response(status=500)
            return web.json_response({"error": {"message": f"scripted {status}"}}, status=status)
        if script.status != 200:
            return web.json_response(
                {"error": {"message": "scripted failure"}}, status=script.status
            )
        answer = script.answers.get(_prompt(body), script.default_answer)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def send(payload: dict[str, Any]) -> None:
            await resp.write(f"data: {json.dumps(payload)}\n\n".encode())

        await send({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
        await asyncio.sleep(script.first_delay_s)
        pieces = [
            answer[i : i + script.chunk_chars] for i in range(0, len(answer), script.chunk_chars)
        ]
        with_ids = bool(body.get("return_token_ids"))
        if script.withheld_first_token:
            pieces.insert(0, "")
        thoughts = [
            script.reasoning[i : i + script.chunk_chars]
            for i in range(0, len(script.reasoning), script.chunk_chars)
        ]
        for n, thought in enumerate(thoughts):
            if n:
                await asyncio.sleep(script.chunk_delay_s)
            await send({"choices": [{"index": 0, "delta": {script.reasoning_field: thought}}]})
        if thoughts:
            await asyncio.sleep(script.answer_delay_s)
        for n, piece in enumerate(pieces):
            if n:
                await asyncio.sleep(script.chunk_delay_s)
            choice: dict[str, Any] = {"index": 0, "delta": {"content": piece}}
            if with_ids:
                choice["token_ids"] = [100 + n]
            await send({"choices": [choice]})
        await send({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if script.send_usage:
            generated = len(pieces) + len(thoughts)
            usage: dict[str, Any] = {
                "prompt_tokens": 7,
                "completion_tokens": generated,
                "total_tokens": 7 + generated,
            }
            if script.completion_tokens_details is not None:
                usage["completion_tokens_details"] = script.completion_tokens_details
            await send({"choices": [], "usage": usage})
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "stub"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


@contextmanager
def serve_app(app: web.Application, on_stop: Callable[[], None] = lambda: None) -> Iterator[str]:
    """Serve an aiohttp app on 127.0.0.1 in a background thread; yields its /v1 URL.
    ``on_stop`` runs first when the block ends (e.g. to release held requests)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        holder["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{holder['port']}/v1"
    finally:
        on_stop()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        if not thread.is_alive():
            loop.close()


@contextmanager
def running_stub(script: StubScript) -> Iterator[str]:
    """Serve the stub on 127.0.0.1 in a background thread; yields its /v1 URL."""
    # Held requests must not keep the server from stopping.
    with serve_app(make_app(script), on_stop=script.release) as url:
        yield url
