"""MP-DocVQA's ANLS and accuracy against a verbatim copy of lmms-eval's multidocvqa
``Evaluator`` (see reference_impls.py), sample by sample and over a case."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_vlmhb.metrics.anls import ANLS
from pytest_vlmhb.metrics.mpdocvqa import MPDocVQAAccuracy, MPDocVQAANLS

from .reference_impls import Evaluator, lmms_eval_multidocvqa_scores

# Case changes that change lengths ('İ'.lower() has 2 code points, 'ß'), inner and
# outer whitespace (kept inside, stripped outside), and the word "none".
ALPHABET = list("abAB \u0130\u00df\u1e9e\t\n\u00a01.$-")
texty = st.text(alphabet=st.sampled_from(ALPHABET), max_size=12)
answerish = st.one_of(texty, st.sampled_from(["none", " None\n", "NONE", "", "  "]))


def reference(prediction: str, answers: list[str]) -> tuple[float, float]:
    """(anls, accuracy) of one sample, as lmms-eval's Evaluator computes them."""
    metrics = Evaluator(case_sensitive=False).get_metrics([answers], [prediction])
    return metrics["anls"][0], metrics["accuracy"][0]


@st.composite
def near_miss(draw: st.DrawFn) -> tuple[str, list[str]]:
    """An answer a few edits away from one of its references (scores around 0.5)."""
    answers = draw(st.lists(texty, min_size=1, max_size=3))
    chars = list(draw(st.sampled_from(answers)))
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(chars)))
        if draw(st.booleans()) or not chars or pos == len(chars):
            chars.insert(pos, draw(st.sampled_from(ALPHABET)))
        else:
            chars[pos] = draw(st.sampled_from(ALPHABET))
    return "".join(chars), answers


@settings(max_examples=1000)
@given(answerish, st.lists(answerish, min_size=1, max_size=4))
def test_per_sample_scores_equal_lmms_eval(prediction: str, answers: list[str]) -> None:
    anls, accuracy = reference(prediction, answers)
    reference_dict = {"answers": answers}
    assert MPDocVQAANLS().score(prediction, reference_dict) == anls
    assert MPDocVQAAccuracy().score(prediction, reference_dict) == accuracy


@settings(max_examples=1000)
@given(near_miss())
def test_scores_near_the_threshold_equal_lmms_eval(case: tuple[str, list[str]]) -> None:
    prediction, answers = case
    assert (
        MPDocVQAANLS().score(prediction, {"answers": answers}) == reference(prediction, answers)[0]
    )


@settings(max_examples=300)
@given(st.lists(st.tuples(answerish, st.lists(answerish, min_size=1, max_size=3)), min_size=1))
def test_case_figures_equal_lmms_evals_aggregations(samples: list[tuple[str, list[str]]]) -> None:
    payloads = []
    anls_stats, accuracy_stats = [], []
    for i, (prediction, answers) in enumerate(samples):
        item = {"questionId": i, "answer": answers, "pred_answer": prediction}
        payloads.append({"anls": item, "accuracy": item})
        anls_stats.append(MPDocVQAANLS().stats(prediction, {"answers": answers}))
        accuracy_stats.append(MPDocVQAAccuracy().stats(prediction, {"answers": answers}))
    anls, accuracy = lmms_eval_multidocvqa_scores(payloads)
    assert MPDocVQAANLS().aggregate(anls_stats) == pytest.approx(anls, abs=1e-12)
    assert MPDocVQAAccuracy().aggregate(accuracy_stats) == pytest.approx(accuracy, abs=1e-12)


@pytest.mark.parametrize(
    ("prediction", "answers", "anls", "accuracy"),
    [
        ("None", ["none"], 0.0, 0.0),  # "none" never scores, even when it is the answer
        ("", [""], 0.0, 1.0),  # an empty answer: no ANLS, but equal for accuracy
        (" PARIS\n", ["paris"], 1.0, 1.0),
        ("new  york", ["New York"], 8 / 9, 0.0),  # inner whitespace is kept
        ("abcd", ["abcdefgh"], 0.5, 0.0),  # exactly 0.5 is kept
        ("abc", ["abcdefgh"], 0.0, 0.0),
    ],
)
def test_examples(prediction: str, answers: list[str], anls: float, accuracy: float) -> None:
    assert reference(prediction, answers) == pytest.approx((anls, accuracy))
    assert MPDocVQAANLS().score(prediction, {"answers": answers}) == pytest.approx(anls)
    assert MPDocVQAAccuracy().score(prediction, {"answers": answers}) == accuracy


def test_differs_from_docvqa_anls_where_lmms_eval_differs() -> None:
    # DocVQA's ANLS collapses inner whitespace; MP-DocVQA's does not.
    assert ANLS().score("new  york", {"answers": ["New York"]}) == 1.0
    assert MPDocVQAANLS().score("new  york", {"answers": ["New York"]}) < 1.0


def test_an_errored_sample_scores_zero() -> None:
    assert MPDocVQAANLS().worst_stats({"answers": ["a"]}) == {"score": 0.0}
