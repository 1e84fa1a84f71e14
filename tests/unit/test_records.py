"""Per-case summaries and gates from records (pure functions)."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_vlmhb.client import Completion
from pytest_vlmhb.gates import gate_failure
from pytest_vlmhb.records import Record, make_record, percentile, summarize_case
from tests.helpers import make_case, make_sample


@given(
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=2, max_size=50),
    st.sampled_from([50, 90, 95, 99]),
)
def test_percentile_matches_linear_interpolation(values: list[float], q: int) -> None:
    expected = statistics.quantiles(values, n=100, method="inclusive")[q - 1]
    assert percentile(values, q) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_percentile_edges() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0


def test_summary_pools_cer_and_counts_errors_as_worst() -> None:
    case = make_case(("cer",))
    ok = Completion(
        text="abcd",
        ttft_s=0.1,
        e2e_s=0.4,
        prompt_tokens=5,
        completion_tokens=4,
        finish_reason="stop",
        sent_at=100.0,
        finished_at=100.5,
    )
    ok2 = Completion(
        text="ab",
        ttft_s=0.2,
        e2e_s=0.2,
        prompt_tokens=5,
        completion_tokens=1,
        finish_reason="stop",
        sent_at=100.1,
        finished_at=101.0,
    )
    records = [
        make_record(case, make_sample("a", "abcf"), ok, None),  # 1 edit / 4
        make_record(case, make_sample("b", "abcdefgh"), ok2, None),  # 6 edits / 8
        make_record(case, make_sample("c", "xyz"), None, "image not found: x.png"),  # worst 3/3
    ]
    assert records[0]["scores"]["cer"] == pytest.approx(0.25)
    assert records[1]["tpot_ms"] is None  # a single output token has no TPOT
    assert records[2]["scores"]["cer"] == 1.0 and records[2]["answer"] is None
    row = summarize_case(case, records, {"peak_memory_bytes": 3 * 2**20})
    assert row["n"] == 3 and row["errors"] == 1
    assert row["metrics"]["cer"] == pytest.approx((1 + 6 + 3) / (4 + 8 + 3), abs=1e-4)
    assert row["ttft_p50_ms"] == pytest.approx(150.0)
    assert row["tpot_mean_ms"] == pytest.approx(100.0)
    assert row["requests_per_s"] == pytest.approx(2 / 1.0)
    assert row["output_tokens_per_s"] == pytest.approx(5 / 1.0)
    assert row["peak_memory_mb"] == 3.0


@pytest.mark.parametrize(
    ("row", "column", "bound", "limit", "expected"),
    [
        ({"anls": 0.41}, "anls", "min", 0.5, "anls 0.41 < min_anls 0.5"),
        ({"anls": 0.5}, "anls", "min", 0.5, None),
        (
            {"ttft_p95_ms": 120.0},
            "ttft_p95_ms",
            "max",
            100,
            "ttft_p95_ms 120 > max_ttft_p95_ms 100",
        ),
        ({"errors": 0}, "errors", "max", 0, None),
        (
            {"anls": None},
            "anls",
            "min",
            0.0,
            "anls could not be computed for this case (min_anls 0)",
        ),
    ],
)
def test_gate_failure_messages(
    row: dict[str, float | None], column: str, bound: str, limit: float, expected: str | None
) -> None:
    assert gate_failure(row, column, bound, limit) == expected


def _timed(
    sid: str, sent: float | None, finished: float | None, tokens: int = 10, error: str | None = None
) -> Record:
    done = Completion(
        text="x",
        ttft_s=0.1,
        e2e_s=0.2,
        completion_tokens=tokens,
        sent_at=sent or 0.0,
        finished_at=finished or 0.0,
    )
    return make_record(make_case(("cer",)), make_sample(sid, "x"), None if error else done, error)


HOUR = 3600.0


@pytest.mark.parametrize(
    ("intervals", "requests_per_s", "tokens_per_s"),
    [
        # A resumed run: two bursts of 2 requests over 1 s each, an hour apart -> the burst rate.
        (
            [
                (1000.0, 1001.0),
                (1000.5, 1001.0),
                (1000 + HOUR, 1001 + HOUR),
                (1000 + HOUR, 1000.5 + HOUR),
            ],
            2.0,
            20.0,
        ),
        ([(1000.0, 1000.5)], 2.0, 20.0),  # a single sample
        ([(1000.0, 1002.0)] * 4, 2.0, 20.0),  # identical intervals
        ([(1000.0, 1004.0), (1001.0, 1002.0), (1002.5, 1003.0)], 0.75, 7.5),  # nested
        ([(1000.0, 1002.0), (1001.0, 1003.0)], 2 / 3, 20 / 3),  # overlapping
        ([(1000.0, 1001.0), (1001.0, 1002.0)], 1.0, 10.0),  # touching
    ],
)
def test_rates_over_the_union_of_in_flight_intervals(
    intervals: list[tuple[float, float]], requests_per_s: float, tokens_per_s: float
) -> None:
    records = [_timed(f"s{i}", a, b) for i, (a, b) in enumerate(intervals)]
    row = summarize_case(make_case(("cer",)), records)
    assert row["requests_per_s"] == pytest.approx(requests_per_s, abs=1e-3)
    assert row["output_tokens_per_s"] == pytest.approx(tokens_per_s, abs=1e-3)


def test_rates_skip_records_without_usable_timestamps() -> None:
    records = [
        _timed("a", 1000.0, 1001.0),
        _timed("b", None, 1001.0),
        _timed("c", 1000.0, None),
        _timed("d", 1002.0, 1001.0),
        _timed("e", None, None, error="boom"),
    ]
    row = summarize_case(make_case(("cer",)), records)
    assert row["requests_per_s"] == pytest.approx(1.0)  # only "a" has an interval
    assert row["output_tokens_per_s"] == pytest.approx(10.0)
    assert row["client_completion_tokens"] == 40  # still every answered sample's tokens
    none = summarize_case(make_case(("cer",)), [_timed("a", None, None), _timed("b", 5.0, 5.0)])
    assert none["requests_per_s"] is None and none["output_tokens_per_s"] is None
