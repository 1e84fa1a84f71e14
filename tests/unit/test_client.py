"""The streaming client's timing and error handling, against the scripted stub."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from pytest_vlmhb.client import Completion, stream_chat
from pytest_vlmhb.errors import ServerError
from tests.stub_openai import StubScript, running_stub


def _chat(url: str, prompt: str = "q", timeout_s: float = 30.0) -> Completion:
    async def go() -> Completion:
        async with aiohttp.ClientSession() as session:
            body = {"model": "stub", "messages": [{"role": "user", "content": prompt}]}
            return await stream_chat(session, url + "/chat/completions", body, timeout_s=timeout_s)

    return asyncio.run(go())


def test_timing_follows_the_vllm_definitions() -> None:
    script = StubScript(
        default_answer="abcdefgh", chunk_chars=2, first_delay_s=0.2, chunk_delay_s=0.1
    )
    with running_stub(script) as url:
        out = _chat(url)
    assert out.text == "abcdefgh"
    assert out.completion_tokens == 4 and out.prompt_tokens == 7
    assert out.finish_reason == "stop"
    assert out.ttft_s is not None and out.e2e_s is not None
    assert 0.18 <= out.ttft_s < out.e2e_s
    assert out.e2e_s - out.ttft_s >= 0.28  # three gaps of 0.1 s after the first chunk
    assert len(out.itl_s) == 3 and all(gap >= 0.09 for gap in out.itl_s)
    assert out.tpot_s == pytest.approx((out.e2e_s - out.ttft_s) / 3)
    assert out.finished_at >= out.sent_at > 0
    sent = script.received[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_one_token_has_no_tpot() -> None:
    with running_stub(StubScript(default_answer="a")) as url:
        out = _chat(url)
    assert out.completion_tokens == 1 and out.tpot_s is None


def test_http_error_carries_the_servers_message() -> None:
    with (
        running_stub(StubScript(status=503)) as url,
        pytest.raises(ServerError, match=r"503.*scripted"),
    ):
        _chat(url)


def test_missing_usage_is_an_error() -> None:
    with (
        running_stub(StubScript(send_usage=False)) as url,
        pytest.raises(ServerError, match="usage"),
    ):
        _chat(url)


def test_timeout_is_reported() -> None:
    with (
        running_stub(StubScript(first_delay_s=2.0)) as url,
        pytest.raises(ServerError, match="timed out"),
    ):
        _chat(url, timeout_s=0.3)


def test_connection_refused_is_a_server_error() -> None:
    with pytest.raises(ServerError, match="Connect"):
        _chat("http://127.0.0.1:9/v1")


def _chat_ids(url: str) -> Completion:
    async def go() -> Completion:
        async with aiohttp.ClientSession() as session:
            body = {
                "model": "stub",
                "messages": [{"role": "user", "content": "q"}],
                "return_token_ids": True,
            }
            return await stream_chat(session, url + "/chat/completions", body)

    return asyncio.run(go())


def test_a_withheld_first_token_counts_by_its_id() -> None:
    """TTFT is the first generated token, also when its text comes one token later."""
    script = StubScript(
        default_answer="abcd",
        chunk_chars=2,
        first_delay_s=0.2,
        chunk_delay_s=0.15,
        withheld_first_token=True,
    )
    with running_stub(script) as url:
        with_ids, text_only = _chat_ids(url), _chat(url)
    assert with_ids.text == text_only.text == "abcd"
    assert with_ids.token_ids == [100, 101, 102]
    assert with_ids.ttft_s is not None and text_only.ttft_s is not None
    assert 0.18 <= with_ids.ttft_s < 0.33  # the id-only chunk, not the role chunk
    assert text_only.ttft_s >= 0.33  # without ids: the first text
    assert len(with_ids.itl_s) == 2 and len(text_only.itl_s) == 1
