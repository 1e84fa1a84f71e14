"""The runner's error path: a failed server is checked for death only when it has a
process, and never while the request holds a concurrency slot."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from pytest_vlmhb import runner
from pytest_vlmhb.backends.openai import OpenAIBackend
from pytest_vlmhb.client import Completion
from pytest_vlmhb.errors import ServerError
from pytest_vlmhb.launchers.base import RunningServer
from pytest_vlmhb.runner import CaseRun, LoopThread
from pytest_vlmhb.tasks.manifest import Sample
from tests.helpers import make_case


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


async def _http_500(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    timeout: float,
) -> Completion:
    raise ServerError("HTTP 500: internal error")


def _failing_run(
    tmp_path: Path,
    loop: LoopThread,
    monkeypatch: pytest.MonkeyPatch,
    n: int,
    concurrency: int,
    exit_code: Callable[[], int | None] | None,
) -> float:
    """Seconds until all ``n`` samples of a case failed with HTTP 500."""
    monkeypatch.setattr(runner, "stream_chat", _http_500)
    Image.new("L", (8, 8), 255).save(tmp_path / "p.png")
    samples = [
        Sample(
            id=f"s{i}",
            image=tmp_path / "p.png",
            prompt="p",
            reference={"text": "x"},
            manifest=tmp_path / "m.jsonl",
        )
        for i in range(n)
    ]
    server = RunningServer(
        base_url="http://127.0.0.1:9/v1",
        root_url="http://127.0.0.1:9",
        served_name="m",
        exit_code=exit_code,
    )
    case = make_case(("cer",)).model_copy(update={"concurrency": concurrency})
    run = CaseRun(case, samples, server, OpenAIBackend())
    start = time.perf_counter()
    run.start(loop)
    for sample in samples:
        with pytest.raises(ServerError, match="HTTP 500"):
            run.wait(sample.id)
    elapsed = time.perf_counter() - start
    assert run.finish()["server_restarts"] == 0  # the dispatcher ended before the loop closes
    return elapsed


def test_an_external_endpoints_error_returns_without_a_death_check(
    tmp_path: Path, loop: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An external endpoint has no process (exit_code None): nothing to wait 0.5 s for.
    assert _failing_run(tmp_path, loop, monkeypatch, 4, 1, None) < 0.25


def test_the_death_check_does_not_hold_a_concurrency_slot(
    tmp_path: Path, loop: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A live process is given 0.5 s to die after each error; at concurrency 1 the two
    # checks overlap (about 0.5 s), where holding the slot would take them in turn (1 s).
    elapsed = _failing_run(tmp_path, loop, monkeypatch, 2, 1, lambda: None)
    assert 0.45 < elapsed < 0.9
