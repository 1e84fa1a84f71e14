"""ANLS against a verbatim copy of lmms-eval's ``anls`` (see reference_impls.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_vlmhb.metrics.anls import ANLS, anls_score

from .reference_impls import reference_anls

# Characters whose length changes under upper() or lower() ('ß' -> 'SS', U+0149 and
# 'ﬁ' -> 2 characters, 'İ'.lower() has 2 code points), whitespace str.split() knows (tab,
# newline, NBSP, ideographic space), both cases, digits and punctuation.
ALPHABET = list("abcABC ß\u1e9e\u0131\u0130\u0149\ufb01é1.$-\t\n\u00a0\u3000")
texty = st.text(alphabet=st.sampled_from(ALPHABET), max_size=16)
anything = st.text(max_size=12)  # arbitrary unicode


@st.composite
def near_miss(draw: st.DrawFn) -> tuple[str, list[str]]:
    """An answer a few edits away from one of its references (scores near 0.5..1)."""
    answers = draw(st.lists(texty, min_size=1, max_size=3))
    chars = list(draw(st.sampled_from(answers)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["ins", "del", "sub", "case"]))
        pos = draw(st.integers(0, len(chars)))
        if op == "ins":
            chars.insert(pos, draw(st.sampled_from(ALPHABET)))
        elif chars and pos < len(chars):
            if op == "del":
                del chars[pos]
            elif op == "sub":
                chars[pos] = draw(st.sampled_from(ALPHABET))
            else:
                chars[pos] = chars[pos].swapcase()
    return "".join(chars), answers


@settings(max_examples=1000)
@given(texty, st.lists(texty, min_size=1, max_size=4))
def test_equals_reference_on_random_pairs(pred: str, answers: list[str]) -> None:
    assert ANLS().score(pred, {"answers": answers}) == reference_anls(pred, answers)


@settings(max_examples=1000)
@given(near_miss())
def test_equals_reference_near_the_threshold(case: tuple[str, list[str]]) -> None:
    pred, answers = case
    assert ANLS().score(pred, {"answers": answers}) == reference_anls(pred, answers)


@settings(max_examples=500)
@given(anything, st.lists(anything, min_size=1, max_size=3))
def test_equals_reference_on_arbitrary_unicode(pred: str, answers: list[str]) -> None:
    assert ANLS().score(pred, {"answers": answers}) == reference_anls(pred, answers)


@pytest.mark.parametrize(
    ("pred", "answers", "expected"),
    [
        ("abcd", ["abce"], 0.75),
        ("ab", ["abcd"], 0.5),  # exactly at the threshold: kept
        ("abc", ["abcdef"], 0.5),  # kept too
        ("a", ["abcd"], 0.0),  # 0.25 < 0.5 -> 0
        ("ab", ["abcde"], 0.0),  # 0.4 -> 0
        ("", [""], 1.0),  # both empty: NL 0
        ("", ["abc"], 0.0),
        ("abc", [""], 0.0),
        ("   ", [""], 1.0),  # normalised both empty, length 3: NL 0
        ("  Hello   World ", ["hello world"], 1.0),  # whitespace/case normalised
        ("hello world", ["  Hello   World "], 1.0),
        ("strasse", ["straße"], 1 - 2 / 7),  # len('straße'.upper()) == 7
        ("ß", ["ss"], 0.0),  # distance 2 over length 2
        ("x", ["no", "x"], 1.0),  # best reference wins
        ("abcd", ["zzzz", "abce", "abzz"], 0.75),
        ("12", ["1.2"], pytest.approx(2 / 3)),
    ],
)
def test_hand_picked_cases(pred: str, answers: list[str], expected: float) -> None:
    assert ANLS().score(pred, {"answers": answers}) == expected
    assert ANLS().score(pred, {"answers": answers}) == reference_anls(pred, answers)


def test_answer_is_scored_as_given() -> None:
    # Surrounding whitespace is normalised away for the distance but still counts
    # in the RAW length (as in the reference): 1 edit over 7 characters, not 4.
    assert ANLS().score("  abc  ", {"answers": ["abcd"]}) == 1 - 1 / 7
    assert reference_anls("  abc  ", ["abcd"]) == 1 - 1 / 7


def test_no_reference_answers_scores_zero() -> None:
    assert anls_score("anything", []) == 0.0


def test_mean_aggregate_and_errored_samples() -> None:
    metric = ANLS()
    stats = [metric.stats("abcd", {"answers": ["abce"]}), metric.worst_stats({"answers": ["x"]})]
    assert [metric.value(s) for s in stats] == [0.75, 0.0]
    assert metric.aggregate(stats) == 0.375
    assert metric.aggregate([]) is None
    assert metric.name == "anls" and metric.higher_is_better
