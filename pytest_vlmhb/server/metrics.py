"""Server counters rendered in the Prometheus text format (no client library)."""

from __future__ import annotations

import resource
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


def process_peak_rss_bytes() -> int:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@dataclass
class Metrics:
    """Thread-safe counters and gauges of one server."""

    peak_memory: Callable[[], int] = process_peak_rss_bytes
    requests_total: int = 0
    prompt_tokens_total: int = 0
    generation_tokens_total: int = 0
    requests_running: int = 0
    requests_waiting: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: int) -> None:
        """Add to counters/gauges by name, e.g. ``add(requests_running=1)``."""
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def render(self) -> str:
        """Prometheus exposition text."""
        with self._lock:
            rows = [
                (
                    "requests_total",
                    "counter",
                    "Chat completion requests received.",
                    self.requests_total,
                ),
                (
                    "prompt_tokens_total",
                    "counter",
                    "Prompt tokens processed.",
                    self.prompt_tokens_total,
                ),
                (
                    "generation_tokens_total",
                    "counter",
                    "Tokens generated.",
                    self.generation_tokens_total,
                ),
                ("requests_running", "gauge", "Requests generating now.", self.requests_running),
                (
                    "requests_waiting",
                    "gauge",
                    "Requests waiting for the model.",
                    self.requests_waiting,
                ),
            ]
        rows.append(
            (
                "peak_memory_bytes",
                "gauge",
                "Peak accelerator memory allocated (GPU) or peak process RSS (CPU).",
                self.peak_memory(),
            )
        )
        lines = []
        for name, kind, help_text, value in rows:
            lines += [
                f"# HELP vlmhb_{name} {help_text}",
                f"# TYPE vlmhb_{name} {kind}",
                f"vlmhb_{name} {value}",
            ]
        return "\n".join(lines) + "\n"
