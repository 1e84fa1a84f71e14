"""The FastAPI app: OpenAI-compatible chat completions, models, health, metrics."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from .metrics import Metrics
from .protocol import (
    ApiError,
    ChatCompletionRequest,
    FinishEvent,
    GenerationError,
    TokenEvent,
    chunk_body,
    completion_body,
    error_body,
    new_completion_id,
    usage,
)

log = logging.getLogger("pytest_vlmhb.server")


class PreparedLike(Protocol):
    """A request the engine accepted (tokenized)."""

    prompt_token_ids: list[int]


class EngineLike(Protocol):
    """What the app needs of an engine (a fake one serves in tests)."""

    served_model_name: str
    metrics: Metrics

    async def prepare(self, request: ChatCompletionRequest) -> PreparedLike: ...

    def stream(self, prepared: Any) -> AsyncIterator[TokenEvent | FinishEvent]: ...


def _sse(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False, separators=(',', ':'))}\n\n"


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    if first.get("type") == "json_invalid":
        return f"invalid JSON body: {first.get('ctx', {}).get('error', 'cannot parse')}", None
    loc = [str(x) for x in first.get("loc", ()) if x != "body"]
    param = ".".join(loc) or None
    return f"{param or 'body'}: {first.get('msg', 'invalid value')}", param


#: Environment variable holding the API key /v1 requires (like vLLM's VLLM_API_KEY);
#: read from the environment only, so it never shows on a command line.
API_KEY_ENV = "VLMHB_API_KEY"


def create_app(engine: EngineLike, api_key: str | None = None) -> FastAPI:
    """Build the app around a loaded engine; with ``api_key``, /v1 requires it."""
    app = FastAPI(title="vlmhb HF server", docs_url=None, redoc_url=None)

    if api_key:
        expected = f"Bearer {api_key}"

        @app.middleware("http")
        async def _require_key(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            if request.url.path.startswith("/v1") and not secrets.compare_digest(
                request.headers.get("authorization", ""), expected
            ):
                return JSONResponse(
                    error_body("invalid or missing API key", status=401), status_code=401
                )
            return await call_next(request)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return JSONResponse(error_body(message, status=400, param=param), status_code=400)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return JSONResponse(error_body(f"internal error: {exc}", status=500), status_code=500)

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {
            "id": engine.served_model_name,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "vlmhb",
            "root": engine.served_model_name,
        }
        return {"object": "list", "data": [card]}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(
            engine.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: ChatCompletionRequest) -> JSONResponse | StreamingResponse:
        engine.metrics.add(requests_total=1)
        if request.model is not None and request.model != engine.served_model_name:
            raise ApiError(
                f"The model `{request.model}` does not exist.", status=404, param="model"
            )
        prepared = await engine.prepare(request)
        if request.stream:
            return StreamingResponse(
                _stream(engine, request, prepared),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await _complete(engine, request, prepared)

    return app


async def _complete(
    engine: EngineLike, request: ChatCompletionRequest, prepared: PreparedLike
) -> JSONResponse:
    pieces: list[str] = []
    ids: list[int] = []
    finish: FinishEvent | None = None
    try:
        async for event in engine.stream(prepared):
            pieces.append(event.text)
            if isinstance(event, TokenEvent):
                ids.append(event.token_id)
            else:
                finish = event
    except GenerationError as exc:
        log.exception("generation failed")
        return JSONResponse(error_body(f"generation failed: {exc}", status=500), 500)
    if finish is None:
        raise GenerationError("generation ended without a result")
    body = completion_body(
        completion_id=new_completion_id(),
        model=engine.served_model_name,
        text="".join(pieces),
        finish_reason=finish.finish_reason,
        prompt_tokens=finish.prompt_tokens,
        completion_tokens=finish.completion_tokens,
        token_ids=ids if request.return_token_ids else None,
        prompt_token_ids=prepared.prompt_token_ids if request.return_token_ids else None,
    )
    return JSONResponse(body)


async def _stream(
    engine: EngineLike, request: ChatCompletionRequest, prepared: PreparedLike
) -> AsyncIterator[str]:
    """SSE: role chunk, one chunk per token (the last carries finish_reason), usage, [DONE]."""
    common: dict[str, Any] = {
        "completion_id": new_completion_id(),
        "created": int(time.time()),
        "model": engine.served_model_name,
    }
    with_ids = request.return_token_ids
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    first = chunk_body(
        **common,
        delta={"role": "assistant", "content": ""},
        extra={"prompt_token_ids": prepared.prompt_token_ids} if with_ids else None,
    )
    yield _sse(first)
    finished = False
    try:
        async for event in engine.stream(prepared):
            if isinstance(event, TokenEvent):
                finished = event.finish_reason is not None
                chunk = chunk_body(
                    **common,
                    delta={"content": event.text},
                    finish_reason=event.finish_reason,
                    token_ids=[event.token_id] if with_ids else None,
                )
                yield _sse(chunk)
                continue
            if not finished or event.text:  # generation ended without a last-token verdict
                delta = {"content": event.text} if event.text else {}
                yield _sse(chunk_body(**common, delta=delta, finish_reason=event.finish_reason))
            if include_usage:
                counts = usage(event.prompt_tokens, event.completion_tokens)
                yield _sse(chunk_body(**common, usage_=counts))
    except GenerationError as exc:
        log.exception("generation failed mid-stream")
        yield _sse(error_body(f"generation failed: {exc}", status=500))
    yield "data: [DONE]\n\n"
