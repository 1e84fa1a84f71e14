"""Bootstrap intervals and paired tests (pytest_vlmhb.stats): exact against the
metrics' own aggregates, deterministic, fast, and calibrated on simulated runs
with known effects (coverage, false-positive rate at ALPHA, power)."""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

import numpy as np
import pytest

from pytest_vlmhb import stats
from pytest_vlmhb.client import Completion
from pytest_vlmhb.metrics.base import Metric, Stats
from pytest_vlmhb.records import make_record, metric, summarize_case
from tests.helpers import make_case, make_sample

ALPHA = 0.05


def _scores(values: Sequence[float]) -> list[Stats]:
    return [{"score": float(v)} for v in values]


def _edits(edits: Sequence[float], lengths: Sequence[float]) -> list[Stats]:
    return [{"edits": float(e), "ref_len": float(n)} for e, n in zip(edits, lengths, strict=True)]


class Median(Metric):
    """A metric whose aggregate is no function of the stats' means (no fast path)."""

    name = "median_score"

    def stats(self, prediction: str, reference: object) -> Stats:  # type: ignore[override]
        raise NotImplementedError

    def worst_stats(self, reference: object) -> Stats:  # type: ignore[override]
        raise NotImplementedError

    def value(self, stats: Stats) -> float | None:
        return stats["score"]

    def aggregate(self, stats: Sequence[Stats]) -> float | None:
        return statistics.median(s["score"] for s in stats) if stats else None


# ------------------------------------------------------------------ exactness


def _random_rows(name: str, n: int, rng: np.random.Generator) -> list[Stats]:
    if name in ("cer", "wer"):
        lengths = rng.integers(0, 30, n)  # some empty references: pooled, not averaged
        return _edits(rng.binomial(lengths, 0.2), lengths)
    if name in ("f1", "kie_precision", "kie_recall"):
        return [
            {"tp": float(a), "fp": float(b), "fn": float(c)}
            for a, b, c in rng.integers(0, 4, (n, 3))
        ]
    if name == "ccocr_kie_f1":
        return [{"tp": float(a), "fnfp": float(b)} for a, b in rng.integers(0, 4, (n, 2))]
    return _scores(rng.random(n).round(2))


@pytest.mark.parametrize(
    "name", ["anls", "accuracy", "cer", "wer", "f1", "kie_precision", "ccocr_kie_f1"]
)
def test_every_resample_is_the_metrics_own_aggregate(name: str) -> None:
    rng = np.random.default_rng(7)
    rows = _random_rows(name, 40, rng)
    m = metric(name)
    aggregate = stats.Aggregator(m, rows)
    counts = stats._counts(rng.integers(0, 40, size=(30, 40)), 40)
    got = aggregate(counts)
    assert aggregate.fast  # every built-in metric takes the fast path
    assert aggregate.pooled == (name == "ccocr_kie_f1")  # its F1 smooths the sums
    for row, value in zip(counts, got, strict=True):
        picked = [rows[i] for i in np.repeat(np.arange(40), row.astype(int))]
        want = m.aggregate(picked)
        assert value == pytest.approx(np.nan if want is None else want, rel=1e-9, nan_ok=True)


def test_a_metric_without_the_fast_path_calls_its_aggregate() -> None:
    rng = np.random.default_rng(3)
    rows = _scores(rng.random(25))
    aggregate = stats.Aggregator(Median(), rows)
    counts = stats._counts(rng.integers(0, 25, size=(10, 25)), 25)
    got = aggregate(counts)
    assert aggregate.fast is False
    for row, value in zip(counts, got, strict=True):
        picked = [rows[i]["score"] for i in np.repeat(np.arange(25), row.astype(int))]
        assert value == statistics.median(picked)
    low, high = stats.metric_intervals(("m",), {"m": (Median(), rows)})["m"]
    assert low is not None and high is not None
    assert min(r["score"] for r in rows) <= low < high <= max(r["score"] for r in rows)


