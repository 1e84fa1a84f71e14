"""The metric interface: per-sample sufficient statistics and a case aggregate.

A metric turns one model answer and its reference into a small dict of
numbers (its *stats*). The per-sample value and the case aggregate are both
computed from stats, so corpus-pooled metrics (CER/WER, micro F1) aggregate
correctly and results can be merged from several processes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

Stats = dict[str, float]
Reference = Mapping[str, Any]


class Metric(ABC):
    """Base class of every metric; subclasses are registered through the
    ``vlmhb.metrics`` entry point group under their :attr:`name`."""

    #: Column name in answers.csv / metrics.csv (e.g. ``"anls"``).
    name: ClassVar[str]
    #: Direction, used by reports and regression gates.
    higher_is_better: ClassVar[bool] = True

    @abstractmethod
    def stats(self, prediction: str, reference: Reference) -> Stats:
        """Sufficient statistics of one answer against its reference."""

    @abstractmethod
    def worst_stats(self, reference: Reference) -> Stats:
        """Stats of a sample that errored (scores 0; error rates 1)."""

    @abstractmethod
    def value(self, stats: Stats) -> float | None:
        """Per-sample value from one sample's stats (None: undefined)."""

    @abstractmethod
    def aggregate(self, stats: Sequence[Stats]) -> float | None:
        """Case aggregate over all samples' stats (None: no samples)."""


class MeanMetric(Metric):
    """A metric whose case aggregate is the mean of per-sample scores."""

    @abstractmethod
    def score(self, prediction: str, reference: Reference) -> float:
        """Per-sample score in [0, 1]."""

    def stats(self, prediction: str, reference: Reference) -> Stats:
        return {"score": float(self.score(prediction, reference))}

    def worst_stats(self, reference: Reference) -> Stats:
        return {"score": 0.0 if self.higher_is_better else 1.0}

    def value(self, stats: Stats) -> float | None:
        return stats["score"]

    def aggregate(self, stats: Sequence[Stats]) -> float | None:
        if not stats:
            return None
        return sum(s["score"] for s in stats) / len(stats)
