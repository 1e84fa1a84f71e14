"""SlideVQA's ANLS, exact match and word F1 against a verbatim copy of lmms-eval's
``slidevqa_process_results`` (see reference_impls.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_vlmhb.metrics.slidevqa import SlideVQAANLS, SlideVQAEM, SlideVQAF1
from pytest_vlmhb.tasks.presets import load_preset

from .reference_impls import slidevqa_process_results

ALPHABET = list("abAB \u0130\u00df\t\n\u00a012.")
texty = st.text(alphabet=st.sampled_from(ALPHABET), max_size=12)
words = st.lists(st.sampled_from(["total", "Revenue", "2", "x", "x", "NEW"]), max_size=4).map(
    " ".join
)
ANSWERS = st.one_of(texty, words, st.none(), st.just(math.nan), st.integers(-5, 500))


def ours(prediction: str, answer: object) -> dict[str, float]:
    """Our three scores, the reference as the preset materialises the row's answer."""
    reference = load_preset("slidevqa_val").fields({"question": "q", "answer": answer})
    return {
        "anls": SlideVQAANLS().score(prediction, reference),
        "em": SlideVQAEM().score(prediction, reference),
        "f1": SlideVQAF1().score(prediction, reference),
    }


@settings(max_examples=1500)
@given(prediction=st.one_of(texty, words), answer=ANSWERS)
def test_scores_equal_lmms_eval(prediction: str, answer: object) -> None:
    assert ours(prediction, answer) == slidevqa_process_results({"answer": answer}, [prediction])


@settings(max_examples=800)
@given(answer=st.one_of(texty, words), edits=st.lists(st.sampled_from(ALPHABET), max_size=3))
def test_scores_near_the_answer_equal_lmms_eval(answer: str, edits: list[str]) -> None:
    prediction = answer.upper()[: max(len(answer) - 1, 0)] + "".join(edits)
    assert ours(prediction, answer) == slidevqa_process_results({"answer": answer}, [prediction])


@pytest.mark.parametrize(
    ("prediction", "answer", "scores"),
    [
        ("newyork", "New\nYork", {"anls": 1.0, "em": 1.0, "f1": 1.0}),
        ("Not answerable", None, {"anls": 1.0, "em": 1.0, "f1": 1.0}),
        ("revenue", "total revenue", {"anls": 7 / 13, "em": 0.0, "f1": 2 / 3}),
        ("abcd", "abcdefgh", {"anls": 0.0, "em": 0.0, "f1": 0.0}),  # 0.5 is not above 0.5
        ("", "", {"anls": 0.0, "em": 1.0, "f1": 0.0}),
        # a repeated word counts again: recall 2/1, and an F1 of 4/3, as lmms-eval's
        ("x x", "x", {"anls": 0.0, "em": 0.0, "f1": 4 / 3}),
    ],
)
def test_examples(prediction: str, answer: object, scores: dict[str, float]) -> None:
    assert slidevqa_process_results({"answer": answer}, [prediction]) == pytest.approx(scores)
    assert ours(prediction, answer) == pytest.approx(scores)


def test_several_references_keep_the_best() -> None:
    assert SlideVQAEM().score("b", {"answers": ["a", "B"]}) == 1.0
