"""CC-OCR key-information-extraction field F1 (CORD, SROIE).

The CC-OCR evaluator (AlibabaResearch/AdvancedLiterateMachinery
``Benchmarks/CC-OCR/evaluation/evaluator/kie_evaluator.py``, copied in
VLMEvalKit ``vlmeval/dataset/utils/ccocr_evaluator/kie_evaluator.py`` at
commit 401916c00a4769884aeca865a77674abe0c62a26; itself from Donut) as
lmms-eval ports it (``lmms_eval/tasks/cc_ocr/evaluators/{common,kie_metric}.py``
at commit 75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3):

Answer parsing
    With a ```` ```json ```` fence, the text up to the closing fence (an
    unclosed one runs to the end), else the whole answer; newlines removed,
    ``json.loads``. Anything that fails is an empty prediction ``{}``.

Value normalisation (no lower-casing)
    Every string leaf (also strings directly inside lists): full-width ASCII
    (U+FF01..U+FF5E) and the ideographic space to ASCII, ``、`` to ``,``; spaces
    removed between CJK characters and between CJK and ASCII letters/digits;
    around ``, . ! ? : ;`` not preceded by a digit, spaces before removed and
    exactly one space after; a space inserted between digits and letters;
    whitespace runs collapsed to one space.

Fields
    Donut's ``normalize_dict`` (keys sorted, scalars wrapped in lists, empty
    values dropped, leaves ``str(v).strip()``) then ``flatten`` to
    (dotted key, value) pairs with list items sharing their parent's key, so a
    CORD ``menu`` given as one object or as a list of objects compares alike.
    Pairs are matched as a multiset.

Score
    F1 = TP / (TP + (FP + FN) / 2 + 1e-6), micro-averaged over the case
    (CC-OCR's ``cal_f1_all``). An errored sample counts all its gold pairs as
    misses.

Differences of lmms-eval's port from the CC-OCR original, followed here: an
unparsable answer is ``{}`` (the original scores it as one extra false
positive ``("", "None")``), strings directly inside lists are normalised (the
original leaves them), and an unclosed ```` ```json ```` fence is closed (the
original gives up on it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from .base import Metric, Reference, Stats

EPSILON = 1e-6
_FENCE = re.compile(r"```json(.*?)```", re.DOTALL)


def fullwidth_to_halfwidth(text: str) -> str:
    out = []
    for char in text:
        code = ord(char)
        if code == 0x3000:
            code = 0x0020
        elif 0xFF01 <= code <= 0xFF5E:
            code -= 0xFEE0
        out.append(chr(code))
    return "".join(out).replace("、", ",")


def remove_unnecessary_spaces(text: str) -> str:
    text = re.sub(r"(?<=[\u4e00-\u9fff])\s+(?=[\u4e00-\u9fff])", "", text)
    text = re.sub(r"(?<=[\u4e00-\u9fff])\s+(?=[a-zA-Z0-9])", "", text)
    text = re.sub(r"(?<=[a-zA-Z0-9])\s+(?=[\u4e00-\u9fff])", "", text)
    text = re.sub(r"(?<![0-9])\s*([,.!?:;])\s*", r"\1 ", text)
    text = re.sub(r"(?<=[0-9])(?=[a-zA-Z])", " ", text)
    text = re.sub(r"(?<=[a-zA-Z])(?=[0-9])", " ", text)
    return re.sub(r"\s+", " ", text)


def normalize_text(text: str) -> str:
    """CC-OCR's KIE value normalisation."""
    return remove_unnecessary_spaces(fullwidth_to_halfwidth(str(text)))


def normalize_values(value: Any) -> Any:
    """``normalize_text`` applied to every string leaf of a nested value."""
    if isinstance(value, dict):
        return {k: normalize_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [
            normalize_values(x)
            if isinstance(x, dict | list)
            else normalize_text(x)
            if isinstance(x, str)
            else x
            for x in value
        ]
    if isinstance(value, str):
        return normalize_text(value)
    return value


def parse_answer(text: str) -> Any:
    """The model's JSON (object or list), or ``{}`` when there is none."""
    try:
        if "```json" in text:
            if "```" not in text.split("```json", 1)[1]:
                text += "```"
            match = _FENCE.search(text)
            if match is None:
                return {}
            text = match.group(1)
        return json.loads(text.strip().replace("\n", ""))
    except (ValueError, RecursionError):
        return {}


def normalize_dict(data: Any) -> Any:
    """Donut's ``normalize_dict``: sorted keys, list-wrapped non-empty values."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key in sorted(data, key=lambda k: (len(k), k)):
            value = normalize_dict(data[key])
            if value:
                out[key] = value if isinstance(value, list) else [value]
        return out
    if isinstance(data, list):
        if all(isinstance(item, dict) for item in data):
            return [x for x in (normalize_dict(item) for item in data) if x]
        return [
            str(item).strip()
            for item in data
            if isinstance(item, str | int | float) and str(item).strip()
        ]
    return [str(data).strip()]


def flatten(data: Any) -> list[tuple[str, Any]]:
    """(dotted key, value) pairs; list items share their parent's key."""
    out: list[tuple[str, Any]] = []

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for child, item in value.items():
                walk(item, f"{key}.{child}" if key else child)
        elif isinstance(value, list):
            for item in value:
                walk(item, key)
        else:
            out.append((key, value))

    walk(data, "")
    return out


def fields(value: Any) -> list[tuple[str, Any]]:
    """Normalised (key, value) pairs of a prediction or a reference."""
    return flatten(normalize_dict(normalize_values(value)))


def kie_stats(prediction: str, gold: Any) -> Stats:
    """True positives and the count of false positives plus false negatives."""
    pred = fields(parse_answer(prediction))
    remaining = fields(gold)
    tp = fnfp = 0
    for pair in pred:
        if pair in remaining:
            tp += 1
            remaining.remove(pair)
        else:
            fnfp += 1
    return {"tp": float(tp), "fnfp": float(fnfp + len(remaining))}


def f1(stats: Stats) -> float:
    return stats["tp"] / (stats["tp"] + stats["fnfp"] / 2 + EPSILON)


class CcocrKieF1(Metric):
    """CC-OCR KIE field F1; reference field ``fields`` (the gold JSON object)."""

    name = "ccocr_kie_f1"

    def stats(self, prediction: str, reference: Reference) -> Stats:
        return kie_stats(prediction, reference["fields"])

    def worst_stats(self, reference: Reference) -> Stats:
        return {"tp": 0.0, "fnfp": float(len(fields(reference["fields"])))}

    def value(self, stats: Stats) -> float | None:
        return f1(stats)

    def aggregate(self, stats: Sequence[Stats]) -> float | None:
        if not stats:
            return None
        return f1({k: sum(s[k] for s in stats) for k in ("tp", "fnfp")})
