"""Classification accuracy with light normalisation of answer and label."""

from __future__ import annotations

import pytest

from pytest_vlmhb.metrics.accuracy import Accuracy, normalise_label


@pytest.mark.parametrize(
    ("pred", "label", "expected"),
    [
        (" Invoice. ", "invoice", 1.0),
        ("INVOICE", "Invoice.", 1.0),
        ("scientific   report", "Scientific Report", 1.0),
        ("invoice .", "invoice", 1.0),
        ("receipt", "invoice", 0.0),
        ("invoices", "invoice", 0.0),
        ("invoice!", "invoice", 0.0),
    ],
)
def test_cases(pred: str, label: str, expected: float) -> None:
    assert Accuracy().score(pred, {"label": label}) == expected


def test_normalise_label() -> None:
    assert normalise_label("  A  Memo.\n") == "a memo"
    assert normalise_label("etc...") == "etc"


def test_metric_interface() -> None:
    metric = Accuracy()
    assert metric.name == "accuracy" and metric.higher_is_better
    assert metric.value(metric.worst_stats({"label": "x"})) == 0.0
