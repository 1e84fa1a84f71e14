"""Per-sample records and per-case summaries (pure functions, no I/O).

The same functions run on an xdist worker (for gate items) and on the
controller (for the reports), so both see identical figures.

:class:`Record` is the one definition of a sample record's fields: what
:func:`make_record` builds, what travels from an xdist worker to the
controller (a plain dict, as execnet needs) and what the results store keeps
and validates on load (:class:`StoredRecord`, through pydantic).

Scoring follows lmms-eval's pipeline from generated text to score: the
server's answer text (``raw_answer``, reasoning streamed apart excluded) ->
reasoning removal with the case's ``reasoning_tags`` -> the whole-answer strip
-> the metric (:func:`reasoning.answer_to_score`); ``answer`` is what was
scored. Fields added after the first stores (``raw_answer``, ``reasoning``,
``reasoning_tokens``, ``ttfa_ms``) are ``NotRequired``, so an older store line
still loads; read them with ``.get``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, NotRequired, TypeGuard

from pydantic import ConfigDict, Field, JsonValue, with_config
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from . import registry
from .client import Completion
from .columns import CaseRow, Cell, Interval
from .config import Case
from .metrics.base import Metric
from .parity import cost_per_1k_samples, gpu_count, wall_seconds
from .reasoning import answer_to_score
from .redact import redact
from .tasks.manifest import Sample

if TYPE_CHECKING:
    from .pages import Prepared

_Count = Annotated[int, Field(ge=0)]
_Time = Annotated[float, Field(allow_inf_nan=False)]
# Validation (of store lines) is strict: no "1" for 1; fields of later versions are kept.
_STRICT = ConfigDict(strict=True, extra="allow")


@with_config(_STRICT)
class Record(TypedDict):
    """One scored sample: its answer, each metric, its timings and retries."""

    case_id: str
    model: str
    task: str
    backend: str
    launcher: str
    sample_id: str
    category: str | None
    prompt: str | None
    #: The text the metrics scored (:func:`reasoning.answer_to_score` of the raw answer).
    answer: str | None
    reference: dict[str, JsonValue]
    scores: dict[str, float | None]
    stats: dict[str, dict[str, float]]
    ttft_ms: _Time | None
    tpot_ms: _Time | None
    e2e_ms: _Time | None
    itl_ms: list[_Time | None]
    prompt_tokens: _Count | None
    completion_tokens: _Count | None
    finish_reason: str | None
    token_ids: list[int] | None
    error: str | None
    sent_at: _Time | None
    finished_at: _Time | None
    retries: _Count
    #: Set on a stored record reused by ``--vlmhb-resume`` (such a record is not stored again).
    reused: NotRequired[bool]
    #: The answer text exactly as the server sent it (``content``; masked).
    raw_answer: NotRequired[str | None]
    #: Reasoning the server streamed apart from the answer (masked; None: none). Never
    #: scored; kept in the store only (answers.csv has ``reasoning_tokens``).
    reasoning: NotRequired[str | None]
    #: ``usage.completion_tokens_details.reasoning_tokens`` (None: not reported).
    reasoning_tokens: NotRequired[_Count | None]
    #: Time to the first answer token after any streamed-apart reasoning.
    ttfa_ms: NotRequired[_Time | None]
    #: Images the request carried, their encoded bytes, the time preparing them
    #: took (render, resize, encode; before the request: TTFT excludes it) and
    #: the pages (or images) beyond ``max_pages`` that were dropped.
    n_images: NotRequired[_Count | None]
    image_bytes: NotRequired[_Count | None]
    prep_ms: NotRequired[_Time | None]
    pages_dropped: NotRequired[_Count | None]


@dataclass(frozen=True)
class PrepStats:
    """What preparing one sample's images sent and cost."""

    n_images: int
    image_bytes: int
    prep_s: float
    pages_dropped: int

    @classmethod
    def of(cls, prepared: Prepared) -> PrepStats:
        return cls(
            n_images=len(prepared.images),
            image_bytes=prepared.image_bytes,
            prep_s=prepared.prep_s,
            pages_dropped=prepared.pages_dropped,
        )


@with_config(_STRICT)
class StoredRecord(Record):
    """A sample line of the results store: the record and its ``store.record_key``."""

    key: Annotated[str, Field(min_length=1)]


@with_config(_STRICT)
class ServerInfo(TypedDict, total=False):
    """The server's provenance (launcher-specific keys; ``packages``: name -> version)."""

    packages: dict[str, JsonValue]


@with_config(_STRICT)
class CaseInfo(TypedDict, total=False):
    """A finished case's server figures (raw units), stored and read by the reports."""

    server: ServerInfo
    server_restarts: _Count | None
    server_generation_tokens: float | None
    server_ttft_mean_ms: float | None
    server_mean_batch: float | None
    server_max_running: float | None
    peak_memory_bytes: float | None  # the server's own report (HF wrapper)
    container_peak_memory_bytes: float | None  # docker stats
    gpu_peak_memory_bytes: float | None  # NVML


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def metric(name: str) -> Metric:
    instance: Metric = registry.load(registry.METRICS, name)()
    return instance


