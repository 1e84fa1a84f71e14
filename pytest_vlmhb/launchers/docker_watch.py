"""Background watchers of one container: its log into a file, its exit code,
and its peak memory (docker stats; NVML GPU memory when present).

Each runs in a daemon thread on the daemon's streaming APIs, so nothing here
costs a Docker API call on the dispatcher's event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

CONTAINER_PEAK = "container_peak_memory_bytes"
GPU_PEAK = "gpu_peak_memory_bytes"


class LogFollower:
    """Appends the container's output to ``path``; records its exit code at the end."""

    def __init__(self, container: Any, path: Path) -> None:
        self._container = container
        self.path = path
        self.code: int | None = None
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vlmhb-container-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self.path.open("ab") as sink:
                for chunk in self._container.logs(stream=True, follow=True):
                    sink.write(chunk)
                    sink.flush()
            self.code = int(self._container.wait(timeout=30)["StatusCode"])
        except Exception:  # removed under us (teardown) or the daemon went away
            pass
        finally:
            self.finished.set()

    def exit_code(self) -> int | None:
        """The container's exit code once it has exited (None while running)."""
        return self.code

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def memory_in_use(stats: Mapping[str, Any]) -> float | None:
    """Memory in use as ``docker stats`` shows it: usage minus inactive page cache."""
    memory = stats.get("memory_stats") or {}
    usage = memory.get("usage")
    if usage is None:
        return None
    detail = memory.get("stats") or {}
    cache = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    return float(usage - cache) if cache < usage else float(usage)


class PeakTracker:
    """Peak of a sampled value since the previous ``take`` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._peak: float | None = None
        self._last: float | None = None

    def observe(self, value: float) -> None:
        with self._lock:
            self._last = value
            self._peak = value if self._peak is None else max(self._peak, value)

    def take(self) -> float | None:
        """The peak since the previous call; the next window starts at the last sample."""
        with self._lock:
            peak, self._peak = self._peak, self._last
            return peak


class StatsSampler:
    """Follows ``docker stats`` (about one sample a second) into a PeakTracker."""

    def __init__(self, container: Any) -> None:
        self.tracker = PeakTracker()
        self._container = container
        threading.Thread(target=self._run, name="vlmhb-container-stats", daemon=True).start()

    def _run(self) -> None:
        try:
            for stats in self._container.stats(stream=True, decode=True):
                value = memory_in_use(stats)
                if value:
                    self.tracker.observe(value)
        except Exception:  # the container is gone
            pass


def _nvml_used(pids: Callable[[], Iterable[int]]) -> float:
    """GPU memory used by the container's processes, summed over devices (NVML)."""
    import pynvml  # nvidia-ml-py; optional

    wanted = set(pids())
    total = 0.0
    for index in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid in wanted and proc.usedGpuMemory:
                total += float(proc.usedGpuMemory)
    return total


class GpuSampler:
    """Polls NVML for the container's GPU memory; inert when NVML is missing."""

    def __init__(self, pids: Callable[[], Iterable[int]], interval_s: float = 0.5) -> None:
        self.tracker = PeakTracker()
        self._pids = pids
        self._interval = interval_s
        self._stop = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception:  # no NVML library or no driver: no GPU figures
            self.available = False
            return
        self.available = True
        threading.Thread(target=self._run, name="vlmhb-gpu-memory", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.tracker.observe(_nvml_used(self._pids))
            except Exception:  # NVML or docker top failed this time: skip the sample
                continue

    def stop(self) -> None:
        self._stop.set()


def container_pids(container: Any) -> Callable[[], list[int]]:
    """Host pids of the container's processes (``docker top``), refreshed every 5 s."""
    memo: dict[str, Any] = {"at": 0.0, "pids": []}

    def pids() -> list[int]:
        if time.monotonic() - memo["at"] > 5:
            top = container.top(ps_args="-o pid")
            memo["pids"] = [int(row[0]) for row in top.get("Processes") or []]
            memo["at"] = time.monotonic()
        return list(memo["pids"])

    return pids


def peaks_reader(memory: PeakTracker, gpu: PeakTracker | None) -> Callable[[], dict[str, float]]:
    """``RunningServer.take_peaks``: peaks since the previous call, in bytes."""

    def take() -> dict[str, float]:
        out: dict[str, float] = {}
        value = memory.take()
        if value is not None:
            out[CONTAINER_PEAK] = value
        if gpu is not None:
            used = gpu.take()
            if used is not None:
                out[GPU_PEAK] = used
        return out

    return take
