"""ANLS: Average Normalized Levenshtein Similarity (DocVQA, InfographicVQA).

Matches the official RRC evaluation script as copied by lmms-eval
(https://github.com/EvolvingLMMs-Lab/lmms-eval, ``lmms_eval/api/metrics.py``:
``levenshtein_distance`` and ``anls``) and VLMEvalKit
(``vlmeval/dataset/utils/vqa_eval.py``: ``anls_compute``):

* per reference answer, the edit distance between the two strings after
  ``' '.join(s.strip().lower().split())``;
* divided by ``max(len(answer.upper()), len(prediction.upper()))`` of the RAW
  strings (so ``'ß'`` counts 2); 0 when both are empty;
* question score = 1 - the smallest normalised distance, set to 0 when it is
  below the 0.5 threshold (exactly 0.5 is kept).

The answer is scored exactly as the model gave it. A question with no reference
answers scores 0 (the reference raises on ``min([])``).
"""

from __future__ import annotations

from collections.abc import Iterable

from rapidfuzz.distance import Levenshtein

from ._text import squash
from .base import MeanMetric, Reference

THRESHOLD = 0.5


def anls_score(prediction: str, answers: Iterable[str], threshold: float = THRESHOLD) -> float:
    """ANLS of one answer against its reference answers."""
    det_answer = squash(prediction)
    pred_len = len(prediction.upper())
    distances: list[float] = []
    for answer in answers:
        length = max(len(answer.upper()), pred_len)
        dist = Levenshtein.distance(squash(answer), det_answer)
        distances.append(0.0 if length == 0 else dist / length)
    if not distances:
        return 0.0
    score = 1.0 - min(distances)
    return 0.0 if score < threshold else score


class ANLS(MeanMetric):
    """Mean ANLS over a case's questions; reference field ``answers`` (list of str)."""

    name = "anls"

    def score(self, prediction: str, reference: Reference) -> float:
        return anls_score(prediction, [str(a) for a in reference["answers"]])
