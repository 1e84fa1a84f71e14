"""The baseline run (``--vlmhb-baseline``) and how its samples pair with this run's.

The option names an earlier run's output dir, its answers.csv, or its metrics.csv:

- an output dir: its samples from its results store (``results/*.jsonl``) when
  it holds any, else from its answers.csv; its case figures from its metrics.csv;
- an answers.csv: its samples; the figures from the metrics.csv beside it;
- a metrics.csv: case figures only (every regression gate is unpaired).

Where no metrics.csv gives a case's figures they are computed from its samples.
Samples pair by case id and sample id. A case is "paired" when the baseline
holds exactly this run's samples of it, "unmatched" when it holds others (its
gates compare case figures, unpaired), "new" when it has no figures of it (no
gates), and "unpaired" when the baseline is a metrics.csv.

A sample's stats come from the store as they were recorded; a metric the store
lacks, and every metric of an answers.csv sample, is scored again from the
answer and the reference (the worst stats for a sample that errored), so a
pooled metric (CER/WER, micro F1) gets its per-sample stats back.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import registry
from .baseline import read_baseline
from .columns import ANSWER_TIMING_COLUMNS, LATENCY_COLUMNS
from .csvfiles import header_of, read_config_text
from .csvsafe import read_csv_dicts
from .errors import ConfigError
from .gates import baseline_gates, latency_source
from .metrics.base import Metric, Stats
from .numbers import finite_float
from .outputdir import STORE_DIR
from .settings import Settings

if TYPE_CHECKING:
    from .config import Case
    from .tasks.manifest import Sample

#: The per-sample latencies a paired latency gate compares.
TIMING_FIELDS = tuple(c for c in ANSWER_TIMING_COLUMNS if c.endswith("_ms"))

Source = Literal["results store", "answers.csv", "metrics.csv"]
Status = Literal["paired", "unmatched", "unpaired", "new"]


@dataclass(frozen=True)
class BaselineSample:
    """One sample of the baseline run."""

    #: Stats by metric, as the store recorded them (empty from an answers.csv).
    stats: Mapping[str, Stats]
    answer: str | None
    reference: Mapping[str, Any]
    error: bool
    #: ``ttft_ms``, ``e2e_ms``... of a sample answered without error, where known.
    timings: Mapping[str, float]

    def metric_stats(self, name: str) -> Stats | None:
        """Metric ``name``'s stats: as recorded, else scored from the answer and
        reference (the worst stats for an error); None when the reference does
        not fit the metric."""
        if name in self.stats:
            return self.stats[name]
        metric: Metric = registry.load(registry.METRICS, name)()
        try:
            if self.error:
                return metric.worst_stats(self.reference)
            return metric.stats(self.answer or "", self.reference)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


@dataclass(frozen=True)
class CasePairing:
    """How one case of this run pairs with the baseline."""

    status: Status
    #: Why the case is not paired ("" when it is, or is new).
    detail: str = ""
    #: The baseline's samples of a paired case, by sample id.
    samples: Mapping[str, BaselineSample] = field(default_factory=dict)


@dataclass(frozen=True)
class BaselineRun:
    """What ``--vlmhb-baseline`` holds."""

    path: Path
    source: Source
    #: metrics.csv rows: case id -> {column: number}.
    rows: dict[str, dict[str, float]]
    #: case id -> sample id -> sample (None: a metrics.csv only).
    samples: dict[str, dict[str, BaselineSample]] | None

    def pair(self, case_id: str, sample_ids: Iterable[str]) -> CasePairing:
        """The case's pairing with this run's samples ``sample_ids``."""
        if self.samples is None:
            if case_id not in self.rows:
                return CasePairing("new")
            return CasePairing("unpaired", "the baseline is a metrics.csv, without samples")
        theirs = self.samples.get(case_id, {})
        if not theirs and case_id not in self.rows:
            return CasePairing("new")
        ours = set(sample_ids)
        if ours == set(theirs):
            return CasePairing("paired", samples=theirs)
        common = len(ours & set(theirs))
        return CasePairing(
            "unmatched",
            f"the baseline's samples of this case differ ({common} of this run's "
            f"{len(ours)} are among its {len(theirs)})",
        )

    def row(self, case_id: str, metric_names: Sequence[str]) -> dict[str, float] | None:
        """The case's baseline figures: its metrics.csv row, else computed from
        its samples (None: neither)."""
        if case_id in self.rows:
            return self.rows[case_id]
        samples = list((self.samples or {}).get(case_id, {}).values())
        return figures(samples, metric_names) if samples else None

    def describe(self) -> str:
        return f"`{self.path}` ({self.source})"


def figures(samples: Sequence[BaselineSample], metric_names: Sequence[str]) -> dict[str, float]:
    """The metrics.csv figures a baseline gate compares (each metric's aggregate and
    the latency figures), computed from samples as :func:`records.summarize_case` does."""
    from .records import percentile  # the client comes with it: only now

    row: dict[str, float] = {}
    for name in metric_names:
        stats = [s.metric_stats(name) for s in samples]
        known = [s for s in stats if s is not None]
        metric: Metric = registry.load(registry.METRICS, name)()
        value = metric.aggregate(known) if len(known) == len(stats) else None
        if value is not None and math.isfinite(value):
            row[name] = value
    for column in LATENCY_COLUMNS:
        name, q = latency_source(column)
        values = [s.timings[name] for s in samples if name in s.timings]
        if values:
            figure = sum(values) / len(values) if q is None else percentile(values, q)
            assert figure is not None
            row[column] = figure
    return row


def load_baseline(path: Path) -> BaselineRun:
    """The baseline at ``path`` (an output dir, an answers.csv or a metrics.csv);
    ConfigError naming the file when it cannot stand for one."""
    if path.is_dir():
        return _from_dir(path)
    if "sample_id" in header_of(path):
        return BaselineRun(
            path, "answers.csv", _rows(path.parent / "metrics.csv"), read_answers(path)
        )
    return BaselineRun(path, "metrics.csv", read_baseline(path), None)


def _rows(metrics_csv: Path) -> dict[str, dict[str, float]]:
    """A metrics.csv's rows; {} when there is no such file."""
    return read_baseline(metrics_csv) if metrics_csv.is_file() else {}


