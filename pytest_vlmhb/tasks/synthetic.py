"""Built-in synthetic documents: invoices, receipts, forms, letters, text snippets, bar charts.

Deterministic (seeded ``random.Random`` instances only, Pillow's built-in font
with its basic layout engine, PNGs without metadata), so a machine generates
byte-identical datasets with known contents, giving samples for all five task
types offline:

    python -m pytest_vlmhb.tasks.synthetic OUT_DIR [--n N] [--seed S]

Each sample stream (documents, KIE documents, OCR snippets, charts) has its
own generator seeded from ``seed``, so the first k samples do not depend on
``n_per_type``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from PIL import Image, ImageDraw, ImageFont

SYNTHETIC_VERSION = "2"
TASK_TYPES = ("docvqa", "chartqa", "ocr", "kie", "doc_classification")
DOC_KINDS = ("invoice", "receipt", "form", "letter")
KIE_KINDS = ("invoice", "receipt")
COMPLETE_MARKER = ".complete"

WIDTH = 448  # of every image
PAGE = (WIDTH, 576)
CHART = (WIDTH, 336)
SNIPPET = (WIDTH, 128)
MARGIN = 28

CHART_BASELINE = 300  # y of the chart's x axis; bars stand on it
CHART_PX_PER_UNIT = 2  # bar height in pixels per unit of value (values are 5..99)
BAR_COLOR = (66, 110, 190)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Rows = dict[str, list[dict[str, Any]]]
QA = tuple[str, list[str]]

_COMPANIES = (
    "Acme Ltd",
    "Globex Corp",
    "Initech",
    "Umbrella Inc",
    "Stark Supplies",
    "Wayne Foods",
    "Hooli GmbH",
    "Vandelay Imports",
    "Soylent Co",
    "Tyrell Parts",
    "Nakatomi Trading",
    "Oscorp Office",
)
_FIRST = ("Ann", "Omar", "Mia", "Ravi", "Lena", "Tom", "Sara", "Jon", "Eva", "Ken", "Nora", "Luis")
_LAST = (
    "Lee",
    "Haddad",
    "Novak",
    "Shah",
    "Berg",
    "Ito",
    "Costa",
    "Diaz",
    "Klein",
    "Mori",
    "Okafor",
    "Walsh",
)
_STREETS = (
    "Main St",
    "Oak Ave",
    "Elm Road",
    "Harbor Way",
    "Mill Lane",
    "Park Blvd",
    "Cedar Court",
    "Bridge St",
)
_CITIES = (
    "Springfield",
    "Riverton",
    "Lakeside",
    "Hillview",
    "Fairport",
    "Brookfield",
    "Ashford",
    "Westmoor",
)
_ITEMS = (
    "Copy paper",
    "Toner",
    "Stapler",
    "Pens (box)",
    "Folders",
    "Packing tape",
    "USB cable",
    "Mouse",
    "Notebook",
    "Desk lamp",
    "Coffee",
    "Batteries",
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SENTENCES = (
    "Thank you for your recent order.",
    "Your package will ship this week.",
    "Please find the signed contract enclosed.",
    "We look forward to working with you.",
    "Payment is due within 30 days.",
    "Our office will be closed on Friday.",
    "The meeting has been moved to Monday.",
    "Please call us with any questions.",
)
_CHARTS = (
    ("Sales by quarter", ("Q1", "Q2", "Q3", "Q4")),
    ("Orders by region", ("North", "South", "East", "West", "Central")),
    ("Visitors by month", ("Jan", "Feb", "Mar", "Apr", "May", "Jun")),
    ("Units sold by product", ("Pens", "Paper", "Toner", "Tape", "Ink")),
)


# ---------------------------------------------------------------- drawing


@functools.cache
def _font(size: int) -> Font:
    """Pillow's built-in font at ``size`` (the fixed bitmap font without FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError):  # Pillow built without FreeType
        return ImageFont.load_default()


class Line(NamedTuple):
    """One line of a page: a style (see ``_DRAWERS``), its text and an optional value."""

    style: str
    text: str = ""
    value: str = ""


def _put(draw: ImageDraw.ImageDraw, x: float, y: int, text: str, size: int) -> None:
    """Draw ``text`` at (x, y), refusing text that would run off the image."""
    font = _font(size)
    if x < 0 or x + font.getlength(text) > WIDTH - MARGIN // 2:
        raise ValueError(f"text does not fit a {WIDTH}px wide image: {text!r}")
    draw.text((x, y), text, fill=(0, 0, 0), font=font)


