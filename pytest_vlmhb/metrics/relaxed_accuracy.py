"""ChartQA relaxed accuracy.

Matches pix2struct's ``relaxed_correctness`` (google-research/pix2struct,
``pix2struct/metrics.py``), which lmms-eval's ChartQA task copies: a
trailing ``%`` divides by 100 (on that side only); if both sides parse as
floats and the target is non-zero, correct when the relative change is at
most 5%; otherwise case-insensitive string equality. Max over answers.
"""

from __future__ import annotations

from .base import MeanMetric, Reference

MAX_RELATIVE_CHANGE = 0.05


def _to_float(text: str) -> float | None:
    try:
        if text.endswith("%"):
            return float(text.rstrip("%")) / 100.0
        return float(text)
    except ValueError:
        return None


def relaxed_correctness(target: str, prediction: str,
                        max_relative_change: float = MAX_RELATIVE_CHANGE) -> bool:
    """pix2struct's rule for one (target, prediction) pair."""
    prediction_float = _to_float(prediction)
    target_float = _to_float(target)
    if prediction_float is not None and target_float:
        relative_change = abs(prediction_float - target_float) / abs(target_float)
        return relative_change <= max_relative_change
    return prediction.lower() == target.lower()


class RelaxedAccuracy(MeanMetric):
    """Mean relaxed correctness; reference field ``answers``."""

    name = "relaxed_accuracy"

    def score(self, prediction: str, reference: Reference) -> float:
        return float(any(relaxed_correctness(a, prediction) for a in reference["answers"]))
