"""Classification accuracy: the normalised answer equals the label."""

from __future__ import annotations

from ._text import squash
from .base import MeanMetric, Reference


def _label(text: str) -> str:
    return squash(text).rstrip(".")


class Accuracy(MeanMetric):
    """1 when the answer (lower-cased, whitespace-collapsed, trailing '.' dropped)
    equals ``label``."""

    name = "accuracy"

    def score(self, prediction: str, reference: Reference) -> float:
        return float(_label(prediction) == _label(str(reference["label"])))
