"""An earlier run's metrics.csv as a baseline (``--vlmhb-baseline``): reading it,
and report.md's "Baseline comparison" section.

A case whose id has a baseline row gets one extra gate per score (it may not
drop by more than ``--vlmhb-max-score-drop``, absolute; for error rates such
as CER, rise) and per latency percentile (it may not grow by more than
``--vlmhb-max-latency-increase``, relative): :func:`gates.baseline_gates`.
Cases without a row are "new": reported as such, never compared. An output dir
or answers.csv as the baseline adds its samples (:mod:`pairing`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .columns import CASE_TEXT_COLUMNS, LATENCY_COLUMNS, CaseRow, Cell, case_cells
from .csvfiles import read_config_text
from .csvsafe import unescape_cell
from .errors import ConfigError
from .numbers import finite_float

if TYPE_CHECKING:
    from .cases import Plan
    from .gates import GateResult

__all__ = ["LATENCY_COLUMNS", "baseline_section", "comparison_rows", "read_baseline"]


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
    rows: Sequence[CaseRow],
    baseline: Mapping[str, Mapping[str, float]],
    columns: Iterable[str],
    statuses: Mapping[str, str] | None = None,
) -> list[dict[str, Cell]]:
    """One row per case and figure: baseline, now, delta; 'new' without a baseline
    row. The status is the case's in ``statuses`` (e.g. paired), else 'compared'."""
    out: list[dict[str, Cell]] = []
    wanted = list(columns)
    for row in rows:
        base = baseline.get(row["case_id"])
        if base is None:
            out.append({"case_id": row["case_id"], "figure": "(all)", "status": "new"})
            continue
        status = (statuses or {}).get(row["case_id"], "compared")
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
                    "status": status,
                }
            )
    return out


Table = Callable[[Sequence[str], Iterable[Mapping[str, object]]], list[str]]

#: The most baseline case ids report.md lists by name.
_MAX_SHOWN = 20
#: report.md's name of a pairing status in the comparison table, where not its own.
_STATUS = {"unpaired": "compared"}


def baseline_section(
    plan: Plan, rows: Sequence[CaseRow], gates: Sequence[GateResult], table: Table
) -> list[str]:
    """report.md's "Baseline comparison" lines: where the baseline came from and how
    the cases pair with it, the deltas, and the paired tests ([] without a baseline)."""
    if plan.baseline is None:
        return []
    figures = [
        *dict.fromkeys(m for c in plan.cases for m in c.task.metrics),
        *LATENCY_COLUMNS,
        "requests_per_s",
    ]
    pairing = plan.pairing
    statuses = {
        k: _STATUS.get(p.status, p.status) for k, p in (pairing.cases if pairing else {}).items()
    }
    lines = ["## Baseline comparison", "", *_pairing_lines(plan), ""]
    lines += table(
        ["case_id", "figure", "baseline", "now", "delta", "status"],
        comparison_rows(rows, plan.baseline, figures, statuses),
    )
    lines.append("")
    unmatched = [
        (k, p) for k, p in (pairing.cases if pairing else {}).items() if p.status == "unmatched"
    ]
    if unmatched:
        lines += [
            f"- {case_id}: unmatched: {p.detail}; its gates are unpaired"
            for case_id, p in unmatched
        ]
        lines.append("")
    if pairing is not None:
        known = {*pairing.baseline.rows, *(pairing.baseline.samples or {})}
        missing = sorted(known - {c.id for c in plan.cases})
        if missing:
            shown = ", ".join(missing[:_MAX_SHOWN]) + (", ..." if len(missing) > _MAX_SHOWN else "")
            lines += [f"Baseline cases this run does not have ({len(missing)}): {shown}", ""]
    tested = [g for g in gates if g.paired is not None]
    if tested:
        lines += [
            "### Paired tests",
            "",
            *table(_PAIRED_COLUMNS, [_paired_row(g) for g in tested]),
            "",
        ]
    return lines


def _pairing_lines(plan: Plan) -> list[str]:
    """What the baseline is, how cases pair with it, and what the gates test."""
    pairing = plan.pairing
    if pairing is None:
        return [
            "Delta = this run - the baseline; cases without a baseline row are new "
            "and not compared."
        ]
    from .stats import RESAMPLES  # numpy: only when the report is written

    base = pairing.baseline
    lines = [
        f"Baseline: {base.describe()}. Delta = this run - the baseline; cases without "
        "baseline figures are new and not compared."
    ]
    alpha = pairing.significance
    if base.samples is None:
        lines.append(
            "It is a metrics.csv, without samples: the regression gates compare case "
            "figures, unpaired."
        )
        if alpha is not None:
            lines.append(
                f"--vlmhb-significance {alpha:g} needs the baseline's samples (its output "
                "dir or answers.csv): not applied; the unpaired gates decide."
            )
        return [" ".join(lines)]
    lines.append(
        "Samples are paired by case id and sample id: a case is paired when the "
        "baseline holds exactly its samples, unmatched otherwise (its gates then "
        "compare case figures, unpaired)."
    )
    if alpha is not None:
        lines.append(
            f"With --vlmhb-significance {alpha:g}, a regression gate of a paired case "
            "fails only when the change exceeds its tolerance and a one-sided paired "
            f'permutation test ({RESAMPLES} random swaps within pairs) rejects "no '
            'change" at that level; intervals are 95% paired bootstrap intervals.'
        )
    return [" ".join(lines)]


_PAIRED_COLUMNS = (
    "case_id",
    "gate",
    "baseline",
    "now",
    "change",
    "ci_low",
    "ci_high",
    "p_value",
    "alpha",
    "pairs",
    "result",
)


def _paired_row(gate: GateResult) -> dict[str, object]:
    from .gates import format_change

    f = gate.paired
    assert f is not None
    kind = f["change_kind"]
    return {
        "case_id": gate.case_id,
        "gate": gate.threshold,
        "baseline": f["baseline"],
        "now": f["now"],
        "change": f"{kind} {format_change(kind, f['change'])}",
        "ci_low": format_change(kind, f["ci_low"]),
        "ci_high": format_change(kind, f["ci_high"]),
        "p_value": f"{f['p_value']:.3g}" if f["p_value"] is not None else None,
        "alpha": f["alpha"],
        "pairs": f["pairs"],
        "result": "pass" if gate.passed else "FAIL",
    }
