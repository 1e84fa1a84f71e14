"""Paired regression gates end to end (``--vlmhb-baseline DIR --vlmhb-significance``):
a first run's output dir is the baseline of runs whose answer tables are worse."""

from __future__ import annotations

import pytest

from tests.helpers import DOCVQA_SUFFIX, read_csv, run, stub_vqa_suite
from tests.stub_openai import StubScript, running_stub

N = 16
CASE = "remote:vqa:openai"


def _script(wrong: int) -> StubScript:
    """Answers the first ``wrong`` samples wrong and the others right."""
    return StubScript(
        answers={f"Q{i}?{DOCVQA_SUFFIX}": "wrong" if i < wrong else f"a{i}" for i in range(N)}
    )


def _gates(pytester: pytest.Pytester) -> dict[str, dict[str, str]]:
    rows = read_csv(pytester.path / "vlmhb-results" / "gates.csv")
    assert all(r["case_id"] == CASE for r in rows)
    return {r["gate"]: r for r in rows}


def test_paired_gate_fails_a_significant_drop_and_passes_a_noisy_one(
    pytester: pytest.Pytester,
) -> None:
    with running_stub(_script(0)) as url:  # all right: anls 1
        stub_vqa_suite(pytester, url, N)
        run(pytester, "--vlmhb-output=base").assert_outcomes(passed=N)
    base = read_csv(pytester.path / "base" / "metrics.csv")[0]
    assert (base["anls"], base["anls_ci_low"], base["anls_ci_high"]) == ("1.0", "1.0", "1.0")

    # 12 of 16 now wrong: a drop of 0.75, far beyond chance. Under xdist: the gate
    # runs on a worker, and its paired figures travel to the controller's outputs.
    options = ("--vlmhb-significance=0.05", "--vlmhb-max-latency-increase=1000%", "-v")
    with running_stub(_script(12)) as url:
        stub_vqa_suite(pytester, url, N)
        result = run(pytester, "--vlmhb-baseline=base", "-n", "2", *options)
    result.stdout.fnmatch_lines(
        [
            f"*FAILED test_vlmhb.py::test_gate?{CASE}/baseline_min_anls?*",
            f"*PASSED test_vlmhb.py::test_gate?{CASE}/baseline_max_e2e_p50_ms?*",
        ],
    )
    gates = _gates(pytester)
    anls = gates["baseline_min_anls"]
    assert anls["result"] == "fail"
    assert (float(anls["threshold"]), float(anls["value"])) == (1.0, 0.25)
    assert "anls drop 0.75" in anls["detail"] and "significant" in anls["detail"]
    assert "not significant" not in anls["detail"]
    assert gates["baseline_max_ttft_p50_ms"]["result"] == "pass"
    metrics = read_csv(pytester.path / "vlmhb-results" / "metrics.csv")[0]
    low, high = float(metrics["anls_ci_low"]), float(metrics["anls_ci_high"])
    assert 0.0 <= low < 0.25 < high <= 0.6
    assert float(metrics["ttft_p50_ci_low_ms"]) <= float(metrics["ttft_p50_ms"])
    report = (pytester.path / "vlmhb-results" / "report.md").read_text()
    assert "(results store). Delta = this run - the baseline" in report
    assert f"| {CASE} | anls | 1 | 0.25 | -0.75 | paired |" in report
    assert "### Paired tests" in report
    (row,) = [line for line in report.splitlines() if "| baseline_min_anls | 1 | 0.25 |" in line]
    assert "| drop 0.75 |" in row and row.endswith("| 0.05 | 16 | FAIL |")
    p_value = float(row.split("|")[8])
    # Exactly, 2**-12 (all 12 discordant pairs as they are); estimated from 2000 random
    # swaps with the +1 rule: (1 + about 0.5) / 2001.
    assert 0 < p_value <= 0.005

    # One of 16 wrong: beyond the tolerance of 0, but one sample proves nothing.
    with running_stub(_script(1)) as url:
        stub_vqa_suite(pytester, url, N)
        result = run(pytester, "--vlmhb-baseline=base/answers.csv", *options)
    result.stdout.fnmatch_lines([f"*test_gate?{CASE}/baseline_min_anls? PASSED*"])
    anls = _gates(pytester)["baseline_min_anls"]
    assert anls["result"] == "pass"
    assert "anls drop 0.0625" in anls["detail"] and "not significant" in anls["detail"]
    report = (pytester.path / "vlmhb-results" / "report.md").read_text()
    assert "base/answers.csv` (answers.csv)" in report
    assert f"| {CASE} | anls | 1 | 0.9375 | -0.0625 | paired |" in report

    # The same run without the test: the unpaired gate fails on that one sample.
    with running_stub(_script(1)) as url:
        stub_vqa_suite(pytester, url, N)
        result = run(pytester, "--vlmhb-baseline=base", "--vlmhb-max-score-drop=0.02", "-v")
    result.stdout.fnmatch_lines([f"*test_gate?{CASE}/baseline_min_anls? FAILED*"])
    assert _gates(pytester)["baseline_min_anls"]["detail"] == "anls 0.9375 < min_anls 0.98"
