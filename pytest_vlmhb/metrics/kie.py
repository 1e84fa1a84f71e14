"""Key-information extraction: micro precision / recall / F1 over (key, value) pairs.

Field-level matching in the spirit of the CORD / SROIE / CC-OCR KIE
evaluations (exact match of normalised field values, micro-averaged):

Parsing the model's answer
    The content of the first Markdown code fence (```json ... ```, ``` ... ```,
    any language tag; an unclosed fence runs to the end of the text) that parses
    as a JSON object, else the whole answer parsed as JSON. Anything that is
    not a JSON object (unparsable text, a list, a number) is an empty
    prediction, so every gold pair becomes a false negative.

Flattening (gold ``reference["fields"]`` and prediction alike)
    Nested objects flatten to dotted keys (``{"vendor": {"name": x}}`` ->
    ``vendor.name``), list items to their index (``items.0.price``). Keys are
    compared exactly (case-sensitive; a key that itself contains a dot is
    indistinguishable from nesting). Empty objects and lists contribute no
    pairs.

Values
    ``str(value)``, stripped, lower-cased, runs of whitespace collapsed to one
    space. JSON ``true`` -> ``"true"``; numbers via ``str`` (``12.5`` does not
    match the string ``"12.50"``). ``null`` and values that normalise to the
    empty string are "no value": they contribute no pair on either side (a
    model writing ``"tax": null`` for an absent field is not penalised).

Scores
    Predicted and gold pairs are compared as sets: TP = shared pairs,
    FP = predicted only, FN = gold only. F1 = TP / (TP + (FP + FN) / 2),
    precision = TP / (TP + FP), recall = TP / (TP + FN). The case aggregate
    sums TP/FP/FN over all samples first (micro average). 0/0 conventions:
    with no gold and no predicted pairs F1, precision and recall are 1.0; with
    no predicted pairs but some gold, precision is 0.0. An errored sample
    scores TP 0, FP 0, FN = number of gold pairs (at least 1, so that its F1
    is 0 even when the gold is empty).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ._text import squash
from .base import Metric, Reference, Stats

Pair = tuple[str, str]

_FENCE = re.compile(r"```[A-Za-z0-9_+.-]*[ \t]*(.*?)(?:```|\Z)", re.DOTALL)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def parse_answer(text: str) -> dict[str, Any]:
    """The JSON object in a model answer, or ``{}`` when there is none."""
    for match in _FENCE.finditer(text):
        value = _json_object(match.group(1))
        if value is not None:
            return value
    value = _json_object(text)
    return {} if value is None else value


def flatten(value: Any) -> set[Pair]:
    """(dotted key, normalised value) pairs of a nested JSON value."""
    pairs: set[Pair] = set()
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        key, item = stack.pop()
        if isinstance(item, Mapping):
            stack.extend((f"{key}.{k}" if key else str(k), v) for k, v in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((f"{key}.{i}" if key else str(i), v) for i, v in enumerate(item))
        elif item is not None:
            text = squash(str(item))
            if text:
                pairs.add((key, text))
    return pairs


def field_stats(prediction: str, gold: Mapping[str, Any]) -> Stats:
    """TP / FP / FN of one answer against the gold fields."""
    pred = flatten(parse_answer(prediction))
    ref = flatten(gold)
    tp = len(pred & ref)
    return {"tp": float(tp), "fp": float(len(pred) - tp), "fn": float(len(ref) - tp)}


def f1(stats: Stats) -> float:
    tp, fp, fn = stats["tp"], stats["fp"], stats["fn"]
    return 1.0 if tp + fp + fn == 0 else tp / (tp + (fp + fn) / 2)


def precision(stats: Stats) -> float:
    tp, fp, fn = stats["tp"], stats["fp"], stats["fn"]
    if tp + fp == 0:
        return 1.0 if fn == 0 else 0.0
    return tp / (tp + fp)


def recall(stats: Stats) -> float:
    tp, fn = stats["tp"], stats["fn"]
    return 1.0 if tp + fn == 0 else tp / (tp + fn)


class _KieMetric(Metric):
    def stats(self, prediction: str, reference: Reference) -> Stats:
        return field_stats(prediction, reference["fields"])

    def worst_stats(self, reference: Reference) -> Stats:
        gold = len(flatten(reference["fields"]))
        return {"tp": 0.0, "fp": 0.0, "fn": float(max(gold, 1))}

    def aggregate(self, stats: Sequence[Stats]) -> float | None:
        if not stats:
            return None
        return self.value({k: sum(s[k] for s in stats) for k in ("tp", "fp", "fn")})


class KieF1(_KieMetric):
    """Micro F1 over (key, value) pairs; reference field ``fields`` (JSON object)."""

    name = "f1"

    def value(self, stats: Stats) -> float | None:
        return f1(stats)


class KiePrecision(_KieMetric):
    """Micro precision over (key, value) pairs; reference field ``fields``."""

    name = "kie_precision"

    def value(self, stats: Stats) -> float | None:
        return precision(stats)


class KieRecall(_KieMetric):
    """Micro recall over (key, value) pairs; reference field ``fields``."""

    name = "kie_recall"

    def value(self, stats: Stats) -> float | None:
        return recall(stats)