def _right(draw: ImageDraw.ImageDraw, y: int, text: str, size: int) -> None:
    _put(draw, WIDTH - MARGIN - _font(size).getlength(text), y, text, size)


def _draw_title(draw: ImageDraw.ImageDraw, y: int, line: Line) -> None:
    _put(draw, MARGIN, y, line.text, 22)


def _draw_heading(draw: ImageDraw.ImageDraw, y: int, line: Line) -> None:
    _put(draw, MARGIN, y, line.text, 17)


def _draw_text(draw: ImageDraw.ImageDraw, y: int, line: Line) -> None:
    _put(draw, MARGIN, y, line.text, 15)


def _draw_center(draw: ImageDraw.ImageDraw, y: int, line: Line) -> None:
    _put(draw, (WIDTH - _font(15).getlength(line.text)) / 2, y, line.text, 15)


def _draw_pair(draw: ImageDraw.ImageDraw, y: int, line: Line) -> None:
    _put(draw, MARGIN, y, line.text, 15)
    _right(draw, y, line.value, 15)


def _draw_field(draw: ImageDraw.ImageDraw, y: int, line: Line) -> None:
    _put(draw, MARGIN, y, line.text, 15)
    draw.rectangle((168, y - 5, WIDTH - MARGIN, y + 21), outline=(0, 0, 0))
    _put(draw, 176, y, line.value, 15)


def _draw_rule(draw: ImageDraw.ImageDraw, y: int, line: Line) -> None:
    draw.line((MARGIN, y + 6, WIDTH - MARGIN, y + 6), fill=(0, 0, 0), width=1)


def _draw_blank(draw: ImageDraw.ImageDraw, y: int, line: Line) -> None:
    """Vertical space only."""


Drawer = Callable[[ImageDraw.ImageDraw, int, Line], None]
_DRAWERS: dict[str, tuple[Drawer, int]] = {  # style -> (drawer, line height)
    "title": (_draw_title, 36),
    "heading": (_draw_heading, 28),
    "text": (_draw_text, 22),
    "center": (_draw_center, 22),
    "pair": (_draw_pair, 22),
    "field": (_draw_field, 34),
    "rule": (_draw_rule, 14),
    "blank": (_draw_blank, 12),
}


def _render_lines(lines: Sequence[Line], size: tuple[int, int], top: int = MARGIN) -> Image.Image:
    """White page of ``size`` with ``lines`` drawn top to bottom."""
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    y = top
    for line in lines:
        drawer, step = _DRAWERS[line.style]
        drawer(draw, y, line)
        y += step
    if y > size[1] - MARGIN // 2:
        raise ValueError(f"{len(lines)} lines do not fit a {size[1]}px high image")
    return img


# ---------------------------------------------------------------- documents


@dataclass(frozen=True)
class Document:
    """A page: its lines, its key fields and questions (with answers) about it."""

    kind: str
    lines: tuple[Line, ...]
    fields: dict[str, Any]
    questions: tuple[QA, ...]

    def render(self) -> Image.Image:
        return _render_lines(self.lines, PAGE)


def _person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def _date(rng: random.Random) -> str:
    year, month, day = rng.randint(2018, 2025), rng.randint(1, 12), rng.randint(1, 28)
    formats = (
        f"{year}-{month:02d}-{day:02d}",
        f"{day:02d}/{month:02d}/{year}",
        f"{_MONTHS[month - 1]} {day}, {year}",
    )
    return rng.choice(formats)


def _street(rng: random.Random) -> str:
    return f"{rng.randint(1, 999)} {rng.choice(_STREETS)}"


def _address(rng: random.Random) -> str:
    return f"{_street(rng)}, {rng.choice(_CITIES)}"


def _money(cents: int) -> str:
    return f"{cents // 100:,}.{cents % 100:02d}"


def _items(rng: random.Random, count: int, low: int, high: int) -> list[tuple[str, int]]:
    return [(name, rng.randint(low, high)) for name in rng.sample(_ITEMS, count)]


