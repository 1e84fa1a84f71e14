"""Regression gates against an earlier run's metrics.csv (--vlmhb-baseline)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.helpers import half_right_script, read_csv, run, setup_suite, stub_vqa_suite
from tests.stub_openai import StubScript, running_stub

N = 8
#: Fixed server delays make the latencies the stub's, not the machine's: a 1000%
#: latency gate then holds however loaded the machine is (a bare stub's 1-2 ms
#: TPOT varied more than 10x under load).
DELAYS = {"first_delay_s": 0.05, "chunk_delay_s": 0.02, "chunk_chars": 1}


def _suite(pytester: pytest.Pytester, url: str) -> None:
    stub_vqa_suite(pytester, url, N)


def test_baseline_deltas_and_regression_gates(pytester: pytest.Pytester) -> None:
    with running_stub(half_right_script(N, **DELAYS)) as url:  # half right: anls 0.5
        _suite(pytester, url)
        run(pytester).assert_outcomes(passed=N)
    shutil.copy(pytester.path / "vlmhb-results" / "metrics.csv", pytester.path / "base.csv")
    assert read_csv(pytester.path / "base.csv")[0]["anls"] == "0.5"
    with running_stub(StubScript(default_answer="wrong", **DELAYS)) as url:  # all wrong
        _suite(pytester, url)
        (pytester.path / "user_config.csv").write_text(
            "id,model,task,backend,concurrency\n,remote,vqa,openai,1\nfresh,remote,vqa,openai,1\n"
        )
        result = run(
            pytester,
            "--vlmhb-baseline=base.csv",
            "--vlmhb-max-score-drop=0.02",
            "--vlmhb-max-latency-increase=1000%",
            "-v",
        )
    # 2 x N samples pass; the old case gets score and latency gates; "fresh" is new.
    result.stdout.fnmatch_lines(
        [
            "*test_gate?remote:vqa:openai/baseline_min_anls? FAILED*",
            "*test_gate?remote:vqa:openai/baseline_max_ttft_p50_ms? PASSED*",
        ]
    )
    result.stdout.fnmatch_lines(["anls 0 < min_anls 0.48"])
    assert "fresh/baseline" not in result.stdout.str()
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 2  # anls and exact_match dropped
    report = (pytester.path / "vlmhb-results" / "report.md").read_text()
    assert "## Baseline comparison" in report
    assert "| remote:vqa:openai | anls | 0.5 | 0 | -0.5 | compared |" in report
    assert "| fresh | (all) | - | - | - | new |" in report


def test_bad_latency_tolerance_is_a_usage_error(pytester: pytest.Pytester) -> None:
    setup_suite(pytester, "model,task,backend\nm,vqa,hf\n")
    result = run(pytester, "--vlmhb-max-latency-increase=lots")
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        [
            "*--vlmhb-max-latency-increase: expected a fraction or "
            "percentage such as 0.1 or 10%, got 'lots'*"
        ]
    )


def test_benchmark_json_for_pytest_benchmark_compare(pytester: pytest.Pytester) -> None:
    with running_stub(half_right_script(N)) as url:
        _suite(pytester, url)
        run(pytester, "-n", "2").assert_outcomes(passed=N)  # written by the controller
    out = pytester.path / "vlmhb-results"
    doc = json.loads((out / "benchmark.json").read_text())
    entries = {b["name"]: b for b in doc["benchmarks"]}
    metrics = read_csv(out / "metrics.csv")[0]
    ttft = entries["ttft[remote:vqa:openai]"]["stats"]
    assert ttft["rounds"] == N
    assert ttft["median"] * 1000 == pytest.approx(float(metrics["ttft_p50_ms"]), abs=1e-3)
    e2e = entries["e2e[remote:vqa:openai]"]["stats"]
    assert e2e["median"] * 1000 == pytest.approx(float(metrics["e2e_p50_ms"]), abs=1e-3)
    # pytest-benchmark's own command reads it.
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pytest_benchmark.cli import main; main()",
            "compare",
            str(out / "benchmark.json"),
            "--columns=min,median,max",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ttft[remote:vqa:openai]" in proc.stdout
