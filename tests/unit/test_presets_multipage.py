"""multidocvqa_val and slidevqa_val from local parquet copies in their hub layouts:
materialised into ``images`` lists equal to what lmms-eval's ``doc_to_visual`` sends."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

# numpy refuses a second import in one process: load it before any pytester run can
# unload it
import datasets
import pytest
from PIL import Image

from pytest_vlmhb.errors import ConfigError
from pytest_vlmhb.tasks.presets import load_preset
from pytest_vlmhb.tasks.sources import resolve_manifest
from pytest_vlmhb.tasks.templates import render_template
from tests import preset_parquet as pq
from tests.unit.reference_impls import (
    MULTIDOCVQA_KWARGS,
    SLIDEVQA_KWARGS,
    multidocvqa_doc_to_text,
    multidocvqa_doc_to_visual,
    slidevqa_doc_to_text,
    slidevqa_doc_to_visual,
)


@pytest.fixture(autouse=True)
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")


def encoded(text: str, size: tuple[int, int], mode: str = "RGB", fmt: str = "PNG") -> bytes:
    """A page image in ``mode`` (RGBA, L, P ... are converted to RGB by lmms-eval)."""
    img = Image.open(io.BytesIO(pq.png(text, size))).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def rotated(text: str, size: tuple[int, int]) -> bytes:
    """A JPEG whose EXIF orientation (6: rotate 90) ``datasets`` applies when decoding."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.open(io.BytesIO(pq.png(text, size))).save(buf, format="JPEG", exif=exif)
    return buf.getvalue()


def pages(n: int, tag: str, size: tuple[int, int] = (64, 40)) -> list[bytes]:
    modes = ["RGB", "RGBA", "L", "P"]
    return [encoded(f"{tag}{i}", size, modes[i % len(modes)]) for i in range(n)]


def materialise(data: str, preset: str, tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    manifest = resolve_manifest(data, "docvqa", tmp_path, tmp_path / "cache", preset=preset)
    lines = manifest.read_text(encoding="utf-8").splitlines()
    return manifest.parent, [json.loads(line) for line in lines]


def decoded(path: Path) -> Image.Image:
    """A written file as lmms-eval would see it: decoded by ``datasets``, then RGB."""
    image: Image.Image = datasets.Image().decode_example({"bytes": path.read_bytes(), "path": None})
    return image.convert("RGB")


def hub_rows(path: Path) -> list[dict[str, Any]]:
    """The copy's rows as lmms-eval gets them: ``datasets`` decodes the Image columns."""
    return list(datasets.load_dataset("parquet", data_files=str(path), split="train"))


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and a.mode == b.mode and a.tobytes() == b.tobytes()


# ---- MP-DocVQA ----------------------------------------------------------------------------
MP_ROWS: list[tuple[str, str, list[str], int, list[bytes | None]]] = [
    ("57344", "What is the date?", ["1/8/93", "January 8, 1993"], 1, pages(3, "a")),
    ("57345", " Who signed {it}? ", ["J. Smith"], 0, pages(1, "b")),
    ("57346", "Total?", ["$1,000"], 19, [*pages(19, "c", (50, 70)), rotated("r", (50, 70))]),
]


def test_multidocvqa_val_images_are_the_pages_in_order(tmp_path: Path) -> None:
    docs = hub_rows(pq.mp_docvqa(tmp_path / "MP", MP_ROWS))
    folder, records = materialise("parquet:MP", "multidocvqa_val", tmp_path)
    assert [r["id"] for r in records] == ["57344", "57345", "57346"]
    preset = load_preset("multidocvqa_val")
    for (_, _, answers, page_idx, raws), record, doc in zip(MP_ROWS, records, docs, strict=True):
        assert "image" not in record and "image_error" not in record
        assert record["answers"] == answers  # the string parsed as lmms-eval parses it
        assert record["evidence_page"] == page_idx + 1
        # the page files are the dataset's bytes, in column order
        assert [(folder / p).read_bytes() for p in record["images"]] == raws
        theirs = multidocvqa_doc_to_visual(doc)
        assert len(theirs) == len(record["images"])
        for path, image in zip(record["images"], theirs, strict=True):
            assert same_pixels(decoded(folder / path), image)
        prompt = render_template(preset.prompt, record)
        assert prompt == multidocvqa_doc_to_text(doc, MULTIDOCVQA_KWARGS)
    assert [r["category"] for r in records] == [
        "evidence:middle",
        "evidence:first",
        "evidence:last",
    ]
    assert len(records[2]["images"]) == 20


def test_multidocvqa_val_files_are_named_by_row_and_page(tmp_path: Path) -> None:
    pq.mp_docvqa(tmp_path / "MP", MP_ROWS[:1])
    _, records = materialise("parquet:MP", "multidocvqa_val", tmp_path)
    assert records[0]["images"] == [f"images/0000000-{k:02d}.png" for k in (1, 2, 3)]


def test_multidocvqa_val_hub_sources_are_lmms_evals_then_the_old_org() -> None:
    preset = load_preset("multidocvqa_val")
    assert preset.hub_sources() == [
        "hf:lmms-lab-encoder/MP-DocVQA@val",
        "hf:lmms-lab/MP-DocVQA@val",
    ]
    assert (preset.max_tokens, preset.metrics) == (32, ("mpdocvqa_anls", "mpdocvqa_accuracy"))


def test_multidocvqa_val_skips_null_pages_between_pages(tmp_path: Path) -> None:
    raws = pages(4, "g")
    holes: list[bytes | None] = [raws[0], None, raws[1], None, raws[2], raws[3]]
    pq.mp_docvqa(tmp_path / "MP", [("1", "q", ["a"], 0, holes)])
    folder, records = materialise("parquet:MP", "multidocvqa_val", tmp_path)
    assert [(folder / p).read_bytes() for p in records[0]["images"]] == raws


@pytest.mark.parametrize("text", ["a, b", "['a', 3]", "'a'", "[]", "__import__('os')"])
def test_multidocvqa_val_refuses_answers_that_are_not_a_list_of_strings(
    tmp_path: Path, text: str
) -> None:
    pq.mp_docvqa(tmp_path / "MP", MP_ROWS[:1], answers_text=[text])
    with pytest.raises(ConfigError, match=r"split 'val', row 0: column 'answers'") as info:
        materialise("parquet:MP", "multidocvqa_val", tmp_path)
    assert info.value.column == "answers"


def test_an_undecodable_page_fails_its_sample_only(tmp_path: Path) -> None:
    bad: list[bytes | None] = [pages(1, "x")[0], b"not an image"]
    pq.mp_docvqa(tmp_path / "MP", [MP_ROWS[0], ("9", "q", ["a"], 0, bad)])
    _, records = materialise("parquet:MP", "multidocvqa_val", tmp_path)
    assert "image_error" not in records[0]
    assert records[1]["images"] == ["images/0000001.undecodable"]
    assert "row 1: images do not decode (column 'image_2': " in records[1]["image_error"]


def test_a_row_without_pages_fails_its_sample_only(tmp_path: Path) -> None:
    pq.mp_docvqa(tmp_path / "MP", [("9", "q", ["a"], 0, [])])
    _, records = materialise("parquet:MP", "multidocvqa_val", tmp_path)
    assert "no image in image_1 .. image_20" in records[0]["image_error"]


def test_a_missing_page_column_is_a_config_error(tmp_path: Path) -> None:
    path = pq.mp_docvqa(tmp_path / "MP", MP_ROWS[:1])
    table = datasets.Dataset.from_parquet(str(path)).remove_columns("image_20")
    path.unlink()
    table.to_parquet(str(path))
    with pytest.raises(ConfigError, match="missing column 'image_20'") as info:
        materialise("parquet:MP", "multidocvqa_val", tmp_path)
    assert info.value.column == "image_20"


# ---- SlideVQA -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n_pages", "n_grids"), [(20, 5), (19, 5), (11, 4), (7, 4), (5, 5), (3, 3), (1, 1)]
)
def test_slidevqa_val_sends_lmms_evals_grids(tmp_path: Path, n_pages: int, n_grids: int) -> None:
    raws: list[bytes | None] = list(pages(n_pages, "s", (40, 30)))
    if n_pages > 2:
        raws[1] = encoded("wide", (56, 24))  # a page of another size, pasted at its own
        raws[2] = rotated("turned", (40, 30))  # 30 x 40 once its EXIF orientation applies
    [doc] = hub_rows(pq.slidevqa(tmp_path / "S", [(7, "What is shown?", "Chart", raws)]))
    folder, records = materialise("parquet:S", "slidevqa_val", tmp_path)
    record = records[0]
    theirs = slidevqa_doc_to_visual(doc)
    assert len(record["images"]) == len(theirs) == n_grids
    assert all(p.endswith(".png") for p in record["images"])
    for path, grid in zip(record["images"], theirs, strict=True):
        assert same_pixels(decoded(folder / path), grid)
    assert record["id"] == "7" and record["answers"] == ["Chart"]


