"""Published reference scores next to the measured ones, per preset case.

``data/reference_scores.csv`` (packaged) lists published figures as
``model,benchmark,split,score,unit,scored_by,source``: ``unit`` is
``percent`` (0-100) or ``per_1000`` (OCRBench's total), ``scored_by`` is
``local`` (the answers are public, so this harness scores the same split) or
``server`` (a test split whose answers are withheld and scored by the
benchmark's evaluation server). A figure is compared only when the model, the
benchmark and the split match and it was scored locally; the measured value
is shown in the reference's unit.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import PurePosixPath

from .cases import Plan
from .columns import Cell
from .config import Case
from .tasks.hub import is_dataset_source, parse_source
from .tasks.presets import Preset, load_preset

UNITS = {"percent": 100.0, "per_1000": 1000.0}
COLUMNS = (
    "case_id",
    "model",
    "benchmark",
    "split",
    "n",
    "measured",
    "reference",
    "unit",
    "delta",
    "status",
    "source",
)


@dataclass(frozen=True)
class ReferenceScore:
    """One published figure."""

    model: str
    benchmark: str
    split: str
    score: float
    unit: str
    scored_by: str
    source: str


def parse_reference_scores(text: str) -> list[ReferenceScore]:
    """The rows of a reference-score CSV (ValueError on an unknown unit)."""
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        if row["unit"] not in UNITS:
            raise ValueError(f"unknown unit {row['unit']!r} (allowed: {', '.join(UNITS)})")
        out.append(
            ReferenceScore(
                row["model"],
                row["benchmark"],
                row["split"],
                float(row["score"]),
                row["unit"],
                row["scored_by"],
                row["source"],
            )
        )
    return out


@cache
def reference_scores() -> tuple[ReferenceScore, ...]:
    """The packaged published scores."""
    text = files("pytest_vlmhb").joinpath("data/reference_scores.csv").read_text("utf-8")
    return tuple(parse_reference_scores(text))


def _names(text: str) -> set[str]:
    text = text.strip().rstrip("/").lower()
    return {text, PurePosixPath(text).name} if text else set()


def same_model(case: Case, reference_model: str) -> bool:
    """The case's model (name, served name, source or its last path part) is the reference's."""
    model = case.model
    mine = _names(model.name) | _names(model.served_name) | _names(model.source)
    return bool(mine & _names(reference_model))


def measured_split(case: Case, preset: Preset) -> str:
    """The split the case ran on: the data source's own, else the preset's."""
    data = case.task.data
    if is_dataset_source(data):
        split = parse_source(data, case.task.base_dir).split
        if split:
            return split
    return preset.split


def _number(value: Cell) -> float | None:
    return None if value is None or isinstance(value, str) else value


def _row(
    case: Case, preset: Preset, split: str, summary: Mapping[str, Cell], ref: ReferenceScore | None
) -> dict[str, Cell]:
    metric = next((m for m in preset.metrics if m in case.task.metrics), case.task.metrics[0])
    fraction = _number(summary.get(metric))
    unit = ref.unit if ref is not None else "percent"
    measured = None if fraction is None else round(fraction * UNITS[unit], 2)
    n = _number(summary.get("n")) or 0
    row: dict[str, Cell] = {
        "case_id": case.id,
        "model": case.model.name,
        "benchmark": preset.benchmark,
        "split": split,
        "n": f"{summary.get('n', 0)}/{preset.size}",
        "measured": measured,
        "unit": unit,
    }
    if ref is None:
        return {**row, "status": "no published score for this model"}
    row.update(reference=ref.score, source=ref.source)
    if ref.scored_by != "local":
        row["status"] = (
            f"not compared: published on {ref.split}, scored by the "
            f"benchmark's {ref.scored_by}; this run measured {split}"
        )
    elif ref.split != split:
        row["status"] = f"not compared: published on {ref.split}, this run measured {split}"
    elif measured is not None:
        row["delta"] = round(measured - ref.score, 2)
        complete = n >= preset.size and not summary.get("errors")
        row["status"] = "compared" if complete else "compared on a subset (limit or errors)"
    return row


def reference_rows(plan: Plan, rows: Sequence[Mapping[str, Cell]]) -> list[dict[str, Cell]]:
    """One row per (preset case, matching published figure); cases without one too.
    ``rows`` are metrics.csv rows (:func:`columns.case_cells`)."""
    summaries = {r["case_id"]: r for r in rows}
    out: list[dict[str, Cell]] = []
    for case in plan.cases:
        if case.task.preset is None or case.id not in summaries:
            continue
        preset = load_preset(case.task.preset)
        split = measured_split(case, preset)
        refs: list[ReferenceScore | None] = [
            r
            for r in reference_scores()
            if r.benchmark == preset.benchmark and same_model(case, r.model)
        ]
        for ref in refs or [None]:
            out.append(_row(case, preset, split, summaries[case.id], ref))
    return out


Table = Callable[[Sequence[str], Iterable[Mapping[str, object]]], list[str]]


def reference_section(plan: Plan, rows: Sequence[Mapping[str, Cell]], table: Table) -> list[str]:
    """report.md lines: measured vs published scores of the preset cases ([] if none)."""
    found = reference_rows(plan, rows)
    if not found:
        return []
    return [
        "## Public benchmarks",
        "",
        "Measured scores of the preset tasks next to published ones (same model, "
        "benchmark and split; the measured value in the reference's unit). Figures "
        "from a test split scored by a remote server are listed, never compared.",
        "",
        *table(COLUMNS, found),
        "",
    ]
