"""The output dir end to end: one run at a time, rebuilds that tell the truth,
rates that ignore the gap before a resume. Against the scripted stub on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from pytest_vlmhb.csvsafe import read_csv_dicts
from tests.helpers import page_manifest, run, setup_suite
from tests.stub_openai import StubScript, running_stub

N = 4
TASKS = "name,type,data\nvqa,docvqa,data/m.jsonl\n"


def _suite(
    pytester: pytest.Pytester, url: str, extra_columns: str = "", extra_values: str = ""
) -> None:
    setup_suite(
        pytester,
        f"model,task,backend,concurrency{extra_columns}\nremote,vqa,openai,1{extra_values}\n",
        models=f"name,source,endpoint\nremote,x,{url}\n",
        tasks=TASKS,
    )


@pytest.mark.timeout(300)
def test_a_second_run_on_the_same_output_dir_is_refused(pytester: pytest.Pytester) -> None:
    page_manifest(pytester, N)
    with running_stub(StubScript(default_answer="a", first_delay_s=1.5)) as url:
        _suite(pytester, url)
        first = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "--vlmhb-config=user_config.csv",
                "-p",
                "no:cacheprovider",
                "-q",
            ],
            cwd=pytester.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        lock = pytester.path / "vlmhb-results" / ".vlmhb.lock"
        deadline = time.monotonic() + 120
        while not lock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lock.exists(), "the first run never took the output dir"
        second = run(pytester)
        output, _ = first.communicate(timeout=240)
    assert second.ret == pytest.ExitCode.USAGE_ERROR
    second.stderr.fnmatch_lines([f"*output dir*in use by pid {first.pid} on host *"])
    assert first.returncode == 0, output.decode()[-2000:]
    rows = read_csv_dicts(pytester.path / "vlmhb-results" / "answers.csv")
    assert [r["sample_id"] for r in rows] == [f"s{i}" for i in range(N)]
    assert not lock.exists()  # released at the end
    assert not list(pytester.path.glob("vlmhb-results/results-*"))  # nothing set aside


def test_a_dead_runs_lock_is_taken_over(pytester: pytest.Pytester) -> None:
    page_manifest(pytester, 1)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    out = pytester.path / "vlmhb-results"
    out.mkdir()
    (out / ".vlmhb.lock").write_text(
        json.dumps(
            {
                "pid": int(dead.stdout),
                "host": os.uname().nodename,
                "started": "2026-01-01T00:00:00+00:00",
            }
        )
    )
    with running_stub(StubScript(default_answer="a")) as url:
        _suite(pytester, url)
        result = run(pytester)
    result.assert_outcomes(passed=1)
    assert "took over" in result.stdout.str() + result.stderr.str()


def test_rebuild_reports_skips_bad_lines_and_exits_by_its_gates(pytester: pytest.Pytester) -> None:
    page_manifest(pytester, N)
    with running_stub(StubScript(default_answer="a")) as url:
        _suite(pytester, url, ",min_anls", ",0.5")
        run(pytester).assert_outcomes(passed=N + 1)
    store = pytester.path / "vlmhb-results" / "results" / "samples-main.jsonl"
    lines = store.read_text().splitlines()
    good = json.loads(lines[0])
    wrong_shape = {**good, "scores": [1, 2], "key": "other"}
    store.write_text(
        "\n".join([*lines, "{garbled", json.dumps(wrong_shape), json.dumps({"answer": 5})])
        + "\n"
        + '{"torn": '
    )
    passing = run(pytester, "--vlmhb-rebuild-reports")
    assert passing.ret == pytest.ExitCode.OK, passing.stdout.str()
    text = passing.stdout.str() + passing.stderr.str()
    first_bad = len(lines) + 1
    for offset in range(4):
        assert f"samples-main.jsonl:{first_bad + offset}" in text, text
    report = (pytester.path / "vlmhb-results" / "report.md").read_text()
    assert "store lines skipped" in report and "| remote:vqa:openai | min_anls | pass |" in report
    assert len(read_csv_dicts(pytester.path / "vlmhb-results" / "answers.csv")) == N
    # The same store, a gate it misses: exit 1, not 5.
    _suite(pytester, "http://127.0.0.1:9/v1", ",min_anls", ",1.01")
    failing = run(pytester, "--vlmhb-rebuild-reports")
    assert failing.ret == pytest.ExitCode.TESTS_FAILED, failing.stdout.str()
    assert (
        "| remote:vqa:openai | min_anls | FAIL |"
        in (pytester.path / "vlmhb-results" / "report.md").read_text()
    )


def test_resume_after_a_torn_line_and_a_pause_keeps_every_record_and_the_real_rate(
    pytester: pytest.Pytester,
) -> None:
    page_manifest(pytester, N)
    with running_stub(StubScript(default_answer="a")) as url:
        _suite(pytester, url)
        run(pytester, "--vlmhb-limit=2").assert_outcomes(passed=2)
        store = pytester.path / "vlmhb-results" / "results" / "samples-main.jsonl"
        with store.open("a") as f:
            f.write('{"key": "torn-by-a-crash", "answ')  # a write cut short
        time.sleep(5)  # the gap between the runs must not count as serving time
        resumed = run(pytester, "--vlmhb-resume")
    resumed.assert_outcomes(passed=N)
    records = [
        json.loads(line)
        for line in store.read_text().splitlines()
        if line.startswith("{") and line.endswith("}")
    ]
    keyed = {r["sample_id"] for r in records if r.get("key") and "sample_id" in r}
    assert keyed == {f"s{i}" for i in range(N)}  # no record was glued onto the torn line
    (metrics,) = read_csv_dicts(pytester.path / "vlmhb-results" / "metrics.csv")
    # Counting the 5 s gap would give at most N / 5 = 0.8 requests/s.
    assert float(metrics["requests_per_s"]) > 2 * N / 5.0
