"""Exact match after case and whitespace normalisation, against any reference answer."""

from __future__ import annotations

from ._text import squash
from .base import MeanMetric, Reference


class ExactMatch(MeanMetric):
    """1 when ``squash(prediction)`` equals ``squash`` of any of ``answers``."""

    name = "exact_match"

    def score(self, prediction: str, reference: Reference) -> float:
        pred = squash(prediction)
        return float(any(pred == squash(a) for a in reference["answers"]))
