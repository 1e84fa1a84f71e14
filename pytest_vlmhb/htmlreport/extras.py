"""pytest-html extras of a ``test_sample`` item: its page thumbnail, answer and references.

Used only when pytest-html is importable and ``--html`` is given; the item hook
in plugin.py calls :func:`add_html_extras` and does nothing else.
"""

from __future__ import annotations

import base64
import html
import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from ..cases import Plan
from ..documents import preparer
from ..errors import SampleError
from ..records import Record
from ..redact import redact
from ..thumbs import THUMB_SIDE, shrink_jpeg


def pytest_html_extras() -> ModuleType | None:
    """``pytest_html.extras``, or None where pytest-html is not installed."""
    try:
        return importlib.import_module("pytest_html.extras")
    except ImportError:
        return None


def thumbnail(plan: Plan, record: Record, cache_dir: Path) -> bytes | None:
    """A JPEG thumbnail of the sample's first page (None: no page, or it does not decode)."""
    try:
        sample = plan.sample(record["case_id"], record["sample_id"])
        case = plan.case(record["case_id"])
    except KeyError:
        return None
    if sample.error is not None:
        return None
    try:
        prepared = preparer(cache_dir).prepare_blocking(
            images=sample.image_files,
            document=sample.document,
            pages=sample.pages,
            prep=case.image_prep,
        )
        return shrink_jpeg(prepared.images[0].data, THUMB_SIDE) if prepared.images else None
    except (SampleError, OSError, ValueError, SyntaxError):
        return None


def summary_html(record: Record) -> str:
    """The answer (scored, and raw where it differs), references, scores and error."""

    def line(name: str, value: object) -> str:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return f"<p><b>{name}</b>: <code>{html.escape(redact(text))}</code></p>"

    parts = [line("answer", record["answer"] if record["answer"] is not None else "(none)")]
    raw = record.get("raw_answer")
    if raw is not None and raw != record["answer"]:
        parts.append(line("raw answer", raw))
    parts.append(line("references", record["reference"]))
    parts.append(line("scores", record["scores"]))
    if record["error"]:
        parts.append(line("error", record["error"]))
    return f'<div class="vlmhb">{"".join(parts)}</div>'


def add_html_extras(report: Any, record: Record, plan: Plan, cache_dir: Path) -> None:
    """Append the sample's extras to ``report.extras`` (pytest-html 4)."""
    extras = pytest_html_extras()
    if extras is None:
        return
    added = []
    image = thumbnail(plan, record, cache_dir)
    if image is not None:
        added.append(extras.jpg(base64.b64encode(image).decode(), name="page 1"))
    added.append(extras.html(summary_html(record)))
    report.extras = [*getattr(report, "extras", []), *added]
