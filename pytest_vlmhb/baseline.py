"""An earlier run's metrics.csv as a baseline (``--vlmhb-baseline``): reading it,
and report.md's comparison table.

A case whose id has a baseline row gets one extra gate per score (it may not
drop by more than ``--vlmhb-max-score-drop``, absolute; for error rates such
as CER, rise) and per latency percentile (it may not grow by more than
``--vlmhb-max-latency-increase``, relative): :func:`gates.baseline_gates`.
Cases without a row are "new": reported as such, never compared.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .columns import CASE_TEXT_COLUMNS, LATENCY_COLUMNS, CaseRow, Cell, case_cells
from .csvfiles import read_config_text
from .csvsafe import unescape_cell
from .errors import ConfigError
from .numbers import finite_float

__all__ = ["LATENCY_COLUMNS", "comparison_rows", "read_baseline"]


def read_baseline(path: Path) -> dict[str, dict[str, float]]:
    """case_id -> {column: value} for the numeric cells of a metrics.csv.

    A file that cannot stand for a baseline (empty, no ``case_id`` column, no
    rows, a garbled or non-finite number) is a ConfigError naming file, line
    and column: a baseline that silently compares nothing would disable its gates.
    """
    text = read_config_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [unescape_cell(name.strip()) for name in next(reader)]
    except StopIteration:
        raise ConfigError(
            "empty file: expected a metrics.csv of an earlier run", file=path, line=1
        ) from None
    except csv.Error as exc:
        raise ConfigError(f"malformed CSV: {exc}", file=path, line=1) from None
    if "case_id" not in header:
        raise ConfigError(
            "not a metrics.csv (no case_id column)", file=path, line=1, column="case_id"
        )
    out: dict[str, dict[str, float]] = {}
    try:
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                raise ConfigError(
                    f"{len(fields)} fields but the header has {len(header)}", file=path, line=line
                )
            row = {
                name: unescape_cell(cell.strip()) for name, cell in zip(header, fields, strict=True)
            }
            case_id = row["case_id"]
            if not case_id:
                raise ConfigError("empty case_id", file=path, line=line, column="case_id")
            if case_id in out:
                raise ConfigError(
                    f"duplicate case_id {case_id!r}", file=path, line=line, column="case_id"
                )
            out[case_id] = _numbers(row, path, line)
    except csv.Error as exc:
        raise ConfigError(f"malformed CSV: {exc}", file=path, line=reader.line_num) from None
    if not out:
        raise ConfigError("no case rows: a baseline needs at least one case", file=path, line=2)
    return out


def _numbers(row: Mapping[str, str], path: Path, line: int) -> dict[str, float]:
    """The numeric cells of one row; text where a number belongs is an error."""
    values: dict[str, float] = {}
    for column, cell in row.items():
        if column in CASE_TEXT_COLUMNS or not cell:
            continue
        try:
            values[column] = finite_float(cell)
        except ValueError as exc:
            raise ConfigError(str(exc), file=path, line=line, column=column) from None
    return values


def comparison_rows(
    rows: Sequence[CaseRow], baseline: Mapping[str, Mapping[str, float]], columns: Iterable[str]
) -> list[dict[str, Cell]]:
    """One row per case and figure: baseline, now, delta; 'new' without a baseline row."""
    out: list[dict[str, Cell]] = []
    wanted = list(columns)
    for row in rows:
        base = baseline.get(row["case_id"])
        if base is None:
            out.append({"case_id": row["case_id"], "figure": "(all)", "status": "new"})
            continue
        cells = case_cells(row)
        for column in wanted:
            now = cells.get(column)
            if column not in base or not isinstance(now, (int, float)):
                continue
            out.append(
                {
                    "case_id": row["case_id"],
                    "figure": column,
                    "baseline": base[column],
                    "now": now,
                    "delta": now - base[column],
                    "status": "compared",
                }
            )
    return out
