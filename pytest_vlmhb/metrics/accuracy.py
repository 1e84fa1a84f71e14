"""Classification accuracy: the normalised answer equals the normalised label.

Normalisation: strip, lower-case, collapse runs of whitespace to one space and
drop trailing full stops (``" Invoice. "`` -> ``"invoice"``), on both sides.
"""

from __future__ import annotations

from ._text import squash
from .base import MeanMetric, Reference


def normalise_label(text: str) -> str:
    """Lower-cased, whitespace-collapsed text without trailing ``'.'``."""
    return squash(text.strip().rstrip("."))


class Accuracy(MeanMetric):
    """1.0 when the normalised answer equals the normalised ``label``, else 0.0."""

    name = "accuracy"

    def score(self, prediction: str, reference: Reference) -> float:
        return float(normalise_label(prediction) == normalise_label(str(reference["label"])))
