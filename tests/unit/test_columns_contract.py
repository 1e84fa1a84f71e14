"""The typed rows are the CSV columns: a field cannot drop out of answers.csv or
metrics.csv, and the writer refuses a key its columns lack."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from pytest_vlmhb.client import Completion
from pytest_vlmhb.columns import (
    CASE_TEXT_COLUMNS,
    INTERVALS_KEY,
    LATENCY_COLUMNS,
    METRICS_KEY,
    CaseRow,
    answer_cells,
    answer_columns,
    case_cells,
    case_columns,
    gateable_columns,
    metric_columns,
)
from pytest_vlmhb.records import CaseInfo, Record, StoredRecord, make_record, summarize_case
from pytest_vlmhb.report import csv_text, write_outputs
from pytest_vlmhb.servermetrics import ServerWatch
from pytest_vlmhb.store import OLDER_RECORD_DEFAULTS
from tests.helpers import make_case, make_plan, make_results, make_sample

FIXED = [k for k in CaseRow.__annotations__ if k not in (METRICS_KEY, INTERVALS_KEY)]


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        return next(csv.reader(f))


def test_metrics_csv_header_is_the_typed_row(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["a", "b"])
    rows = write_outputs(tmp_path / "out", plan, make_results(plan, {"b": "x"}))
    header = _header(tmp_path / "out" / "metrics.csv")
    metrics = list(plan.cases[0].task.metrics)
    assert header == case_columns(metrics)
    # Every field of the typed row is a column, and every column a field (or a
    # metric and its interval, from the row's ``metrics`` and ``metric_intervals``).
    assert set(header) == set(FIXED) | set(metric_columns(metrics))
    (row,) = rows
    assert set(row) == set(CaseRow.__annotations__) == CaseRow.__required_keys__
    assert list(case_cells(row)) == header
    assert set(row[INTERVALS_KEY]) == set(row[METRICS_KEY]) == set(metrics)
    # The metric columns stand where the row's ``metrics`` key stands, each metric
    # followed by its interval.
    at = list(CaseRow.__annotations__).index(METRICS_KEY)
    assert (
        header[at : at + 3 * len(metrics)]
        == metric_columns(metrics)
        == [
            "cer",
            "cer_ci_low",
            "cer_ci_high",
        ]
    )
    assert header[header.index("ttft_p50_ms") + 1 : header.index("ttft_p50_ms") + 3] == [
        "ttft_p50_ci_low_ms",
        "ttft_p50_ci_high_ms",
    ]
    assert not [c for c in LATENCY_COLUMNS if "_ci_" in c]  # no regression gate on them


def test_summarize_case_fills_exactly_the_typed_row() -> None:
    case = make_case(("cer", "wer"))
    done = Completion(
        text="x", ttft_s=0.1, e2e_s=0.2, completion_tokens=2, sent_at=1.0, finished_at=2.0
    )
    row = summarize_case(case, [make_record(case, make_sample("a", "x"), done, None)])
    assert set(row) == set(CaseRow.__annotations__)
    assert list(row["metrics"]) == ["cer", "wer"]
    assert gateable_columns(["cer", "wer"]) == [
        c for c in case_columns(["cer", "wer"]) if c not in CASE_TEXT_COLUMNS
    ]
    assert "model_revision" not in gateable_columns(["cer"])  # text, not a figure
    assert {"cer_ci_low", "wer_ci_high", "ttft_p50_ci_low_ms"} <= set(
        gateable_columns(["cer", "wer"])
    )


def test_answers_csv_header_is_record_fields_and_scores(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["a"])
    results = make_results(plan, {})
    write_outputs(tmp_path / "out", plan, results)
    header = _header(tmp_path / "out" / "answers.csv")
    metrics = list(plan.cases[0].task.metrics)
    assert header == answer_columns(metrics)
    fixed = answer_columns(())
    assert set(fixed) <= set(Record.__annotations__)  # every fixed column is a record field
    (record,) = results.records[plan.cases[0].id]
    assert list(answer_cells(record, metrics)) == [*fixed, *metrics]


def test_the_writer_refuses_a_key_its_columns_lack() -> None:
    assert csv_text(["a", "b"], [{"a": 1}]) == "a,b\r\n1,\r\n"  # a missing key: empty cell
    with pytest.raises(ValueError, match="row keys missing from the CSV columns: c"):
        csv_text(["a", "b"], [{"a": 1, "c": 2}])


def test_a_metric_named_like_a_column_is_refused() -> None:
    case = make_case(("cer",))
    row = summarize_case(case, [])
    row["metrics"] = {"errors": 1.0}
    with pytest.raises(ValueError, match=r"clash.*errors"):
        case_cells(row)


def test_one_record_definition_from_make_record_to_the_store() -> None:
    case = make_case(("cer",))
    record = make_record(case, make_sample("a", "x"), Completion(text="x"), None)
    # make_record fills every field but the mark of a reused record (NotRequired; the
    # runtime's __required_keys__ cannot tell under postponed annotations, pydantic can).
    assert set(record) == set(Record.__annotations__) - {"reused"}
    stored: StoredRecord = {**record, "key": "k"}
    TypeAdapter(StoredRecord).validate_python(stored)
    assert set(OLDER_RECORD_DEFAULTS) < set(record)
    TypeAdapter(StoredRecord).validate_python(
        {k: v for k, v in stored.items() if k not in OLDER_RECORD_DEFAULTS} | OLDER_RECORD_DEFAULTS
    )


def test_server_figures_are_case_info_fields() -> None:
    names = {
        "generation_tokens": "gen",
        "ttft_sum": "ts",
        "ttft_count": "tc",
        "steps": "st",
        "running": "run",
        "peak_memory_bytes": "peak",
    }
    watch = ServerWatch(names, after={"gen": 10.0, "ts": 1.0, "tc": 2.0, "st": 5.0, "peak": 9.0})
    watch.observe("run 3\n")
    summary = watch.summary()
    assert set(summary) == {
        "server_generation_tokens",
        "server_ttft_mean_ms",
        "server_mean_batch",
        "server_max_running",
        "peak_memory_bytes",
    }
    assert set(summary) <= set(CaseInfo.__annotations__)
    TypeAdapter(CaseInfo).validate_python(summary)
