"""OCRBench's rule against lmms-eval's ``ocrbench_process_results`` (its verbatim copy
lives in tests/unit/reference_impls.py)."""

# ruff: noqa: RUF001  (full-width text is the point; verbatim reference code)

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_vlmhb.metrics.ocrbench import OCRBench, ocrbench_score
from tests.unit.reference_impls import ocrbench_process_results  # verbatim lmms-eval, cited there


def reference(prediction: str, answers: Any, dataset: str) -> int:
    doc = {"answer": answers, "dataset": dataset, "question_type": "Doc-oriented VQA"}
    return int(ocrbench_process_results(doc, [prediction])["ocrbench_accuracy"]["score"])


CASES = [
    # (prediction, answers, dataset, expected)
    ("The answer is Hello World.", ["hello world"], "IIIT5K", 1),  # substring, case folded
    ("HELLO", ["hello"], "IIIT5K", 1),
    ("hel lo", ["hello"], "IIIT5K", 0),  # spaces kept outside HME100k
    ("line one\nline two", ["one line"], "FUNSD", 1),  # newline -> space
    ("ＡＢＣ１２３", ["abc123"], "IIIT5K", 1),  # full-width folded (lmms-eval #1415)
    ("abc\u3000def", ["abc def"], "IIIT5K", 1),  # ideographic space
    ("x^{2}+1", ["x ^ { 2 } + 1"], "HME100k", 1),  # HME100k: all spaces removed
    ("X^{2}", ["x ^ { 2 }"], "HME100k", 0),  # HME100k keeps case on both sides (#1278)
    ("\\frac { a } { b }", ["\\frac{a}{b}"], "HME100k", 1),
    ("x\n^2", ["x ^2"], "HME100k", 1),
    ("anything", [""], "IIIT5K", 1),  # the empty reference is a substring of everything
    ("", ["a"], "IIIT5K", 0),
    ("42", "42", "IIIT5K", 1),  # a single string reference
    ("no", ["yes", "no"], "DocVQA", 1),
]


@pytest.mark.parametrize(("prediction", "answers", "dataset", "expected"), CASES)
def test_edge_cases_match_lmms_eval(
    prediction: str, answers: Any, dataset: str, expected: int
) -> None:
    assert reference(prediction, answers, dataset) == expected
    assert ocrbench_score(prediction, answers, dataset) == expected
    metric = OCRBench()
    answer_list = answers if isinstance(answers, list) else [answers]
    assert (
        metric.value(metric.stats(prediction, {"answers": answer_list, "dataset": dataset}))
        == expected
    )


text = st.text(alphabet=st.sampled_from(list("aAbB 1{}^\n\t\u3000ＡＢ１.,")), max_size=10)


@settings(max_examples=400, deadline=None)
@given(
    prediction=text,
    answers=st.lists(text, min_size=1, max_size=3),
    dataset=st.sampled_from(["HME100k", "IIIT5K"]),
)
def test_matches_reference_on_random_text(
    prediction: str, answers: list[str], dataset: str
) -> None:
    assert ocrbench_score(prediction, answers, dataset) == reference(prediction, answers, dataset)


def test_total_out_of_1000_is_the_mean_times_1000() -> None:
    metric = OCRBench()
    stats = [metric.stats("yes", {"answers": ["yes"], "dataset": "X"})] * 3 + [
        metric.stats("no", {"answers": ["yes"], "dataset": "X"})
    ]
    assert metric.aggregate(stats) == 0.75  # 750 of 1000 on the full set
    assert metric.worst_stats({"answers": ["a"], "dataset": "X"}) == {"score": 0.0}
