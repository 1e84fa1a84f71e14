"""The synthetic document generator: deterministic, atomic, well-formed manifests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pytest_vlmhb.tasks import synthetic
from pytest_vlmhb.tasks.synthetic import generate_synthetic_docs

REPO = Path(__file__).resolve().parents[2]
KEYS = {
    "docvqa": ["id", "image", "question", "answers"],
    "chartqa": ["id", "image", "question", "answers"],
    "ocr": ["id", "image", "text"],
    "kie": ["id", "image", "fields"],
    "doc_classification": ["id", "image", "label", "labels"],
}
KINDS = ["invoice", "receipt", "form", "letter"]


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _rows(root: Path, task: str) -> list[dict[str, Any]]:
    lines = (root / f"{task}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _flat(fields: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for value in fields.values():
        out.extend(_flat(value) if isinstance(value, dict) else [value])
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic") / "docs"
    generate_synthetic_docs(out, n_per_type=9, seed=0)
    return out


def test_byte_identical_across_runs_and_processes(tmp_path: Path) -> None:
    generate_synthetic_docs(tmp_path / "a", n_per_type=6, seed=3)
    generate_synthetic_docs(tmp_path / "b", n_per_type=6, seed=3)
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_vlmhb.tasks.synthetic",
            str(tmp_path / "c"),
            "--n",
            "6",
            "--seed",
            "3",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    files = _files(tmp_path / "a")
    assert len([f for f in files if f.endswith(".png")]) > 0
    assert files == _files(tmp_path / "b") == _files(tmp_path / "c")


def test_seed_changes_the_data(tmp_path: Path) -> None:
    generate_synthetic_docs(tmp_path / "a", n_per_type=4, seed=0)
    generate_synthetic_docs(tmp_path / "b", n_per_type=4, seed=1)
    assert _rows(tmp_path / "a", "kie") != _rows(tmp_path / "b", "kie")


def test_first_samples_do_not_depend_on_n() -> None:
    small, large = synthetic.build_dataset(4, seed=7), synthetic.build_dataset(10, seed=7)
    for task in synthetic.TASK_TYPES:
        assert large.rows[task][:4] == small.rows[task]


@pytest.mark.parametrize("task", list(KEYS))
def test_manifest_schema(dataset: Path, task: str) -> None:
    rows = _rows(dataset, task)
    assert len(rows) == 9
    assert len({row["id"] for row in rows}) == 9
    for row in rows:
        assert list(row) == KEYS[task]
        image = Path(row["image"])
        assert not image.is_absolute() and image.parts[0] == "images" and ".." not in image.parts
        with Image.open(dataset / image) as img:
            assert img.format == "PNG" and img.width <= 448 and img.height <= 576
            img.verify()
        assert all(isinstance(row[key], str) and row[key] for key in ("id", "image"))


def test_answers_and_texts(dataset: Path) -> None:
    for task in ("docvqa", "chartqa"):
        for row in _rows(dataset, task):
            assert row["question"].endswith("?")
            assert 1 <= len(row["answers"]) <= 2
            assert all(isinstance(a, str) and a for a in row["answers"])
    for row in _rows(dataset, "ocr"):
        lines = row["text"].split("\n")
        assert 1 <= len(lines) <= 4
        assert all(line and line == line.strip() for line in lines)
    for row in _rows(dataset, "kie"):
        assert row["fields"] and all(isinstance(v, str) and v for v in _flat(row["fields"]))
    assert any(isinstance(v, dict) for row in _rows(dataset, "kie") for v in row["fields"].values())


@pytest.mark.parametrize("n", [4, 5, 9])
def test_labels_cover_all_kinds(tmp_path: Path, n: int) -> None:
    generate_synthetic_docs(tmp_path, n_per_type=n)
    rows = _rows(tmp_path, "doc_classification")
    assert {row["label"] for row in rows} == set(KINDS)
    assert all(row["labels"] == KINDS and row["label"] in row["labels"] for row in rows)


def test_answers_and_fields_are_printed_on_the_page() -> None:
    data = synthetic.build_dataset(16, seed=2)
    for task in ("docvqa", "kie"):
        for row in data.rows[task]:
            doc = data.images[row["image"]]
            assert isinstance(doc, synthetic.Document)
            page = "\n".join(f"{line.text} {line.value}" for line in doc.lines)
            expected = [row["answers"][0]] if task == "docvqa" else _flat(row["fields"])
            assert all(value in page for value in expected), (row, page)
    for row in data.rows["ocr"]:
        snippet = data.images[row["image"]]
        assert isinstance(snippet, synthetic.Snippet) and snippet.text == row["text"]


def _bar_heights(path: Path) -> list[int]:
    """Height in pixels of each bar, left to right, measured on the PNG."""
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    y0 = synthetic.CHART_BASELINE - 1
    xs = [x for x in range(rgb.width) if rgb.getpixel((x, y0)) == synthetic.BAR_COLOR]
    starts = [x for x in xs if x - 1 not in xs]
    ends = [x for x in xs if x + 1 not in xs]
    heights = []
    for start, end in zip(starts, ends, strict=True):
        middle, height = (start + end) // 2, 0
        while rgb.getpixel((middle, y0 - height)) == synthetic.BAR_COLOR:
            height += 1
        heights.append(height)
    return heights


def test_chart_answers_match_the_drawn_values(tmp_path: Path) -> None:
    generate_synthetic_docs(tmp_path, n_per_type=12, seed=5)
    data = synthetic.build_dataset(12, seed=5)
    rows = _rows(tmp_path, "chartqa")
    assert rows == data.rows["chartqa"]
    kinds = set()
    for row in rows:
        chart = data.images[row["image"]]
        assert isinstance(chart, synthetic.Chart)
        drawn = [h // synthetic.CHART_PX_PER_UNIT for h in _bar_heights(tmp_path / row["image"])]
        assert drawn == list(chart.values)
        by_label = dict(zip(chart.labels, drawn, strict=True))
        question, (answer,) = row["question"], row["answers"]
        if question.startswith("What is the value of "):
            label = question.removeprefix("What is the value of ").removesuffix("?")
            assert answer == str(by_label[label])
            kinds.add("value")
        elif "highest" in question:
            assert by_label[answer] == max(drawn)
            kinds.add("highest")
        else:
            assert "lowest" in question and by_label[answer] == min(drawn)
            kinds.add("lowest")
    assert kinds == {"value", "highest", "lowest"}


def test_all_text_fits_the_images() -> None:
    data = synthetic.build_dataset(48, seed=11)
    for source in data.images.values():
        source.render()  # raises ValueError when a line would run off the image


def test_complete_dataset_is_not_regenerated(tmp_path: Path) -> None:
    out = tmp_path / "d"
    generate_synthetic_docs(out, n_per_type=2)
    assert (out / ".complete").is_file()
    (out / "ocr.jsonl").write_text("kept\n")
    generate_synthetic_docs(out, n_per_type=2)
    assert (out / "ocr.jsonl").read_text() == "kept\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temp dir left


def test_crash_leaves_no_partial_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = synthetic._write_dataset

    def crash(data: synthetic.Dataset, root: Path, marker: str) -> None:
        real(data, root, marker)
        (root / "docvqa.jsonl").write_text("half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "_write_dataset", crash)
    with pytest.raises(RuntimeError):
        generate_synthetic_docs(tmp_path / "d", n_per_type=2)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    generate_synthetic_docs(tmp_path / "d", n_per_type=2)
    assert (tmp_path / "d" / ".complete").is_file()


def test_empty_out_dir_is_filled_but_a_foreign_one_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    generate_synthetic_docs(tmp_path / "empty", n_per_type=1)
    assert (tmp_path / "empty" / "kie.jsonl").is_file()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate_synthetic_docs(foreign, n_per_type=1)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert synthetic.main([str(tmp_path / "out"), "--n", "3", "--seed", "4"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out")
    for task in KEYS:
        assert len(_rows(tmp_path / "out", task)) == 3
    with pytest.raises(SystemExit):
        synthetic.main([str(tmp_path / "bad"), "--n", "0"])
