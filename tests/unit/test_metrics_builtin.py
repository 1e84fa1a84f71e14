"""Built-in metrics against verbatim copies of the reference evaluators.

The reference functions below are copied from:
- ANLS: lmms-eval, ``lmms_eval/tasks/docvqa/utils.py`` (``levenshtein_distance``,
  ``anls``), itself a copy of the DocVQA/RRC official evaluation.
- Relaxed accuracy: google-research/pix2struct, ``pix2struct/metrics.py``
  (``_to_float``, ``relaxed_correctness``), copied by lmms-eval's ChartQA task.
- CER/WER: the jiwer package itself (a test-only dependency).
"""

from __future__ import annotations

import jiwer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_vlmhb.metrics.accuracy import Accuracy
from pytest_vlmhb.metrics.anls import ANLS
from pytest_vlmhb.metrics.exact_match import ExactMatch
from pytest_vlmhb.metrics.kie import KieF1, KiePrecision, KieRecall, parse_answer
from pytest_vlmhb.metrics.relaxed_accuracy import RelaxedAccuracy
from pytest_vlmhb.metrics.text_error import CER, WER


# ---- verbatim reference copies --------------------------------------------------------
def levenshtein_distance(s1, s2):  # type: ignore[no-untyped-def]
    if len(s1) > len(s2):
        s1, s2 = s2, s1

    distances = range(len(s1) + 1)
    for i2, c2 in enumerate(s2):
        distances_ = [i2 + 1]
        for i1, c1 in enumerate(s1):
            if c1 == c2:
                distances_.append(distances[i1])
            else:
                distances_.append(1 + min((distances[i1], distances[i1 + 1], distances_[-1])))
        distances = distances_
    return distances[-1]


def reference_anls(references, predictions, thresh_hold=0.5):  # type: ignore[no-untyped-def]
    """https://github.com/EvolvingLMMs-Lab/lmms-eval/blob/main/lmms_eval/tasks/docvqa/utils.py"""
    values = []
    for answer in references:
        # preprocess both the answers - gt and prediction
        gt_answer = " ".join(answer.strip().lower().split())
        det_answer = " ".join(predictions[0].strip().lower().split())

        # dist = levenshtein_distance(answer.lower(), detObject['answer'].lower())
        dist = levenshtein_distance(gt_answer, det_answer)
        length = max(len(answer.upper()), len(predictions[0].upper()))
        values.append(0.0 if length == 0 else float(dist) / float(length))

    question_result = 1 - min(values)

    if question_result < thresh_hold:
        question_result = 0
    return question_result


def _to_float(text):  # type: ignore[no-untyped-def]
    try:
        if text.endswith("%"):
            # Convert percentages to floats.
            return float(text.rstrip("%")) / 100.0
        else:
            return float(text)
    except ValueError:
        return None


def reference_relaxed_correctness(target, prediction, max_relative_change=0.05):  # type: ignore[no-untyped-def]
    """https://github.com/google-research/pix2struct/blob/main/pix2struct/metrics.py"""
    prediction_float = _to_float(prediction)
    target_float = _to_float(target)
    if prediction_float is not None and target_float:
        relative_change = abs(prediction_float - target_float) / abs(target_float)
        return relative_change <= max_relative_change
    else:
        return prediction.lower() == target.lower()


# ---- ANLS -----------------------------------------------------------------------------
# 'ß', U+1E9E, dotless i and dotted I change length under upper()/lower().
texty = st.text(alphabet=st.sampled_from(list("abcAB ß\t1.-$\n\u1e9e\u0131\u0130")),
                max_size=12)


@settings(max_examples=400)
@given(texty, st.lists(texty, min_size=1, max_size=3))
def test_anls_equals_reference(pred: str, answers: list[str]) -> None:
    assert ANLS().score(pred, {"answers": answers}) == pytest.approx(
        reference_anls(answers, [pred]), abs=1e-12)


@pytest.mark.parametrize(("pred", "answers", "expected"), [
    ("abcd", ["abce"], 0.75),
    ("ab", ["abcd"], 0.5),           # exactly at the threshold: kept
    ("a", ["abcd"], 0.0),            # 0.25 < 0.5 -> 0
    ("", [""], 1.0),
    ("  Hello   World ", ["hello world"], 1.0 - 0 / 16),
    ("straße", ["STRASSE"], 1 - 2 / 7),  # len('ß'.upper()) == 2
    ("x", ["no", "x"], 1.0),         # best reference wins
])
def test_anls_edge_cases(pred: str, answers: list[str], expected: float) -> None:
    assert ANLS().score(pred, {"answers": answers}) == pytest.approx(expected)
    assert ANLS().score(pred, {"answers": answers}) == pytest.approx(
        reference_anls(answers, [pred]))


def test_exact_match() -> None:
    m = ExactMatch()
    assert m.score(" Total  DUE ", {"answers": ["x", "total due"]}) == 1.0
    assert m.score("total", {"answers": ["total due"]}) == 0.0


