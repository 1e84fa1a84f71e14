"""Relaxed accuracy against a verbatim copy of pix2struct's ``relaxed_correctness``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_vlmhb.metrics.relaxed_accuracy import RelaxedAccuracy, relaxed_correctness

from .reference_impls import reference_relaxed_accuracy

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
number_text = st.one_of(
    st.integers(-10_000, 10_000).map(str),
    finite.map(repr),
    finite.map(lambda f: f"{f:.2f}"),
    finite.map(lambda f: f"{f:.1e}"),
    st.floats(-200, 200, allow_nan=False).map(lambda f: f"{f:.1f}%"),
    st.integers(-100, 100).map(lambda i: f"{i}%"),
)
odd_text = st.sampled_from(
    [
        "0",
        "0.0",
        "-0",
        "0%",
        "0.00%",
        "nan",
        "NaN",
        "inf",
        "-Infinity",
        "1e3",
        "1E3",
        "1_000",
        " 5",
        "5 ",
        "5 %",
        "5%%",
        "%",
        "",
        " ",
        "abc",
        "ABC",
        "Yes",
        "yes",
        "YES ",
        "1,000",
        "$5",
        "5.",
        ".5",
        "+5",
        "١٢",  # Arabic-Indic digits parse
    ]
)
words = st.text(alphabet=st.sampled_from(list("aAbB%5. -")), max_size=6)
answer_text = st.one_of(number_text, odd_text, words)


@st.composite
def close_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """A target and a prediction within a few percent of it (the 5% boundary)."""
    target = draw(st.floats(-1e4, 1e4, allow_nan=False).filter(lambda f: f != 0))
    factor = draw(st.sampled_from([0.94, 0.949, 0.95, 0.951, 1.0, 1.049, 1.05, 1.051, 1.06]))
    pct = draw(st.booleans())
    pred = target * factor
    if pct:
        return f"{target}%", f"{pred}%"
    return repr(target), repr(pred)


@settings(max_examples=1500)
@given(answer_text, st.lists(answer_text, min_size=1, max_size=3))
def test_equals_pix2struct(pred: str, answers: list[str]) -> None:
    ours = RelaxedAccuracy().score(pred, {"answers": answers})
    assert ours == reference_relaxed_accuracy(pred, answers)


@settings(max_examples=800)
@given(close_numbers())
def test_equals_pix2struct_at_the_5_percent_boundary(case: tuple[str, str]) -> None:
    target, pred = case
    assert RelaxedAccuracy().score(pred, {"answers": [target]}) == reference_relaxed_accuracy(
        pred, [target]
    )


@pytest.mark.parametrize(
    ("pred", "answers", "expected"),
    [
        ("104", ["100"], 1.0),
        ("105", ["100"], 1.0),  # exactly 5%: correct
        ("95", ["100"], 1.0),
        ("105.1", ["100"], 0.0),
        ("-104", ["-100"], 1.0),
        ("50%", ["0.5"], 1.0),  # '%' divides by 100 on the prediction side only
        ("0.5", ["50%"], 1.0),
        ("50", ["50%"], 0.0),  # 50 vs 0.5
        ("50%", ["50%"], 1.0),
        ("0", ["0"], 1.0),  # zero target: string equality
        ("0.0", ["0"], 0.0),
        ("0.01", ["0"], 0.0),
        ("Blue", ["blue"], 1.0),  # case-insensitive
        (" blue", ["blue"], 0.0),  # no stripping, as the reference
        ("5 ", ["5"], 1.0),  # ... but float() itself tolerates whitespace
        ("x", ["y", "X"], 1.0),  # max over answers
        ("1,000", ["1000"], 0.0),  # commas do not parse
        ("abc", [], 0.0),
    ],
)
def test_hand_picked_cases(pred: str, answers: list[str], expected: float) -> None:
    assert RelaxedAccuracy().score(pred, {"answers": answers}) == expected
    if answers:
        assert reference_relaxed_accuracy(pred, answers) == expected


def test_argument_order_is_target_then_prediction() -> None:
    assert relaxed_correctness("0", "0.0") is False  # zero target: strings differ
    assert relaxed_correctness("100", "104") is True
    assert relaxed_correctness("104", "100") is True


def test_metric_interface() -> None:
    metric = RelaxedAccuracy()
    assert metric.name == "relaxed_accuracy" and metric.higher_is_better
    assert metric.value(metric.worst_stats({"answers": ["1"]})) == 0.0
