"""ChartQA relaxed accuracy.

Matches ``relaxed_correctness`` of google-research/pix2struct
(https://github.com/google-research/pix2struct/blob/main/pix2struct/metrics.py),
which lmms-eval's ChartQA task (``lmms_eval/tasks/chartqa/utils.py``) and
Qwen-VL's ``eval_mm/evaluate_vqa.py`` copy:

* a string ending in ``'%'`` is parsed as ``float(s.rstrip('%')) / 100``, any
  other with ``float(s)`` (so surrounding whitespace is tolerated by the
  parse); the rule applies to each side on its own;
* when both parse and the target is non-zero: correct iff
  ``|prediction - target| / |target| <= 0.05``;
* otherwise case-insensitive string equality, with NO stripping (as the
  reference).

The question score is the max over the reference answers (pix2struct's
``aggregate_metrics``); no reference answers scores 0.
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


def relaxed_correctness(
    target: str, prediction: str, max_relative_change: float = MAX_RELATIVE_CHANGE
) -> bool:
    """pix2struct's rule for one (target, prediction) pair."""
    prediction_float = _to_float(prediction)
    target_float = _to_float(target)
    if prediction_float is not None and target_float:
        relative_change = abs(prediction_float - target_float) / abs(target_float)
        return relative_change <= max_relative_change
    return prediction.lower() == target.lower()


class RelaxedAccuracy(MeanMetric):
    """Mean relaxed correctness; reference field ``answers`` (list of str)."""

    name = "relaxed_accuracy"

    def score(self, prediction: str, reference: Reference) -> float:
        return float(any(relaxed_correctness(str(a), prediction) for a in reference["answers"]))
