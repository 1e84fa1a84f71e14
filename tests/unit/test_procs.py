"""Finding a server's processes and lowering the priority of vLLM's busy-waiting engine core."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from pytest_vlmhb.backends.vllm import (
    ENGINE_CORE_NAME,
    ENGINE_CORE_NICENESS,
    WORKER_NAME,
    VLLMBackend,
)
from pytest_vlmhb.procs import cpus_of, descendants, lower_priority, pin, process_name
from pytest_vlmhb.servermetrics import ServerWatch

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs Linux /proc")

# A parent that starts a child naming itself like vLLM's engine core (prctl
# PR_SET_NAME) with one extra thread; with WORKER=1 the child starts a
# grandchild named like vLLM's worker and bound to CPU 0. Prints the pids.
NAMED = f"""
import ctypes, os, subprocess, sys, threading, time
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)
if sys.argv[1] == "{WORKER_NAME}":
    os.sched_setaffinity(0, {{0}})
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
worker = None
if sys.argv[2] == "1":
    worker = subprocess.Popen([sys.executable, "-c", sys.argv[3], "{WORKER_NAME}", "0", ""],
                              stdout=subprocess.PIPE, text=True)
    worker.stdout.readline()
print(worker.pid if worker else 0, flush=True)
time.sleep(60)
"""
TREE = """
import subprocess, sys
core = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], sys.argv[3],
                         sys.argv[1]], stdout=subprocess.PIPE, text=True)
worker = core.stdout.readline().strip()
print(core.pid, worker, flush=True)
core.wait()
"""


def _tree(with_worker: bool) -> Iterator[tuple[int, int, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", TREE, NAMED, ENGINE_CORE_NAME, "1" if with_worker else "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        core, worker = (int(x) for x in proc.stdout.readline().split())
        time.sleep(0.2)  # the extra threads are running
        yield proc.pid, core, worker
    finally:
        for pid in descendants(proc.pid):
            os.kill(pid, 9)
        proc.kill()
        proc.wait()


@pytest.fixture
def server_tree() -> Iterator[tuple[int, int, int]]:
    yield from _tree(with_worker=False)


@pytest.fixture
def server_tree_with_worker() -> Iterator[tuple[int, int, int]]:
    yield from _tree(with_worker=True)


def _niceness(pid: int) -> list[int]:
    return [os.getpriority(os.PRIO_PROCESS, int(tid)) for tid in os.listdir(f"/proc/{pid}/task")]


def test_descendants_and_names(server_tree_with_worker: tuple[int, int, int]) -> None:
    parent, core, worker = server_tree_with_worker
    assert descendants(parent) == [core, worker]  # children first
    assert process_name(core) == ENGINE_CORE_NAME
    assert process_name(worker) == WORKER_NAME
    assert descendants(worker) == []
    assert process_name(2**22 + 7) == ""  # no such process


def test_lower_priority_and_pin_set_every_thread(server_tree: tuple[int, int, int]) -> None:
    _, core, _ = server_tree
    assert lower_priority(core, 7) == len(_niceness(core)) >= 2
    assert set(_niceness(core)) == {7}
    assert lower_priority(2**22 + 7, 7) == 0
    assert pin(core, {0}) == len(_niceness(core))
    assert all(os.sched_getaffinity(int(t)) == {0} for t in os.listdir(f"/proc/{core}/task"))
    assert cpus_of(core) == {0}
    assert cpus_of(2**22 + 7) == set() and pin(2**22 + 7, {0}) == 0


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_vllm_moves_its_engine_core_onto_the_workers_cpus(
    server_tree_with_worker: tuple[int, int, int],
) -> None:
    parent, core, _ = server_tree_with_worker
    everything = os.sched_getaffinity(0)
    assert VLLMBackend().after_ready(parent, gpu=True) == []  # GPU build: left alone
    assert cpus_of(core) == everything
    lines = VLLMBackend().after_ready(parent, gpu=False)
    assert len(lines) == 1 and f"process {core} onto its worker's CPUs [0]" in lines[0]
    assert cpus_of(core) == {0} and cpus_of(parent) == everything
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert set(_niceness(core)) == {base}  # its priority is left as it was


def test_vllm_lowers_its_engine_core_without_a_bound_worker(
    server_tree: tuple[int, int, int],
) -> None:
    parent, core, _ = server_tree
    base = os.getpriority(os.PRIO_PROCESS, 0)  # what the test's processes inherit
    lines = VLLMBackend().after_ready(parent, gpu=False)
    assert len(lines) == 1 and f"process {core} to nice" in lines[0]
    assert set(_niceness(core)) == {ENGINE_CORE_NICENESS}
    assert set(_niceness(parent)) == {base}
    assert VLLMBackend().after_ready(0, gpu=False) == []  # pid unknown (remote daemon)


def test_mean_batch_is_generation_tokens_per_engine_step() -> None:
    watch = ServerWatch(VLLMBackend.server_metrics)
    watch.before = {
        "vllm:generation_tokens_total": 100.0,
        "vllm:iteration_tokens_total_count": 40.0,
    }
    watch.after = {
        "vllm:generation_tokens_total": 100.0 + 8 * 1000,
        "vllm:iteration_tokens_total_count": 40.0 + 1000 + 8,
    }
    summary = watch.summary()
    assert summary["server_generation_tokens"] == 8000
    assert summary["server_mean_batch"] == pytest.approx(8000 / 1008)
    assert "server_max_running" not in summary  # the gauge was never read
    watch.observe('vllm:num_requests_running{engine="0"} 7.0\n')
    assert watch.summary()["server_max_running"] == 7.0
