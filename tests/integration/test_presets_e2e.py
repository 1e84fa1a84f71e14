"""End to end: preset tasks read from local parquet copies in the published layouts,
answered by the real HF server with the built-in tiny model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

# numpy refuses a second import in one process: load it before any pytester run can
# unload it
import datasets
import pytest

from tests import preset_parquet as pq

REPO = Path(__file__).resolve().parents[2]
SUITE = (REPO / "benchmarks" / "test_vlmhb.py").read_text()
# Named like a published model so the report's reference comparison is exercised.
MODELS = "name,source\nSmolVLM-256M-Instruct,builtin:tiny-idefics3\n"
TASKS = (
    "name,type,data,preset\n"
    "chartqa_test,,parquet:chart,chartqa_test\n"
    "ocrbench,,parquet:ocr,ocrbench\n"
)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.server
def test_preset_tasks_from_parquet_through_the_hf_server(pytester: pytest.Pytester) -> None:
    root = pytester.path
    pq.chartqa(
        root / "chart",
        [
            ("human_test", "How many bars?", "5"),
            ("augmented_test", "What is the max?", "45%"),
            ("human_test", "Which is largest?", "Blue"),
        ],
    )
    # row 1's image is corrupt: only that sample fails, naming dataset, split and row
    table = root / "chart" / "data" / "test-00000-of-00001.parquet"

    ds = datasets.load_dataset(
        "parquet", data_files=str(table), split="train", cache_dir=str(root / "hf-tmp")
    )
    ds = ds.cast_column("image", datasets.Image(decode=False))
    rows = ds.to_list()
    rows[1]["image"] = {"bytes": b"not an image at all", "path": None}
    pq.write(
        table,
        {k: [r[k] for r in rows] for k in rows[0]},
        {
            "type": datasets.Value("string"),
            "question": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "image": datasets.Image(),
        },
    )
    pq.ocrbench(
        root / "ocr",
        [
            ("IIIT5K", " what is written in the image? ", "Regular Text Recognition", ["hello"]),
            (
                "HME100k",
                "Please write out the expression of the formula in the image using LaTeX format.",
                "Handwritten Mathematical Expression Recognition",
                ["x ^ { 2 }"],
            ),
        ],
    )
    pytester.makepyfile(test_vlmhb=SUITE)
    (root / "user_config.csv").write_text(
        "model,task,backend,launcher,concurrency\n"
        "SmolVLM-256M-Instruct,chartqa_test,hf,local,1\n"
        "SmolVLM-256M-Instruct,ocrbench,hf,local,1\n"
    )
    (root / "models.csv").write_text(MODELS)
    (root / "tasks.csv").write_text(TASKS)
    result = pytester.runpytest_subprocess(
        "--vlmhb-config=user_config.csv", "-p", "no:cacheprovider", timeout=1200
    )
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_sample?SmolVLM-256M-Instruct:chartqa_test:hf/1?*",
            f"*{root / 'chart'}*split 'test', row 1: image does not decode*",
        ]
    )
    out = root / "vlmhb-results"
    answers = {(a["task"], a["sample_id"]): a for a in read_csv(out / "answers.csv")}
    assert [a["category"] for (task, _), a in answers.items() if task == "chartqa_test"] == [
        "human_test",
        "augmented_test",
        "human_test",
    ]
    assert "image does not decode" in answers[("chartqa_test", "1")]["error"]
    for key in (("chartqa_test", "0"), ("chartqa_test", "2"), ("ocrbench", "0"), ("ocrbench", "1")):
        row = answers[key]
        assert row["error"] == "" and int(row["completion_tokens"]) >= 1
        assert float(row["relaxed_accuracy" if key[0] == "chartqa_test" else "ocrbench"]) in (
            0.0,
            1.0,
        )
    assert answers[("ocrbench", "0")]["prompt"] == "what is written in the image?"
    assert answers[("chartqa_test", "0")]["prompt"] == (
        "How many bars?\nAnswer the question with a single word."
    )
    assert json.loads(answers[("ocrbench", "1")]["reference"]) == {
        "answers": ["x ^ { 2 }"],
        "dataset": "HME100k",
    }
    metrics = {m["task"]: m for m in read_csv(out / "metrics.csv")}
    assert metrics["chartqa_test"]["n"] == "3" and metrics["chartqa_test"]["errors"] == "1"
    assert metrics["ocrbench"]["ocrbench"] != ""
    report = (out / "report.md").read_text()
    assert "## Sub-scores" in report and "### SmolVLM-256M-Instruct:chartqa_test:hf" in report
    assert "| human_test | 2 | 0 |" in report and "| augmented_test | 1 | 1 | 0 |" in report
    assert "| Regular Text Recognition | 1 | 0 |" in report
    assert "## Public benchmarks" in report
    # the published ChartQA test figure is shown next to the (tiny) measured one
    assert "| ChartQA | test | 3/2500 |" in report and "| 55.8 | percent |" in report
    assert "compared on a subset" in report
    assert "| OCRBench | test | 2/1000 |" in report and "| 52.6 |" in report
