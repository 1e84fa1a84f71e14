"""Rebuild the run's outputs from its results store alone, sending nothing.

``--vlmhb-rebuild-reports`` reads the output dir's own store; ``--vlmhb-merge``
reads each case from the store of the shard that ran it (:mod:`merge`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from .cases import Plan
from .config import Case
from .gates import gate_result
from .reasoning import answer_to_score
from .records import Record, metric
from .report import RunResults
from .store import StoreContents, load_store, record_key
from .tasks.manifest import Sample


def _scored_text(case: Case, record: Record) -> str:
    raw = record.get("raw_answer")
    return answer_to_score((record["answer"] if raw is None else raw) or "", case.reasoning_tags)


def _as_case_record(case: Case, sample: Sample, stored: Record) -> Record:
    """A stored record placed in ``case``; a metric it has no stats for (the case's
    metrics changed since) is scored from the raw answer, as ``--vlmhb-resume`` does
    (reasoning removed, then stripped; a store of an earlier version keeps the raw
    text in ``answer``)."""
    record = stored.copy()
    record["case_id"], record["sample_id"], record["launcher"] = (case.id, sample.id, case.launcher)
    missing = [
        n for n in case.task.metrics if n not in record["stats"] or n not in record["scores"]
    ]
    if missing:
        stats, scores = dict(record["stats"]), dict(record["scores"])
        for name in missing:
            m = metric(name)
            s = (
                m.worst_stats(sample.reference)
                if record["error"]
                else m.stats(_scored_text(case, record), sample.reference)
            )
            stats[name], scores[name] = s, m.value(s)
        record["stats"], record["scores"] = stats, scores
    return record


def results_from_store(plan: Plan, output: Path) -> tuple[RunResults, list[str]]:
    """The plan's stored records, case figures and re-checked gates; and the store
    lines skipped as ``file:line (why)`` (also noted in report.md)."""
    store = load_store(output)
    stores = {case.id: store for case in plan.cases}
    return results_from_stores(plan, stores, store.skipped), store.skipped


def results_from_stores(
    plan: Plan, stores: Mapping[str, StoreContents], skipped: Sequence[str]
) -> RunResults:
    """Each case's records and figures from ``stores[case id]`` (a case without a
    store has none), with its gates re-checked; ``skipped`` is noted in report.md."""
    results = RunResults(store_skipped=list(skipped))
    for case in plan.cases:
        store = stores.get(case.id, StoreContents())
        for sample in plan.samples[case.id]:
            stored = store.records.get(record_key(case, sample))
            if stored is not None:
                results.add_record(_as_case_record(case, sample, stored))
        if case.id in store.case_info:
            results.case_info[case.id] = store.case_info[case.id]
    for case in plan.cases:  # once every case's records are in (agreement needs two)
        records = results.records.get(case.id, [])
        info = stores.get(case.id, StoreContents()).case_info.get(case.id)
        for threshold in case.thresholds:
            results.gates.append(gate_result(case, threshold, records, info, results.records)[0])
    return results
