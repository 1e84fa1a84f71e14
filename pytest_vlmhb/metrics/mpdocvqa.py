"""MP-DocVQA's ANLS and accuracy, as lmms-eval's ``multidocvqa`` task scores them.

``lmms_eval/tasks/multidocvqa/utils.py`` (commit 75571cfe), ``Evaluator(case_sensitive=False)``;
both differ from DocVQA's ANLS (``metrics/anls.py``):

* answer and references are ``lower()``-ed then ``strip()``-ed (inner whitespace
  is kept, not collapsed);
* an empty answer, or the answer ``none``, scores 0;
* ANLS: per reference ``1 - distance / max(len(reference), len(answer))`` on the
  preprocessed strings, the best one kept when it is at least 0.5, else 0;
* accuracy: 1 when the preprocessed answer equals a preprocessed reference.

The case figure is the mean over questions (its aggregation functions).
"""

from __future__ import annotations

from collections.abc import Iterable

from rapidfuzz.distance import Levenshtein

from .base import MeanMetric, Reference

THRESHOLD = 0.5


def _preprocess(text: str) -> str:
    return text.lower().strip()


def mpdocvqa_anls(prediction: str, answers: Iterable[str]) -> float:
    """ANLS of one answer against its references (0 without references)."""
    pred = _preprocess(prediction)
    if not pred or pred == "none":
        return 0.0
    best = max(
        (
            1 - Levenshtein.distance(gt, pred) / max(len(gt), len(pred))
            for gt in map(_preprocess, answers)
        ),
        default=0.0,
    )
    return best if best >= THRESHOLD else 0.0


def mpdocvqa_accuracy(prediction: str, answers: Iterable[str]) -> float:
    """1.0 when the answer equals a reference (case and outer whitespace ignored)."""
    pred = _preprocess(prediction)
    if pred == "none":
        return 0.0
    return float(any(_preprocess(gt) == pred for gt in answers))


class MPDocVQAANLS(MeanMetric):
    """Mean MP-DocVQA ANLS; reference field ``answers`` (list of str)."""

    name = "mpdocvqa_anls"

    def score(self, prediction: str, reference: Reference) -> float:
        return mpdocvqa_anls(prediction, [str(a) for a in reference["answers"]])


class MPDocVQAAccuracy(MeanMetric):
    """Share of MP-DocVQA answers equal to a reference; field ``answers``."""

    name = "mpdocvqa_accuracy"

    def score(self, prediction: str, reference: Reference) -> float:
        return mpdocvqa_accuracy(prediction, [str(a) for a in reference["answers"]])
