"""ANLS: Average Normalized Levenshtein Similarity (DocVQA / ST-VQA).

Matches the official RRC evaluation as copied by lmms-eval
(``lmms_eval/tasks/docvqa/utils.py``: ``anls`` + ``levenshtein_distance``) and
VLMEvalKit: per reference, distance between the whitespace-normalised,
lower-cased strings, divided by the length of the longer RAW string after
``.upper()``; the question score is 1 - the smallest normalised distance, set
to 0 below the 0.5 threshold (exactly 0.5 is kept).
"""

from __future__ import annotations

from rapidfuzz.distance import Levenshtein

from ._text import squash
from .base import MeanMetric, Reference

THRESHOLD = 0.5


def anls_score(prediction: str, answers: list[str], threshold: float = THRESHOLD) -> float:
    """ANLS of one answer against its reference answers."""
    if not answers:
        return 0.0
    det = squash(prediction)
    distances = []
    for answer in answers:
        length = max(len(answer.upper()), len(prediction.upper()))
        dist = Levenshtein.distance(squash(answer), det)
        distances.append(0.0 if length == 0 else dist / length)
    score = 1.0 - min(distances)
    return 0.0 if score < threshold else score


class ANLS(MeanMetric):
    """Mean ANLS over a case's questions; reference field ``answers``."""

    name = "anls"

    def score(self, prediction: str, reference: Reference) -> float:
        return anls_score(prediction, list(reference["answers"]))
