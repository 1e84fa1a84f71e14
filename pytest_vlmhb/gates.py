"""Gates: thresholds on metrics.csv columns, regression gates, and their results.

A threshold is ``min_<column>`` or ``max_<column>`` from user_config.csv, or a
regression gate derived from ``--vlmhb-baseline``; either is checked against
the case's metrics.csv row. Under ``--vlmhb-significance`` a regression gate
whose case pairs with the baseline's samples carries them (:class:`PairedTest`):
it fails only when the change exceeds the tolerance and a one-sided paired
permutation test (:mod:`stats`) rejects "no change". :mod:`config` imports
:class:`Threshold` from here, so this module imports the records and numpy
code only when a gate is checked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict
from typing_extensions import TypedDict

from . import registry
from .columns import LATENCY_COLUMNS, Cell, case_cells, is_interval_column
from .metrics.base import Stats

if TYPE_CHECKING:
    from .config import Case
    from .pairing import BaselineSample
    from .records import CaseInfo, Record
    from .stats import PairedResult


class PairedTest(BaseModel):
    """A regression gate's paired test: the baseline's samples of the case, by id."""

    model_config = ConfigDict(frozen=True)

    #: The test's level (``--vlmhb-significance``).
    alpha: float
    #: The change tolerated: a score's absolute drop, a latency figure's relative rise.
    tolerance: float
    #: Sample id -> the baseline's stats of the gate's metric, or ``{"ms": value}``
    #: of the latency the gate's figure summarizes.
    samples: dict[str, dict[str, float]]


class Threshold(BaseModel):
    """A gate: ``min_<column>`` or ``max_<column>`` on a metrics.csv column."""

    model_config = ConfigDict(frozen=True)

    column: str
    bound: Literal["min", "max"]
    value: float
    #: "" for a CSV threshold; "baseline" for a regression gate from --vlmhb-baseline.
    origin: str = ""
    #: A regression gate's paired test (None: the case figure is compared with ``value``).
    paired: PairedTest | None = None
    #: Why a regression gate is unpaired although --vlmhb-significance was given.
    unpaired: str = ""

    @property
    def name(self) -> str:
        prefix = f"{self.origin}_" if self.origin else ""
        return f"{prefix}{self.bound}_{self.column}"


class PairedFigures(TypedDict):
    """A paired test's figures, as a gate result carries them (a plain dict, so it
    travels from an xdist worker with the report)."""

    #: "drop" (a score's absolute drop) or "increase" (a latency's relative rise).
    change_kind: str
    baseline: float | None
    now: float | None
    change: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    alpha: float
    tolerance: float
    pairs: int


@dataclass
class GateResult:
    """One threshold's outcome for one case (a row of report.md's Gates table and
    of gates.csv)."""

    case_id: str
    threshold: str
    passed: bool
    message: str
    #: The gate's bound and the value it checked (None: not computed).
    limit: float | None = None
    value: float | None = None
    #: A paired test's figures (None for a gate without one).
    paired: PairedFigures | None = None


#: gates.csv's columns: ``gate`` is the gate's name, ``threshold`` its bound.
GATE_COLUMNS = ("case_id", "gate", "threshold", "value", "result", "detail")


def gate_rows(gates: Sequence[GateResult]) -> list[dict[str, Cell]]:
    """gates.csv's rows, one per gate result."""
    return [
        {
            "case_id": g.case_id,
            "gate": g.threshold,
            "threshold": g.limit,
            "value": g.value,
            "result": "pass" if g.passed else "fail",
            "detail": g.message,
        }
        for g in gates
    ]


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


def _number(value: Cell) -> float | None:
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def gate_result(
    case: Case,
    threshold: Threshold,
    records: Sequence[Record],
    case_info: CaseInfo | None,
    others: Mapping[str, Sequence[Record]] | None = None,
) -> tuple[GateResult, Cell]:
    """One threshold checked against the case's records; also the value checked.
    ``others`` (every case's records, on the controller) gives ``agreement``."""
    from .parity import agreement
    from .records import summarize_case  # it imports the client: not when config loads

    summary = summarize_case(
        case, records, case_info, intervals=is_interval_column(threshold.column)
    )
    if case.parity_with is not None and others is not None:
        summary["agreement"] = agreement(records, others.get(case.parity_with, []))
    row = case_cells(summary)
    value = row.get(threshold.column)
    result = GateResult(
        case.id, threshold.name, False, "", limit=threshold.value, value=_number(value)
    )
    if not records:
        result.message = f"no sample of case {case.id} ran in this session"
        return result, value
    unpaired = threshold.unpaired
    if threshold.paired is not None:
        paired = paired_check(case, threshold, records)
        if paired is not None:
            result.passed, result.message, result.paired = paired
            return result, value
        unpaired = "fewer than two of this run's samples pair with the baseline's"
    failure = gate_failure(row, threshold.column, threshold.bound, threshold.value)
    result.passed = failure is None
    result.message = (
        failure or f"{threshold.column} {value} meets {threshold.name} {threshold.value:g}"
    )
    if unpaired:
        result.message += f" (unpaired: {unpaired})"
    return result, value


def latency_source(column: str) -> tuple[str, float | None]:
    """The per-sample latency a metrics.csv latency figure summarizes, and its
    percentile (None: the mean): ``ttft_p95_ms`` -> (``ttft_ms``, 95)."""
    stem, _, figure = column.removesuffix("_ms").rpartition("_")
    return f"{stem}_ms", None if figure == "mean" else float(figure.removeprefix("p"))


