"""Nothing lost: the per-sample store survives interruptions and --vlmhb-resume
sends only what is missing (counted at the server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_harness import read_csv, run, setup_suite
from tests.stub_openai import StubScript, running_stub

N = 8
SUFFIX = "\nAnswer the question using a single word or phrase."


def _suite(pytester: pytest.Pytester, url: str) -> None:
    data = pytester.path / "data"
    data.mkdir(exist_ok=True)
    from PIL import Image
    Image.new("L", (30, 30), 255).save(data / "p.png")
    (data / "m.jsonl").write_text("".join(
        json.dumps({"id": f"s{i}", "image": "p.png", "question": f"Q{i}?",
                    "answers": [f"a{i}"]}) + "\n" for i in range(N)))
    setup_suite(pytester, "model,task,backend,concurrency\nremote,vqa,openai,1\n",
                models=f"name,source,endpoint\nremote,x,{url}\n",
                tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n")


def _script(first_delay_s: float = 0.0) -> StubScript:
    # Every other answer is right, so the scores say whether rows were mixed up.
    return StubScript(answers={f"Q{i}?{SUFFIX}": f"a{i}" if i % 2 else "wrong"
                               for i in range(N)}, first_delay_s=first_delay_s)


def _answers(path: Path) -> list[tuple[str, str, str]]:
    return [(r["sample_id"], r["answer"], r["anls"]) for r in read_csv(path / "answers.csv")]


def test_resume_reuses_everything_and_a_fresh_run_sets_the_store_aside(
        pytester: pytest.Pytester) -> None:
    script = _script()
    with running_stub(script) as url:
        _suite(pytester, url)
        run(pytester).assert_outcomes(passed=N)
        first = _answers(pytester.path / "vlmhb-results")
        assert len(script.received) == N
        resumed = run(pytester, "--vlmhb-resume")
        resumed.assert_outcomes(passed=N)
        assert len(script.received) == N  # nothing sent again
        assert _answers(pytester.path / "vlmhb-results") == first
        report = (pytester.path / "vlmhb-results" / "report.md").read_text()
        assert f"Resumed: {N} of {N} samples reused" in report
        run(pytester).assert_outcomes(passed=N)
        assert len(script.received) == 2 * N
    aside = list((pytester.path / "vlmhb-results").glob("results-*"))
    assert len(aside) == 1 and (aside[0] / "samples-main.jsonl").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "kill9"])
def test_interrupted_run_resumes_with_only_the_missing_samples(
        pytester: pytest.Pytester, sig: signal.Signals) -> None:
    with running_stub(_script()) as url:  # the uninterrupted reference
        _suite(pytester, url)
        run(pytester, "--vlmhb-output=reference").assert_outcomes(passed=N)
    reference = _answers(pytester.path / "reference")
    script = _script(first_delay_s=0.25)
    with running_stub(script) as url:
        _suite(pytester, url)
        store = pytester.path / "vlmhb-results" / "results" / "samples-main.jsonl"
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
             "--vlmhb-config=user_config.csv"], cwd=pytester.path, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if store.exists() and len(store.read_text().splitlines()) >= 3:
                break
            time.sleep(0.05)
        os.killpg(proc.pid, sig)
        proc.wait(timeout=30)
        done = len([line for line in store.read_text().splitlines() if line.strip()])
        assert 3 <= done < N
        sent_before = len(script.received)
        resumed = run(pytester, "--vlmhb-resume")
        resumed.assert_outcomes(passed=N)
        assert len(script.received) - sent_before == N - done  # only the missing ones
    assert _answers(pytester.path / "vlmhb-results") == reference
    report = (pytester.path / "vlmhb-results" / "report.md").read_text()
    assert f"Resumed: {done} of {N} samples reused" in report
