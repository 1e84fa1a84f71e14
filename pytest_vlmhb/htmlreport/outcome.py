"""A sample's outcome in report.html: ``good``, ``bad`` or ``error``.

A case's primary metric is the first of its task's metrics (the leaderboard's
score too). A sample that errored is ``error``; otherwise it is ``bad`` when
its primary score is worse than :data:`BAD_THRESHOLD` (below it, or above it
for a metric whose class says ``higher_is_better = False``, such as CER/WER)
or missing, else ``good``. A case without metrics (a user's own test) has
only ``good`` and ``error`` samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

from ..errors import ConfigError
from ..records import metric

Outcome = Literal["good", "bad", "error"]
BAD_THRESHOLD = 0.5


def primary_metric(metrics: Sequence[str]) -> str | None:
    """The metric a case is ranked and its samples classified by (None: no metric)."""
    return metrics[0] if metrics else None


def lower_is_better(name: str) -> bool:
    """Whether a lower value of the metric is better (its class's ``higher_is_better``);
    False for a name no installed metric has."""
    try:
        return not metric(name).higher_is_better
    except ConfigError:
        return False


def outcome(score: float | None, error: str | None, lower: bool) -> Outcome:
    """The sample's outcome from its primary score, its error and the metric's direction."""
    if error:
        return "error"
    if score is None or math.isnan(score):
        return "bad"
    worse = score > BAD_THRESHOLD if lower else score < BAD_THRESHOLD
    return "bad" if worse else "good"


def classify(
    scores: Mapping[str, float | None], error: str | None, metrics: Sequence[str]
) -> Outcome:
    """A sample's outcome from its scores by metric, its error and its case's metrics."""
    name = primary_metric(metrics)
    if name is None:
        return "error" if error else "good"
    return outcome(scores.get(name), error, lower_is_better(name))
