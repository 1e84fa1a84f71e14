"""Gates: thresholds on metrics.csv columns, regression gates, and their results.

A threshold is ``min_<column>`` or ``max_<column>`` from user_config.csv, or a
regression gate derived from ``--vlmhb-baseline``; either is checked against
the case's metrics.csv row. :mod:`config` imports :class:`Threshold` from here,
so this module imports the records code only when a gate is checked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from . import registry
from .columns import LATENCY_COLUMNS, Cell, case_cells

if TYPE_CHECKING:
    from .config import Case
    from .records import CaseInfo, Record


class Threshold(BaseModel):
    """A gate: ``min_<column>`` or ``max_<column>`` on a metrics.csv column."""

    model_config = ConfigDict(frozen=True)

    column: str
    bound: Literal["min", "max"]
    value: float
    #: "" for a CSV threshold; "baseline" for a regression gate from --vlmhb-baseline.
    origin: str = ""

    @property
    def name(self) -> str:
        prefix = f"{self.origin}_" if self.origin else ""
        return f"{prefix}{self.bound}_{self.column}"


@dataclass
class GateResult:
    """One threshold's outcome for one case (a row of report.md's Gates table)."""

    case_id: str
    threshold: str
    passed: bool
    message: str


def gate_failure(row: Mapping[str, Cell], column: str, bound: str, limit: float) -> str | None:
    """None when the metrics.csv row passes ``<bound>_<column>``, else why it does not."""
    value = row.get(column)
    if value is None or isinstance(value, str) or math.isnan(value):
        return f"{column} could not be computed for this case ({bound}_{column} {limit:g})"
    if bound == "min" and value < limit:
        return f"{column} {value:g} < {bound}_{column} {limit:g}"
    if bound == "max" and value > limit:
        return f"{column} {value:g} > {bound}_{column} {limit:g}"
    return None


def gate_result(
    case: Case, threshold: Threshold, records: Sequence[Record], case_info: CaseInfo | None
) -> tuple[GateResult, Cell]:
    """One threshold checked against the case's records; also the value checked."""
    from .records import summarize_case  # it imports the client: not when config loads

    row = case_cells(summarize_case(case, records, case_info))
    value = row.get(threshold.column)
    failure = (
        f"no sample of case {case.id} ran in this session"
        if not records
        else gate_failure(row, threshold.column, threshold.bound, threshold.value)
    )
    message = failure or (f"{threshold.column} {value} meets {threshold.name} {threshold.value:g}")
    return GateResult(case.id, threshold.name, failure is None, message), value


def baseline_gates(
    case: Case,
    row: Mapping[str, float] | None,
    max_score_drop: float | None,
    max_latency_increase: float | None,
) -> tuple[Threshold, ...]:
    """The regression gates of one case (none for a case without a baseline row)."""
    if row is None:
        return ()
    gates = []
    if max_score_drop is not None:
        for name in case.task.metrics:
            if name not in row:
                continue
            higher = registry.load(registry.METRICS, name).higher_is_better
            gates.append(
                Threshold(
                    column=name,
                    bound="min" if higher else "max",
                    origin="baseline",
                    value=row[name] - max_score_drop if higher else row[name] + max_score_drop,
                )
            )
    if max_latency_increase is not None:
        for column in LATENCY_COLUMNS:
            if column in row:
                gates.append(
                    Threshold(
                        column=column,
                        bound="max",
                        origin="baseline",
                        value=row[column] * (1.0 + max_latency_increase),
                    )
                )
    return tuple(gates)
