"""The synthetic multi-page PDFs: deterministic, with a text layer that holds every
answer on its evidence page (read back with pypdfium2), and the builtin source."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
from PIL import Image

from pytest_vlmhb.errors import ConfigError
from pytest_vlmhb.tasks import synthetic_pdf
from pytest_vlmhb.tasks.sources import resolve_manifest, synthetic_multipage_dir
from pytest_vlmhb.tasks.synthetic_pdf import (
    BAR_RGB,
    FIRST,
    LAST,
    MIDDLE,
    build_documents,
    generate_multipage_docs,
)

REPO = Path(__file__).resolve().parents[2]
KEYS = ["id", "document", "question", "answers", "evidence_page", "category"]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _rows(root: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (root / "docvqa.jsonl").read_text().splitlines()]


def _page_texts(pdf: Path) -> list[str]:
    doc = pdfium.PdfDocument(pdf)
    try:
        return [doc[i].get_textpage().get_text_range() for i in range(len(doc))]
    finally:
        doc.close()


def _occurs(answer: str, text: str) -> bool:
    """``answer`` as a whole token run (``42`` is not in ``1425``, ``$4.20`` not in ``$14.20``)."""
    return re.search(rf"(?<![\w$.,]){re.escape(answer)}(?![\w])", text) is not None


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("multipage") / "docs"
    generate_multipage_docs(out, n_docs=9, seed=0)
    return out


def test_manifest_lines_name_a_document_and_its_evidence_page(dataset: Path) -> None:
    rows = _rows(dataset)
    assert len(rows) == 18  # two questions per document
    for row in rows:
        assert list(row) == KEYS
        assert (dataset / row["document"]).is_file()
        assert row["document"].startswith("documents/") and row["document"].endswith(".pdf")
        assert isinstance(row["evidence_page"], int) and row["answers"]
    assert len({r["id"] for r in rows}) == len(rows)


def test_every_answer_is_in_the_text_layer_of_its_evidence_page_only(dataset: Path) -> None:
    for row in _rows(dataset):
        texts = _page_texts(dataset / row["document"])
        assert 2 <= len(texts) <= 8
        printed = row["answers"][0]
        pages = [i for i, text in enumerate(texts, start=1) if _occurs(printed, text)]
        assert pages == [row["evidence_page"]], (row, pages)


def test_category_is_the_evidence_pages_position(dataset: Path) -> None:
    counts: dict[str, int] = {}
    for row in _rows(dataset):
        n_pages = len(pdfium.PdfDocument(dataset / row["document"]))
        page = row["evidence_page"]
        expected = FIRST if page == 1 else LAST if page == n_pages else MIDDLE
        assert row["category"] == expected
        counts[row["category"]] = counts.get(row["category"], 0) + 1
    assert counts == {FIRST: 6, MIDDLE: 6, LAST: 6}


def test_the_contract_names_its_parties_first_and_is_signed_last(dataset: Path) -> None:
    texts = _page_texts(dataset / "documents/contract-00.pdf")
    assert "(the Supplier)" in texts[0] and "(the Client)" in texts[0]
    assert "Signed on " in texts[-1]
    assert all("Signed on " not in t for t in texts[:-1])


def test_the_invoice_table_runs_across_pages_to_the_total(dataset: Path) -> None:
    texts = _page_texts(dataset / "documents/invoice-01.pdf")
    assert len(texts) >= 3
    for text in texts:  # every page carries line items under the table head
        assert "Description" in text and len(re.findall(r"\$\d[\d,]*\.\d\d", text)) >= 1
    assert all("Continued on the next page." in t for t in texts[:-1])
    assert "TOTAL DUE" in texts[-1] and all("TOTAL DUE" not in t for t in texts[:-1])
    amounts = [
        int(m.replace(",", "").replace(".", ""))
        for t in texts
        for m in re.findall(r"\$(\d[\d,]*\.\d\d)", t)
    ]
    assert amounts[-1] == sum(amounts[:-1])  # the total adds up the items of all pages


def test_the_report_chart_is_drawn_with_labelled_bars(dataset: Path) -> None:
    docs = build_documents(9, seed=0)
    for i, doc in enumerate(docs):
        if doc.kind != "report":
            continue
        chart_q = next(q for q in doc.questions if q.text.startswith("According to the chart"))
        pdf = pdfium.PdfDocument(dataset / f"documents/report-{i:02d}.pdf")
        for number in range(1, len(pdf) + 1):
            image = pdf[number - 1].render(scale=1).to_pil().convert("RGB")
            colors = image.getcolors(maxcolors=1 << 16) or []
            bar_pixels = sum(count for count, rgb in colors if rgb == BAR_RGB)
            assert (bar_pixels > 200) == (number == chart_q.page), (i, number)
        text = _page_texts(dataset / f"documents/report-{i:02d}.pdf")[chart_q.page - 1]
        assert re.search(rf"\b{chart_q.answers[0]}\b", text)


def test_pages_render_to_images(dataset: Path) -> None:
    pdf = pdfium.PdfDocument(dataset / "documents/report-02.pdf")
    assert pdf[0].get_size() == pytest.approx((148 / 25.4 * 72, 210 / 25.4 * 72), abs=0.01)
    image = pdf[0].render(scale=2).to_pil()
    assert isinstance(image, Image.Image) and image.size == (840, 1191)


def test_byte_identical_across_runs_and_processes(tmp_path: Path) -> None:
    generate_multipage_docs(tmp_path / "a", n_docs=4, seed=5)
    generate_multipage_docs(tmp_path / "b", n_docs=4, seed=5)
    env = {**os.environ, "PYTHONHASHSEED": "999", "PYTHONPATH": str(REPO)}
    module = "pytest_vlmhb.tasks.synthetic_pdf"
    subprocess.run(
        [sys.executable, "-m", module, str(tmp_path / "c"), "--n", "4", "--seed", "5"],
        check=True,
        env=env,
        capture_output=True,
    )
    files = _files(tmp_path / "a")
    assert len([f for f in files if f.endswith(".pdf")]) == 4
    assert files == _files(tmp_path / "b") == _files(tmp_path / "c")


def test_seed_changes_the_documents(tmp_path: Path) -> None:
    generate_multipage_docs(tmp_path / "a", n_docs=3, seed=1)
    generate_multipage_docs(tmp_path / "b", n_docs=3, seed=2)
    assert _rows(tmp_path / "a") != _rows(tmp_path / "b")


def test_page_counts_span_two_to_eight() -> None:
    counts = {len(doc.pages) for seed in range(6) for doc in build_documents(6, seed)}
    assert min(counts) == 2 and max(counts) == 8


def test_the_default_set_is_generated_fast(tmp_path: Path) -> None:
    started = time.perf_counter()
    generate_multipage_docs(tmp_path / "d")
    assert time.perf_counter() - started < 2.0
    rows = _rows(tmp_path / "d")
    assert len(rows) == 12 and len({r["document"] for r in rows}) == 6


def test_too_few_documents_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        build_documents(0)


def test_text_wider_than_the_page_is_refused() -> None:
    page = (synthetic_pdf.Line("text", "x" * 200),)
    with pytest.raises(ValueError, match="does not fit"):
        synthetic_pdf.render_pdf([page], "t")


def test_builtin_source_resolves_to_the_cached_manifest(tmp_path: Path) -> None:
    manifest = resolve_manifest("builtin:synthetic-multipage", "docvqa", tmp_path, tmp_path)
    assert manifest == synthetic_multipage_dir(tmp_path) / "docvqa.jsonl"
    assert len(_rows(manifest.parent)) == 12
    before = manifest.stat().st_mtime_ns
    assert resolve_manifest("builtin:synthetic-multipage", "docvqa", tmp_path, tmp_path) == manifest
    assert manifest.stat().st_mtime_ns == before  # generated once, then reused


def test_builtin_source_of_another_type_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has no 'ocr' samples") as info:
        resolve_manifest("builtin:synthetic-multipage", "ocr", tmp_path, tmp_path)
    assert info.value.allowed == ["docvqa"]
    assert not (tmp_path / "data").exists()  # nothing generated for a bad row


def test_unknown_builtin_lists_both(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_manifest("builtin:nope", "docvqa", tmp_path, tmp_path)
    assert info.value.allowed == ["builtin:synthetic-docs", "builtin:synthetic-multipage"]


def test_benchmarks_task_row() -> None:
    rows = (REPO / "benchmarks" / "tasks.csv").read_text().splitlines()
    assert "synth-multipage,docvqa,builtin:synthetic-multipage" in rows