def test_slidevqa_val_prompt_and_missing_answer(tmp_path: Path) -> None:
    rows: list[tuple[int, str, str | None, list[bytes | None]]] = [
        (1, "How many {items}?", None, list(pages(2, "p"))),
        (2, " New\nline ", "New\nYork", list(pages(1, "q"))),
    ]
    docs = hub_rows(pq.slidevqa(tmp_path / "S", rows))
    _, records = materialise("parquet:S", "slidevqa_val", tmp_path)
    preset = load_preset("slidevqa_val")
    assert [r["answers"] for r in records] == [["not answerable"], ["New\nYork"]]
    for record, doc in zip(records, docs, strict=True):
        assert render_template(preset.prompt, record) == slidevqa_doc_to_text(doc, SLIDEVQA_KWARGS)
    assert (preset.max_tokens, preset.split) == (128, "val")


def test_slidevqa_val_undecodable_page_names_its_column(tmp_path: Path) -> None:
    raws: list[bytes | None] = [*pages(3, "u"), b"\x89PNG broken"]
    pq.slidevqa(tmp_path / "S", [(1, "q", "a", raws)])
    _, records = materialise("parquet:S", "slidevqa_val", tmp_path)
    assert "column 'page_4'" in records[0]["image_error"]
    assert records[0]["images"] == ["images/0000000.undecodable"]


# ---- single-image presets: unchanged output ----------------------------------------------
def test_a_single_image_preset_still_writes_one_image_per_row(tmp_path: Path) -> None:
    raws = [pq.png("one"), pq.jpeg("two")]
    rows = [("11", "q1", ["a"]), ("12", "q2", ["b", "c"])]
    pq.docvqa(tmp_path / "D", rows, images=raws)
    folder, records = materialise("parquet:D", "docvqa_val", tmp_path)
    manifest = (folder / "manifest.jsonl").read_text(encoding="utf-8")
    assert manifest == (
        '{"id": "11", "question": "q1", "answers": ["a"], "image": "images/0000000.png"}\n'
        '{"id": "12", "question": "q2", "answers": ["b", "c"], "image": "images/0000001.jpg"}\n'
    )
    assert [(folder / r["image"]).read_bytes() for r in records] == raws
    assert sorted(p.name for p in (folder / "images").iterdir()) == ["0000000.png", "0000001.jpg"]
