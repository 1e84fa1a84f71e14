"""The runner's retries, backoff and server restarts, in-process against the scripted stub.

Each test drives one CaseRun on a LoopThread with backoff sleeps of about a
millisecond, so the retry paths run in milliseconds; the end-to-end versions
(through pytest and the CSVs) are in tests/integration/test_faults.py.
"""

from __future__ import annotations

import concurrent.futures
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from pytest_vlmhb.backends.openai import OpenAIBackend
from pytest_vlmhb.client import Completion, RetryableError, StreamError
from pytest_vlmhb.config import Case, ModelSpec, TaskSpec
from pytest_vlmhb.errors import ServerError, VlmhbError
from pytest_vlmhb.launchers.base import RunningServer
from pytest_vlmhb.runner import CaseRun, LoopThread
from pytest_vlmhb.tasks.manifest import Sample
from tests.stub_openai import StubScript, running_stub

#: Each sample's prompt and the stub's answer to it.
ANSWERS = {f"q{i}": f"answer {i}" for i in range(8)}
#: No test should come near it; a hang fails instead of blocking the run.
WAIT_S = 10.0


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()
    if not thread.loop.is_running():  # LoopThread.close stops the loop but leaves it open
        thread.loop.close()


def _case(
    *,
    concurrency: int = 1,
    max_retries: int = 0,
    max_restarts: int = 0,
    request_timeout: float = 2.0,
) -> Case:
    model = ModelSpec(name="m", source="x", served_name="m", base_dir=Path("."))
    task = TaskSpec(
        name="t",
        type="ocr",
        data="d",
        prompt="p",
        metrics=("cer",),
        max_tokens=8,
        base_dir=Path("."),
    )
    return Case(
        id="c",
        index=0,
        model=model,
        task=task,
        backend="openai",
        launcher="external",
        concurrency=concurrency,
        max_tokens=8,
        temperature=0.0,
        limit=None,
        request_params={},
        request_timeout=request_timeout,
        max_retries=max_retries,
        max_restarts=max_restarts,
        gauge_poll_s=0.0,
        thresholds=(),
        source_file=Path("u.csv"),
        source_line=2,
    )


def _samples(tmp_path: Path, n: int) -> list[Sample]:
    image = tmp_path / "p.png"
    Image.new("L", (8, 8), 255).save(image)
    return [
        Sample(
            id=f"s{i}",
            image=image,
            prompt=f"q{i}",
            reference={"text": "x"},
            manifest=tmp_path / "m.jsonl",
        )
        for i in range(n)
    ]


def _server(
    url: str,
    name: str = "first",
    exit_code: Callable[[], int | None] | None = None,
    log_path: Path | None = None,
) -> RunningServer:
    return RunningServer(
        base_url=url,
        root_url=url.removesuffix("/v1"),
        served_name="m",
        provenance={"name": name},
        exit_code=exit_code,
        log_path=log_path,
    )


def _script(**kwargs: object) -> StubScript:
    script = StubScript(answers=dict(ANSWERS), chunk_chars=4)
    for key, value in kwargs.items():
        setattr(script, key, value)
    return script


def _dies_on_first_request(script: StubScript, code: int) -> Callable[[], int | None]:
    """A process's exit code: it dies with ``code`` once the stub has received a request."""
    return lambda: code if script.received else None


def _start(
    case: Case,
    samples: list[Sample],
    server: RunningServer,
    loop: LoopThread,
    restart: Callable[[], RunningServer] | None = None,
) -> CaseRun:
    run = CaseRun(
        case,
        samples,
        server,
        OpenAIBackend(),
        restart=restart,
        retry_initial_s=0.001,
        retry_max_s=0.002,
    )
    run.start(loop)
    return run


def _outcomes(run: CaseRun) -> dict[str, Completion | VlmhbError]:
    """Every sample's completion or error, once the dispatcher has ended."""
    _, pending = concurrent.futures.wait(list(run.futures.values()), timeout=WAIT_S)
    assert not pending, "samples still pending: the dispatcher hangs"
    out: dict[str, Completion | VlmhbError] = {}
    for sample_id in run.futures:
        try:
            out[sample_id] = run.wait(sample_id)
        except VlmhbError as exc:
            out[sample_id] = exc
    assert run.done is not None
    run.done.result(timeout=WAIT_S)  # the dispatcher ended before the loop closes
    return out


