"""Key-information extraction: micro precision / recall / F1 over field pairs.

The model answers JSON (inside a ```json fence if present; anything that is
not a JSON object counts as an empty prediction). Nested objects flatten to
dotted keys (``vendor.name``), list items to their index (``items.0.price``);
values compare after ``str``, strip, lower-casing and whitespace collapsing.
Pairs (key, value) are matched as multisets, in the spirit of the CORD /
CC-OCR field-level evaluation: F1 = TP / (TP + (FP + FN) / 2), pooled
(micro) over all samples of a case. With neither gold nor predicted pairs,
precision, recall and F1 are 1.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from ._text import squash
from .base import Metric, Reference, Stats

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def parse_answer(text: str) -> dict[str, Any]:
    """The JSON object in a model answer, or {} when there is none."""
    match = _FENCE.search(text)
    body = match.group(1) if match else text
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, normalised value) pairs of a nested JSON value."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from flatten(inner, f"{prefix}{key}.")
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from flatten(inner, f"{prefix}{index}.")
    else:
        yield prefix.rstrip("."), squash("" if value is None else str(value))


def field_stats(prediction: str, gold: dict[str, Any]) -> Stats:
    pred = Counter(flatten(parse_answer(prediction)))
    ref = Counter(flatten(gold))
    tp = sum((pred & ref).values())
    return {"tp": float(tp), "fp": float(sum(pred.values()) - tp),
            "fn": float(sum(ref.values()) - tp)}


def _sum(stats: Sequence[Stats]) -> Stats:
    return {k: sum(s[k] for s in stats) for k in ("tp", "fp", "fn")}


class _KieMetric(Metric):
    def stats(self, prediction: str, reference: Reference) -> Stats:
        return field_stats(prediction, dict(reference["fields"]))

    def worst_stats(self, reference: Reference) -> Stats:
        gold = sum(1 for _ in flatten(dict(reference["fields"])))
        return {"tp": 0.0, "fp": 0.0, "fn": float(gold) or 1.0}

    def aggregate(self, stats: Sequence[Stats]) -> float | None:
        return self.value(_sum(stats)) if stats else None


class KieF1(_KieMetric):
    """Micro F1 over (key, value) pairs; reference field ``fields``."""

    name = "f1"

    def value(self, stats: Stats) -> float | None:
        tp, fp, fn = stats["tp"], stats["fp"], stats["fn"]
        return 1.0 if tp + fp + fn == 0 else tp / (tp + (fp + fn) / 2)


class KiePrecision(_KieMetric):
    """Micro precision over (key, value) pairs."""

    name = "kie_precision"

    def value(self, stats: Stats) -> float | None:
        tp, fp, fn = stats["tp"], stats["fp"], stats["fn"]
        if tp + fp == 0:
            return 1.0 if fn == 0 else 0.0
        return tp / (tp + fp)


class KieRecall(_KieMetric):
    """Micro recall over (key, value) pairs."""

    name = "kie_recall"

    def value(self, stats: Stats) -> float | None:
        tp, fn = stats["tp"], stats["fn"]
        return 1.0 if tp + fn == 0 else tp / (tp + fn)
