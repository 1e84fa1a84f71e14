"""Preset tasks in the CSVs, ChartQA/OCRBench sub-scores and published reference scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets  # noqa: F401  (numpy loads once per process: import it before pytester runs)
import pytest

from pytest_vlmhb.cases import load_cases, load_plan
from pytest_vlmhb.config import Case, Settings
from pytest_vlmhb.errors import ConfigError
from pytest_vlmhb.metrics.relaxed_accuracy import RelaxedAccuracy
from pytest_vlmhb.records import category_rows
from pytest_vlmhb.reference_scores import (
    parse_reference_scores,
    reference_rows,
    reference_scores,
    reference_section,
)
from pytest_vlmhb.report import _table
from tests import preset_parquet as pq
from tests.helpers import make_settings
from tests.hubcache import make_hub_cache

MODELS = (
    "name,source\nsmol,HuggingFaceTB/SmolVLM-256M-Instruct\n"
    "qwen,/models/Qwen2-VL-2B-Instruct\ntiny,builtin:tiny-idefics3\n"
)


@pytest.fixture(autouse=True)
def _smolvlm_in_an_offline_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub id resolves at load: a stand-in snapshot (its config only)."""
    src = tmp_path / "smolvlm-src"
    src.mkdir()
    (src / "config.json").write_text('{"architectures": ["Idefics3ForConditionalGeneration"]}')
    make_hub_cache(src, tmp_path / "hub", "HuggingFaceTB/SmolVLM-256M-Instruct")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))


def settings(root: Path, config: str, tasks: str | None = None) -> Settings:
    (root / "user_config.csv").write_text(config)
    # A model directory must exist when a case uses it (checked at load).
    (root / "models" / "Qwen2-VL-2B-Instruct").mkdir(parents=True, exist_ok=True)
    (root / "models.csv").write_text(MODELS.replace("/models/", f"{root}/models/"))
    if tasks is not None:
        (root / "tasks.csv").write_text(tasks)
    return make_settings(root)


def test_preset_names_are_tasks_without_a_tasks_csv(tmp_path: Path) -> None:
    cases = load_cases(
        settings(
            tmp_path, "model,task,backend,max_tokens\nsmol,docvqa_val,hf,\nsmol,ocrbench,hf,7\n"
        )
    )
    docvqa, ocr = (c.task for c in cases)
    assert (docvqa.type, docvqa.data, docvqa.preset) == (
        "docvqa",
        "preset:docvqa_val",
        "docvqa_val",
    )
    assert docvqa.prompt == "{question}\nAnswer the question using a single word or phrase."
    assert docvqa.metrics == ("anls",) and cases[0].max_tokens == 32
    assert cases[0].temperature == 0.0
    assert (ocr.type, ocr.metrics, ocr.prompt) == ("ocrbench", ("ocrbench",), "{question}")
    assert cases[1].max_tokens == 7  # overridable per case


def test_tasks_csv_row_of_a_preset_name_overrides_it(tmp_path: Path) -> None:
    pq.chartqa(tmp_path / "chart", [("human_test", "How many?", "5")])
    s = settings(
        tmp_path,
        "model,task,backend\nsmol,chartqa_test,hf\n",
        tasks="name,type,data,preset,max_tokens\nchartqa_test,,parquet:chart,chartqa_test,8\n",
    )
    plan = load_plan(s)
    (case,) = plan.cases
    assert case.task.data == "parquet:chart" and case.max_tokens == 8
    assert case.task.metrics == ("relaxed_accuracy",) and case.task.type == "chartqa"
    (sample,) = plan.samples[case.id]
    assert sample.category == "human_test"
    assert sample.prompt == "How many?\nAnswer the question with a single word."


