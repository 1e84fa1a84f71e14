"""Each case's TTFT and E2E distributions in pytest-benchmark's saved-run format.

pytest-benchmark disables its own fixture under xdist, so the controller
writes the file itself (also under ``-n N``); ``pytest-benchmark compare``,
its history and its plots then read the harness's runs like any other.
Values are seconds, as pytest-benchmark stores them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_benchmark.stats import Stats

from .config import Case
from .outputdir import atomic_write_text
from .records import Record
from .redact import redact

#: The figures written, and where a record holds each (milliseconds).
FIGURES: tuple[tuple[str, Callable[[Record], float | None]], ...] = (
    ("ttft", lambda r: r["ttft_ms"]),
    ("e2e", lambda r: r["e2e_ms"]),
)


def _machine_info() -> dict[str, Any]:
    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info

    info: dict[str, Any] = pytest_benchmark_generate_machine_info()
    return info


def benchmark_entries(case: Case, records: Sequence[Record]) -> list[dict[str, Any]]:
    """Two pytest-benchmark entries (TTFT, E2E) for one case."""
    entries = []
    for figure, read in FIGURES:
        data = [ms / 1000.0 for r in records if not r["error"] and (ms := read(r)) is not None]
        if not data:
            continue
        stats = Stats()
        for value in data:
            stats.update(value)
        entries.append(
            {
                "group": case.id,
                "name": f"{figure}[{case.id}]",
                "fullname": f"vlmhb::{figure}[{case.id}]",
                "params": None,
                "param": None,
                "extra_info": {
                    "model": case.model.name,
                    "task": case.task.name,
                    "backend": case.backend,
                    "launcher": case.launcher,
                    "concurrency": case.concurrency,
                    "unit": "seconds",
                },
                "options": {
                    "disable_gc": False,
                    "timer": "perf_counter",
                    "min_rounds": 1,
                    "max_time": 0,
                    "min_time": 0,
                    "warmup": False,
                },
                "stats": {**stats.as_dict(), "iterations": 1, "data": data},
            }
        )
    return entries


def benchmark_json_text(cases: Sequence[tuple[Case, Sequence[Record]]]) -> str:
    """The saved-run document of all cases, secrets masked."""
    from importlib.metadata import version

    doc = {
        "machine_info": _machine_info(),
        "commit_info": {},
        "benchmarks": [e for case, records in cases for e in benchmark_entries(case, records)],
        "datetime": dt.datetime.now(dt.UTC).isoformat(),
        "version": version("pytest-benchmark"),
    }
    return redact(json.dumps(doc, indent=2))


def write_benchmark_json(path: Path, cases: Sequence[tuple[Case, Sequence[Record]]]) -> None:
    """:func:`benchmark_json_text` written atomically (the previous file stays on failure)."""
    atomic_write_text(path, benchmark_json_text(cases))