def make_record(
    case: Case,
    sample: Sample,
    completion: Completion | None,
    error: str | None,
    retries: int = 0,
    prep: PrepStats | None = None,
) -> Record:
    """Score one sample: its answer, each metric, its timings, retries and what its
    images cost (``prep``: None when they were never prepared)."""
    c = completion or Completion()
    scored = answer_to_score(c.text, case.reasoning_tags)
    scores: dict[str, float | None] = {}
    stats: dict[str, dict[str, float]] = {}
    for name in case.task.metrics:
        m = metric(name)
        s = (
            m.stats(scored, sample.reference)
            if completion is not None and not error
            else m.worst_stats(sample.reference)
        )
        stats[name] = s
        scores[name] = m.value(s)
    answered = completion is not None
    record: Record = {
        "case_id": case.id,
        "model": case.model.name,
        "task": case.task.name,
        "backend": case.backend,
        "launcher": case.launcher,
        "sample_id": sample.id,
        "category": sample.category,
        "prompt": sample.prompt,
        "answer": redact(scored) if answered else None,
        "raw_answer": redact(c.text) if answered else None,
        "reasoning": redact(c.reasoning) if c.reasoning else None,
        "reference": sample.reference,
        "scores": scores,
        "stats": stats,
        "ttft_ms": _ms(c.ttft_s),
        "ttfa_ms": _ms(c.ttfa_s),
        "tpot_ms": _ms(c.tpot_s),
        "e2e_ms": _ms(c.e2e_s),
        "itl_ms": [_ms(x) for x in c.itl_s],
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "reasoning_tokens": c.reasoning_tokens,
        "finish_reason": c.finish_reason,
        "token_ids": c.token_ids,
        "error": redact(error) if error else None,
        "sent_at": c.sent_at or None,
        "finished_at": c.finished_at or None,
        "retries": retries,
        "n_images": prep.n_images if prep else None,
        "image_bytes": prep.image_bytes if prep else None,
        "prep_ms": _ms(prep.prep_s) if prep else None,
        "pages_dropped": prep.pages_dropped if prep else None,
    }
    return record


def rescore(case: Case, sample: Sample, stored: Record) -> Record:
    """A stored record, scored again from its raw answer with the case's current
    metrics and reasoning tags; marked reused. (A store of an earlier version has
    no ``raw_answer``: its ``answer`` is the raw text.)"""
    record = stored.copy()
    raw = stored.get("raw_answer")
    if raw is None:
        raw = stored["answer"]
    scored = answer_to_score(raw or "", case.reasoning_tags)
    if raw is not None:
        record["answer"], record["raw_answer"] = scored, raw
    scores: dict[str, float | None] = {}
    stats: dict[str, dict[str, float]] = {}
    for name in case.task.metrics:
        m = metric(name)
        s = m.stats(scored, sample.reference)
        stats[name], scores[name] = s, m.value(s)
    record["case_id"], record["launcher"] = case.id, case.launcher
    record["reference"], record["category"] = sample.reference, sample.category
    record["scores"], record["stats"], record["reused"] = scores, stats, True
    return record


def category_rows(case: Case, records: Sequence[Record]) -> list[dict[str, Cell]]:
    """Sub-scores: each metric aggregated per sample category (ChartQA split,
    OCRBench question type), in order of first appearance; [] when ungrouped."""
    groups: dict[str, list[Record]] = {}
    for record in records:
        if record.get("category") is not None:
            groups.setdefault(str(record["category"]), []).append(record)
    rows = []
    for category, members in groups.items():
        row: dict[str, Cell] = {
            "case_id": case.id,
            "category": category,
            "n": len(members),
            "errors": sum(bool(r["error"]) for r in members),
        }
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


def _is_time(value: object) -> TypeGuard[float]:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


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


def _mib(value: float | None) -> float | None:
    return _round(value / 2**20, 1) if value else None


def case_intervals(
    case: Case, records: Sequence[Record], ttft: Sequence[float]
) -> tuple[dict[str, Interval], Interval]:
    """Each metric's and the TTFT median's 95% bootstrap interval (rounded as the
    figures are), seeded by the case id (:mod:`stats`)."""
    from .stats import figure_interval, metric_intervals  # numpy: only when summarizing

    scored = {
        name: (metric(name), [r["stats"][name] for r in records]) for name in case.task.metrics
    }
    by_metric = {
        name: (_round(low), _round(high))
        for name, (low, high) in metric_intervals((case.id,), scored).items()
    }
    low, high = figure_interval((case.id, "ttft_p50_ms"), ttft, 50)
    return by_metric, (_round(low, 3), _round(high, 3))


