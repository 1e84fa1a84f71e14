"""Exact match after ``' '.join(s.strip().lower().split())`` on both sides."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_vlmhb.metrics.exact_match import ExactMatch


@pytest.mark.parametrize(
    ("pred", "answers", "expected"),
    [
        (" Total  DUE ", ["x", "total due"], 1.0),
        ("total\tdue\n", ["Total Due"], 1.0),
        ("total", ["total due"], 0.0),
        ("total due.", ["total due"], 0.0),  # punctuation is not normalised
        ("", [""], 1.0),
        ("   ", [""], 1.0),
        ("x", [], 0.0),
    ],
)
def test_cases(pred: str, answers: list[str], expected: float) -> None:
    assert ExactMatch().score(pred, {"answers": answers}) == expected


@given(st.text(max_size=20), st.lists(st.text(max_size=20), min_size=1, max_size=3))
def test_matches_the_normalisation_rule(pred: str, answers: list[str]) -> None:
    def norm(s: str) -> str:
        return " ".join(s.strip().lower().split())

    expected = float(any(norm(pred) == norm(a) for a in answers))
    assert ExactMatch().score(pred, {"answers": answers}) == expected


def test_metric_interface() -> None:
    metric = ExactMatch()
    assert metric.name == "exact_match" and metric.higher_is_better
    assert metric.value(metric.worst_stats({"answers": ["a"]})) == 0.0
    assert metric.aggregate([{"score": 1.0}, {"score": 0.0}]) == 0.5