def _invoice(rng: random.Random) -> Document:
    company, customer, address = rng.choice(_COMPANIES), _person(rng), _address(rng)
    number, date = f"INV-{rng.randint(1000, 99999)}", _date(rng)
    items = _items(rng, rng.randint(2, 5), 150, 90000)
    total = _money(sum(cents for _, cents in items))
    lines = [
        Line("title", company),
        Line("text", address),
        Line("blank"),
        Line("heading", "INVOICE"),
        Line("pair", "Invoice No:", number),
        Line("pair", "Date:", date),
        Line("pair", "Bill to:", customer),
        Line("rule"),
        Line("pair", "Description", "Amount"),
        Line("rule"),
        *(Line("pair", name, f"${_money(cents)}") for name, cents in items),
        Line("rule"),
        Line("pair", "TOTAL DUE", f"${total}"),
    ]
    fields: dict[str, Any] = {"company": company, "address": address}
    if rng.random() < 0.5:
        fields = {"vendor": {"name": company, "address": address}}
    fields |= {"invoice_number": number, "date": date, "total": total}
    return Document(
        "invoice",
        tuple(lines),
        fields,
        (
            ("What is the invoice number?", [number]),
            ("What is the total amount?", [f"${total}", total]),
            ("What is the invoice date?", [date]),
            ("Who is the invoice billed to?", [customer]),
        ),
    )


def _receipt(rng: random.Random) -> Document:
    company, address, date = rng.choice(_COMPANIES), _address(rng), _date(rng)
    items = _items(rng, rng.randint(2, 6), 99, 4999)
    total = _money(sum(cents for _, cents in items))
    lines = [
        Line("title", company),
        Line("center", address),
        Line("center", f"Date: {date}"),
        Line("rule"),
        *(Line("pair", name, _money(cents)) for name, cents in items),
        Line("rule"),
        Line("pair", "TOTAL", total),
        Line("blank"),
        Line("center", "Thank you for shopping with us!"),
    ]
    return Document(
        "receipt",
        tuple(lines),
        {"company": company, "date": date, "address": address, "total": total},
        (
            ("What is the total amount?", [total, f"${total}"]),
            ("What is the date on the receipt?", [date]),
            ("Which store issued the receipt?", [company]),
        ),
    )


def _form(rng: random.Random) -> Document:
    name, birth, city = _person(rng), _date(rng), rng.choice(_CITIES)
    member, phone = f"M-{rng.randint(10000, 99999)}", f"555-{rng.randint(1000, 9999)}"
    title = rng.choice(("MEMBERSHIP APPLICATION", "REGISTRATION FORM", "CUSTOMER DETAILS"))
    lines = [
        Line("title", title),
        Line("text", "Please complete all fields."),
        Line("blank"),
        Line("field", "Full name", name),
        Line("field", "Date of birth", birth),
        Line("field", "City", city),
        Line("field", "Phone", phone),
        Line("field", "Member ID", member),
        Line("blank"),
        Line("text", "Signature: ____________________"),
    ]
    return Document(
        "form",
        tuple(lines),
        {"name": name, "date_of_birth": birth, "city": city, "phone": phone, "member_id": member},
        (
            ("What is the member ID?", [member]),
            ("What is the applicant's full name?", [name]),
            ("What is the date of birth?", [birth]),
            ("Which city is given on the form?", [city]),
        ),
    )


def _letter(rng: random.Random) -> Document:
    sender, signer, recipient = rng.choice(_COMPANIES), _person(rng), _person(rng)
    while recipient == signer:
        recipient = _person(rng)
    date, street, city = _date(rng), _street(rng), rng.choice(_CITIES)
    body = rng.sample(_SENTENCES, 3)
    lines = [
        Line("title", sender),
        Line("text", _address(rng)),
        Line("blank"),
        Line("text", date),
        Line("blank"),
        Line("text", recipient),
        Line("text", street),
        Line("text", city),
        Line("blank"),
        Line("text", f"Dear {recipient},"),
        Line("blank"),
        *(Line("text", sentence) for sentence in body),
        Line("blank"),
        Line("text", "Sincerely,"),
        Line("text", signer),
    ]
    return Document(
        "letter",
        tuple(lines),
        {"sender": sender, "signer": signer, "recipient": recipient, "date": date},
        (
            ("Who is the letter addressed to?", [recipient]),
            ("Who signed the letter?", [signer]),
            ("What is the date of the letter?", [date]),
            ("Which company sent the letter?", [sender]),
        ),
    )


_DOC_BUILDERS: dict[str, Callable[[random.Random], Document]] = {
    "invoice": _invoice,
    "receipt": _receipt,
    "form": _form,
    "letter": _letter,
}


# ---------------------------------------------------------------- OCR snippets


@dataclass(frozen=True)
class Snippet:
    """1-4 lines of printed text."""

    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def render(self) -> Image.Image:
        return _render_lines([Line("text", line) for line in self.lines], SNIPPET, top=18)


