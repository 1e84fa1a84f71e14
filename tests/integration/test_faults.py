"""Faults: retries with backoff, per-case request timeouts, server restarts,
and rebuilding the reports from the results store.

Retry and timeout behaviour is driven by the scripted stub (it can fail on
cue); restarts run against the real HF server, killed mid-case.
"""

from __future__ import annotations

import pytest

from tests.helpers import KILL_SERVER_AFTER_S1, page_manifest, read_csv, run, setup_suite
from tests.stub_openai import StubScript, running_stub

VQA = "name,type,data\nvqa,docvqa,data/m.jsonl\n"


def _remote(url: str) -> str:
    return f"name,source,endpoint\nremote,x,{url}\n"


def test_503_429_and_dropped_connections_are_retried(pytester: pytest.Pytester) -> None:
    page_manifest(pytester, 4)
    script = StubScript(default_answer="a", fail_first=[503, 429, 0])
    with running_stub(script) as url:
        setup_suite(
            pytester,
            "model,task,backend,concurrency,max_retries\nremote,vqa,openai,1,3\n",
            models=_remote(url),
            tasks=VQA,
        )
        result = run(pytester)
    result.assert_outcomes(passed=4)
    assert len(script.received) == 4 + 3
    answers = read_csv(pytester.path / "vlmhb-results" / "answers.csv")
    assert [int(r["retries"]) for r in answers] == [3, 0, 0, 0]
    (case,) = read_csv(pytester.path / "vlmhb-results" / "metrics.csv")
    assert (case["retries"], case["errors"]) == ("3", "0")


def test_other_errors_are_not_retried_and_retries_run_out(pytester: pytest.Pytester) -> None:
    page_manifest(pytester, 2)
    five_hundred = StubScript(default_answer="a", fail_first=[500])
    busy = StubScript(default_answer="a", fail_first=[503, 503])
    with running_stub(five_hundred) as url500, running_stub(busy) as url503:
        setup_suite(
            pytester,
            "id,model,task,backend,concurrency,max_retries\n"
            "c500,r500,vqa,openai,1,3\nc503,r503,vqa,openai,1,1\n",
            models=f"name,source,endpoint\nr500,x,{url500}\nr503,x,{url503}\n",
            tasks=VQA,
        )
        result = run(pytester)
    result.assert_outcomes(passed=2, failed=2)
    assert len(five_hundred.received) == 2  # the 500 is not sent again
    assert len(busy.received) == 3  # one retry, then it gives up
    result.stdout.fnmatch_lines(
        ["*HTTP 500: scripted 500", "*HTTP 503: scripted 503 (gave up after 1 retries)"]
    )
    rows = {r["case_id"]: r for r in read_csv(pytester.path / "vlmhb-results" / "metrics.csv")}
    assert (rows["c500"]["retries"], rows["c500"]["errors"]) == ("0", "1")
    assert (rows["c503"]["retries"], rows["c503"]["errors"]) == ("1", "1")


def test_request_timeout_column_bounds_each_request(pytester: pytest.Pytester) -> None:
    page_manifest(pytester, 2)
    script = StubScript(default_answer="a", first_delay_s=3.0)
    with running_stub(script) as url:
        setup_suite(
            pytester,
            "model,task,backend,concurrency,request_timeout\nremote,vqa,openai,2,0.4\n",
            models=_remote(url),
            tasks=VQA,
        )
        result = run(pytester, "--vlmhb-request-timeout=60")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*request timed out after 0.4 s*"])
    assert len(script.received) == 2  # a timeout is not retried
    assert result.duration < 30


def test_reports_rebuilt_from_the_store_alone(pytester: pytest.Pytester) -> None:
    page_manifest(pytester, 3)
    script = StubScript(answers={}, default_answer="a")
    with running_stub(script) as url:
        setup_suite(
            pytester,
            "model,task,backend,min_anls\nremote,vqa,openai,0.5\n",
            models=_remote(url),
            tasks=VQA,
        )
        run(pytester).assert_outcomes(passed=4)
        out = pytester.path / "vlmhb-results"
        before = {name: (out / name).read_text() for name in ("answers.csv", "metrics.csv")}
        for name in ("answers.csv", "metrics.csv", "report.md"):
            (out / name).unlink()
        sent = len(script.received)
        result = run(pytester, "--vlmhb-rebuild-reports")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED or result.ret == 0
    assert len(script.received) == sent  # nothing sent again
    assert {name: (out / name).read_text() for name in before} == before
    report = (out / "report.md").read_text()
    assert "min_anls" in report and "pass" in report


def test_rebuild_without_a_store_is_a_usage_error(pytester: pytest.Pytester) -> None:
    page_manifest(pytester, 1)
    setup_suite(
        pytester,
        "model,task,backend\nremote,vqa,openai\n",
        models=_remote("http://127.0.0.1:9/v1"),
        tasks=VQA,
    )
    result = run(pytester, "--vlmhb-rebuild-reports")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--vlmhb-rebuild-reports: no results store in*"])


@pytest.mark.server
def test_dead_server_is_restarted_and_the_case_carries_on(pytester: pytest.Pytester) -> None:
    page_manifest(pytester, 6)
    setup_suite(
        pytester,
        "model,task,backend,launcher,concurrency,max_restarts\ntiny,vqa,hf,local,1,1\n",
        tasks=VQA,
    )
    pytester.makeconftest(KILL_SERVER_AFTER_S1)
    result = run(pytester, "--vlmhb-request-timeout=120")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*restarting server tiny@hf@local*"])
    (case,) = read_csv(pytester.path / "vlmhb-results" / "metrics.csv")
    assert (case["server_restarts"], case["errors"], case["n"]) == ("1", "0", "6")
