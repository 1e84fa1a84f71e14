"""Per-case summaries and gates from records (pure functions)."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_vlmhb.client import Completion
from pytest_vlmhb.config import Case, ModelSpec, TaskSpec
from pytest_vlmhb.records import gate_failure, make_record, percentile, summarize_case
from pytest_vlmhb.tasks.manifest import Sample


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=2, max_size=50),
       st.sampled_from([50, 90, 95, 99]))
def test_percentile_matches_linear_interpolation(values: list[float], q: int) -> None:
    expected = statistics.quantiles(values, n=100, method="inclusive")[q - 1]
    assert percentile(values, q) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_percentile_edges() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0


def _case(metrics: tuple[str, ...]) -> Case:
    model = ModelSpec(name="m", source="x", served_name="m", base_dir=Path("."))
    task = TaskSpec(name="t", type="ocr", data="d", prompt="p", metrics=metrics,
                    max_tokens=8, base_dir=Path("."))
    return Case(id="c", index=0, model=model, task=task, backend="hf", launcher="local",
                concurrency=2, max_tokens=8, temperature=0.0, limit=None, request_params={},
                request_timeout=10.0, max_retries=0, max_restarts=0, gauge_poll_s=0.0,
                thresholds=(), source_file=Path("u.csv"), source_line=2)


def _sample(sid: str, text: str) -> Sample:
    return Sample(id=sid, image=Path("x.png"), prompt="p", reference={"text": text},
                  manifest=Path("m.jsonl"))


def test_summary_pools_cer_and_counts_errors_as_worst() -> None:
    case = _case(("cer",))
    ok = Completion(text="abcd", ttft_s=0.1, e2e_s=0.4, prompt_tokens=5, completion_tokens=4,
                    finish_reason="stop", sent_at=100.0, finished_at=100.5)
    ok2 = Completion(text="ab", ttft_s=0.2, e2e_s=0.2, prompt_tokens=5, completion_tokens=1,
                     finish_reason="stop", sent_at=100.1, finished_at=101.0)
    records = [
        make_record(case, _sample("a", "abcf"), ok, None),           # 1 edit / 4
        make_record(case, _sample("b", "abcdefgh"), ok2, None),      # 6 edits / 8
        make_record(case, _sample("c", "xyz"), None, "image not found: x.png"),  # worst 3/3
    ]
    assert records[0]["scores"]["cer"] == pytest.approx(0.25)
    assert records[1]["tpot_ms"] is None  # a single output token has no TPOT
    assert records[2]["scores"]["cer"] == 1.0 and records[2]["answer"] is None
    row = summarize_case(case, records, {"peak_memory_bytes": 3 * 2**20})
    assert row["n"] == 3 and row["errors"] == 1
    assert row["cer"] == pytest.approx((1 + 6 + 3) / (4 + 8 + 3), abs=1e-4)
    assert row["ttft_p50_ms"] == pytest.approx(150.0)
    assert row["tpot_mean_ms"] == pytest.approx(100.0)
    assert row["requests_per_s"] == pytest.approx(2 / 1.0)
    assert row["output_tokens_per_s"] == pytest.approx(5 / 1.0)
    assert row["peak_memory_mb"] == 3.0


@pytest.mark.parametrize(("row", "column", "bound", "limit", "expected"), [
    ({"anls": 0.41}, "anls", "min", 0.5, "anls 0.41 < min_anls 0.5"),
    ({"anls": 0.5}, "anls", "min", 0.5, None),
    ({"ttft_p95_ms": 120.0}, "ttft_p95_ms", "max", 100, "ttft_p95_ms 120 > max_ttft_p95_ms 100"),
    ({"errors": 0}, "errors", "max", 0, None),
    ({"anls": None}, "anls", "min", 0.0, "anls could not be computed for this case (min_anls 0)"),
])
def test_gate_failure_messages(row: dict[str, object], column: str, bound: str, limit: float,
                               expected: str | None) -> None:
    assert gate_failure(row, column, bound, limit) == expected
