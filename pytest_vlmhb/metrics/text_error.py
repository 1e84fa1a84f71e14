"""CER and WER with jiwer's default transforms, corpus-pooled per case.

jiwer 4 (``jiwer/transformations.py``): ``wer_default`` =
RemoveMultipleSpaces (``re.sub(r"\\s\\s+", " ")``), Strip, then split on a
single space dropping empty words; ``cer_default`` = Strip, then characters
(spaces count). The case aggregate pools edits over reference lengths, as
``jiwer.wer(list_of_refs, list_of_hyps)`` does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein

from .base import Metric, Reference, Stats

_MULTIPLE_SPACES = re.compile(r"\s\s+")


def words(text: str) -> list[str]:
    """jiwer's ``wer_default`` transform."""
    return [w for w in _MULTIPLE_SPACES.sub(" ", text).strip().split(" ") if w]


def chars(text: str) -> list[str]:
    """jiwer's ``cer_default`` transform."""
    return list(text.strip())


class _EditRate(Metric):
    higher_is_better = False

    @staticmethod
    def units(text: str) -> list[str]:
        raise NotImplementedError

    def stats(self, prediction: str, reference: Reference) -> Stats:
        ref, hyp = self.units(str(reference["text"])), self.units(prediction)
        return {"edits": float(Levenshtein.distance(ref, hyp)), "ref_len": float(len(ref))}

    def worst_stats(self, reference: Reference) -> Stats:
        n = float(len(self.units(str(reference["text"])))) or 1.0
        return {"edits": n, "ref_len": n}

    def value(self, stats: Stats) -> float | None:
        return stats["edits"] / stats["ref_len"] if stats["ref_len"] else None

    def aggregate(self, stats: Sequence[Stats]) -> float | None:
        total = sum(s["ref_len"] for s in stats)
        return sum(s["edits"] for s in stats) / total if total else None


class CER(_EditRate):
    """Character error rate; reference field ``text``."""

    name = "cer"
    units = staticmethod(chars)


class WER(_EditRate):
    """Word error rate; reference field ``text``."""

    name = "wer"
    units = staticmethod(words)
