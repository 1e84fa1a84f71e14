"""Nothing lost: the per-sample store survives interruptions and --vlmhb-resume
sends only what is missing (counted at the server)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import half_right_script, read_csv, run, stub_vqa_suite
from tests.stub_openai import StubScript, running_stub

N = 8
DONE = 3  # samples answered before the interrupted run is signalled
#: pytest as a terminal runs it, where Ctrl-C raises KeyboardInterrupt. A child of a
#: suite started as a background job (``.ci/run &``) inherits SIGINT *ignored*, and
#: Python keeps an ignored SIGINT ignored: the signal would do nothing and the run
#: would simply finish (all N records and the case line stored).
INTERRUPTIBLE_PYTEST = (
    "import runpy, signal, sys; "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'pytest'; runpy.run_module('pytest', run_name='__main__')"
)


def _suite(pytester: pytest.Pytester, url: str) -> None:
    stub_vqa_suite(pytester, url, N)


def _script(hold_from: int | None = None) -> StubScript:
    return half_right_script(N, hold_from=hold_from)


def _stored(store: Path) -> int:
    """Sample records in the store: not its run or case lines, nor a line torn by
    SIGKILL (split at "\n" only, as the plugin reads it)."""
    if not store.exists():
        return 0
    count = 0
    for line in store.read_text().split("\n"):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        count += isinstance(entry, dict) and "key" in entry
    return count


def _answers(path: Path) -> list[tuple[str, str, str]]:
    return [(r["sample_id"], r["answer"], r["anls"]) for r in read_csv(path / "answers.csv")]


def test_resume_reuses_everything_and_a_fresh_run_sets_the_store_aside(
    pytester: pytest.Pytester,
) -> None:
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
    pytester: pytest.Pytester, sig: signal.Signals
) -> None:
    with running_stub(_script()) as url:  # the uninterrupted reference
        _suite(pytester, url)
        run(pytester, "--vlmhb-output=reference").assert_outcomes(passed=N)
    reference = _answers(pytester.path / "reference")
    # The stub answers the first DONE requests and holds the next one (concurrency
    # 1: one request at a time) until released: when the signal lands, exactly
    # DONE samples are stored and the run cannot have finished, however slow or
    # loaded the machine is.
    script = _script(hold_from=DONE)
    with running_stub(script) as url:
        _suite(pytester, url)
        store = pytester.path / "vlmhb-results" / "results" / "samples-main.jsonl"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                INTERRUPTIBLE_PYTEST,
                "-p",
                "no:cacheprovider",
                "--vlmhb-config=user_config.csv",
            ],
            cwd=pytester.path,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ),
        )
        try:
            deadline = time.monotonic() + 120
            while not (script.held() and _stored(store) >= DONE):
                assert proc.poll() is None, f"the run ended early (exit {proc.returncode})"
                assert time.monotonic() < deadline, (script.held(), _stored(store))
                time.sleep(0.05)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # deaf to the signal: do not leave it
                raise
        done = _stored(store)
        assert done == DONE  # the held sample and the ones after it never finished
        script.release()
        sent_before = len(script.received)
        resumed = run(pytester, "--vlmhb-resume")
        resumed.assert_outcomes(passed=N)
        assert len(script.received) - sent_before == N - done  # only the missing ones
    assert _answers(pytester.path / "vlmhb-results") == reference
    report = (pytester.path / "vlmhb-results" / "report.md").read_text()
    assert f"Resumed: {done} of {N} samples reused" in report