def _texts(outcomes: dict[str, Completion | VlmhbError]) -> dict[str, str]:
    """Answers by sample id, or the error as ``type: message``."""
    return {
        sid: o.text if isinstance(o, Completion) else f"{type(o).__name__}: {o}"
        for sid, o in outcomes.items()
    }


# -- retries ----------------------------------------------------------------------------------


def test_503_429_and_a_dropped_connection_are_retried_with_backoff(
    tmp_path: Path, loop: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    bounds: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        bounds.append((low, high))
        return low

    monkeypatch.setattr(random, "uniform", uniform)
    script = _script(fail_first=[503, 429, 0])
    with running_stub(script) as url:
        # Concurrency 1: the first sample holds the slot through its retries, so it
        # meets all three failures.
        run = _start(_case(max_retries=3), _samples(tmp_path, 3), _server(url), loop)
        outcomes = _outcomes(run)
    assert _texts(outcomes) == {"s0": "answer 0", "s1": "answer 1", "s2": "answer 2"}
    assert run.retries == {"s0": 3}
    assert len(script.received) == 3 + 3
    assert [b["messages"][0]["content"][1]["text"] for b in script.received] == [
        "q0",
        "q0",
        "q0",
        "q0",
        "q1",
        "q2",
    ]
    # One backoff before each retry: full jitter up to min(retry_max_s, initial * 2**attempt).
    assert bounds == [(0.0, 0.001), (0.0, 0.002), (0.0, 0.002)]
    assert run.finish()["server_restarts"] == 0


@pytest.mark.parametrize(
    ("fail_first", "last_error"),
    [
        ([503, 503, 503], "HTTP 503: scripted 503"),
        ([429, 503, 0], "ServerDisconnectedError"),
    ],
)
def test_retries_run_out_and_only_that_sample_fails(
    tmp_path: Path, loop: LoopThread, fail_first: list[int], last_error: str
) -> None:
    script = _script(fail_first=fail_first)
    with running_stub(script) as url:
        run = _start(_case(max_retries=2), _samples(tmp_path, 3), _server(url), loop)
        outcomes = _outcomes(run)
    error = outcomes["s0"]
    assert isinstance(error, RetryableError)
    assert str(error).startswith(last_error)
    assert str(error).endswith(" (gave up after 2 retries)")
    texts = _texts(outcomes)
    assert (texts["s1"], texts["s2"]) == ("answer 1", "answer 2")
    assert run.retries == {"s0": 2}
    assert len(script.received) == 3 + 2


def test_without_retries_a_503_fails_at_once_with_the_plain_message(
    tmp_path: Path, loop: LoopThread
) -> None:
    script = _script(fail_first=[503])
    with running_stub(script) as url:
        run = _start(_case(max_retries=0), _samples(tmp_path, 2), _server(url), loop)
        outcomes = _outcomes(run)
    assert _texts(outcomes) == {"s0": "RetryableError: HTTP 503: scripted 503", "s1": "answer 1"}
    assert run.retries == {}
    assert len(script.received) == 2


@pytest.mark.parametrize("status", [500, 400, 401])
def test_a_non_retryable_status_is_sent_once(tmp_path: Path, loop: LoopThread, status: int) -> None:
    script = _script(fail_first=[status])
    with running_stub(script) as url:
        run = _start(_case(max_retries=3), _samples(tmp_path, 2), _server(url), loop)
        outcomes = _outcomes(run)
    error = outcomes["s0"]
    assert type(error) is ServerError  # not a RetryableError
    assert str(error) == f"HTTP {status}: scripted {status}"
    assert _texts(outcomes)["s1"] == "answer 1"
    assert run.retries == {}
    assert len(script.received) == 2  # one request per sample


def test_a_request_timeout_is_not_retried(tmp_path: Path, loop: LoopThread) -> None:
    script = _script(first_delay_s=0.2)
    with running_stub(script) as url:
        run = _start(
            _case(concurrency=2, max_retries=3, request_timeout=0.05),
            _samples(tmp_path, 2),
            _server(url),
            loop,
        )
        outcomes = _outcomes(run)
    for error in outcomes.values():
        assert isinstance(error, StreamError)
        assert not isinstance(error, RetryableError)
        # (1: the role chunk, unless a loaded machine took 50 ms to send it)
        assert str(error).startswith("request timed out after 0.05 s (stream chunks received: ")
        assert error.partial.text == "" and error.partial.ttft_s is None
    assert run.retries == {}
    assert len(script.received) == 2


# -- backoff ----------------------------------------------------------------------------------


def _bare_run(initial_s: float | None = None, max_s: float | None = None) -> CaseRun:
    """A run that is never started, with CaseRun's own backoff defaults unless given."""
    run = CaseRun(_case(), [], _server("http://127.0.0.1:9/v1"), OpenAIBackend())
    if initial_s is not None:
        run.retry_initial_s = initial_s
    if max_s is not None:
        run.retry_max_s = max_s
    return run


def test_backoff_bounds_double_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    bounds: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        bounds.append((low, high))
        return high / 4

    monkeypatch.setattr(random, "uniform", uniform)
    defaults = _bare_run()
    assert [defaults.backoff_s(a) for a in range(7)] == [0.125, 0.25, 0.5, 1, 2, 2, 2]
    assert bounds == [(0.0, h) for h in (0.5, 1, 2, 4, 8, 8, 8)]
    bounds.clear()
    custom = _bare_run(0.1, 0.3)
    for attempt in range(4):
        custom.backoff_s(attempt)
    assert bounds == [(0.0, 0.1), (0.0, 0.2), (0.0, 0.3), (0.0, 0.3)]


def test_backoff_is_full_jitter() -> None:
    run = _bare_run()
    state = random.getstate()
    try:
        random.seed(1234)
        for attempt, bound in enumerate((0.5, 1, 2, 4, 8, 8)):
            draws = [run.backoff_s(attempt) for _ in range(200)]
            assert all(0.0 <= d <= bound for d in draws)
            # Full jitter spans the whole range (not "bound/2 + jitter").
            assert min(draws) < 0.1 * bound and max(draws) > 0.9 * bound
    finally:
        random.setstate(state)


# -- server death and restarts ----------------------------------------------------------------


def _log(tmp_path: Path) -> Path:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i:02d}\n" for i in range(50)) + "CUDA out of memory\n")
    return log