def _address_block(rng: random.Random) -> list[str]:
    city = f"{rng.choice(_CITIES)} {rng.randint(10000, 99999)}"
    return [rng.choice(_COMPANIES), _street(rng), city]


def _item_lines(rng: random.Random) -> list[str]:
    return [
        f"{name} x{rng.randint(1, 9)} ${_money(cents)}"
        for name, cents in _items(rng, rng.randint(1, 4), 99, 20000)
    ]


def _header_lines(rng: random.Random) -> list[str]:
    return [
        f"Invoice No: INV-{rng.randint(1000, 99999)}",
        f"Date: {_date(rng)}",
        f"Customer: {_person(rng)}",
    ][: rng.randint(1, 3)]


def _sentence_lines(rng: random.Random) -> list[str]:
    return rng.sample(_SENTENCES, rng.randint(1, 4))


_SNIPPET_BUILDERS: tuple[Callable[[random.Random], list[str]], ...] = (
    _address_block,
    _item_lines,
    _header_lines,
    _sentence_lines,
)


# ---------------------------------------------------------------- charts


@dataclass(frozen=True)
class Chart:
    """A bar chart: one bar per label, heights and printed values from ``values``."""

    title: str
    labels: tuple[str, ...]
    values: tuple[int, ...]
    pick: int  # the bar whose value is asked for

    def render(self) -> Image.Image:
        img = Image.new("RGB", CHART, (255, 255, 255))
        draw = ImageDraw.Draw(img)
        _put(draw, MARGIN, 14, self.title, 17)
        draw.line(
            (MARGIN, CHART_BASELINE, CHART[0] - MARGIN, CHART_BASELINE), fill=(0, 0, 0), width=2
        )
        slot = (CHART[0] - 2 * MARGIN) // len(self.labels)
        for i, (label, value) in enumerate(zip(self.labels, self.values, strict=True)):
            left, top = MARGIN + i * slot + slot // 5, CHART_BASELINE - value * CHART_PX_PER_UNIT
            right = left + slot * 3 // 5
            draw.rectangle((left, top, right, CHART_BASELINE - 1), fill=BAR_COLOR)
            middle = (left + right) / 2
            _put(draw, middle - _font(14).getlength(str(value)) / 2, top - 20, str(value), 14)
            _put(draw, middle - _font(14).getlength(label) / 2, CHART_BASELINE + 8, label, 14)
        return img

    def questions(self) -> tuple[QA, ...]:
        """(question, answers) pairs answerable from the drawn chart."""
        return (
            (f"What is the value of {self.labels[self.pick]}?", [str(self.values[self.pick])]),
            (
                "Which category has the highest value?",
                [self.labels[self.values.index(max(self.values))]],
            ),
            (
                "Which category has the lowest value?",
                [self.labels[self.values.index(min(self.values))]],
            ),
        )


def _chart(rng: random.Random) -> Chart:
    title, labels = rng.choice(_CHARTS)
    count = rng.randint(3, len(labels))
    values = tuple(rng.sample(range(5, 100), count))  # distinct: one highest, one lowest
    return Chart(title, labels[:count], values, rng.randrange(count))


# ---------------------------------------------------------------- dataset


class Renderable(Protocol):
    def render(self) -> Image.Image: ...


@dataclass
class Dataset:
    """Manifest rows per task type and the image sources they refer to."""

    rows: Rows = field(default_factory=lambda: {task: [] for task in TASK_TYPES})
    images: dict[str, Renderable] = field(default_factory=dict)  # relative path -> source

    def add_image(self, stem: str, source: Renderable) -> str:
        path = f"images/{stem}.png"
        self.images[path] = source
        return path


def _streams(seed: int) -> Iterator[random.Random]:
    """Independent generators for the sample streams, all derived from ``seed``."""
    master = random.Random(seed)
    while True:
        yield random.Random(master.getrandbits(64))


def _add_documents(data: Dataset, rng: random.Random, n: int) -> None:
    """Pages of all four kinds, for docvqa and doc_classification."""
    for i in range(n):
        kind = DOC_KINDS[i % len(DOC_KINDS)]
        doc = _DOC_BUILDERS[kind](rng)
        stem = f"{kind}-{i:04d}"
        image = data.add_image(stem, doc)
        q = rng.randrange(len(doc.questions))
        question, answers = doc.questions[q]
        data.rows["docvqa"].append(
            {"id": f"{stem}-q{q + 1}", "image": image, "question": question, "answers": answers}
        )
        data.rows["doc_classification"].append(
            {"id": stem, "image": image, "label": kind, "labels": list(DOC_KINDS)}
        )


