"""Built-in synthetic documents: invoices, receipts, forms, letters and bar charts.

Deterministic (one seeded ``random.Random``, Pillow's built-in font, PNGs
without metadata), so every machine generates byte-identical datasets with
known contents, giving samples for all five task types offline.

    python -m pytest_vlmhb.tasks.synthetic OUT_DIR [--n N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

SYNTHETIC_VERSION = "1"
KINDS = ("invoice", "receipt", "form", "letter")
PAGE = (448, 576)
CHART = (448, 336)

_COMPANIES = ["Acme Ltd", "Globex Corp", "Initech", "Umbrella Inc", "Stark Supplies",
              "Wayne Foods", "Hooli GmbH", "Vandelay Imports", "Soylent Co", "Tyrell Parts"]
_PEOPLE = ["Ann Lee", "Omar Haddad", "Mia Novak", "Ravi Shah", "Lena Berg", "Tom Ito",
           "Sara Costa", "Jon Diaz", "Eva Klein", "Ken Mori"]
_STREETS = ["Main St", "Oak Ave", "Elm Road", "Harbor Way", "Mill Lane", "Park Blvd"]
_CITIES = ["Springfield", "Riverton", "Lakeside", "Hillview", "Fairport", "Brookfield"]
_ITEMS = ["Paper", "Toner", "Stapler", "Pens", "Folders", "Tape", "Cable", "Mouse"]
_CATEGORIES = ["Q1", "Q2", "Q3", "Q4", "North", "South", "East", "West"]


@dataclass
class Document:
    """A rendered page: its lines of text and what the tasks ask about it."""

    kind: str
    lines: list[str]
    fields: dict[str, Any]
    questions: list[tuple[str, list[str]]] = field(default_factory=list)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _date(rng: random.Random) -> str:
    return f"{rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _address(rng: random.Random) -> str:
    return f"{rng.randint(1, 999)} {rng.choice(_STREETS)}, {rng.choice(_CITIES)}"


def _money(cents: int) -> str:
    return f"{cents // 100:,}.{cents % 100:02d}"


def _invoice(rng: random.Random) -> Document:
    company, customer = rng.choice(_COMPANIES), rng.choice(_PEOPLE)
    number, date, address = f"INV-{rng.randint(1000, 9999)}", _date(rng), _address(rng)
    items = [(rng.choice(_ITEMS), rng.randint(100, 50000)) for _ in range(rng.randint(2, 4))]
    total = _money(sum(c for _, c in items))
    lines = [company.upper(), address, "", "INVOICE", f"Invoice No: {number}",
             f"Date: {date}", f"Bill to: {customer}", ""]
    lines += [f"{name:<12} ${_money(c):>10}" for name, c in items]
    lines += ["", f"TOTAL DUE: ${total}"]
    fields: dict[str, Any] = {"company": company, "invoice_number": number, "date": date,
                              "total": total}
    if rng.random() < 0.5:
        fields = {**fields, "customer": {"name": customer}}
    return Document("invoice", lines, fields, [
        ("What is the invoice number?", [number]),
        ("What is the total amount due?", [f"${total}", total]),
        ("Who is the invoice billed to?", [customer]),
    ])


def _receipt(rng: random.Random) -> Document:
    company, date, address = rng.choice(_COMPANIES), _date(rng), _address(rng)
    items = [(rng.choice(_ITEMS), rng.randint(50, 5000)) for _ in range(rng.randint(2, 5))]
    total = _money(sum(c for _, c in items))
    lines = [company, address, f"Date {date}", "-" * 24]
    lines += [f"{name:<12} {_money(c):>8}" for name, c in items]
    lines += ["-" * 24, f"TOTAL {total}", "Thank you!"]
    return Document("receipt", lines,
                    {"company": company, "date": date, "address": address, "total": total}, [
        ("What is the total on the receipt?", [total, f"${total}"]),
        ("What is the date of the receipt?", [date]),
        ("Which store issued this receipt?", [company]),
    ])


def _form(rng: random.Random) -> Document:
    name, date, city = rng.choice(_PEOPLE), _date(rng), rng.choice(_CITIES)
    member = f"M{rng.randint(10000, 99999)}"
    lines = ["MEMBERSHIP APPLICATION FORM", "", f"Full name: {name}", f"Date of birth: {date}",
             f"City: {city}", f"Member ID: {member}", "", "Signature: ________"]
    return Document("form", lines,
                    {"name": name, "date_of_birth": date, "city": city, "member_id": member}, [
        ("What is the member ID?", [member]),
        ("What is the applicant's full name?", [name]),
        ("Which city is given on the form?", [city]),
    ])


def _letter(rng: random.Random) -> Document:
    sender, recipient = rng.choice(_COMPANIES), rng.choice(_PEOPLE)
    date, ref = _date(rng), f"REF-{rng.randint(100, 999)}"
    lines = [sender, _address(rng), "", date, "", f"Dear {recipient},", "",
             f"Re: your order {ref}", "We confirm receipt of your", "order and will ship soon.",
             "", "Kind regards,", sender]
    return Document("letter", lines, {"sender": sender, "recipient": recipient, "date": date,
                                      "reference": ref}, [
        ("Who is the letter addressed to?", [recipient]),
        ("What is the order reference?", [ref]),
        ("What is the date of the letter?", [date]),
    ])


_BUILDERS: dict[str, Callable[[random.Random], Document]] = {
    "invoice": _invoice, "receipt": _receipt, "form": _form, "letter": _letter,
}


def _render_page(doc: Document) -> Image.Image:
    img = Image.new("L", PAGE, 255)
    draw = ImageDraw.Draw(img)
    body, title = _font(15), _font(20)
    y = 24
    for index, line in enumerate(doc.lines):
        font = title if index == 0 else body
        draw.text((28, y), line, fill=0, font=font)
        y += 30 if index == 0 else 21
    return img


def _chart(rng: random.Random) -> tuple[Image.Image, list[tuple[str, list[str]]]]:
    labels = rng.sample(_CATEGORIES, 4)
    values = rng.sample(range(5, 96), 4)
    img = Image.new("RGB", CHART, "white")
    draw = ImageDraw.Draw(img)
    font = _font(14)
    base, top, width = 300, 40, 70
    draw.line((30, base, 430, base), fill="black", width=2)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = 50 + i * 95
        height = (base - top) * value / 100
        draw.rectangle((x, base - height, x + width, base), fill=(60, 110, 200))
        draw.text((x + 20, base - height - 20), str(value), fill="black", font=font)
        draw.text((x + 15, base + 8), label, fill="black", font=font)
    best = labels[values.index(max(values))]
    pick = rng.randrange(4)
    return img, [(f"What is the value of {labels[pick]}?", [str(values[pick])]),
                 ("Which category has the highest value?", [best])]


def _save(img: Image.Image, path: Path) -> None:
    img.save(path, format="PNG", optimize=False)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")


def _generate_into(out: Path, n_per_type: int, seed: int) -> None:
    rng = random.Random(seed)
    images = out / "images"
    images.mkdir(parents=True)
    manifests: dict[str, list[dict[str, Any]]] = {
        t: [] for t in ("docvqa", "chartqa", "ocr", "kie", "doc_classification")}
    for i in range(n_per_type):
        kind = KINDS[i % len(KINDS)]
        doc = _BUILDERS[kind](rng)
        name = f"{kind}-{i:04d}"
        _save(_render_page(doc), images / f"{name}.png")
        rel = f"images/{name}.png"
        question, answers = doc.questions[rng.randrange(len(doc.questions))]
        manifests["docvqa"].append({"id": f"{name}-q", "image": rel, "question": question,
                                    "answers": answers})
        manifests["ocr"].append({"id": name, "image": rel,
                                 "text": "\n".join(line for line in doc.lines if line)})
        manifests["kie"].append({"id": name, "image": rel, "fields": doc.fields})
        manifests["doc_classification"].append({"id": name, "image": rel, "label": kind,
                                                "labels": list(KINDS)})
        chart, chart_qs = _chart(rng)
        chart_name = f"chart-{i:04d}"
        _save(chart, images / f"{chart_name}.png")
        q, a = chart_qs[i % 2]
        manifests["chartqa"].append({"id": chart_name, "image": f"images/{chart_name}.png",
                                     "question": q, "answers": a})
    for task, rows in manifests.items():
        _write_jsonl(out / f"{task}.jsonl", rows)
    (out / ".complete").write_text(f"{SYNTHETIC_VERSION} n={n_per_type} seed={seed}\n")


def generate_synthetic_docs(out_dir: Path, n_per_type: int = 12, seed: int = 0) -> None:
    """Generate the dataset into ``out_dir`` atomically (no-op when complete)."""
    if (out_dir / ".complete").exists():
        return
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        _generate_into(tmp / "data", n_per_type, seed)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp / "data", out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--n", type=int, default=12, help="samples per task type")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    generate_synthetic_docs(args.out_dir, args.n, args.seed)
    print(args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
