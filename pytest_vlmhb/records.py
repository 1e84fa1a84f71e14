"""Per-sample records and per-case summaries (pure functions, no I/O).

The same functions run on an xdist worker (for gate items) and on the
controller (for the reports), so both see identical figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeGuard

from . import registry
from .client import Completion
from .config import Case
from .metrics.base import Metric
from .redact import redact
from .tasks.manifest import Sample

Record = dict[str, Any]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def metric(name: str) -> Metric:
    instance: Metric = registry.load(registry.METRICS, name)()
    return instance


def make_record(case: Case, sample: Sample, completion: Completion | None,
                error: str | None, retries: int = 0) -> Record:
    """Score one sample: its answer, each metric, its timings and retries."""
    scores: dict[str, float | None] = {}
    stats: dict[str, dict[str, float]] = {}
    for name in case.task.metrics:
        m = metric(name)
        s = (m.stats(completion.text, sample.reference) if completion is not None and not error
             else m.worst_stats(sample.reference))
        stats[name] = s
        scores[name] = m.value(s)
    c = completion or Completion()
    return {
        "case_id": case.id, "model": case.model.name, "task": case.task.name,
        "backend": case.backend, "launcher": case.launcher, "sample_id": sample.id,
        "category": sample.category,
        "prompt": sample.prompt, "answer": redact(c.text) if completion else None,
        "reference": sample.reference, "scores": scores, "stats": stats,
        "ttft_ms": _ms(c.ttft_s), "tpot_ms": _ms(c.tpot_s), "e2e_ms": _ms(c.e2e_s),
        "itl_ms": [_ms(x) for x in c.itl_s],
        "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
        "finish_reason": c.finish_reason, "token_ids": c.token_ids,
        "error": redact(error) if error else None,
        "sent_at": c.sent_at or None, "finished_at": c.finished_at or None,
        "retries": retries,
    }


def rescore(case: Case, sample: Sample, stored: Record) -> Record:
    """A stored record, scored again with the case's current metrics; marked reused."""
    record = dict(stored)
    scores: dict[str, float | None] = {}
    stats: dict[str, dict[str, float]] = {}
    for name in case.task.metrics:
        m = metric(name)
        s = m.stats(stored["answer"] or "", sample.reference)
        stats[name], scores[name] = s, m.value(s)
    record.update(case_id=case.id, launcher=case.launcher, reference=sample.reference,
                  category=sample.category, scores=scores, stats=stats, reused=True)
    return record


def category_rows(case: Case, records: Sequence[Record]) -> list[dict[str, Any]]:
    """Sub-scores: each metric aggregated per sample category (ChartQA split,
    OCRBench question type), in order of first appearance; [] when ungrouped."""
    groups: dict[str, list[Record]] = {}
    for record in records:
        if record.get("category") is not None:
            groups.setdefault(str(record["category"]), []).append(record)
    rows = []
    for category, members in groups.items():
        row: dict[str, Any] = {"case_id": case.id, "category": category, "n": len(members),
                               "errors": sum(bool(r["error"]) for r in members)}
        for name in case.task.metrics:
            row[name] = _round(metric(name).aggregate([r["stats"][name] for r in members]))
        rows.append(row)
    return rows


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _is_time(value: Any) -> TypeGuard[float]:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def _interval(record: Record) -> tuple[float, float] | None:
    """A record's [sent_at, finished_at] (wall clock), or None when either is unusable."""
    sent, done = record.get("sent_at"), record.get("finished_at")
    if _is_time(sent) and _is_time(done) and done >= sent:
        return float(sent), float(done)
    return None


