"""CER and WER with jiwer 4's default transforms, corpus-pooled per case.

Matches jiwer 4 (https://github.com/jitsi/jiwer, ``jiwer/transformations.py``
and ``jiwer/process.py``):

* WER uses ``wer_default`` = ``RemoveMultipleSpaces`` (``re.sub(r"\\s\\s+", " ", s)``),
  ``Strip``, ``ReduceToListOfListOfWords`` (``s.split(" ")`` dropping empty
  words). A single tab or newline between two words is NOT a word boundary,
  exactly as in jiwer.
* CER uses ``cer_default`` = ``Strip``, ``ReduceToListOfListOfChars``: every
  character counts, spaces included, and runs of spaces are NOT collapsed
  (jiwer's ``cer_default`` has no ``RemoveMultipleSpaces``).

Per sample the stats are ``edits`` (Levenshtein distance between the unit
sequences: substitutions + deletions + insertions) and ``ref_len`` (reference
units); the value is ``edits / ref_len`` (None for an empty reference, which
jiwer rejects). The case aggregate pools over samples, ``sum(edits) /
sum(ref_len)``, as ``jiwer.wer(list_of_refs, list_of_hyps)`` does.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein

from .base import Metric, Reference, Stats

_MULTIPLE_SPACES = re.compile(r"\s\s+")


def words(text: str) -> list[str]:
    """jiwer's ``wer_default`` transform of one sentence."""
    return [w for w in _MULTIPLE_SPACES.sub(" ", text).strip().split(" ") if w]


def chars(text: str) -> str:
    """jiwer's ``cer_default`` transform of one sentence (a str is its characters)."""
    return text.strip()


class _EditRate(Metric):
    higher_is_better = False

    @abstractmethod
    def units(self, text: str) -> Sequence[str]:
        """The sequence the edit distance runs over."""

    def stats(self, prediction: str, reference: Reference) -> Stats:
        ref = self.units(str(reference["text"]))
        hyp = self.units(prediction)
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
    """Character error rate (jiwer ``cer``); reference field ``text`` (str)."""

    name = "cer"

    def units(self, text: str) -> Sequence[str]:
        return chars(text)


class WER(_EditRate):
    """Word error rate (jiwer ``wer``); reference field ``text`` (str)."""

    name = "wer"

    def units(self, text: str) -> Sequence[str]:
        return words(text)