def _add_kie(data: Dataset, rng: random.Random, n: int) -> None:
    for i in range(n):
        kind = KIE_KINDS[i % len(KIE_KINDS)]
        doc = _DOC_BUILDERS[kind](rng)
        stem = f"kie-{kind}-{i:04d}"
        data.rows["kie"].append(
            {"id": stem, "image": data.add_image(stem, doc), "fields": doc.fields}
        )


def _add_ocr(data: Dataset, rng: random.Random, n: int) -> None:
    for i in range(n):
        snippet = Snippet(tuple(_SNIPPET_BUILDERS[i % len(_SNIPPET_BUILDERS)](rng)))
        stem = f"ocr-{i:04d}"
        data.rows["ocr"].append(
            {"id": stem, "image": data.add_image(stem, snippet), "text": snippet.text}
        )


def _add_charts(data: Dataset, rng: random.Random, n: int) -> None:
    for i in range(n):
        chart = _chart(rng)
        stem = f"chart-{i:04d}"
        questions = chart.questions()
        q = i % len(questions)
        question, answers = questions[q]
        data.rows["chartqa"].append(
            {
                "id": f"{stem}-q{q + 1}",
                "image": data.add_image(stem, chart),
                "question": question,
                "answers": answers,
            }
        )


_STREAM_BUILDERS: tuple[Callable[[Dataset, random.Random, int], None], ...] = (
    _add_documents,
    _add_kie,
    _add_ocr,
    _add_charts,
)


def build_dataset(n_per_type: int = 12, seed: int = 0) -> Dataset:
    """The dataset in memory (images not yet rendered)."""
    if n_per_type < 1:
        raise ValueError(f"n_per_type must be at least 1, not {n_per_type}")
    data = Dataset()
    for build, rng in zip(_STREAM_BUILDERS, _streams(seed), strict=False):
        build(data, rng, n_per_type)
    return data


def _write_dataset(data: Dataset, root: Path, marker: str) -> None:
    (root / "images").mkdir(parents=True)
    for rel, source in data.images.items():
        source.render().save(root / rel, format="PNG", optimize=False)
    for task, rows in data.rows.items():
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        (root / f"{task}.jsonl").write_bytes(text.encode("utf-8"))
    (root / COMPLETE_MARKER).write_bytes(marker.encode("utf-8"))


def write_atomically(out_dir: Path, write: Callable[[Path], None]) -> None:
    """Fill ``out_dir`` through ``write(staging_dir)``, then move it into place at once.

    Returns at once when ``out_dir`` holds a complete dataset (its ``.complete``
    marker, which ``write`` creates last); refuses a non-empty ``out_dir`` without
    one. A crash leaves nothing behind; of two concurrent writers one wins.
    """
    out_dir = Path(out_dir)
    if (out_dir / COMPLETE_MARKER).exists():
        return
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists, is not empty and holds no complete dataset")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        staged = tmp / "data"  # created with normal permissions, unlike mkdtemp's 0o700
        write(staged)
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above)
        try:
            os.replace(staged, out_dir)
        except OSError:
            if not (out_dir / COMPLETE_MARKER).exists():  # not a concurrent generator's
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def generate_synthetic_docs(out_dir: Path, n_per_type: int = 12, seed: int = 0) -> None:
    """Write images and one JSONL manifest per task type into ``out_dir``, atomically.

    Returns at once when ``out_dir`` holds a complete dataset (its ``.complete``
    marker); refuses a non-empty ``out_dir`` without one.
    """
    if (Path(out_dir) / COMPLETE_MARKER).exists():
        return
    data = build_dataset(n_per_type, seed)
    marker = f"{SYNTHETIC_VERSION} n={n_per_type} seed={seed}\n"
    write_atomically(out_dir, lambda root: _write_dataset(data, root, marker))


def main(argv: list[str] | None = None) -> int:
    """Command line: generate the dataset into OUT_DIR and print its path."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_vlmhb.tasks.synthetic",
        description="Generate the built-in synthetic document dataset.",
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    parser.add_argument("--n", type=int, default=12, help="samples per task type (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    try:
        generate_synthetic_docs(args.out_dir, args.n, args.seed)
    except (ValueError, FileExistsError) as exc:
        parser.error(str(exc))
    print(args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