def summarize_case(
    case: Case,
    records: Sequence[Record],
    case_info: CaseInfo | None = None,
    *,
    intervals: bool = True,
) -> CaseRow:
    """One metrics.csv row: counts, metric aggregates (with their intervals, unless
    ``intervals`` is False), latency and throughput."""
    info: CaseInfo = case_info or {}
    ok = [r for r in records if not r["error"]]
    ttft = [r["ttft_ms"] for r in ok if r["ttft_ms"] is not None]
    ttfa = [t for r in ok if (t := r.get("ttfa_ms")) is not None]
    e2e = [r["e2e_ms"] for r in ok if r["e2e_ms"] is not None]
    tpot = [r["tpot_ms"] for r in ok if r["tpot_ms"] is not None]
    # Rates over the time requests were in flight, so the gap between a run and
    # its --vlmhb-resume (or a server restart) does not dilute them.
    timed = [(r, i) for r in ok if (i := _interval(r)) is not None]
    busy = busy_seconds(i for _, i in timed)
    timed_tokens = sum(r["completion_tokens"] or 0 for r, _ in timed)
    timed_images = sum(r.get("n_images") or 0 for r, _ in timed)

    def p(values: Sequence[float], q: float) -> float | None:
        return _round(percentile(values, q), 3)

    metric_cis: dict[str, Interval] = {name: (None, None) for name in case.task.metrics}
    ttft_ci: Interval = (None, None)
    if intervals:
        metric_cis, ttft_ci = case_intervals(case, records, ttft)

    return {
        "case_id": case.id,
        "model": case.model.name,
        "task": case.task.name,
        "backend": case.backend,
        "launcher": case.launcher,
        "model_revision": _model_revision(info),
        "n": len(records),
        "errors": len(records) - len(ok),
        "context_errors": sum(1 for r in records if is_context_error(r["error"])),
        "retries": sum(r.get("retries") or 0 for r in records),
        "server_restarts": info.get("server_restarts") or 0,
        "metrics": {
            name: _round(metric(name).aggregate([r["stats"][name] for r in records]))
            for name in case.task.metrics
        },
        "metric_intervals": metric_cis,
        "ttft_p50_ms": p(ttft, 50),
        "ttft_p50_ci_low_ms": ttft_ci[0],
        "ttft_p50_ci_high_ms": ttft_ci[1],
        "ttft_p90_ms": p(ttft, 90),
        "ttft_p95_ms": p(ttft, 95),
        "ttft_p99_ms": p(ttft, 99),
        "ttfa_p50_ms": p(ttfa, 50),
        "e2e_p50_ms": p(e2e, 50),
        "e2e_p95_ms": p(e2e, 95),
        "e2e_p99_ms": p(e2e, 99),
        "tpot_mean_ms": _round(sum(tpot) / len(tpot), 3) if tpot else None,
        "requests_per_s": _round(len(timed) / busy, 3) if busy > 0 else None,
        "output_tokens_per_s": _round(timed_tokens / busy, 3) if busy > 0 else None,
        "pages_per_s": _round(timed_images / busy, 3) if busy > 0 and timed_images else None,
        "peak_memory_mb": _mib(info.get("peak_memory_bytes")),
        "container_peak_memory_mb": _mib(info.get("container_peak_memory_bytes")),
        "gpu_peak_memory_mb": _mib(info.get("gpu_peak_memory_bytes")),
        "client_completion_tokens": sum(r["completion_tokens"] or 0 for r in ok),
        "server_generation_tokens": info.get("server_generation_tokens"),
        "server_ttft_mean_ms": _round(info.get("server_ttft_mean_ms"), 3),
        "server_mean_batch": _round(info.get("server_mean_batch"), 2),
        "server_max_running": info.get("server_max_running"),
        "agreement": None,  # needs the parity_with case's records: see parity.agreements
        "cost_per_1k_samples": cost_per_1k_samples(
            case.model.gpu_hour_cost,
            gpu_count(case.model.gpus),
            wall_seconds(records),
            len(records),
        ),
    }


#: How servers say a prompt exceeds the model's context (vLLM, our HF wrapper,
#: SGLang, OpenAI): "maximum context length", "max_model_len", "context length".
_CONTEXT_ERROR = re.compile(
    r"maximum context length|max_model_len|context[ _]length|too many tokens|prompt is too long",
    re.IGNORECASE,
)


def is_context_error(error: str | None) -> bool:
    """Whether a sample's error says its prompt did not fit the model's context."""
    return bool(error) and _CONTEXT_ERROR.search(error or "") is not None


def _model_revision(info: CaseInfo) -> str | None:
    """The served weights' revision from the server's provenance (None: unknown)."""
    revision = info.get("server", {}).get("model_revision")
    return revision if isinstance(revision, str) and revision else None


def token_mismatch(row: CaseRow) -> str | None:
    """Why the client's and the server's token counts disagree, if they do."""
    server = row["server_generation_tokens"]
    if server is None or server == row["client_completion_tokens"]:
        return None
    return (
        f"client counted {row['client_completion_tokens']} completion tokens, "
        f"the server generated {server:g}"
    )
