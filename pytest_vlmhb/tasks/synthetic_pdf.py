"""Built-in synthetic multi-page documents: real PDFs with a text layer.

Contracts (parties on page 1, signature date on the last page), invoices (a
line-item table running across pages, the total on the last page) and reports
(a bar chart with labelled values on page k), 2-8 pages each, drawn with
fpdf2's core fonts, so every string is both drawn and extractable. Each
question records its 1-based ``evidence_page`` and a ``category`` naming
where that page lies (``evidence:first``, ``evidence:middle``,
``evidence:last``). Deterministic: seeded ``random.Random`` instances only and
fixed PDF metadata, so a machine writes byte-identical files:

    python -m pytest_vlmhb.tasks.synthetic_pdf OUT_DIR [--n N] [--seed S]

The folder holds ``documents/*.pdf`` and ``docvqa.jsonl``, whose lines give a
``document`` (relative path) instead of an ``image``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .presets import FIRST, LAST, MIDDLE, evidence_category
from .synthetic import (
    _COMPANIES,
    _ITEMS,
    COMPLETE_MARKER,
    Line,
    _date,
    _money,
    _person,
    write_atomically,
)

if TYPE_CHECKING:
    from fpdf import FPDF

MULTIPAGE_VERSION = "1"
TASK_TYPES = ("docvqa",)
KINDS = ("contract", "invoice", "report")
MIN_PAGES, MAX_PAGES = 2, 8
#: Evidence positions asked per document; document i takes ``ROTATIONS[(i + i // 3) % 3]``,
#: so six documents ask four questions of each position.
ROTATIONS = ((FIRST, MIDDLE), (MIDDLE, LAST), (LAST, FIRST))

PAGE_W, PAGE_H = 148.0, 210.0  # mm (A5 portrait)
MARGIN = 14.0
FOOTER_Y = PAGE_H - 10.0
BODY_BOTTOM = PAGE_H - 18.0
CREATED = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)  # fixed: no clock in the files

_SIZES = ("small", "medium", "large", "XL", "pack of 10", "pack of 50", "refill", "deluxe")
_CLAUSES = (
    "Scope of services",
    "Fees and payment",
    "Confidentiality",
    "Liability",
    "Warranties",
    "Force majeure",
    "Assignment",
    "Insurance",
    "Audit rights",
    "Governing law",
    "Dispute resolution",
    "Entire agreement",
)
_LEGAL = (
    "Each party shall act in good faith.",
    "The Supplier shall perform the services with due care.",
    "The Client shall provide timely access to its premises.",
    "No waiver of any right shall be effective unless written.",
    "Neither party may assign this agreement without consent.",
    "All notices shall be given in writing.",
    "Both parties shall keep all shared information secret.",
    "Invoices are payable on receipt unless agreed otherwise.",
    "This clause survives the end of the agreement.",
    "Any change to this agreement must be signed by both parties.",
)
_PROSE = (
    "Demand stayed strong across the period.",
    "Costs were kept under control by the team.",
    "New customers joined in every region.",
    "The board reviewed the plan for next year.",
    "Staff training continued as planned.",
    "Delivery times improved over the period.",
    "Several suppliers were replaced this year.",
    "The outlook for the coming period is stable.",
    "Marketing focused on existing customers.",
    "The company opened a new warehouse.",
)
_CHART_SETS = (
    ("Orders by region", ("North", "South", "East", "West", "Central")),
    ("Sales by quarter", ("Q1", "Q2", "Q3", "Q4")),
    ("Visitors by month", ("Jan", "Feb", "Mar", "Apr", "May", "Jun")),
    ("Units sold by product", ("Pens", "Paper", "Toner", "Tape", "Ink")),
)


# ---------------------------------------------------------------- page content


class Chart(NamedTuple):
    """A bar chart: one bar per label with its value printed above it."""

    title: str
    labels: tuple[str, ...]
    values: tuple[int, ...]


Block = Line | Chart
Page = tuple[Block, ...]

#: style -> (font style, size in pt, line height in mm); see :class:`synthetic.Line`.
_STYLES: dict[str, tuple[str, float, float]] = {
    "title": ("B", 15, 10),
    "heading": ("B", 11.5, 8),
    "text": ("", 9.5, 5.5),
    "pair": ("", 9.5, 5.5),
    "rule": ("", 9.5, 3),
    "blank": ("", 9.5, 3),
}
CHART_H = 72.0  # mm, title and axis labels included
CHART_UNIT = 0.5  # mm of bar per unit of value (values are 10..99)
BAR_RGB = (66, 110, 190)


def _put(pdf: FPDF, x: float, y: float, text: str) -> None:
    """Draw ``text`` with its baseline at ``y``, refusing text past the right margin."""
    if x < MARGIN - 1e-6 or x + pdf.get_string_width(text) > PAGE_W - MARGIN + 1e-6:
        raise ValueError(f"text does not fit a {PAGE_W:g} mm wide page: {text!r}")
    pdf.text(x, y, text)


def _draw_line(pdf: FPDF, y: float, line: Line) -> float:
    font, size, step = _STYLES[line.style]
    pdf.set_font("Helvetica", font, size)
    if line.style == "rule":
        pdf.line(MARGIN, y + 1.5, PAGE_W - MARGIN, y + 1.5)
    elif line.style != "blank":
        _put(pdf, MARGIN, y + step - 1.5, line.text)
        if line.value:
            _put(
                pdf, PAGE_W - MARGIN - pdf.get_string_width(line.value), y + step - 1.5, line.value
            )
    return step


def _draw_chart(pdf: FPDF, y: float, chart: Chart) -> float:
    pdf.set_font("Helvetica", "B", 10.5)
    _put(pdf, MARGIN, y + 6, chart.title)
    base = y + CHART_H - 10
    pdf.set_line_width(0.4)
    pdf.line(MARGIN, base, PAGE_W - MARGIN, base)
    slot = (PAGE_W - 2 * MARGIN) / len(chart.labels)
    pdf.set_font("Helvetica", "", 9)
    for i, (label, value) in enumerate(zip(chart.labels, chart.values, strict=True)):
        left, width, height = MARGIN + i * slot + slot / 5, slot * 3 / 5, value * CHART_UNIT
        pdf.set_fill_color(*BAR_RGB)
        pdf.rect(left, base - height, width, height, style="F")
        middle = left + width / 2
        _put(pdf, middle - pdf.get_string_width(str(value)) / 2, base - height - 1.5, str(value))
        _put(pdf, middle - pdf.get_string_width(label) / 2, base + 5, label)
    pdf.set_line_width(0.2)
    return CHART_H


def render_pdf(pages: Sequence[Page], title: str) -> bytes:
    """The PDF of ``pages`` (each a top-to-bottom list of blocks), with page footers."""
    from fpdf import FPDF  # imported on first use: fpdf2 takes ~0.2 s to import

    pdf = FPDF(unit="mm", format=(PAGE_W, PAGE_H))
    pdf.set_auto_page_break(False)
    pdf.set_creation_date(CREATED)
    pdf.set_producer("pytest-vlmhb synthetic documents")
    pdf.set_title(title)
    for number, blocks in enumerate(pages, start=1):
        pdf.add_page()
        y = MARGIN
        for block in blocks:
            y += (
                _draw_chart(pdf, y, block)
                if isinstance(block, Chart)
                else _draw_line(pdf, y, block)
            )
        if y > BODY_BOTTOM:
            raise ValueError(f"page {number} of {title!r} overflows ({y:.0f} mm)")
        pdf.set_font("Helvetica", "", 8)
        footer = f"Page {number} of {len(pages)}"
        _put(pdf, (PAGE_W - pdf.get_string_width(footer)) / 2, FOOTER_Y, footer)
    return bytes(pdf.output())


# ---------------------------------------------------------------- documents


@dataclass(frozen=True)
class Question:
    """A question, its accepted answers (the first is the printed one) and its page."""

    text: str
    answers: tuple[str, ...]
    page: int  # 1-based


@dataclass(frozen=True)
class MultiPageDocument:
    kind: str
    title: str
    pages: tuple[Page, ...]
    questions: tuple[Question, ...]

    def render(self) -> bytes:
        return render_pdf(self.pages, self.title)


def _page_for(rng: random.Random, where: str, n_pages: int) -> int:
    if where == FIRST:
        return 1
    if where == LAST:
        return n_pages
    return rng.randint(2, n_pages - 1)


def _filler(rng: random.Random, pool: Sequence[str], count: int) -> list[Line]:
    return [Line("text", sentence) for sentence in rng.sample(pool, count)]


def _contract(rng: random.Random, n_pages: int, wanted: Sequence[str]) -> MultiPageDocument:
    supplier, client = rng.sample(_COMPANIES, 2)
    signer_a, signer_b = _person(rng), _person(rng)
    signed, notice = _date(rng), rng.choice((14, 30, 45, 60, 90))
    notice_page = _page_for(rng, MIDDLE, n_pages) if n_pages > 2 else n_pages
    clauses = iter(rng.sample(_CLAUSES, len(_CLAUSES)))
    pages: list[list[Block]] = []
    for number in range(1, n_pages + 1):
        blocks: list[Block] = []
        if number == 1:
            blocks += [
                Line("title", "SERVICE AGREEMENT"),
                Line("text", f"Agreement No. SA-{rng.randint(10000, 99999)}"),
                Line("blank"),
                Line("text", "This agreement is made between"),
                Line("text", f"{supplier} (the Supplier)"),
                Line("text", f"and {client} (the Client)."),
                Line("blank"),
            ]
        blocks += [Line("heading", next(clauses)), *_filler(rng, _LEGAL, 3), Line("blank")]
        if number == notice_page:
            blocks += [
                Line("heading", "Termination"),
                Line("text", "Either party may end this agreement"),
                Line("text", f"by giving {notice} days notice in writing."),
                Line("blank"),
            ]
        if number == n_pages:
            blocks += [
                Line("heading", "Signatures"),
                Line("text", f"Signed on {signed}."),
                Line("blank"),
                Line("pair", "For the Supplier:", signer_a),
                Line("pair", "For the Client:", signer_b),
            ]
        pages.append(blocks)
    asks = {
        FIRST: Question("Who is the Supplier under this agreement?", (supplier,), 1),
        MIDDLE: Question(
            "How many days of notice are needed to end the agreement?",
            (f"{notice} days", str(notice)),
            notice_page,
        ),
        LAST: Question("On what date was the agreement signed?", (signed,), n_pages),
    }
    return MultiPageDocument(
        "contract", "Service agreement", tuple(map(tuple, pages)), tuple(asks[w] for w in wanted)
    )


#: Line items on the first page, on each continuation page, and at most on the last.
_ROWS_FIRST, _ROWS_MIDDLE, _ROWS_LAST = 6, 14, 6


def _invoice(rng: random.Random, n_pages: int, wanted: Sequence[str]) -> MultiPageDocument:
    company, customer = rng.choice(_COMPANIES), _person(rng)
    number, date = f"INV-{rng.randint(10000, 99999)}", _date(rng)
    counts = [_ROWS_FIRST, *([_ROWS_MIDDLE] * (n_pages - 2)), rng.randint(1, _ROWS_LAST)]
    names = rng.sample([f"{item} {size}" for item in _ITEMS for size in _SIZES], sum(counts))
    cents = rng.sample(range(150, 90000), sum(counts))  # distinct amounts
    rows = iter(zip(names, cents, strict=True))
    total = f"${_money(sum(cents))}"
    table_head = [Line("rule"), Line("pair", "Description", "Amount"), Line("rule")]
    pages: list[list[Block]] = []
    on_page: list[list[tuple[str, int]]] = []
    for page_no, count in enumerate(counts, start=1):
        blocks: list[Block] = []
        if page_no == 1:
            blocks += [
                Line("title", company),
                Line("heading", "INVOICE"),
                Line("pair", "Invoice No:", number),
                Line("pair", "Date:", date),
                Line("pair", "Bill to:", customer),
                Line("blank"),
            ]
        else:
            blocks.append(Line("heading", "INVOICE (continued)"))
        items = [next(rows) for _ in range(count)]
        on_page.append(items)
        blocks += table_head
        blocks += [Line("pair", name, f"${_money(amount)}") for name, amount in items]
        blocks.append(Line("rule"))
        if page_no < n_pages:
            blocks.append(Line("text", "Continued on the next page."))
        else:
            blocks.append(Line("pair", "TOTAL DUE", total))
        pages.append(blocks)
    middle = _page_for(rng, MIDDLE, n_pages) if n_pages > 2 else n_pages
    item, amount = rng.choice(on_page[middle - 1])
    asks = {
        FIRST: Question("What is the invoice number?", (number,), 1),
        MIDDLE: Question(
            f"What is the amount charged for {item}?",
            (f"${_money(amount)}", _money(amount)),
            middle,
        ),
        LAST: Question("What is the total amount due?", (total, total[1:]), n_pages),
    }
    return MultiPageDocument(
        "invoice", f"Invoice {number}", tuple(map(tuple, pages)), tuple(asks[w] for w in wanted)
    )


def _report(rng: random.Random, n_pages: int, wanted: Sequence[str]) -> MultiPageDocument:
    company, author = rng.choice(_COMPANIES), _person(rng)
    approver = _person(rng)
    while approver == author:
        approver = _person(rng)
    title, labels = rng.choice(_CHART_SETS)
    count = rng.randint(3, len(labels))
    chart = Chart(title, labels[:count], tuple(rng.sample(range(10, 100), count)))
    pick = rng.randrange(count)
    # The chart answers the middle position when one is asked, else the first asked;
    # the other position asks who prepared (page 1) or approved (last page) the report.
    chart_at = MIDDLE if MIDDLE in wanted else wanted[0]
    chart_page = _page_for(rng, chart_at, n_pages)
    pages: list[list[Block]] = []
    for number in range(1, n_pages + 1):
        blocks: list[Block] = []
        if number == 1:
            blocks += [
                Line("title", company),
                Line("heading", "Annual report"),
                Line("text", f"Prepared by {author}"),
                Line("blank"),
            ]
        blocks += [Line("heading", "Review of the year"), *_filler(rng, _PROSE, 3)]
        if number == chart_page:
            blocks += [Line("blank"), chart]
        if number == n_pages:
            blocks += [Line("blank"), Line("text", f"Approved by {approver}")]
        pages.append(blocks)
    label = chart.labels[pick]
    asks = {
        FIRST: Question("Who prepared the report?", (author,), 1),
        LAST: Question("Who approved the report?", (approver,), n_pages),
    }
    asks[chart_at] = Question(
        f"According to the chart, what is the value for {label}?",
        (str(chart.values[pick]),),
        chart_page,
    )
    return MultiPageDocument(
        "report",
        f"{company} annual report",
        tuple(map(tuple, pages)),
        tuple(asks[w] for w in wanted),
    )


_BUILDERS: dict[str, Callable[[random.Random, int, Sequence[str]], MultiPageDocument]] = {
    "contract": _contract,
    "invoice": _invoice,
    "report": _report,
}


def build_documents(n_docs: int = 6, seed: int = 0) -> list[MultiPageDocument]:
    """``n_docs`` documents, kinds in turn, two questions each (pages not yet rendered)."""
    if n_docs < 1:
        raise ValueError(f"n_docs must be at least 1, not {n_docs}")
    master = random.Random(seed)
    docs = []
    for i in range(n_docs):
        rng = random.Random(master.getrandbits(64))  # one stream per document
        wanted = ROTATIONS[(i + i // 3) % 3]
        n_pages = rng.randint(MIN_PAGES + (MIDDLE in wanted), MAX_PAGES)
        docs.append(_BUILDERS[KINDS[i % len(KINDS)]](rng, n_pages, wanted))
    return docs


def manifest_rows(docs: Sequence[MultiPageDocument]) -> list[dict[str, object]]:
    """The docvqa manifest: one line per question, naming its document."""
    rows: list[dict[str, object]] = []
    for i, doc in enumerate(docs):
        stem = f"{doc.kind}-{i:02d}"
        for q, question in enumerate(doc.questions, start=1):
            rows.append(
                {
                    "id": f"{stem}-q{q}",
                    "document": f"documents/{stem}.pdf",
                    "question": question.text,
                    "answers": list(question.answers),
                    "evidence_page": question.page,
                    "category": evidence_category(question.page, len(doc.pages)),
                }
            )
    return rows


def _write(docs: Sequence[MultiPageDocument], root: Path, marker: str) -> None:
    (root / "documents").mkdir(parents=True)
    for i, doc in enumerate(docs):
        (root / "documents" / f"{doc.kind}-{i:02d}.pdf").write_bytes(doc.render())
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in manifest_rows(docs))
    (root / "docvqa.jsonl").write_bytes(text.encode("utf-8"))
    (root / COMPLETE_MARKER).write_bytes(marker.encode("utf-8"))


def generate_multipage_docs(out_dir: Path, n_docs: int = 6, seed: int = 0) -> None:
    """Write ``documents/*.pdf`` and ``docvqa.jsonl`` into ``out_dir``, atomically."""
    if (Path(out_dir) / COMPLETE_MARKER).exists():
        return
    docs = build_documents(n_docs, seed)
    marker = f"multipage {MULTIPAGE_VERSION} n={n_docs} seed={seed}\n"
    write_atomically(out_dir, lambda root: _write(docs, root, marker))


def main(argv: list[str] | None = None) -> int:
    """Command line: generate the documents into OUT_DIR and print its path."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_vlmhb.tasks.synthetic_pdf",
        description="Generate the built-in synthetic multi-page PDF documents.",
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    parser.add_argument("--n", type=int, default=6, help="documents (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    try:
        generate_multipage_docs(args.out_dir, args.n, args.seed)
    except (ValueError, FileExistsError) as exc:
        parser.error(str(exc))
    print(args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
