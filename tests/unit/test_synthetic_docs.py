"""The built-in synthetic documents: deterministic, complete, well-formed."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from pytest_vlmhb import registry
from pytest_vlmhb.tasks.manifest import load_manifest
from pytest_vlmhb.tasks.synthetic import generate_synthetic_docs

TYPES = ("docvqa", "chartqa", "ocr", "kie", "doc_classification")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_byte_identical_and_loadable(tmp_path: Path) -> None:
    generate_synthetic_docs(tmp_path / "a", n_per_type=5)
    generate_synthetic_docs(tmp_path / "b", n_per_type=5)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    for task_type in TYPES:
        task = registry.load(registry.TASKS, task_type)()
        samples = load_manifest(tmp_path / "a" / f"{task_type}.jsonl", task, task.default_prompt)
        assert len(samples) == 5
        assert len({s.id for s in samples}) == 5
        for sample in samples:
            with Image.open(sample.image) as img:
                img.verify()
    labels = [json.loads(line)["label"] for line in
              (tmp_path / "a" / "doc_classification.jsonl").read_text().splitlines()]
    assert set(labels) == {"invoice", "receipt", "form", "letter"}


def test_complete_dataset_is_not_regenerated(tmp_path: Path) -> None:
    out = tmp_path / "d"
    generate_synthetic_docs(out, n_per_type=2)
    marker = out / "docvqa.jsonl"
    marker.write_text("kept\n")
    generate_synthetic_docs(out, n_per_type=2)
    assert marker.read_text() == "kept\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_answers_are_printed_on_the_page(tmp_path: Path) -> None:
    generate_synthetic_docs(tmp_path, n_per_type=8)
    ocr = {json.loads(x)["image"]: json.loads(x)["text"]
           for x in (tmp_path / "ocr.jsonl").read_text().splitlines()}
    for line in (tmp_path / "docvqa.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert any(answer in ocr[row["image"]] for answer in row["answers"]), row
    for line in (tmp_path / "kie.jsonl").read_text().splitlines():
        row = json.loads(line)
        for value in row["fields"].values():
            if isinstance(value, str):
                assert value in ocr[row["image"]] or value.upper() in ocr[row["image"]]
