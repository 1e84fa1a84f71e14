"""Reasoning a server streams apart: kept out of the answer, timed, counted, never scored.

The client against the scripted stub (vLLM's ``delta.reasoning``, SGLang's
``delta.reasoning_content``), the request body (system turn, chat-template
kwargs), and the records: scored answer vs raw answer, TTFA, reasoning tokens,
and a store line of an earlier version.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import TypeAdapter, ValidationError

from pytest_vlmhb import redact as redact_module
from pytest_vlmhb.backends.base import Backend
from pytest_vlmhb.chat_request import request_body
from pytest_vlmhb.client import Completion, StreamError, stream_chat
from pytest_vlmhb.columns import answer_cells, answer_columns, case_columns
from pytest_vlmhb.config import Case
from pytest_vlmhb.records import Record, StoredRecord, make_record, rescore, summarize_case
from pytest_vlmhb.redact import COMMON_SECRET_ENV, register_env
from pytest_vlmhb.tasks.manifest import Sample
from tests.helpers import make_case
from tests.stub_openai import StubScript, running_stub


def _chat(url: str) -> Completion:
    async def go() -> Completion:
        async with aiohttp.ClientSession() as session:
            body = {"model": "stub", "messages": [{"role": "user", "content": "q"}]}
            return await stream_chat(session, url + "/chat/completions", body, timeout_s=30.0)

    return asyncio.run(go())


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_streamed_reasoning_is_kept_apart_from_the_answer(field: str) -> None:
    script = StubScript(
        default_answer="<think>inline</think>Paris",
        reasoning="The capital... is Paris.",
        reasoning_field=field,
        chunk_chars=4,
    )
    with running_stub(script) as url:
        out = _chat(url)
    assert out.text == "<think>inline</think>Paris"  # content exactly as sent
    assert out.reasoning == "The capital... is Paris."
    assert out.completion_tokens == 7 + 6  # answer and reasoning chunks
    assert out.reasoning_tokens is None  # not reported


def test_ttft_is_the_first_token_of_any_kind_and_ttfa_the_first_answer_token() -> None:
    script = StubScript(
        default_answer="abcd",
        reasoning="rrrr",
        chunk_chars=2,
        first_delay_s=0.1,
        answer_delay_s=0.4,
        completion_tokens_details={"reasoning_tokens": 2},
    )
    with running_stub(script) as url:
        out = _chat(url)
    assert out.ttft_s is not None and out.ttfa_s is not None and out.e2e_s is not None
    assert out.ttft_s >= 0.08  # the first reasoning chunk, after the scripted first delay
    assert out.ttfa_s >= 0.48  # no answer text before both scripted pauses
    assert out.ttfa_s - out.ttft_s >= 0.3  # the pause before the answer (0.4 s; slack for load)
    assert out.ttft_s < out.ttfa_s <= out.e2e_s
    assert len(out.itl_s) == 3  # gaps between all four token chunks, reasoning included
    assert out.reasoning_tokens == 2 and out.completion_tokens == 4


def test_without_reasoning_ttfa_is_ttft() -> None:
    with running_stub(StubScript(default_answer="abcd", first_delay_s=0.1)) as url:
        out = _chat(url)
    assert out.reasoning == "" and out.ttfa_s == out.ttft_s


@pytest.mark.parametrize("bad", ["3", -1, 2.5, True, [3]])
def test_a_bad_reasoning_tokens_count_fails_the_sample(bad: Any) -> None:
    script = StubScript(default_answer="ok", completion_tokens_details={"reasoning_tokens": bad})
    with running_stub(script) as url, pytest.raises(StreamError) as caught:
        _chat(url)
    assert "usage.completion_tokens_details.reasoning_tokens" in str(caught.value)
    assert caught.value.partial.text == "ok"  # what arrived is kept
    record = make_record(
        make_case(("anls",), "docvqa"),
        _sample({"answers": ["ok"]}),
        caught.value.partial,
        str(caught.value),
    )
    assert record["error"] and "reasoning_tokens" in record["error"]
    assert record["scores"]["anls"] == 0.0  # an errored sample scores as the worst


def _sample(reference: dict[str, Any], prompt: str = "Q?") -> Sample:
    return Sample(
        id="s", image=Path("x.png"), prompt=prompt, reference=reference, manifest=Path("m.jsonl")
    )


def _case(tags: tuple[tuple[str, str], ...] | None = None, **update: Any) -> Case:
    case = make_case(("anls",), "docvqa")
    if tags is not None:
        update["reasoning_tags"] = tags
    return case.model_copy(update=update)


DONE = Completion(
    text="<think>x</think>Paris\n",
    reasoning="streamed apart: Lyon?",
    ttft_s=0.1,
    ttfa_s=0.3,
    e2e_s=0.4,
    completion_tokens=9,
    reasoning_tokens=5,
    sent_at=1.0,
    finished_at=1.5,
)


def test_the_scored_answer_has_reasoning_removed_and_the_raw_text_is_kept() -> None:
    record = make_record(_case(), _sample({"answers": ["Paris"]}), DONE, None)
    assert record["answer"] == "Paris" and record["scores"]["anls"] == 1.0
    assert record.get("raw_answer") == "<think>x</think>Paris\n"
    assert record.get("reasoning") == "streamed apart: Lyon?"  # never scored: Lyon is not in it
    assert record.get("reasoning_tokens") == 5
    assert record.get("ttfa_ms") == 300.0 and record["ttft_ms"] == 100.0


def test_reasoning_tags_none_turns_removal_off_and_custom_pairs_replace_the_defaults() -> None:
    reference = {"answers": ["Paris"]}
    off = make_record(_case(()), _sample(reference), DONE, None)
    assert off["answer"] == "<think>x</think>Paris" and off["scores"]["anls"] == 0.0
    custom = Completion(text="[r]no[/r] Paris <think>", completion_tokens=3)
    mine = make_record(_case((("[r]", "[/r]"),)), _sample(reference), custom, None)
    assert mine["answer"] == "Paris <think>"  # <think> is no longer a tag
    both = make_record(_case(), _sample(reference), custom, None)
    assert both["answer"] == "[r]no[/r] Paris <think>"


def test_summary_has_the_ttfa_median_and_the_csv_columns_are_placed() -> None:
    case = _case()
    records = [
        make_record(case, _sample({"answers": ["Paris"]}), DONE, None),
        make_record(
            case,
            _sample({"answers": ["Paris"]}),
            Completion(text="Paris", ttft_s=0.1, ttfa_s=0.1, e2e_s=0.2, completion_tokens=1),
            None,
        ),
    ]
    row = summarize_case(case, records)
    assert row["ttfa_p50_ms"] == pytest.approx(200.0)
    columns = case_columns(["anls"])
    assert columns.index("ttfa_p50_ms") == columns.index("ttft_p99_ms") + 1
    answers = answer_columns(["anls"])
    assert answers.index("raw_answer") == answers.index("answer") + 1
    assert answers.index("ttfa_ms") == answers.index("ttft_ms") + 1
    assert answers.index("reasoning_tokens") == answers.index("completion_tokens") + 1
    cells = answer_cells(records[0], ["anls"])
    assert (cells["answer"], cells["raw_answer"]) == ("Paris", "<think>x</think>Paris\n")
    assert "reasoning" not in cells  # kept in the store only


def test_a_store_line_of_an_earlier_version_loads_and_is_rescored_from_its_answer() -> None:
    new = make_record(_case(), _sample({"answers": ["Paris"]}), DONE, None)
    old: dict[str, Any] = {**new, "key": "k", "answer": " <think>x</think>Paris "}
    for name in ("raw_answer", "reasoning", "reasoning_tokens", "ttfa_ms"):
        del old[name]
    adapter = TypeAdapter(StoredRecord)
    adapter.validate_python(old)
    with pytest.raises(ValidationError, match="reasoning_tokens"):
        adapter.validate_python({**old, "reasoning_tokens": "5"})
    stored: Record = adapter.validate_python(old)
    again = rescore(_case(), _sample({"answers": ["Paris"]}), stored)
    assert again["answer"] == "Paris" and again["scores"]["anls"] == 1.0
    assert again.get("raw_answer") == " <think>x</think>Paris "
    assert answer_cells(stored, ["anls"])["ttfa_ms"] is None  # an empty cell
    # A record of this version is rescored from its raw answer, with the case's tags.
    off = rescore(_case(()), _sample({"answers": ["Paris"]}), new)
    assert off["answer"] == "<think>x</think>Paris" and off["scores"]["anls"] == 0.0


@pytest.fixture
def image(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "p.png"
    Image.new("L", (8, 8), 255).save(path)
    return path


def test_the_request_carries_the_system_turn_and_chat_template_kwargs(
    image: Path, tmp_path: Path
) -> None:
    sample = Sample(id="s", image=image, prompt="Q?", reference={}, manifest=image)
    case = _case(
        system_prompt="Answer briefly.",
        chat_template_kwargs={"enable_thinking": False},
        request_params={"top_p": 0.5},
    )
    body = request_body(case, sample, "served", Backend(), tmp_path)
    assert body["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert body["messages"][1]["role"] == "user"
    assert body["messages"][1]["content"][1] == {"type": "text", "text": "Q?"}
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["top_p"] == 0.5
    plain = request_body(_case(), sample, "served", Backend(), tmp_path)
    assert [m["role"] for m in plain["messages"]] == ["user"]
    assert "chat_template_kwargs" not in plain


def test_reasoning_and_raw_answer_are_masked_like_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-reasoning-secret-0123456789"
    monkeypatch.setattr(redact_module, "_secrets", [])
    for name in COMMON_SECRET_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_TOKEN", key)
    register_env([])
    done = Completion(text=f"<think>{key}</think>ok {key}", reasoning=f"the key is {key}")
    record = make_record(_case(), _sample({"answers": ["ok"]}), done, None)
    assert record.get("reasoning") == "the key is ***"
    assert record.get("raw_answer") == "<think>***</think>ok ***"
    assert record["answer"] == "ok ***"
