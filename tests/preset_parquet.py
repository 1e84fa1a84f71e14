"""Small parquet copies of the public benchmarks, in their published hub layouts.

Each builder writes the columns and feature types of the hub dataset (images
as the ``datasets`` Image feature) under the hub's file naming
(``<config>/<split>-00000-of-00001.parquet`` or ``data/<split>-...``), so the
tests read them through ``datasets.load_dataset`` exactly like a hub copy.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw


def png(text: str = "", size: tuple[int, int] = (96, 48)) -> bytes:
    """A small white PNG with some text on it."""
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).text((4, 4), text, fill="black")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def jpeg(text: str = "") -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(png(text))).convert("RGB").save(buf, format="JPEG")
    return buf.getvalue()


def write(path: Path, columns: dict[str, list[Any]], features: dict[str, Any]) -> Path:
    """One parquet file with the given columns and ``datasets`` features."""
    import datasets

    path.parent.mkdir(parents=True, exist_ok=True)
    table = datasets.Dataset.from_dict(columns, features=datasets.Features(features))
    table.to_parquet(str(path))
    return path


def _image(raw: bytes) -> dict[str, Any]:
    return {"bytes": raw, "path": None}


def _value(kind: str = "string") -> Any:
    import datasets

    return datasets.Value(kind)


def _strings() -> Any:
    import datasets

    return datasets.Sequence(datasets.Value("string"))


def _image_feature() -> Any:
    import datasets

    return datasets.Image()


def docvqa(
    root: Path,
    rows: Sequence[tuple[str, str, list[str]]],
    *,
    config: str = "DocVQA",
    split: str = "validation",
    images: Sequence[bytes] | None = None,
) -> Path:
    """lmms-lab/DocVQA (configs DocVQA, InfographicVQA): (questionId, question, answers)."""
    images = images or [png(q) for _, q, _ in rows]
    columns = {
        "questionId": [r[0] for r in rows],
        "question": [r[1] for r in rows],
        "question_types": [["free_text"] for _ in rows],
        "image": [_image(raw) for raw in images],
        "docId": list(range(len(rows))),
        "ucsf_document_id": ["x" for _ in rows],
        "ucsf_document_page_no": ["1" for _ in rows],
        "answers": [r[2] for r in rows],
        "data_split": [split for _ in rows],
    }
    features = {
        "questionId": _value(),
        "question": _value(),
        "question_types": _strings(),
        "image": _image_feature(),
        "docId": _value("int32"),
        "ucsf_document_id": _value(),
        "ucsf_document_page_no": _value(),
        "answers": _strings(),
        "data_split": _value(),
    }
    return write(root / config / f"{split}-00000-of-00001.parquet", columns, features)


def chartqa(root: Path, rows: Sequence[tuple[str, str, str]], split: str = "test") -> Path:
    """lmms-lab/ChartQA: (type, question, answer), image."""
    columns = {
        "type": [r[0] for r in rows],
        "question": [r[1] for r in rows],
        "answer": [r[2] for r in rows],
        "image": [_image(png(r[1])) for r in rows],
    }
    features = {
        "type": _value(),
        "question": _value(),
        "answer": _value(),
        "image": _image_feature(),
    }
    return write(root / "data" / f"{split}-00000-of-00001.parquet", columns, features)


def ocrbench(root: Path, rows: Sequence[tuple[str, str, str, list[str]]]) -> Path:
    """echo840/OCRBench: (dataset, question, question_type, answer list), image."""
    columns = {
        "dataset": [r[0] for r in rows],
        "question": [r[1] for r in rows],
        "question_type": [r[2] for r in rows],
        "answer": [r[3] for r in rows],
        "image": [_image(png(r[1])) for r in rows],
    }
    features = {
        "dataset": _value(),
        "question": _value(),
        "question_type": _value(),
        "answer": _strings(),
        "image": _image_feature(),
    }
    return write(root / "data" / "test-00000-of-00001.parquet", columns, features)


def cord(root: Path, parses: Sequence[dict[str, Any]]) -> Path:
    """naver-clova-ix/cord-v2: image, ground_truth (JSON text with gt_parse)."""
    truths = [
        json.dumps(
            {
                "gt_parse": p,
                "meta": {"version": "2.0.0", "split": "test"},
                "valid_line": [],
                "roi": {},
                "repeating_symbol": [],
                "dontcare": [],
            }
        )
        for p in parses
    ]
    columns = {"image": [_image(jpeg(str(i))) for i in range(len(parses))], "ground_truth": truths}
    features = {"image": _image_feature(), "ground_truth": _value()}
    return write(root / "data" / "test-00000-of-00001.parquet", columns, features)


def ccocr_kie(root: Path, rows: Sequence[tuple[str, str, dict[str, Any]]]) -> Path:
    """wulipc/CC-OCR config kie: (split subset, image_name, answer object), question."""
    columns = {
        "index": list(range(len(rows))),
        "image": [_image(png(r[1])) for r in rows],
        "image_name": [r[1] for r in rows],
        "question": [
            'Extract: {"company": "", "date": "", "address": "", "total": ""}' for _ in rows
        ],
        "answer": [json.dumps(r[2]) for r in rows],
        "split": [r[0] for r in rows],
        "l2-category": ["constrained_category" for _ in rows],
    }
    features = {
        "index": _value("int64"),
        "image": _image_feature(),
        "image_name": _value(),
        "question": _value(),
        "answer": _value(),
        "split": _value(),
        "l2-category": _value(),
    }
    return write(root / "kie" / "test-00000-of-00001.parquet", columns, features)


def _pages(prefix: str, pages: Sequence[bytes | None], count: int = 20) -> dict[str, list[Any]]:
    """``<prefix>1`` .. ``<prefix>20`` of one row: the pages given, then nulls."""
    padded = [*pages, *([None] * (count - len(pages)))]
    return {
        f"{prefix}{i}": [_image(raw) if raw is not None else None]
        for i, raw in enumerate(padded, 1)
    }


def _merge(rows: Sequence[dict[str, list[Any]]]) -> dict[str, list[Any]]:
    return {key: [value for row in rows for value in row[key]] for key in rows[0]}


def mp_docvqa(
    root: Path,
    rows: Sequence[tuple[str, str, list[str], int, Sequence[bytes | None]]],
    *,
    split: str = "val",
    answers_text: Sequence[str] | None = None,
) -> Path:
    """lmms-lab/MP-DocVQA: (questionId, question, answers, answer_page_idx, pages).

    Every column a string as on the hub (``answers`` the ``str()`` of a Python list,
    or ``answers_text``), ``image_1`` .. ``image_20`` Images, null past the pages."""
    texts = answers_text or [str(r[2]) for r in rows]
    per_row = [
        {
            "questionId": [r[0]],
            "question": [r[1]],
            "doc_id": [f"doc{i}"],
            "page_ids": [str([f"doc{i}_p{p}" for p in range(len(r[4]))])],
            "answers": [texts[i]],
            "answer_page_idx": [str(r[3])],
            "data_split": [split],
            **_pages("image_", r[4]),
        }
        for i, r in enumerate(rows)
    ]
    features = {
        name: _value()
        for name in (
            "questionId",
            "question",
            "doc_id",
            "page_ids",
            "answers",
            "answer_page_idx",
            "data_split",
        )
    } | {f"image_{i}": _image_feature() for i in range(1, 21)}
    return write(root / "data" / f"{split}-00000-of-00001.parquet", _merge(per_row), features)


def slidevqa(
    root: Path,
    rows: Sequence[tuple[int, str, str | None, Sequence[bytes | None]]],
    *,
    split: str = "val",
) -> Path:
    """NTT-hil-insight/SlideVQA: (qa_id, question, answer or None, pages); ``page_1`` ..
    ``page_20`` Images (null past the deck's pages), with the deck and evidence columns."""
    per_row = [
        {
            "qa_id": [r[0]],
            "deck_name": [f"deck-{r[0]}"],
            "deck_url": [f"https://example.invalid/deck-{r[0]}"],
            "question": [r[1]],
            "answer": [r[2]],
            "arithmetic_expression": [None],
            "evidence_pages": [[1]],
            **_pages("page_", r[3]),
        }
        for r in rows
    ]
    import datasets

    features = {
        "qa_id": _value("int64"),
        "deck_name": _value(),
        "deck_url": _value(),
        "question": _value(),
        "answer": _value(),
        "arithmetic_expression": _value(),
        "evidence_pages": datasets.Sequence(datasets.Value("int64")),
    } | {f"page_{i}": _image_feature() for i in range(1, 21)}
    return write(root / "data" / f"{split}-00000-of-00001.parquet", _merge(per_row), features)
