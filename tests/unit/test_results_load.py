"""results.load: a run's CSV outputs as DataFrames, escapes undone, text kept text."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pytest_vlmhb.report import csv_text, write_outputs
from pytest_vlmhb.results import GATE_COLUMNS, load
from tests.helpers import make_plan, make_results

ANSWER_COLUMNS = ["case_id", "sample_id", "answer", "error", "ttft_ms", "anls"]


def _answers(out: Path) -> None:
    rows = [
        {"case_id": "c", "sample_id": "007", "answer": "=1+1", "error": "", "ttft_ms": 12.5},
        {"case_id": "c", "sample_id": "8", "answer": "'quoted", "error": "-boom", "anls": 0.5},
        {"case_id": "c", "sample_id": "9", "answer": "-3", "error": None, "ttft_ms": 7},
    ]
    (out / "answers.csv").write_text(csv_text(ANSWER_COLUMNS, rows))
    metrics = [{"case_id": "@c", "n": 3, "anls": 0.25, "anls_ci_low": 0.1, "anls_ci_high": 0.4}]
    (out / "metrics.csv").write_text(csv_text(list(metrics[0]), metrics))


def test_cells_come_back_raw_and_text_columns_stay_text(tmp_path: Path) -> None:
    _answers(tmp_path)
    assert "'=1+1" in (tmp_path / "answers.csv").read_text()  # escaped on disk
    loaded = load(tmp_path)
    answers = loaded.answers
    assert list(answers.columns) == ANSWER_COLUMNS
    assert list(answers["sample_id"]) == ["007", "8", "9"]  # ids are never numbers
    assert list(answers["answer"]) == ["=1+1", "'quoted", "-3"]  # escapes undone, text stays
    assert answers["error"].tolist() == [None, "-boom", None]
    assert answers["ttft_ms"].dtype == float
    assert answers["ttft_ms"].tolist()[0] == 12.5 and math.isnan(answers["ttft_ms"][1])
    assert math.isnan(answers["anls"][0]) and answers["anls"][1] == 0.5
    metrics = loaded.metrics
    assert metrics.loc[0, "case_id"] == "@c"
    assert metrics.loc[0, "anls_ci_low"] == 0.1 and metrics["n"].dtype == float


def test_gates_csv_is_read_when_present_else_empty(tmp_path: Path) -> None:
    _answers(tmp_path)
    empty = load(tmp_path).gates
    assert empty.empty and list(empty.columns) == list(GATE_COLUMNS)
    gates = [
        {
            "case_id": "c",
            "gate": "min_anls",
            "threshold": 0.5,
            "value": 0.25,
            "result": "FAIL",
            "detail": "=anls 0.25 < min_anls 0.5",
        },
        {
            "case_id": "c",
            "gate": "max_errors",
            "threshold": 2,
            "value": "",
            "result": "pass",
            "detail": "",
        },
    ]
    (tmp_path / "gates.csv").write_text(csv_text(list(GATE_COLUMNS), gates))
    loaded = load(tmp_path).gates
    assert loaded["gate"].tolist() == ["min_anls", "max_errors"]
    assert loaded["threshold"].tolist() == [0.5, 2.0]
    assert loaded["value"][0] == 0.25 and math.isnan(loaded["value"][1])
    assert loaded["detail"].tolist() == ["=anls 0.25 < min_anls 0.5", None]


def test_a_runs_outputs_load_with_the_figures_written(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["a", "b", "c"])
    results = make_results(plan, {"b": "abd"})
    out = tmp_path / "out"
    rows = write_outputs(out, plan, results, cache_dir=tmp_path / "cache")
    loaded = load(out)
    assert isinstance(loaded.answers, pd.DataFrame)
    assert loaded.answers["sample_id"].tolist() == ["a", "b", "c"]
    assert loaded.answers["answer"].tolist() == ["abc", "abd", "abc"]
    assert loaded.metrics["cer"].tolist() == [rows[0]["metrics"]["cer"]]
    assert loaded.metrics["ttft_p50_ms"].tolist() == [rows[0]["ttft_p50_ms"]]
