"""CC-OCR KIE field F1 against verbatim copies of lmms-eval's port of the CC-OCR evaluator
(lmms_eval/tasks/cc_ocr/evaluators/{common,kie_metric}.py @ 75571cfe0fa36ca5)."""

# ruff: noqa: RUF001, RUF013  (full-width text is the point; verbatim reference code)

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_vlmhb.metrics.ccocr_kie import CcocrKieF1, normalize_text, parse_answer


# ---- BEGIN verbatim: lmms-eval cc_ocr/evaluators/common.py --------------------------------
# fmt: off
# mypy: ignore-errors
def fullwidth_to_halfwidth(text: str) -> str:
    """CJK-aware full-width to half-width conversion (matches KIE evaluator)."""
    result = ""
    for char in text:
        code_point = ord(char)
        if code_point == 0x3000:
            code_point = 0x0020
        elif 0xFF01 <= code_point <= 0xFF5E:
            code_point -= 0xFEE0
        result += chr(code_point)
    result = result.replace("、", ",")
    return result


def remove_unnecessary_spaces(text: str) -> str:
    """Normalize spacing around CJK / ASCII / punctuation boundaries."""
    text = re.sub(r"(?<=[\u4e00-\u9fff])\s+(?=[\u4e00-\u9fff])", "", text)
    text = re.sub(r"(?<=[\u4e00-\u9fff])\s+(?=[a-zA-Z0-9])", "", text)
    text = re.sub(r"(?<=[a-zA-Z0-9])\s+(?=[\u4e00-\u9fff])", "", text)
    text = re.sub(r"(?<![0-9])\s*([,.!?:;])\s*", r"\1 ", text)
    text = re.sub(r"(?<=[0-9])(?=[a-zA-Z])", " ", text)
    text = re.sub(r"(?<=[a-zA-Z])(?=[0-9])", " ", text)
    text = re.sub(r"\s+", " ", text)
    return text


def post_process_to_json(qwen_info_str: str, file_name: str = None):
    """Extract a JSON object from a model response that may wrap it in ```json ... ```."""
    if not isinstance(qwen_info_str, str):
        return None
    try:
        if "```json" in qwen_info_str:
            if "```" not in qwen_info_str.split("```json", 1)[1]:
                qwen_info_str = qwen_info_str + "```"
            m = re.search(r"```json(.*?)```", qwen_info_str, re.DOTALL)
            if m is None:
                return None
            json_str = m.group(1).strip().replace("\n", "")
        else:
            json_str = qwen_info_str.strip().replace("\n", "")
        return json.loads(json_str)
    except Exception:
        return None


def normalize_values_of_nested_dict(d: Any, normalize_func) -> Any:
    """Recursively normalize string leaves of a nested dict/list."""
    if isinstance(d, dict):
        return {k: normalize_values_of_nested_dict(v, normalize_func) for k, v in d.items()}
    if isinstance(d, list):
        return [normalize_values_of_nested_dict(x, normalize_func) if isinstance(x, (dict, list)) else normalize_func(x) if isinstance(x, str) else x for x in d]  # noqa: E501
    if isinstance(d, str):
        return normalize_func(d)
    return d


def kie_normalize_text(text: str) -> str:
    """Full pipeline used for KIE string normalization."""
    return remove_unnecessary_spaces(fullwidth_to_halfwidth(str(text)))
# ---- END verbatim ----------------------------------------------------------------------------


# ---- BEGIN verbatim: lmms-eval cc_ocr/evaluators/kie_metric.py ----------------------------
def _flatten(data: dict):
    """Turn nested dict/list into a flat list of (dotted_key, value)."""
    out = []

    def rec(value, key=""):
        if isinstance(value, dict):
            for k, v in value.items():
                rec(v, f"{key}.{k}" if key else k)
        elif isinstance(value, list):
            for item in value:
                rec(item, key)
        else:
            out.append((key, value))

    rec(data)
    return out


def _normalize_dict(data: Any) -> Any:
    """Sort keys, wrap scalars in list — matches Donut normalize_dict semantics."""
    if isinstance(data, dict):
        new_data = {}
        for k in sorted(data.keys(), key=lambda k: (len(k), k)):
            value = _normalize_dict(data[k])
            if value:
                if not isinstance(value, list):
                    value = [value]
                new_data[k] = value
        return new_data
    if isinstance(data, list):
        if all(isinstance(item, dict) for item in data):
            return [x for x in (_normalize_dict(item) for item in data) if x]
        return [str(item).strip() for item in data if isinstance(item, (str, int, float)) and str(item).strip()]  # noqa: E501
    return [str(data).strip()]


def _cal_f1_over_samples(preds, answers) -> float:
    total_tp = 0
    total_fn_fp = 0
    for fname, ans in answers.items():
        pred = preds.get(fname, {})
        pred_flat = _flatten(_normalize_dict(pred))
        ans_flat = _flatten(_normalize_dict(ans))
        for field in pred_flat:
            if field in ans_flat:
                total_tp += 1
                ans_flat.remove(field)
            else:
                total_fn_fp += 1
        total_fn_fp += len(ans_flat)
    return total_tp / (total_tp + total_fn_fp / 2 + 1e-6)


def _parse_pred_and_gt(sample):
    pred_raw = sample["pred"]
    pred_json = post_process_to_json(pred_raw, file_name=sample.get("image_name"))
    if pred_json is None:
        pred_json = {}

    gt_raw = sample["gt"]
    if isinstance(gt_raw, str):
        try:
            gt_json = json.loads(gt_raw)
        except Exception:
            gt_json = {}
    elif isinstance(gt_raw, list) and gt_raw and isinstance(gt_raw[0], str):
        try:
            gt_json = json.loads(gt_raw[0])
        except Exception:
            gt_json = {}
    else:
        gt_json = gt_raw or {}

    pred_json = normalize_values_of_nested_dict(pred_json, kie_normalize_text)
    gt_json = normalize_values_of_nested_dict(gt_json, kie_normalize_text)
    return pred_json, gt_json
# fmt: on
# ---- END verbatim ----------------------------------------------------------------------------


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
