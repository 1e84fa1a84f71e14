"""Exact match after case and whitespace normalisation, against any reference answer.

Normalisation: ``' '.join(s.strip().lower().split())`` on both sides (the
same preprocessing as the DocVQA ANLS script, without the edit distance).
"""

from __future__ import annotations

from ._text import squash
from .base import MeanMetric, Reference


class ExactMatch(MeanMetric):
    """1.0 when the normalised answer equals a normalised ``answers`` entry, else 0.0."""

    name = "exact_match"

    def score(self, prediction: str, reference: Reference) -> float:
        pred = squash(prediction)
        return float(any(pred == squash(str(a)) for a in reference["answers"]))
