"""The per-sample results store: append-only JSONL, one file per process.

Every scored sample is appended (and flushed) the moment its item finishes,
so a crashed or interrupted run keeps all it scored. A run without
``--vlmhb-resume`` moves the previous store aside under a timestamped name;
with it, stored answers whose key still matches are reused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any, TextIO

from .config import Case
from .records import Record
from .redact import redact
from .tasks.manifest import Sample

STORE_DIR = "results"


def record_key(case: Case, sample: Sample) -> str:
    """What must match for a stored answer to stand for a new request."""
    identity = {
        "model_source": case.model.source, "served_name": case.model.served_name,
        "server_args": list(case.model.server_args),
        "requirements": list(case.model.requirements), "backend": case.backend,
        "task": case.task.name, "task_type": case.task.type, "sample_id": sample.id,
        "image": str(sample.image), "prompt": sample.prompt, "max_tokens": case.max_tokens,
        "temperature": case.temperature, "request_params": case.request_params,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def set_aside(output: Path) -> Path | None:
    """Move a previous run's store to ``results-<UTC time>``; returns its new path."""
    current = output / STORE_DIR
    if not current.is_dir() or not any(current.iterdir()):
        return None
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    target = output / f"{STORE_DIR}-{stamp}"
    current.rename(target)
    return target


def case_info_entry(case_id: str, info: dict[str, Any]) -> dict[str, Any]:
    """A store line holding a finished case's server figures (no ``key``)."""
    return {"case_info": info, "case_id": case_id}


def load_case_info(output: Path) -> dict[str, dict[str, Any]]:
    """Stored case figures by case id (the last one wins)."""
    out: dict[str, dict[str, Any]] = {}
    for entry in _entries(output):
        if isinstance(entry.get("case_info"), dict) and entry.get("case_id"):
            out[entry["case_id"]] = entry["case_info"]
    return out


def _entries(output: Path) -> list[dict[str, Any]]:
    """Every whole JSON object line of the store; a torn last line is skipped."""
    entries = []
    for path in sorted((output / STORE_DIR).glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a killed process
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


def load_records(output: Path) -> dict[str, Record]:
    """Stored records by key (the last one wins); a torn last line is skipped."""
    return {entry["key"]: entry for entry in _entries(output) if entry.get("key")}


class ResultStore:
    """Appends this process's records to ``results/samples-<worker>.jsonl``."""

    def __init__(self, output: Path, worker_id: str) -> None:
        self.path = output / STORE_DIR / f"samples-{worker_id}.jsonl"
        self._file: TextIO | None = None

    def append(self, entry: dict[str, Any]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(redact(json.dumps(entry, ensure_ascii=False)) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