def _from_dir(path: Path) -> BaselineRun:
    rows = _rows(path / "metrics.csv")
    stored = read_store(path)
    if stored:
        return BaselineRun(path, "results store", rows, stored)
    if (path / "answers.csv").is_file():
        return BaselineRun(path, "answers.csv", rows, read_answers(path / "answers.csv"))
    if rows:
        return BaselineRun(path, "metrics.csv", rows, None)
    raise ConfigError(
        f"not the output dir of an earlier run: no results store ({STORE_DIR}/*.jsonl), "
        "answers.csv or metrics.csv",
        file=path,
    )


def _timings(fields: Mapping[str, object]) -> dict[str, float]:
    return {
        name: float(value)
        for name in TIMING_FIELDS
        if isinstance(value := fields.get(name), (int, float)) and math.isfinite(value)
    }


def read_store(path: Path) -> dict[str, dict[str, BaselineSample]]:
    """The samples of an output dir's results store by case and sample id ({} when
    it holds none); of two records of one sample (a resumed run whose settings
    changed), the one finished last."""
    from .store import load_store  # the records code: only with a baseline

    latest: dict[tuple[str, str], tuple[float, BaselineSample]] = {}
    for record in load_store(path).records.values():
        when = record.get("finished_at") or record.get("sent_at") or 0.0
        ident = (record["case_id"], record["sample_id"])
        if ident in latest and latest[ident][0] > when:
            continue
        error = bool(record["error"])
        latest[ident] = (
            when,
            BaselineSample(
                stats=record["stats"],
                answer=record["answer"],
                reference=record["reference"],
                error=error,
                timings={} if error else _timings(record),
            ),
        )
    out: dict[str, dict[str, BaselineSample]] = {}
    for (case_id, sample_id), (_, sample) in latest.items():
        out.setdefault(case_id, {})[sample_id] = sample
    return out


def read_answers(path: Path) -> dict[str, dict[str, BaselineSample]]:
    """An answers.csv's samples by case and sample id (its escaping undone);
    ConfigError naming the file, the sample and the column where one is malformed."""
    read_config_text(path)  # a regular file of bounded size (a FIFO never blocks)
    try:
        rows = read_csv_dicts(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"cannot be read: {exc}", file=path) from None
    out: dict[str, dict[str, BaselineSample]] = {}
    for row in rows:
        case_id, sample_id = row.get("case_id", ""), row.get("sample_id", "")
        where = f"case {case_id!r}, sample {sample_id!r}"
        if not case_id or not sample_id:
            raise ConfigError(f"a row without a case_id or sample_id ({where})", file=path)
        if sample_id in out.setdefault(case_id, {}):
            raise ConfigError(f"{where} is listed twice", file=path, column="sample_id")
        out[case_id][sample_id] = _answer_sample(path, row, where)
    if not out:
        raise ConfigError("no sample rows: a baseline needs at least one sample", file=path)
    return out


def _answer_sample(path: Path, row: Mapping[str, str], where: str) -> BaselineSample:
    try:
        reference = json.loads(row.get("reference") or "{}")
    except ValueError:
        reference = None
    if not isinstance(reference, dict):
        raise ConfigError(f"{where}: not a JSON object", file=path, column="reference")
    timings: dict[str, float] = {}
    for name in TIMING_FIELDS:
        cell = row.get(name, "")
        if not cell:
            continue
        try:
            timings[name] = finite_float(cell)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}", file=path, column=name) from None
    error = bool(row.get("error"))
    return BaselineSample(
        stats={},
        answer=row.get("answer", ""),
        reference=reference,
        error=error,
        timings={} if error else timings,
    )


@dataclass(frozen=True)
class Pairing:
    """The baseline as report.md describes it: where it came from, the level of
    ``--vlmhb-significance`` (None: not given), and each case's pairing."""

    baseline: BaselineRun
    significance: float | None
    cases: Mapping[str, CasePairing]
    #: Each case's baseline figures (the cases that have some).
    rows: dict[str, dict[str, float]]


def with_baseline(
    baseline: BaselineRun,
    cases: Sequence[Case],
    samples: Mapping[str, Sequence[Sample]],
    settings: Settings,
) -> tuple[list[Case], Pairing]:
    """The cases with their regression gates added, and how each pairs with the
    baseline (``samples``: this run's, by case id)."""
    pairings = {c.id: baseline.pair(c.id, [s.id for s in samples[c.id]]) for c in cases}
    rows: dict[str, dict[str, float]] = {}
    out = []
    for case in cases:
        pairing = pairings[case.id]
        row = baseline.row(case.id, case.task.metrics)
        if row is not None:
            rows[case.id] = row
        gates = baseline_gates(
            case,
            row,
            settings.max_score_drop,
            settings.max_latency_increase,
            significance=settings.significance,
            samples=pairing.samples if pairing.status == "paired" else None,
            unpaired=pairing.detail,
        )
        out.append(case.model_copy(update={"thresholds": case.thresholds + gates}))
    return out, Pairing(baseline, settings.significance, pairings, rows)