@pytest.mark.parametrize("q", [50.0, 90.0, 99.0, None])
def test_quantile_of_resamples_is_numpys(q: float | None) -> None:
    rng = np.random.default_rng(11)
    old, new = rng.gamma(2, 50, 30), rng.gamma(2, 50, 30)
    figure = stats.Quantile(q, old, new)
    swap = rng.integers(0, 2, size=(20, 30)).astype(float)
    got = figure(swap, 1 - swap)  # each row: for every pair, one of its two values
    for row, value in zip(swap, got, strict=True):
        picked = np.where(row == 1, old, new)
        want = np.mean(picked) if q is None else np.percentile(picked, q)
        assert value == pytest.approx(want, rel=1e-12)


# ------------------------------------------------------------------ intervals


def test_intervals_are_seeded_by_the_key_and_stable_across_processes() -> None:
    assert stats.seed_of("case") == int.from_bytes(hashlib.sha256(b"case").digest()[:8], "big")
    assert stats.seed_of("a", "b") == stats.seed_of("a\x1fb")
    rows = _scores(np.random.default_rng(1).random(50))
    one = stats.metric_intervals(("case",), {"anls": (metric("anls"), rows)})
    assert one == stats.metric_intervals(("case",), {"anls": (metric("anls"), rows)})
    assert one != stats.metric_intervals(("other",), {"anls": (metric("anls"), rows)})
    code = (
        "import json, sys; from pytest_vlmhb import stats; from pytest_vlmhb.records import metric;"
        "rows = json.loads(sys.argv[1]);"
        "print(json.dumps(stats.metric_intervals(('case',), {'anls': (metric('anls'), rows)})))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(rows)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert json.loads(proc.stdout) == {"anls": list(one["anls"])}


def test_interval_edges() -> None:
    anls = metric("anls")
    assert stats.metric_intervals(("c",), {"anls": (anls, [])}) == {"anls": (None, None)}
    same = stats.metric_intervals(("c",), {"anls": (anls, _scores([0.5] * 9))})
    assert same == {"anls": (0.5, 0.5)}
    # No reference text anywhere: CER is undefined on every resample.
    assert stats.metric_intervals(("c",), {"cer": (metric("cer"), _edits([0, 0], [0, 0]))}) == {
        "cer": (None, None)
    }
    assert stats.figure_interval(("c",), [], 50) == (None, None)
    assert stats.figure_interval(("c",), [7.0], 50) == (7.0, 7.0)


def test_summary_intervals_count_errors_as_the_worst_stats() -> None:
    case = make_case(("cer",))
    done = Completion(text="abc", ttft_s=0.1, e2e_s=0.2, completion_tokens=1)
    records = [make_record(case, make_sample(f"s{i}", "abc"), done, None) for i in range(20)]
    row = summarize_case(case, records)
    assert row["metrics"]["cer"] == 0.0 and row["metric_intervals"]["cer"] == (0.0, 0.0)
    assert (row["ttft_p50_ci_low_ms"], row["ttft_p50_ci_high_ms"]) == (100.0, 100.0)
    records[:4] = [
        make_record(case, make_sample(f"e{i}", "abc"), None, "timeout") for i in range(4)
    ]
    row = summarize_case(case, records)
    low, high = row["metric_intervals"]["cer"]
    assert row["metrics"]["cer"] == 0.2  # 4 of 20 samples at their worst: 12 / 60
    assert low is not None and high is not None and 0.0 < low < 0.2 < high < 0.5
    unrounded = summarize_case(case, records, intervals=False)
    assert unrounded["metric_intervals"] == {"cer": (None, None)}
    assert unrounded["ttft_p50_ci_low_ms"] is None


def test_intervals_of_a_large_case_take_well_under_a_second() -> None:
    """2000 resamples of 3000 samples: two metrics (one pooled) and the TTFT median.
    CPU time of this process, so other processes on the machine do not count."""
    rng = np.random.default_rng(0)
    n = 3000
    lengths = rng.integers(10, 80, n)
    scored = {
        "anls": (metric("anls"), _scores(rng.beta(5, 2, n))),
        "cer": (metric("cer"), _edits(rng.binomial(lengths, 0.1), lengths)),
    }
    ttft = list(rng.gamma(2, 50, n))
    start = time.process_time()
    intervals = stats.metric_intervals(("big",), scored)
    stats.figure_interval(("big", "ttft_p50_ms"), ttft, 50)
    spent = time.process_time() - start
    assert spent < 0.8, f"{spent:.2f} s of CPU"
    cer = metric("cer").aggregate(scored["cer"][1])
    low, high = intervals["cer"]
    assert cer is not None and low is not None and high is not None and low < cer < high


# ------------------------------------------------------- simulated known effects


def _coverage(truth: float, draw: object, runs: int, m: Metric) -> float:
    hits = 0
    for run in range(runs):
        rows = draw(np.random.default_rng(run), 200)  # type: ignore[operator]
        low, high = stats.metric_intervals((f"sim{run}",), {"x": (m, rows)})["x"]
        assert low is not None and high is not None
        hits += low <= truth <= high
    return hits / runs


def _accuracy(rng: np.random.Generator, n: int) -> list[Stats]:
    return _scores(rng.random(n) < 0.7)


def _anls_like(rng: np.random.Generator, n: int) -> list[Stats]:
    """Mostly exact (1) or wrong (0), some near misses in [0.5, 1): mean 0.7125."""
    kind = rng.random(n)
    return _scores(np.where(kind < 0.6, 1.0, np.where(kind < 0.85, 0.0, rng.uniform(0.5, 1, n))))


def _cer_like(rng: np.random.Generator, n: int, rise: float = 0.0) -> list[Stats]:
    """Lines of 5-59 characters, each with its own error rate (mean 0.1 + rise): the
    pooled CER's true value is 0.1 + rise."""
    lengths = rng.integers(5, 60, n)
    rates = rng.beta(2, 18, n) + rise
    return _edits(rng.binomial(lengths, np.clip(rates, 0, 1)), lengths)


@pytest.mark.parametrize(
    ("name", "truth", "draw"),
    [("accuracy", 0.7, _accuracy), ("anls", 0.7125, _anls_like), ("cer", 0.1, _cer_like)],
)
def test_interval_coverage_is_nominal(name: str, truth: float, draw: object) -> None:
    """400 simulated cases of 200 samples each: the 95% interval holds the true value
    in 93-97% of them (binomial standard error of the rate: 1.1 points)."""
    assert 0.93 <= _coverage(truth, draw, 400, metric(name)) <= 0.97


def _paired_runs(drop: float, runs: int, n: int) -> float:
    """The share of simulated accuracy gates that fail (the drop beyond 0 and the
    test at ALPHA): each sample has its own difficulty; the two runs answer it
    independently, the second with its chance lowered by ``drop``."""
    failed = 0
    for run in range(runs):
        rng = np.random.default_rng(run)
        chance = rng.beta(3, 1, n)  # mean 0.75
        base = _scores(rng.random(n) < chance)
        now = _scores(rng.random(n) < np.clip(chance - drop, 0, 1))
        result = stats.paired_metric_test((f"sim{run}",), metric("accuracy"), base, now)
        assert result.change is not None and result.p_value is not None
        failed += result.change > 0 and result.p_value <= ALPHA
    return failed / runs


def test_runs_of_one_distribution_fail_at_about_alpha() -> None:
    """400 pairs of runs drawn alike: the gate fails in about 5% of them (at most
    ALPHA + 2 standard errors)."""
    assert _paired_runs(0.0, 400, 200) <= ALPHA + 2 * (ALPHA * (1 - ALPHA) / 400) ** 0.5


def test_a_ten_point_accuracy_drop_is_caught() -> None:
    """0.75 -> 0.65 on 400 paired samples: caught in at least 90% of 100 runs."""
    assert _paired_runs(0.10, 100, 400) >= 0.9


def _pooled_runs(rise: float, runs: int) -> float:
    failed = 0
    for run in range(runs):
        rng = np.random.default_rng(run)
        lengths = rng.integers(5, 60, 200)
        rates = rng.beta(2, 18, 200)
        base = _edits(rng.binomial(lengths, rates), lengths)
        now = _edits(rng.binomial(lengths, np.clip(rates + rise, 0, 1)), lengths)
        result = stats.paired_metric_test((f"sim{run}",), metric("cer"), base, now)
        assert result.change is not None and result.p_value is not None
        failed += result.change > 0 and result.p_value <= ALPHA
    return failed / runs


def test_pooled_cer_false_positives_and_power() -> None:
    """Pooled CER over 200 paired lines: alike runs fail at about ALPHA (400 runs); a
    rise of 2 points (0.10 -> 0.12) is caught in at least 90% of 100 runs."""
    assert _pooled_runs(0.0, 300) <= ALPHA + 2 * (ALPHA * (1 - ALPHA) / 300) ** 0.5
    assert _pooled_runs(0.02, 100) >= 0.9


def _latency_runs(increase: float, runs: int) -> float:
    failed = 0
    for run in range(runs):
        rng = np.random.default_rng(run)
        work = rng.gamma(2, 100, 200)  # each sample's own cost, in ms
        base = work * rng.lognormal(0, 0.2, 200)
        now = work * (1 + increase) * rng.lognormal(0, 0.2, 200)
        result = stats.paired_latency_test((f"sim{run}",), list(base), list(now), 50)
        assert result.change is not None and result.p_value is not None
        failed += result.change > 0 and result.p_value <= ALPHA
    return failed / runs


def test_paired_latency_false_positives_and_power() -> None:
    """The median of 200 paired latencies: alike runs fail at about ALPHA (400 runs);
    a 20% slowdown is caught in at least 90% of 100 runs."""
    assert _latency_runs(0.0, 400) <= ALPHA + 2 * (ALPHA * (1 - ALPHA) / 400) ** 0.5
    assert _latency_runs(0.20, 100) >= 0.9


# ------------------------------------------------------------------ paired tests


def test_identical_runs_show_no_change_and_p_one() -> None:
    rows = _scores(np.random.default_rng(2).random(30) > 0.5)
    result = stats.paired_metric_test(("c",), metric("accuracy"), rows, rows)
    assert (result.change, result.ci_low, result.ci_high, result.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert result.pairs == 30


def test_a_drop_is_positive_whichever_way_the_metric_runs() -> None:
    lengths = [10.0] * 20
    base, worse = _edits([1.0] * 20, lengths), _edits([3.0] * 20, lengths)
    result = stats.paired_metric_test(("c",), metric("cer"), base, worse)
    assert (result.baseline, result.now) == (0.1, 0.3)
    assert result.change == pytest.approx(0.2)
    assert result.p_value is not None and result.p_value < 0.001  # 20 of 20 pairs worse
    better = stats.paired_metric_test(("c",), metric("cer"), worse, base)
    assert better.change == pytest.approx(-0.2) and better.p_value == 1.0
    with pytest.raises(ValueError, match="2 baseline samples but 1 now"):
        stats.paired_metric_test(("c",), metric("cer"), base[:2], base[:1])
    empty = stats.paired_metric_test(("c",), metric("cer"), [], [])
    assert empty.pairs == 0 and empty.p_value is None


def test_latency_change_is_relative() -> None:
    base = [100.0, 200.0, 300.0, 400.0, 500.0] * 8
    result = stats.paired_latency_test(("c",), base, [v * 1.5 for v in base], 95)
    assert result.change == pytest.approx(0.5)
    assert (result.ci_low, result.ci_high) == (pytest.approx(0.5), pytest.approx(0.5))
    assert result.p_value is not None and result.p_value < 0.01