def paired_check(
    case: Case, threshold: Threshold, records: Sequence[Record]
) -> tuple[bool, str, PairedFigures] | None:
    """A paired gate's outcome (passed, message, figures); None where fewer than
    two samples pair up or the test is undefined (the unpaired gate applies)."""
    from . import stats  # numpy: only when a paired gate is checked

    test = threshold.paired
    assert test is not None
    now = {r["sample_id"]: r for r in records}
    ids = [sid for sid in test.samples if sid in now]
    key = (case.id, threshold.name)
    if threshold.column in case.task.metrics:
        name = threshold.column
        metric = registry.load(registry.METRICS, name)()
        ids = [sid for sid in ids if name in now[sid]["stats"]]
        result = stats.paired_metric_test(
            key,
            metric,
            [test.samples[sid] for sid in ids],
            [now[sid]["stats"][name] for sid in ids],
        )
        kind = "drop"
    else:
        field, q = latency_source(threshold.column)
        pairs = [
            (test.samples[sid]["ms"], float(ms))
            for sid in ids
            if not now[sid]["error"] and isinstance(ms := now[sid].get(field), (int, float))
        ]
        result = stats.paired_latency_test(key, [b for b, _ in pairs], [n for _, n in pairs], q)
        kind = "increase"
    if result.pairs < 2 or result.change is None or result.p_value is None:
        return None
    figures = _figures(kind, result, test)
    return *_verdict(threshold.column, figures), figures


def _figures(kind: str, result: PairedResult, test: PairedTest) -> PairedFigures:
    return {
        "change_kind": kind,
        "baseline": result.baseline,
        "now": result.now,
        "change": result.change,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "p_value": result.p_value,
        "alpha": test.alpha,
        "tolerance": test.tolerance,
        "pairs": result.pairs,
    }


def format_change(kind: str, value: float | None) -> str:
    """A paired change as report.md and gate messages show it."""
    if value is None:
        return "-"
    return f"{value:+.1%}" if kind == "increase" else f"{value:.4g}"


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _verdict(column: str, f: PairedFigures) -> tuple[bool, str]:
    """Fails when the change exceeds the tolerance and the test rejects "no change"."""
    change, p, kind = f["change"], f["p_value"], f["change_kind"]
    assert change is not None and p is not None

    def show(value: float | None) -> str:
        return format_change(kind, value)

    said = (
        f"{column} {kind} {show(change)} (95% CI {show(f['ci_low'])} to {show(f['ci_high'])}; "
        f"baseline {_g(f['baseline'])}, now {_g(f['now'])}; {f['pairs']} paired samples)"
    )
    test = f"one-sided paired permutation test p = {p:.3g}"
    if change <= f["tolerance"]:
        return True, f"{said}: within {show(f['tolerance'])} ({test})"
    if p > f["alpha"]:
        return (
            True,
            f"{said}: beyond {show(f['tolerance'])} but not significant ({test} > {f['alpha']:g})",
        )
    return (
        False,
        f"{said}: beyond {show(f['tolerance'])} and significant ({test} <= {f['alpha']:g})",
    )


def baseline_gates(
    case: Case,
    row: Mapping[str, float] | None,
    max_score_drop: float | None,
    max_latency_increase: float | None,
    *,
    significance: float | None = None,
    samples: Mapping[str, BaselineSample] | None = None,
    unpaired: str = "",
) -> tuple[Threshold, ...]:
    """The regression gates of one case (none for a case without a baseline row).

    With ``significance``, score gates exist even without ``max_score_drop`` (a
    drop of 0 is then tolerated), and each gate carries a paired test when the
    baseline's ``samples`` of the case are given (else ``unpaired`` says why not).
    """
    if row is None:
        return ()
    score_drop = max_score_drop
    if score_drop is None and significance is not None:
        score_drop = 0.0
    gates = []
    if score_drop is not None:
        for name in case.task.metrics:
            if name not in row:
                continue
            higher = registry.load(registry.METRICS, name).higher_is_better
            paired, why = _test(
                significance,
                score_drop,
                _metric_samples(samples, name),
                unpaired or f"the baseline's samples cannot be scored with {name}",
            )
            gates.append(
                Threshold(
                    column=name,
                    bound="min" if higher else "max",
                    origin="baseline",
                    value=row[name] - score_drop if higher else row[name] + score_drop,
                    paired=paired,
                    unpaired=why,
                )
            )
    if max_latency_increase is not None:
        for column in LATENCY_COLUMNS:
            if column in row:
                field = latency_source(column)[0]
                by_sample = (
                    None
                    if samples is None
                    else {
                        sid: {"ms": s.timings[field]}
                        for sid, s in samples.items()
                        if field in s.timings
                    }
                )
                paired, why = _test(
                    significance,
                    max_latency_increase,
                    by_sample,
                    unpaired or f"the baseline's samples have no {field}",
                )
                gates.append(
                    Threshold(
                        column=column,
                        bound="max",
                        origin="baseline",
                        value=row[column] * (1.0 + max_latency_increase),
                        paired=paired,
                        unpaired=why,
                    )
                )
    return tuple(gates)


def _metric_samples(
    samples: Mapping[str, BaselineSample] | None, name: str
) -> dict[str, Stats] | None:
    """The baseline's stats of metric ``name`` by sample id (None: not all known)."""
    if samples is None:
        return None
    out = {}
    for sid, sample in samples.items():
        stats = sample.metric_stats(name)
        if stats is None:
            return None
        out[sid] = stats
    return out


def _test(
    significance: float | None,
    tolerance: float,
    samples: dict[str, dict[str, float]] | None,
    unpaired: str,
) -> tuple[PairedTest | None, str]:
    """A regression gate's paired test, or why it has none ("" when no test was asked)."""
    if significance is None:
        return None, ""
    if samples is None or len(samples) < 2:
        return None, unpaired
    return PairedTest(alpha=significance, tolerance=tolerance, samples=samples), ""
