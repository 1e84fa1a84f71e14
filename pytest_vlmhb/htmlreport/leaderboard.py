"""The leaderboard (model@backend x task) and the backend speed ratios, from
metrics.csv as :func:`results.load` reads it.

A cell is the case's primary score (the first of its task's metrics) with its
95% interval where metrics.csv has ``<metric>_ci_low`` / ``_ci_high``, its
TTFT p50 and its requests/s. Rows are ``model@backend``, with ``@launcher``
when the run used more than one launcher, and ``[case id]`` when two cases
would share a cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .data import CaseMeta, number


@dataclass(frozen=True)
class Cell:
    """One case's figures in the leaderboard."""

    case_id: str
    metric: str | None
    score: float | None
    ci_low: float | None
    ci_high: float | None
    ttft_p50_ms: float | None
    requests_per_s: float | None


@dataclass(frozen=True)
class Ratio:
    """Two cases of one model and task on different backends: what each measured
    and the ratio of the first to the second."""

    model: str
    task: str
    first: str
    second: str
    rps_first: float | None
    rps_second: float | None
    ttft_first: float | None
    ttft_second: float | None

    @staticmethod
    def _ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    @property
    def rps_ratio(self) -> float | None:
        return self._ratio(self.rps_first, self.rps_second)

    @property
    def ttft_ratio(self) -> float | None:
        return self._ratio(self.ttft_first, self.ttft_second)


@dataclass(frozen=True)
class Leaderboard:
    tasks: list[str]
    #: (row label, {task: cell}) in config-row order of each row's first case.
    rows: list[tuple[str, dict[str, Cell]]]
    ratios: list[Ratio]


def _get(row: Mapping[str, Any], column: str | None) -> float | None:
    return number(row.get(column)) if column else None


def _labels(metrics: pd.DataFrame) -> pd.Series:
    labels = metrics["model"].astype(str) + "@" + metrics["backend"].astype(str)
    if metrics["launcher"].nunique() > 1:
        labels = labels + "@" + metrics["launcher"].astype(str)
    shared = pd.DataFrame({"label": labels, "task": metrics["task"]}).duplicated(keep=False)
    return labels.where(~shared, labels + " [" + metrics["case_id"].astype(str) + "]")


def leaderboard(metrics: pd.DataFrame, cases: Sequence[CaseMeta]) -> Leaderboard:
    """The leaderboard of metrics.csv's rows (``cases`` name each case's primary metric)."""
    if metrics.empty:
        return Leaderboard([], [], [])
    primary = {c.id: c.primary for c in cases}
    table = metrics.assign(label=_labels(metrics))
    tasks = list(dict.fromkeys(table["task"].astype(str)))
    rows: dict[str, dict[str, Cell]] = {}
    for row in table.to_dict("records"):
        name = primary.get(str(row["case_id"]))
        rows.setdefault(str(row["label"]), {})[str(row["task"])] = Cell(
            case_id=str(row["case_id"]),
            metric=name,
            score=_get(row, name),
            ci_low=_get(row, f"{name}_ci_low" if name else None),
            ci_high=_get(row, f"{name}_ci_high" if name else None),
            ttft_p50_ms=_get(row, "ttft_p50_ms"),
            requests_per_s=_get(row, "requests_per_s"),
        )
    return Leaderboard(tasks, list(rows.items()), backend_ratios(table))


def backend_ratios(metrics: pd.DataFrame) -> list[Ratio]:
    """Every pair of cases of one model and task on two different backends."""
    out = []
    for (model, task), group in metrics.groupby(["model", "task"], sort=False):
        members = group.to_dict("records")
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                if a["backend"] == b["backend"]:
                    continue
                out.append(
                    Ratio(
                        model=str(model),
                        task=str(task),
                        first=f"{a['backend']} ({a['case_id']})",
                        second=f"{b['backend']} ({b['case_id']})",
                        rps_first=_get(a, "requests_per_s"),
                        rps_second=_get(b, "requests_per_s"),
                        ttft_first=_get(a, "ttft_p50_ms"),
                        ttft_second=_get(b, "ttft_p50_ms"),
                    )
                )
    return out
