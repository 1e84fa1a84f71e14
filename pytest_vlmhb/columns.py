"""Column names of answers.csv and metrics.csv, shared by reports and gates."""

from __future__ import annotations

from collections.abc import Iterable

ANSWER_ID_COLUMNS = ("case_id", "model", "task", "backend", "launcher", "sample_id")
ANSWER_TIMING_COLUMNS = (
    "ttft_ms", "tpot_ms", "e2e_ms", "prompt_tokens", "completion_tokens", "finish_reason",
    "retries", "error",
)
CASE_ID_COLUMNS = ("case_id", "model", "task", "backend", "launcher")
CASE_COUNT_COLUMNS = ("n", "errors", "retries", "server_restarts")
CASE_PERF_COLUMNS = (
    "ttft_p50_ms", "ttft_p90_ms", "ttft_p95_ms", "ttft_p99_ms",
    "e2e_p50_ms", "e2e_p95_ms", "e2e_p99_ms", "tpot_mean_ms",
    "requests_per_s", "output_tokens_per_s", "peak_memory_mb", "container_peak_memory_mb",
    "gpu_peak_memory_mb",
)
# The server's own view of the case, from its /metrics (empty where the
# backend exposes no such figure): a cross-check of the client's numbers.
CASE_SERVER_COLUMNS = (
    "client_completion_tokens", "server_generation_tokens", "server_ttft_mean_ms",
    "server_mean_batch", "server_max_running",
)


def answer_columns(metric_names: Iterable[str]) -> list[str]:
    """answers.csv columns for the given metrics."""
    return [*ANSWER_ID_COLUMNS, "category", "prompt", "answer", "reference", *metric_names,
            *ANSWER_TIMING_COLUMNS]


def case_columns(metric_names: Iterable[str]) -> list[str]:
    """metrics.csv columns for the given metrics."""
    return [*CASE_ID_COLUMNS, *CASE_COUNT_COLUMNS, *metric_names, *CASE_PERF_COLUMNS,
            *CASE_SERVER_COLUMNS]


def gateable_columns(metric_names: Iterable[str]) -> list[str]:
    """Columns a ``min_``/``max_`` threshold may name for a case."""
    return [*CASE_COUNT_COLUMNS, *metric_names, *CASE_PERF_COLUMNS, *CASE_SERVER_COLUMNS]
