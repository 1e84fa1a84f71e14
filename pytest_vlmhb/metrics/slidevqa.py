"""SlideVQA's ANLS, exact match and word F1, as lmms-eval's ``slidevqa`` task scores them.

``lmms_eval/tasks/slidevqa/utils.py`` (commit 75571cfe), ``slidevqa_process_results``:
the reference is ``normalize_answer``-ed (newlines removed, lower-cased; a
missing one is ``not answerable``, set when the data is materialised), the
answer only lower-cased;

* ANLS: ``1 - distance / max(len(reference), len(answer))``, kept when strictly
  above 0.5, else 0 (0 when both are empty);
* exact match: the two equal after ``strip()``;
* word F1: whitespace tokens; precision and recall both count the answer's
  tokens found among the reference's (a repeated token counts each time, so
  recall, and F1, can exceed 1: ``x x`` against ``x`` scores 4/3, as there),
  0 when either side has none or when precision + recall <= 1e-4.

The case figures are means over questions (``aggregation: mean``). lmms-eval
has one reference per question; with several, the best score counts.
"""

from __future__ import annotations

from collections.abc import Callable

from rapidfuzz.distance import Levenshtein

from .base import MeanMetric, Reference

THRESHOLD = 0.5


def normalize_answer(answer: str) -> str:
    """The reference as SlideVQA compares it: newlines removed, lower-cased."""
    return answer.replace("\n", "").lower()


def slidevqa_anls(answer: str, prediction: str) -> float:
    length = max(len(answer), len(prediction))
    if length == 0:
        return 0.0
    score = 1.0 - Levenshtein.distance(answer, prediction) / length
    return score if score > THRESHOLD else 0.0


def slidevqa_em(answer: str, prediction: str) -> float:
    return float(answer.strip() == prediction.strip())


def slidevqa_f1(answer: str, prediction: str) -> float:
    answer_words, prediction_words = answer.split(), prediction.split()
    if not answer_words or not prediction_words:
        return 0.0
    common = sum(word in answer_words for word in prediction_words)
    recall, precision = common / len(answer_words), common / len(prediction_words)
    if recall + precision <= 1e-4:
        return 0.0
    return 2 * recall * precision / (recall + precision)


def _best(rule: Callable[[str, str], float], prediction: str, reference: Reference) -> float:
    pred = prediction.lower()
    return max((rule(normalize_answer(str(a)), pred) for a in reference["answers"]), default=0.0)


class SlideVQAANLS(MeanMetric):
    """Mean SlideVQA ANLS; reference field ``answers``."""

    name = "slidevqa_anls"

    def score(self, prediction: str, reference: Reference) -> float:
        return _best(slidevqa_anls, prediction, reference)


class SlideVQAEM(MeanMetric):
    """Share of SlideVQA answers equal to the reference; field ``answers``."""

    name = "slidevqa_em"

    def score(self, prediction: str, reference: Reference) -> float:
        return _best(slidevqa_em, prediction, reference)


class SlideVQAF1(MeanMetric):
    """Mean SlideVQA word F1; reference field ``answers``."""

    name = "slidevqa_f1"

    def score(self, prediction: str, reference: Reference) -> float:
        return _best(slidevqa_f1, prediction, reference)