# ---- relaxed accuracy -----------------------------------------------------------------
numbers = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.floats(-1e4, 1e4, allow_nan=False).map(lambda f: f"{f:.2f}"),
    st.floats(0, 100, allow_nan=False).map(lambda f: f"{f:.1f}%"),
    st.sampled_from(["0", "0%", "abc", "ABC", "Yes", "yes", "nan", "inf", "1e3", " 5", "5%%"]),
)


@settings(max_examples=400)
@given(numbers, numbers)
def test_relaxed_accuracy_equals_pix2struct(target: str, pred: str) -> None:
    ours = RelaxedAccuracy().score(pred, {"answers": [target]})
    assert ours == float(reference_relaxed_correctness(target, pred))


@pytest.mark.parametrize(("pred", "answers", "expected"), [
    ("104", ["100"], 1.0), ("105", ["100"], 1.0), ("105.1", ["100"], 0.0),
    ("50%", ["0.5"], 1.0), ("0.5", ["50%"], 1.0), ("0", ["0"], 1.0), ("0.01", ["0"], 0.0),
    ("Blue", ["blue"], 1.0), ("x", ["y", "X"], 1.0),
])
def test_relaxed_accuracy_cases(pred: str, answers: list[str], expected: float) -> None:
    assert RelaxedAccuracy().score(pred, {"answers": answers}) == expected


# ---- CER / WER ------------------------------------------------------------------------
ocr_text = st.text(alphabet=st.sampled_from(list("ab c\nd  ")), max_size=20)
nonblank = ocr_text.filter(lambda t: t.strip() != "")


@settings(max_examples=300)
@given(nonblank, ocr_text)
def test_cer_wer_equal_jiwer_per_sample(ref: str, hyp: str) -> None:
    for metric, reference in ((CER(), jiwer.cer), (WER(), jiwer.wer)):
        stats = metric.stats(hyp, {"text": ref})
        assert metric.value(stats) == pytest.approx(reference(ref, hyp)), metric.name


@settings(max_examples=150)
@given(st.lists(st.tuples(nonblank, ocr_text), min_size=1, max_size=5))
def test_cer_wer_pool_like_jiwer(pairs: list[tuple[str, str]]) -> None:
    refs, hyps = [p[0] for p in pairs], [p[1] for p in pairs]
    for metric, reference in ((CER(), jiwer.cer), (WER(), jiwer.wer)):
        stats = [metric.stats(h, {"text": r}) for r, h in pairs]
        assert metric.aggregate(stats) == pytest.approx(reference(refs, hyps)), metric.name


def test_error_rates_of_errored_samples_are_worst() -> None:
    assert CER().value(CER().worst_stats({"text": "abc"})) == 1.0
    assert WER().value(WER().worst_stats({"text": ""})) == 1.0
    assert CER().aggregate([]) is None


# ---- KIE ------------------------------------------------------------------------------
GOLD = {"company": "ACME Ltd", "total": "12.50", "vendor": {"name": "Bob"}}


def test_kie_fenced_nested_and_normalised() -> None:
    answer = ('Sure:\n```json\n{"company": "acme  ltd", "total": 12.5, '
              '"vendor": {"name": "BOB"}}\n```')
    s = KieF1().stats(answer, {"fields": GOLD})
    assert s == {"tp": 2.0, "fp": 1.0, "fn": 1.0}  # 12.5 != "12.50"
    assert KieF1().value(s) == pytest.approx(2 / (2 + 1))
    assert KiePrecision().value(s) == pytest.approx(2 / 3)
    assert KieRecall().value(s) == pytest.approx(2 / 3)


def test_kie_unparsable_answer_is_all_false_negatives() -> None:
    s = KieF1().stats("the company is ACME", {"fields": GOLD})
    assert s == {"tp": 0.0, "fp": 0.0, "fn": 3.0} and KieF1().value(s) == 0.0
    assert parse_answer("[1, 2]") == {}


def test_kie_micro_pools_over_samples() -> None:
    a = KieF1().stats('{"company": "ACME Ltd"}', {"fields": GOLD})         # tp1 fn2
    b = KieF1().stats('{"a": "1", "b": "2"}', {"fields": {"a": "1"}})      # tp1 fp1
    pooled = KieF1().aggregate([a, b])
    assert pooled == pytest.approx(2 / (2 + (1 + 2) / 2))
    assert pooled != pytest.approx((KieF1().value(a) + KieF1().value(b)) / 2)  # type: ignore[operator]
    assert KieF1().value(KieF1().worst_stats({"fields": GOLD})) == 0.0


def test_accuracy() -> None:
    assert Accuracy().score(" Invoice. ", {"label": "invoice"}) == 1.0
    assert Accuracy().score("receipt", {"label": "invoice"}) == 0.0
