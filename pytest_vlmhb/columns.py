"""Columns of answers.csv and metrics.csv, shared by reports and gates.

A metrics.csv row is a :class:`CaseRow`: its keys, in order, are the file's
columns, with the one key ``metrics`` standing for the case's metric columns
(dynamic per case: each metric, then its interval, ``<metric>_ci_low`` and
``<metric>_ci_high``, from the key ``metric_intervals``). :func:`case_columns`
and :func:`case_cells` both read that definition, so a column cannot drop out
of the file while the row still has it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from typing_extensions import TypedDict

if TYPE_CHECKING:
    from .records import Record  # records imports this module

#: A CSV cell before escaping.
Cell = str | int | float | None

#: The key of :class:`CaseRow` that holds the metric columns.
METRICS_KEY = "metrics"
#: The key of :class:`CaseRow` that holds the metrics' intervals (columns placed
#: right after each metric's own, under :data:`METRICS_KEY`).
INTERVALS_KEY = "metric_intervals"
#: A 95% bootstrap interval (low, high); None where it cannot be computed.
Interval = tuple[float | None, float | None]


def interval_columns(column: str) -> tuple[str, str]:
    """A figure's interval columns: ``anls`` -> ``anls_ci_low``, ``anls_ci_high``;
    a figure in ms keeps the unit last (``ttft_p50_ci_low_ms``)."""
    stem, unit = (column[:-3], "_ms") if column.endswith("_ms") else (column, "")
    return f"{stem}_ci_low{unit}", f"{stem}_ci_high{unit}"


def is_interval_column(column: str) -> bool:
    """Whether a metrics.csv column is one end of an interval."""
    return "_ci_low" in column or "_ci_high" in column


def metric_columns(metric_names: Iterable[str]) -> list[str]:
    """The metric columns of metrics.csv: each metric, then its interval."""
    return [c for name in metric_names for c in (name, *interval_columns(name))]


class CaseIds(TypedDict):
    """Which case a row describes."""

    case_id: str
    model: str
    task: str
    backend: str
    launcher: str


class CaseModel(TypedDict):
    """Which weights served the case: a hub commit, ``sha256:<16 hex>`` of a model
    folder, ``builtin:<name>-<hash>``; None for an external endpoint or a case
    whose server did not start here."""

    model_revision: str | None


class CaseCounts(TypedDict):
    n: int
    errors: int
    #: Errors saying the prompt (its pages) exceeded the model's context.
    context_errors: int
    retries: int
    server_restarts: int


class CaseScores(TypedDict):
    #: Each metric's case aggregate, by metric name: one column per metric.
    metrics: dict[str, float | None]
    #: Each metric's 95% percentile-bootstrap interval, by metric name (columns
    #: ``<metric>_ci_low``, ``<metric>_ci_high``; None where not computed).
    metric_intervals: dict[str, Interval]


class CasePerf(TypedDict):
    ttft_p50_ms: float | None
    #: The TTFT median's 95% percentile-bootstrap interval.
    ttft_p50_ci_low_ms: float | None
    ttft_p50_ci_high_ms: float | None
    ttft_p90_ms: float | None
    ttft_p95_ms: float | None
    ttft_p99_ms: float | None
    #: Time to the first answer token (after reasoning streamed apart; TTFT without).
    ttfa_p50_ms: float | None
    e2e_p50_ms: float | None
    e2e_p95_ms: float | None
    e2e_p99_ms: float | None
    tpot_mean_ms: float | None
    requests_per_s: float | None
    output_tokens_per_s: float | None
    #: Images (document pages or image files) sent per second of the case's span.
    pages_per_s: float | None
    peak_memory_mb: float | None
    container_peak_memory_mb: float | None
    gpu_peak_memory_mb: float | None


class CaseServer(TypedDict):
    """The server's own view of the case, from its /metrics (None where the
    backend exposes no such figure): a cross-check of the client's numbers."""

    client_completion_tokens: int
    server_generation_tokens: float | None
    server_ttft_mean_ms: float | None
    server_mean_batch: float | None
    server_max_running: float | None


class CaseParity(TypedDict):
    """Deployment parity and cost."""

    #: Share of the samples shared with the ``parity_with`` case whose answers
    #: are equal (errors disagree); None without ``parity_with``.
    agreement: float | None
    #: ``gpu_hour_cost`` x GPUs held x the case's wall time, per 1,000 samples.
    cost_per_1k_samples: float | None


