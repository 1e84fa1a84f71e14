"""CC-OCR KIE field F1 against lmms-eval's port of the CC-OCR evaluator
(lmms_eval/tasks/cc_ocr/evaluators/{common,kie_metric}.py @ 75571cfe0fa36ca5), whose
verbatim copy lives in tests/unit/reference_impls.py."""

# ruff: noqa: RUF001  (full-width text is the point; verbatim reference code)

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_vlmhb.metrics.ccocr_kie import CcocrKieF1, normalize_text, parse_answer
from tests.unit.reference_impls import (  # verbatim lmms-eval code, cited there
    _cal_f1_over_samples,
    _parse_pred_and_gt,
    kie_normalize_text,
    post_process_to_json,
)


def reference_f1(pairs: list[tuple[str, dict[str, Any]]]) -> float:
    """lmms-eval's F1 over one subset: (prediction text, gold object) per sample."""
    preds, gts = {}, {}
    for i, (pred, gold) in enumerate(pairs):
        p, g = _parse_pred_and_gt({"pred": pred, "gt": json.dumps(gold), "image_name": str(i)})
        preds[str(i)], gts[str(i)] = p, g
    return _cal_f1_over_samples(preds, gts)


def ours(pairs: list[tuple[str, dict[str, Any]]]) -> float:
    metric = CcocrKieF1()
    value = metric.aggregate([metric.stats(pred, {"fields": gold}) for pred, gold in pairs])
    assert value is not None
    return value


GOLD = {
    "company": "SYARIKAT PERNIAGAAN GIN KEE",
    "date": "19/12/2017",
    "address": "NO 290, JALAN AIR PANAS, SETAPAK",
    "total": "8.70",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ＡＢＣ　１２３", "ABC 123"),  # full-width -> half-width, ideographic space
        ("NO 290 , JALAN", "NO 290 , JALAN"),  # a comma after a digit keeps its spaces
        ("JALAN AIR PANAS ,SETAPAK", "JALAN AIR PANAS, SETAPAK"),  # no space before, one after
        ("TOTAL:8.70", "TOTAL: 8.70"),
        ("RM8.70", "RM 8.70"),  # a space between letters and digits
        ("8kg", "8 kg"),
        ("Kopi  O", "Kopi O"),  # whitespace collapsed, case kept (no lower-casing)
        ("上海 市", "上海市"),  # no space between CJK characters
        ("苹果、香蕉", "苹果, 香蕉"),  # 、 -> "," then one space after it
    ],
)
def test_value_normalisation_matches_ccocr(text: str, expected: str) -> None:
    assert normalize_text(text) == expected == kie_normalize_text(text)


@pytest.mark.parametrize(
    "answer",
    [
        "```json\n" + json.dumps(GOLD) + "\n```",
        "Here it is:\n```json\n" + json.dumps(GOLD, indent=2),  # unclosed fence
        json.dumps(GOLD),
        "not json at all",
        "```\n" + json.dumps(GOLD) + "\n```",  # a fence without 'json' is not unwrapped
        "[1, 2]",
        "",
    ],
)
def test_answer_parsing_matches_lmms_eval(answer: str) -> None:
    expected = post_process_to_json(answer)
    assert parse_answer(answer) == ({} if expected is None else expected)


def test_field_f1_examples() -> None:
    perfect = json.dumps(GOLD)
    assert ours([(perfect, GOLD)]) == pytest.approx(1.0, abs=1e-6)
    upper = json.dumps({**GOLD, "company": GOLD["company"].lower()})
    assert ours([(upper, GOLD)]) == pytest.approx(3 / (3 + 1), abs=1e-6)  # no lower-casing
    spaced = json.dumps({**GOLD, "address": "NO 290, JALAN AIR PANAS ,SETAPAK"})
    assert ours([(spaced, GOLD)]) == pytest.approx(1.0, abs=1e-6)  # punctuation spacing
    after_digit = json.dumps({**GOLD, "address": "NO 290,JALAN AIR PANAS, SETAPAK"})
    assert ours([(after_digit, GOLD)]) == pytest.approx(0.75, abs=1e-6)  # "290," kept as is
    assert ours([("garbage", GOLD)]) == 0.0
    # CORD: a menu given as one object or as a list of one object compares alike
    cord = {"menu": {"nm": "LATTE", "price": "4,500"}}
    assert ours(
        [(json.dumps({"menu": [{"nm": "LATTE", "price": "4,500"}]}), cord)]
    ) == pytest.approx(1.0, abs=1e-6)


def test_errored_sample_misses_every_gold_field() -> None:
    metric = CcocrKieF1()
    worst = metric.worst_stats({"fields": GOLD})
    assert worst == {"tp": 0.0, "fnfp": 4.0} and metric.value(worst) == 0.0
    good = metric.stats(json.dumps(GOLD), {"fields": GOLD})
    assert metric.aggregate([good, worst]) == pytest.approx(4 / (4 + 2 + 1e-6))


leaf = st.sampled_from(
    [
        "8.70",
        "RM 8.70",
        "RM8.70",
        "ＡＢＣ",
        "abc",
        "ABC",
        "a , b",
        "",
        " ",
        "上海 市",
        "x",
        0,
        8.7,
        None,
        True,
    ]
)
value = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["nm", "price", "cnt"]), inner, max_size=3),
    ),
    max_leaves=8,
)
obj = st.dictionaries(st.sampled_from(["company", "date", "menu", "total"]), value, max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(obj, obj), min_size=1, max_size=4))
def test_matches_lmms_eval_on_random_objects(pairs: list[tuple[dict[str, Any], Any]]) -> None:
    cases = [(json.dumps(pred), gold) for pred, gold in pairs]
    assert ours(cases) == pytest.approx(reference_f1(cases), abs=1e-9)