def busy_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Length of the union of ``[start, end]`` intervals: the time any request was
    in flight. Overlaps count once and gaps (e.g. between a run and its resume) not
    at all; an interval whose end precedes its start is ignored."""
    total = 0.0
    lo = hi = -math.inf
    for start, end in sorted(i for i in intervals if i[1] >= i[0]):
        if start > hi:
            total += hi - lo if hi > lo else 0.0
            lo, hi = start, end
        else:
            hi = max(hi, end)
    return total + (hi - lo if hi > lo else 0.0)


def summarize_case(case: Case, records: Sequence[Record],
                   case_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One metrics.csv row: counts, metric aggregates, latency and throughput."""
    ok = [r for r in records if not r["error"]]
    row: dict[str, Any] = {
        "case_id": case.id, "model": case.model.name, "task": case.task.name,
        "backend": case.backend, "launcher": case.launcher,
        "n": len(records), "errors": len(records) - len(ok),
        "retries": sum(r.get("retries") or 0 for r in records),
        "server_restarts": (case_info or {}).get("server_restarts") or 0,
    }
    for name in case.task.metrics:
        row[name] = _round(metric(name).aggregate([r["stats"][name] for r in records]))
    ttft = [r["ttft_ms"] for r in ok if r["ttft_ms"] is not None]
    e2e = [r["e2e_ms"] for r in ok if r["e2e_ms"] is not None]
    tpot = [r["tpot_ms"] for r in ok if r["tpot_ms"] is not None]
    for q in (50, 90, 95, 99):
        row[f"ttft_p{q}_ms"] = _round(percentile(ttft, q), 3)
    for q in (50, 95, 99):
        row[f"e2e_p{q}_ms"] = _round(percentile(e2e, q), 3)
    row["tpot_mean_ms"] = _round(sum(tpot) / len(tpot), 3) if tpot else None
    # Rates over the time requests were in flight, so the gap between a run and
    # its --vlmhb-resume (or a server restart) does not dilute them.
    timed = [(r, i) for r in ok if (i := _interval(r)) is not None]
    busy = busy_seconds(i for _, i in timed)
    tokens = sum(r["completion_tokens"] or 0 for r in ok)
    timed_tokens = sum(r["completion_tokens"] or 0 for r, _ in timed)
    row["requests_per_s"] = _round(len(timed) / busy, 3) if busy > 0 else None
    row["output_tokens_per_s"] = _round(timed_tokens / busy, 3) if busy > 0 else None
    info = case_info or {}
    for column, key in PEAK_COLUMNS.items():
        peak = info.get(key)
        row[column] = _round(peak / 2**20, 1) if peak else None
    row["client_completion_tokens"] = tokens
    row["server_generation_tokens"] = info.get("server_generation_tokens")
    row["server_ttft_mean_ms"] = _round(info.get("server_ttft_mean_ms"), 3)
    row["server_mean_batch"] = _round(info.get("server_mean_batch"), 2)
    row["server_max_running"] = info.get("server_max_running")
    return row


#: metrics.csv peak columns (MiB) and the case-info figures (bytes) they come from.
PEAK_COLUMNS = {
    "peak_memory_mb": "peak_memory_bytes",  # the server's own report (HF wrapper)
    "container_peak_memory_mb": "container_peak_memory_bytes",  # docker stats
    "gpu_peak_memory_mb": "gpu_peak_memory_bytes",  # NVML
}


def token_mismatch(row: Mapping[str, Any]) -> str | None:
    """Why the client's and the server's token counts disagree, if they do."""
    server = row.get("server_generation_tokens")
    if server is None or server == row["client_completion_tokens"]:
        return None
    return (f"client counted {row['client_completion_tokens']} completion tokens, "
            f"the server generated {server:g}")


def gate_failure(row: Mapping[str, Any], column: str, bound: str, limit: float) -> str | None:
    """None when the case passes ``<bound>_<column>``, else why it does not."""
    value = row.get(column)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{column} could not be computed for this case ({bound}_{column} {limit:g})"
    if bound == "min" and value < limit:
        return f"{column} {value:g} < {bound}_{column} {limit:g}"
    if bound == "max" and value > limit:
        return f"{column} {value:g} > {bound}_{column} {limit:g}"
    return None