def test_a_dead_server_fails_the_remaining_samples_at_once(
    tmp_path: Path, loop: LoopThread
) -> None:
    log = _log(tmp_path)
    script = _script(fail_first=[0])
    with running_stub(script) as url:
        server = _server(url, exit_code=_dies_on_first_request(script, 137), log_path=log)
        start = time.perf_counter()
        run = _start(_case(max_retries=3), _samples(tmp_path, 3), server, loop)
        outcomes = _outcomes(run)
        elapsed = time.perf_counter() - start
    assert len(script.received) == 1  # not retried, and nothing sent to the dead server
    for error in outcomes.values():
        assert type(error) is ServerError
        message = str(error)
        assert message.startswith(f"the server exited with code 137 during case c; log {log}:\n")
        assert message.endswith("line 49\nCUDA out of memory")
        assert "line 11" in message and "line 10" not in message  # the last 40 lines
    assert run.retries == {} and run.restarts == 0
    assert elapsed < 0.45  # no 0.5 s wait: the exit code is there at the first look


def test_a_server_dead_before_the_case_gets_no_request(tmp_path: Path, loop: LoopThread) -> None:
    script = _script()
    with running_stub(script) as url:
        run = _start(
            _case(max_retries=3), _samples(tmp_path, 2), _server(url, exit_code=lambda: 1), loop
        )
        outcomes = _outcomes(run)
    assert _texts(outcomes) == {
        sid: "ServerError: the server exited with code 1 during case c; log None:\n(no log)"
        for sid in ("s0", "s1")
    }
    assert script.received == []


def test_a_restarted_server_takes_over_the_case(tmp_path: Path, loop: LoopThread) -> None:
    first, second = _script(fail_first=[0]), _script()
    calls: list[str] = []
    with running_stub(first) as url1, running_stub(second) as url2:
        fresh = _server(url2, "second", exit_code=lambda: None)

        def restart() -> RunningServer:
            calls.append(threading.current_thread().name)
            return fresh

        dying = _server(url1, exit_code=_dies_on_first_request(first, 137))
        run = _start(_case(max_restarts=1), _samples(tmp_path, 3), dying, loop, restart)
        outcomes = _outcomes(run)
    assert _texts(outcomes) == {"s0": "answer 0", "s1": "answer 1", "s2": "answer 2"}
    assert len(calls) == 1 and calls[0] != "vlmhb-loop"  # in a worker thread, not the loop
    assert run.restarts == 1 and run.server is fresh
    assert len(first.received) == 1
    assert [b["messages"][0]["content"][1]["text"] for b in second.received] == ["q0", "q1", "q2"]
    assert run.retries == {}
    info = run.finish()
    assert info["server_restarts"] == 1
    assert dict(info["server"]) == {"name": "second"}