class CaseRow(CaseIds, CaseModel, CaseCounts, CaseScores, CasePerf, CaseServer, CaseParity):
    """One metrics.csv row; the keys in declaration order are the columns."""


CASE_ID_COLUMNS = tuple(CaseIds.__annotations__)
CASE_MODEL_COLUMNS = tuple(CaseModel.__annotations__)
#: metrics.csv's text columns (every other one holds a number or nothing).
CASE_TEXT_COLUMNS = (*CASE_ID_COLUMNS, *CASE_MODEL_COLUMNS)
CASE_COUNT_COLUMNS = tuple(CaseCounts.__annotations__)
CASE_PERF_COLUMNS = tuple(CasePerf.__annotations__)
CASE_SERVER_COLUMNS = tuple(CaseServer.__annotations__)
#: The latency columns a baseline gate compares (not the ends of intervals).
LATENCY_COLUMNS = tuple(
    c for c in CASE_PERF_COLUMNS if c.endswith("_ms") and not is_interval_column(c)
)

ANSWER_ID_COLUMNS = ("case_id", "model", "task", "backend", "launcher", "sample_id")
#: ``answer`` is the scored text, ``raw_answer`` the text as the server sent it.
ANSWER_TEXT_COLUMNS = ("category", "prompt", "answer", "raw_answer", "reference")
ANSWER_TIMING_COLUMNS = (
    "ttft_ms",
    "ttfa_ms",
    "tpot_ms",
    "e2e_ms",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "finish_reason",
    "retries",
    "error",
)
#: What the request's images were: count, encoded bytes, preparation time, pages dropped.
ANSWER_IMAGE_COLUMNS = ("n_images", "image_bytes", "prep_ms", "pages_dropped")


def answer_columns(metric_names: Iterable[str]) -> list[str]:
    """answers.csv columns for the given metrics."""
    return [
        *ANSWER_ID_COLUMNS,
        *ANSWER_TEXT_COLUMNS,
        *metric_names,
        *ANSWER_TIMING_COLUMNS,
        *ANSWER_IMAGE_COLUMNS,
    ]


def answer_cells(record: Record, metric_names: Iterable[str]) -> dict[str, object]:
    """One answers.csv row: the record's fields and its score of each given metric
    (None where its case has no such metric, or where a record of an earlier version
    lacks a field)."""
    fields: Mapping[str, object] = record
    cells = {column: fields.get(column) for column in answer_columns(())}
    cells.update({name: record["scores"].get(name) for name in metric_names})
    return cells


def case_columns(metric_names: Iterable[str]) -> list[str]:
    """metrics.csv columns for the given metrics: :class:`CaseRow`'s keys, in order
    (the metric columns, intervals included, in place of ``metrics``)."""
    names = metric_columns(metric_names)
    out: list[str] = []
    for key in CaseRow.__annotations__:
        if key != INTERVALS_KEY:
            out += names if key == METRICS_KEY else [key]
    return out


def case_cells(row: CaseRow) -> dict[str, Cell]:
    """The row as metrics.csv holds it: column -> value, in column order, the metric
    columns in place of ``metrics`` (a metric column named like a fixed column:
    ValueError)."""
    fields: Mapping[str, object] = row
    metrics = row["metrics"]
    clash = sorted(set(metric_columns(metrics)) & set(CaseRow.__annotations__))
    if clash:
        raise ValueError(f"metric names clash with metrics.csv columns: {', '.join(clash)}")
    cells: dict[str, Cell] = {}
    for key in CaseRow.__annotations__:
        if key == INTERVALS_KEY:
            continue
        if key == METRICS_KEY:
            intervals = row["metric_intervals"]
            for name, score in metrics.items():
                low, high = interval_columns(name)
                cells[name] = score
                cells[low], cells[high] = intervals.get(name, (None, None))
            continue
        value = fields[key]
        assert value is None or isinstance(value, (str, int, float)), (key, value)
        cells[key] = value
    return cells


def gateable_columns(metric_names: Iterable[str]) -> list[str]:
    """Columns a ``min_``/``max_`` threshold may name for a case."""
    return [c for c in case_columns(metric_names) if c not in CASE_TEXT_COLUMNS]
