"""Deployment parity (agreement between two cases) and the cost per 1k samples."""

from __future__ import annotations

import pytest

from pytest_vlmhb.client import Completion
from pytest_vlmhb.parity import agreement, agreements, cost_per_1k_samples, gpu_count
from pytest_vlmhb.records import Record, make_record
from tests.helpers import make_case, make_sample


def _records(answers: dict[str, str | None]) -> list[Record]:
    case = make_case(("cer",))
    out = []
    for sid, text in answers.items():
        done = None if text is None else Completion(text=text, ttft_s=0.1, e2e_s=0.2)
        out.append(make_record(case, make_sample(sid, "x"), done, "boom" if text is None else None))
    return out


def test_agreement_is_the_share_of_equal_answers_errors_disagree() -> None:
    mine = _records({"a": "x", "b": "y", "c": None, "d": "z", "only-mine": "q"})
    theirs = _records({"a": "x", "b": "Y", "c": None, "d": " z ", "only-theirs": "q"})
    # a equal; b differs; c errors on both sides; d equal once stripped (scored answers)
    assert agreement(mine, theirs) == 0.5
    assert agreement(mine, []) is None
    assert agreements({"m": "t", "t": None}, {"m": mine, "t": theirs}) == {"m": 0.5}


@pytest.mark.parametrize(
    ("cell", "expected"), [(None, 0), ("", 0), ("2", 2), ("device=0,3", 2), ("device=1", 1)]
)
def test_gpu_count(cell: str | None, expected: int) -> None:
    assert gpu_count(cell) == expected


def test_cost_per_1k_samples() -> None:
    # 2 GPUs at 3.0/hour for 30 minutes over 500 samples: 3.0 per 500, 6.0 per 1000
    assert cost_per_1k_samples(3.0, 2, 1800.0, 500) == 6.0
    assert cost_per_1k_samples(3.0, 0, 1800.0, 500) is None  # no GPU held
    assert cost_per_1k_samples(None, 2, 1800.0, 500) is None
    assert cost_per_1k_samples(3.0, 2, None, 500) is None


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            "HTTP 400: This model's maximum context length is 2048 tokens. However, your "
            "prompt contains 2100 input tokens, which leaves no room for any output token.",
            True,
        ),  # vLLM and the HF wrapper
        ("HTTP 400: The decoder prompt (length 3000) is longer than max_model_len 2048", True),
        ("HTTP 400: Input length exceeds the context length of the model", True),
        ("HTTP 503: scripted 503", False),
        ("document: page 9 is outside the document (4 pages)", False),
        (None, False),
    ],
)
def test_context_errors_are_told_by_the_servers_words(error: str | None, expected: bool) -> None:
    from pytest_vlmhb.records import is_context_error, summarize_case

    assert is_context_error(error) is expected
    case = make_case(("cer",))
    record = make_record(case, make_sample("a", "x"), None, error or "other")
    assert summarize_case(case, [record])["context_errors"] == int(expected)