@pytest.mark.parametrize(
    ("tasks", "column", "needle"),
    [
        ("name,type,data\nx,,preset:nope\n", "data", "unknown preset 'nope'"),
        ("name,type,data\nx,chartqa,preset:docvqa_val\n", "type", "is a 'docvqa' task"),
        ("name,type,data\nx,,data/m.jsonl\n", "type", "empty task type"),
        ("name,type,data,preset\nx,,preset:ocrbench,docvqa_val\n", "preset", "data names preset"),
    ],
)
def test_bad_preset_rows_name_line_and_column(
    tmp_path: Path, tasks: str, column: str, needle: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_cases(settings(tmp_path, "model,task,backend\nsmol,x,hf\n", tasks=tasks))
    err = info.value
    assert (err.file, err.line, err.column) == (tmp_path / "tasks.csv", 2, column)
    assert needle in err.message


def test_unknown_task_lists_the_presets(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_cases(settings(tmp_path, "model,task,backend\nsmol,docvqa,hf\n"))
    assert info.value.allowed is not None and "docvqa_val" in info.value.allowed


@pytest.mark.parametrize(
    ("target", "prediction", "correct"),
    [
        ("45%", "45", False),  # "45%" is 0.45: 45 is 100x off
        ("45%", "45%", True),
        ("45%", "0.45", True),
        ("45", "46", True),  # within 5%
        ("45", "48", False),
        ("0", "0.0", False),  # a 0 target falls back to string equality
        ("0", "0", True),
        ("1,000", "1000", False),  # "1,000" does not parse: compared as a string
        ("1,000", "1,000", True),
        ("Yes", "yes", True),
    ],
)
def test_chartqa_relaxed_accuracy_edge_cases(target: str, prediction: str, correct: bool) -> None:
    metric = RelaxedAccuracy()
    assert metric.score(prediction, {"answers": [target]}) == float(correct)


def _records(pairs: list[tuple[str, float, bool]]) -> list[dict[str, Any]]:
    return [
        {
            "category": category,
            "error": "x" if failed else None,
            "stats": {"relaxed_accuracy": {"score": score}},
        }
        for category, score, failed in pairs
    ]


def test_chartqa_sub_scores_per_split(tmp_path: Path) -> None:
    (case,) = load_cases(settings(tmp_path, "model,task,backend\nsmol,chartqa_test,hf\n"))
    rows = category_rows(
        case,
        _records(
            [
                ("human_test", 1.0, False),
                ("augmented_test", 1.0, False),
                ("human_test", 0.0, True),
                ("augmented_test", 1.0, False),
            ]
        ),
    )
    assert rows == [
        {
            "case_id": case.id,
            "category": "human_test",
            "n": 2,
            "errors": 1,
            "relaxed_accuracy": 0.5,
        },
        {
            "case_id": case.id,
            "category": "augmented_test",
            "n": 2,
            "errors": 0,
            "relaxed_accuracy": 1.0,
        },
    ]
    assert (
        category_rows(case, [{**r, "category": None} for r in _records([("x", 1.0, False)])]) == []
    )


def _cases(tmp_path: Path) -> list[Case]:
    return load_cases(
        settings(
            tmp_path,
            "model,task,backend\nsmol,docvqa_val,hf\n"
            "smol,ocrbench,hf\nqwen,docvqa_val,hf\n"
            "qwen,ocrbench,hf\ntiny,chartqa_test,hf\n",
        )
    )


class _Plan:
    def __init__(self, cases: list[Case]) -> None:
        self.cases = tuple(cases)


def test_reference_scores_next_to_measured(tmp_path: Path) -> None:
    cases = _cases(tmp_path)
    summaries = [
        {"case_id": cases[0].id, "n": 5349, "errors": 0, "anls": 0.5912},
        {"case_id": cases[1].id, "n": 1000, "errors": 0, "ocrbench": 0.5},
        {"case_id": cases[2].id, "n": 5349, "errors": 0, "anls": 0.88},
        {"case_id": cases[3].id, "n": 100, "errors": 0, "ocrbench": 0.79},
        {"case_id": cases[4].id, "n": 2500, "errors": 0, "relaxed_accuracy": 0.1},
    ]
    rows = {(r["case_id"], r.get("reference")): r for r in reference_rows(_Plan(cases), summaries)}  # type: ignore[arg-type]
    smol_docvqa = rows[(cases[0].id, 58.3)]
    assert (smol_docvqa["measured"], smol_docvqa["delta"], smol_docvqa["status"]) == (
        59.12,
        0.82,
        "compared",
    )
    smol_ocr = rows[(cases[1].id, 52.6)]
    assert (smol_ocr["unit"], smol_ocr["measured"], smol_ocr["delta"]) == ("percent", 50.0, -2.6)
    # Qwen2-VL's DocVQA figure is a server-scored test split: shown, never compared
    qwen_docvqa = rows[(cases[2].id, 90.1)]
    assert "delta" not in qwen_docvqa and qwen_docvqa["split"] == "validation"
    assert qwen_docvqa["status"].startswith("not compared: published on test, scored by")
    # OCRBench out of 1000 (the model matched by its local folder name), on a subset
    qwen_ocr = rows[(cases[3].id, 794.0)]
    assert (qwen_ocr["unit"], qwen_ocr["measured"], qwen_ocr["delta"]) == ("per_1000", 790.0, -4.0)
    assert qwen_ocr["n"] == "100/1000" and "subset" in qwen_ocr["status"]
    assert rows[(cases[4].id, None)]["status"] == "no published score for this model"
    lines = reference_section(_Plan(cases), summaries, _table)  # type: ignore[arg-type]
    assert lines[0] == "## Public benchmarks"
    assert any(
        "| smol:docvqa_val:hf | smol | DocVQA | validation | 5349/5349 | 59.12 | 58.3 |" in line
        for line in lines
    )


def test_packaged_reference_scores_and_units() -> None:
    scores = reference_scores()
    assert {(s.model, s.benchmark, s.split, s.score, s.unit) for s in scores} >= {
        ("HuggingFaceTB/SmolVLM-256M-Instruct", "DocVQA", "validation", 58.3, "percent"),
        ("Qwen/Qwen2-VL-2B-Instruct", "OCRBench", "test", 794.0, "per_1000"),
    }
    assert all(s.source.startswith("https://") for s in scores)
    with pytest.raises(ValueError, match="unknown unit 'points'"):
        parse_reference_scores(
            "model,benchmark,split,score,unit,scored_by,source\nm,b,s,1,points,local,x\n"
        )
