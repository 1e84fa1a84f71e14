"""Finding a server's processes and lowering the priority of vLLM's busy-waiting engine core."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from pytest_vlmhb.backends.vllm import ENGINE_CORE_NAME, ENGINE_CORE_NICENESS, VLLMBackend
from pytest_vlmhb.procs import descendants, lower_priority, process_name
from pytest_vlmhb.runner import ServerWatch

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs Linux /proc")

# A parent that starts a child naming itself like vLLM's engine core (prctl
# PR_SET_NAME), with one extra thread, then prints the child's pid.
TREE = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", '''
import ctypes, threading, time
ctypes.CDLL(None).prctl(15, b"{ENGINE_CORE_NAME}", 0, 0, 0)
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
print("ready", flush=True)
time.sleep(60)
'''], stdout=subprocess.PIPE, text=True)
child.stdout.readline()
print(child.pid, flush=True)
child.wait()
"""


@pytest.fixture
def server_tree() -> Iterator[tuple[int, int]]:
    proc = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        yield proc.pid, child
    finally:
        for pid in descendants(proc.pid):
            os.kill(pid, 9)
        proc.kill()
        proc.wait()


def _niceness(pid: int) -> list[int]:
    return [os.getpriority(os.PRIO_PROCESS, int(tid))
            for tid in os.listdir(f"/proc/{pid}/task")]


def test_descendants_and_names(server_tree: tuple[int, int]) -> None:
    parent, child = server_tree
    assert descendants(parent) == [child]
    assert process_name(child) == ENGINE_CORE_NAME
    assert descendants(child) == []
    assert process_name(2**22 + 7) == ""  # no such process


def test_lower_priority_sets_every_thread(server_tree: tuple[int, int]) -> None:
    _, child = server_tree
    time.sleep(0.2)  # the child's extra thread is running
    assert lower_priority(child, 7) == len(_niceness(child)) >= 2
    assert set(_niceness(child)) == {7}
    assert lower_priority(2**22 + 7, 7) == 0


def test_vllm_lowers_only_its_cpu_engine_core(server_tree: tuple[int, int]) -> None:
    parent, child = server_tree
    assert VLLMBackend().after_ready(parent, gpu=True) == []  # GPU build: left alone
    base = os.getpriority(os.PRIO_PROCESS, 0)  # what the test's processes inherit
    assert set(_niceness(child)) == {base}
    lines = VLLMBackend().after_ready(parent, gpu=False)
    assert len(lines) == 1 and str(child) in lines[0]
    assert set(_niceness(child)) == {ENGINE_CORE_NICENESS}
    assert set(_niceness(parent)) == {base}


def test_mean_batch_is_generation_tokens_per_engine_step() -> None:
    watch = ServerWatch(VLLMBackend.server_metrics)
    watch.before = {"vllm:generation_tokens_total": 100.0,
                    "vllm:iteration_tokens_total_count": 40.0}
    watch.after = {"vllm:generation_tokens_total": 100.0 + 8 * 1000,
                   "vllm:iteration_tokens_total_count": 40.0 + 1000 + 8}
    summary = watch.summary()
    assert summary["server_generation_tokens"] == 8000
    assert summary["server_mean_batch"] == pytest.approx(8000 / 1008)
    assert "server_max_running" not in summary  # the gauge was never read
    watch.observe("vllm:num_requests_running{engine=\"0\"} 7.0\n")
    assert watch.summary()["server_max_running"] == 7.0