def test_restarts_run_out_when_the_fresh_server_dies_too(tmp_path: Path, loop: LoopThread) -> None:
    first, second = _script(fail_first=[0]), _script(fail_first=[0])
    calls: list[int] = []
    with running_stub(first) as url1, running_stub(second) as url2:
        fresh = _server(url2, "second", exit_code=_dies_on_first_request(second, 139))

        def restart() -> RunningServer:
            calls.append(1)
            return fresh

        dying = _server(url1, exit_code=_dies_on_first_request(first, 137))
        run = _start(_case(max_restarts=1), _samples(tmp_path, 3), dying, loop, restart)
        outcomes = _outcomes(run)
    assert len(calls) == 1 and run.restarts == 1
    assert (len(first.received), len(second.received)) == (1, 1)
    for error in outcomes.values():
        assert type(error) is ServerError
        assert str(error).startswith("the server exited with code 139 during case c")


def test_a_restart_that_fails_gives_up(tmp_path: Path, loop: LoopThread) -> None:
    script = _script(fail_first=[0])
    calls: list[int] = []

    def restart() -> RunningServer:
        calls.append(1)
        raise ServerError("server m@openai@external failed to start: port in use")

    with running_stub(script) as url:
        dying = _server(url, exit_code=_dies_on_first_request(script, 137))
        run = _start(_case(max_restarts=3), _samples(tmp_path, 3), dying, loop, restart)
        outcomes = _outcomes(run)
    assert calls == [1]  # not tried again by the samples that follow, nor by the same one
    assert len(script.received) == 1
    for error in outcomes.values():
        assert type(error) is ServerError
        assert str(error).startswith("the server exited with code 137 during case c")
        assert "restarting it failed: server m@openai@external failed to start: port in use" in (
            str(error)
        )
    assert run.restarts == 0  # none succeeded (metrics.csv server_restarts)


# -- the death check after an error -----------------------------------------------------------


def test_an_external_endpoint_gets_no_death_check(tmp_path: Path, loop: LoopThread) -> None:
    # No process (exit_code None): neither a 500 nor a retried 503 waits 0.5 s for a death.
    failing, busy = _script(status=500), _script(fail_first=[503, 503, 0])
    with running_stub(failing) as url500, running_stub(busy) as url503:
        start = time.perf_counter()
        run = _start(_case(max_retries=3), _samples(tmp_path, 3), _server(url500), loop)
        outcomes = _outcomes(run)
        failed_in = time.perf_counter() - start
        start = time.perf_counter()
        retried = _start(_case(max_retries=3), _samples(tmp_path, 1), _server(url503), loop)
        answered = _outcomes(retried)
        retried_in = time.perf_counter() - start
    assert _texts(outcomes) == {
        sid: "ServerError: HTTP 500: scripted failure" for sid in ("s0", "s1", "s2")
    }
    assert len(failing.received) == 3
    assert _texts(answered) == {"s0": "answer 0"} and retried.retries == {"s0": 3}
    assert failed_in < 0.25 and retried_in < 0.25


def test_a_server_process_is_given_time_to_die_before_a_retry(
    tmp_path: Path, loop: LoopThread
) -> None:
    # The counterpart: a live process (exit code None for now) is watched 0.5 s after a
    # retryable error before the request is sent again.
    script = _script(fail_first=[503])
    with running_stub(script) as url:
        start = time.perf_counter()
        run = _start(
            _case(max_retries=1), _samples(tmp_path, 1), _server(url, exit_code=lambda: None), loop
        )
        outcomes = _outcomes(run)
        elapsed = time.perf_counter() - start
    assert _texts(outcomes) == {"s0": "answer 0"} and run.retries == {"s0": 1}
    assert elapsed >= 0.45
