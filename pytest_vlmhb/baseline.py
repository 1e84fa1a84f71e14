"""Regression gates against an earlier run's metrics.csv (``--vlmhb-baseline``).

A case whose id has a baseline row gets one extra gate per score (it may not
drop by more than ``--vlmhb-max-score-drop``, absolute; for error rates such
as CER, rise) and per latency percentile (it may not grow by more than
``--vlmhb-max-latency-increase``, relative). Cases without a row are "new":
reported as such, never compared.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import registry
from .columns import CASE_PERF_COLUMNS
from .config import Case, Threshold
from .errors import ConfigError

LATENCY_COLUMNS = tuple(c for c in CASE_PERF_COLUMNS if c.endswith("_ms"))


def read_baseline(path: Path) -> dict[str, dict[str, float]]:
    """case_id -> {column: value} for the numeric cells of a metrics.csv."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise ConfigError("baseline metrics.csv not found", file=path) from None
    if rows and "case_id" not in rows[0]:
        raise ConfigError("not a metrics.csv (no case_id column)", file=path, line=1)
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        values = {}
        for column, cell in row.items():
            try:
                values[column] = float(cell)
            except (TypeError, ValueError):
                continue
        out[row["case_id"]] = values
    return out


def parse_fraction(text: str) -> float:
    """``10%`` or ``0.1`` -> 0.1."""
    text = text.strip()
    value = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def baseline_gates(case: Case, row: Mapping[str, float] | None, max_score_drop: float | None,
                   max_latency_increase: float | None) -> tuple[Threshold, ...]:
    """The regression gates of one case (none for a case without a baseline row)."""
    if row is None:
        return ()
    gates = []
    if max_score_drop is not None:
        for name in case.task.metrics:
            if name not in row:
                continue
            higher = registry.load(registry.METRICS, name).higher_is_better
            gates.append(Threshold(
                column=name, bound="min" if higher else "max", origin="baseline",
                value=row[name] - max_score_drop if higher else row[name] + max_score_drop))
    if max_latency_increase is not None:
        for column in LATENCY_COLUMNS:
            if column in row:
                gates.append(Threshold(column=column, bound="max", origin="baseline",
                                       value=row[column] * (1.0 + max_latency_increase)))
    return tuple(gates)


def comparison_rows(rows: Sequence[Mapping[str, Any]], baseline: Mapping[str, Mapping[str, float]],
                    columns: Iterable[str]) -> list[dict[str, Any]]:
    """One row per case and figure: baseline, now, delta; 'new' without a baseline row."""
    out: list[dict[str, Any]] = []
    wanted = list(columns)
    for row in rows:
        base = baseline.get(row["case_id"])
        if base is None:
            out.append({"case_id": row["case_id"], "figure": "(all)", "status": "new"})
            continue
        for column in wanted:
            now = row.get(column)
            if column not in base or not isinstance(now, (int, float)):
                continue
            out.append({"case_id": row["case_id"], "figure": column, "baseline": base[column],
                        "now": now, "delta": now - base[column], "status": "compared"})
    return out
