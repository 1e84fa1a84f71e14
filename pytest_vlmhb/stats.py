"""Bootstrap intervals and paired tests of case figures (numpy).

A case figure is recomputed on resamples with the metric's own code, so every
metric, pooled or not, gets a correct interval: a resample is a multiset of
samples (how often each one is drawn) and its figure is the metric's
``aggregate`` of their stats (an errored sample holds its worst stats, as in
the case aggregate).

Fast path: most metrics' ``aggregate`` is their ``value`` of the stats' column
means (a mean of scores; CER/WER's pooled edits over reference length) or of
their column sums (micro F1 with a smoothing epsilon), so a resample costs a
row of a matrix product and one ``value`` call (one call for all of them where
``value`` takes arrays). It is taken only where it reproduces ``aggregate``
exactly on the whole sample and on the first resamples; otherwise every
resample calls ``aggregate``.

Draws are seeded from a sha256 of a key (the case id, never Python's salted
``hash``): intervals and p-values are the same in every process and rerun.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .metrics.base import Metric, Stats

#: Resamples of a bootstrap interval, and permutations of a paired test.
RESAMPLES = 2000
#: Coverage of the intervals.
LEVEL = 0.95
#: Draws per chunk (resamples x samples), bounding memory on large cases.
_CHUNK = 1 << 18
#: Random resamples computed both ways before the fast path is trusted.
_PROBES = 3

Interval = tuple[float | None, float | None]
Floats = NDArray[np.float64]


def seed_of(*parts: str) -> int:
    """A 64-bit seed from a stable hash of ``parts``."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big")


#: What a stream of draws is seeded by: e.g. (case id,) or (case id, column); a
#: string stands for its parts joined by U+001F.
Key = str | tuple[str, ...]


def _rng(key: Key) -> np.random.Generator:
    return np.random.default_rng(seed_of(key) if isinstance(key, str) else seed_of(*key))


def _sizes(total: int, width: int) -> Iterator[int]:
    """Chunk sizes (rows of ``width`` draws) adding up to ``total``."""
    step = max(1, _CHUNK // max(width, 1))
    for start in range(0, total, step):
        yield min(step, total - start)


def _counts(draws: NDArray[np.int64], n: int) -> Floats:
    """Row b: how often each of ``n`` samples is in resample b."""
    rows = draws.shape[0]
    flat = (draws + np.arange(rows)[:, None] * n).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


def _dot(matrix: Floats, vector: Floats) -> Floats:
    """``matrix @ vector`` without BLAS, whose threads cost more than they save on
    these thin products (milliseconds each, to wake them, on a busy machine)."""
    return np.asarray(np.einsum("ij,j->i", matrix, vector), dtype=np.float64)


def _num(value: float | None) -> float:
    return math.nan if value is None else float(value)


class Aggregator:
    """A metric's ``aggregate`` of many multisets drawn from fixed stats rows, given
    in one or more parts (a paired test's baseline and current samples)."""

    def __init__(self, metric: Metric, *parts: Sequence[Stats]) -> None:
        self.metric = metric
        self.parts = [list(part) for part in parts]
        rows = [row for part in self.parts for row in part]
        keys = sorted(rows[0]) if rows else []
        uniform = all(sorted(row) == keys for row in rows)
        self._keys = keys
        #: Per part, each key's values as one vector.
        self._columns = [
            [np.array([row[k] for row in part], dtype=np.float64) for k in keys] if uniform else []
            for part in self.parts
        ]
        #: Whether ``value`` of the column means (or, ``pooled``, sums) stands for
        #: ``aggregate``: decided on the first call (None until then).
        self.fast: bool | None = None if uniform else False
        self.pooled = False

    def __call__(self, *counts: Floats | None) -> Floats:
        """The aggregate of each multiset: row b of ``counts[p]`` says how often each
        row of part p is in multiset b (None: no row of that part). NaN where the
        metric says None."""
        given = [c for c in counts if c is not None]
        if self.fast is None:
            ones = [None if c is None else np.ones((1, c.shape[1])) for c in counts]
            probes = [None if c is None else c[:_PROBES] for c in counts]
            for pooled in (False, True):
                self.pooled = pooled
                self.fast = self._agrees(ones) and self._agrees(probes)
                if self.fast:
                    break
        if self.fast:
            return self._by_means(counts)
        return np.array(
            [
                self._exact([None if c is None else c[b] for c in counts])
                for b in range(len(given[0]))
            ],
            dtype=np.float64,
        )

    def _exact(self, counts: Sequence[Floats | None]) -> float:
        picked: list[Stats] = []
        for part, c in zip(self.parts, counts, strict=True):
            if c is not None:
                picked += [part[i] for i in np.repeat(np.arange(len(part)), c.astype(np.int64))]
        return _num(self.metric.aggregate(picked))

    def _by_means(self, counts: Sequence[Floats | None]) -> Floats:
        sums: Floats | None = None
        totals: Floats | None = None
        for columns, c in zip(self._columns, counts, strict=True):
            if c is None:
                continue
            part_sums = np.column_stack([_dot(c, column) for column in columns])
            part_totals = c.sum(axis=1)
            sums = part_sums if sums is None else sums + part_sums
            totals = part_totals if totals is None else totals + part_totals
        assert sums is not None and totals is not None
        means = sums if self.pooled else sums / np.where(totals > 0, totals, 1.0)[:, None]
        out = self._values(means)
        out[totals == 0] = math.nan
        return out

    def _values(self, means: Floats) -> Floats:
        """``value`` of each row of means: once on whole columns where the metric's
        code takes arrays (a mean of scores), else row by row."""
        try:
            whole = self.metric.value(dict(zip(self._keys, means.T, strict=True)))
            if isinstance(whole, np.ndarray) and whole.shape == (len(means),):
                return whole.astype(np.float64)
        except (ArithmeticError, KeyError, TypeError, ValueError):
            pass  # e.g. "if stats['ref_len']" on an array: row by row
        out = np.empty(len(means), dtype=np.float64)
        for b, row in enumerate(means.tolist()):
            out[b] = _num(self.metric.value(dict(zip(self._keys, row, strict=True))))
        return out

    def _agrees(self, probes: Sequence[Floats | None]) -> bool:
        try:
            fast = self._by_means(probes)
        except (ArithmeticError, KeyError, TypeError, ValueError):
            return False
        rows = len(fast)
        exact = np.array(
            [self._exact([None if c is None else c[b] for c in probes]) for b in range(rows)],
            dtype=np.float64,
        )
        same = np.isclose(fast, exact, rtol=1e-9, atol=1e-12) | (np.isnan(fast) & np.isnan(exact))
        return bool(same.all())


class Quantile:
    """A percentile (linear interpolation, as numpy's default; or the mean) of many
    multisets drawn from fixed values, given in one or more parts."""

    def __init__(self, q: float | None, *parts: Floats) -> None:
        values = np.concatenate(parts) if parts else np.zeros(0)
        self.q = q
        order = np.argsort(values, kind="stable")
        self._sorted = values[order]
        #: None when the values come sorted (a bootstrap's single part).
        self._order = None if np.array_equal(order, np.arange(order.size)) else order
        self._sizes = [len(part) for part in parts]

    def __call__(self, *counts: Floats | None) -> Floats:
        """The figure of each multiset (``counts`` as for :class:`Aggregator`)."""
        rows = next(len(c) for c in counts if c is not None)
        full = np.hstack(
            [
                np.zeros((rows, size)) if c is None else c
                for c, size in zip(counts, self._sizes, strict=True)
            ]
        )
        if self._order is not None:
            full = full[:, self._order]
        totals = full.sum(axis=1)
        if self.q is None:
            return np.asarray(_dot(full, self._sorted) / totals, dtype=np.float64)
        cumulative = np.cumsum(full, axis=1)
        position = (totals - 1.0) * self.q / 100.0
        low, high = np.floor(position), np.ceil(position)
        at_low = (cumulative <= low[:, None]).sum(axis=1)
        at_high = (cumulative <= high[:, None]).sum(axis=1)
        below = self._sorted[at_low]
        return np.asarray(
            below + (self._sorted[at_high] - below) * (position - low), dtype=np.float64
        )


def interval(values: Floats, level: float = LEVEL) -> Interval:
    """The percentile interval of resampled figures (NaN ones left out)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None, None
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(low), float(high)


def metric_intervals(
    key: Key,
    metrics: Mapping[str, tuple[Metric, Sequence[Stats]]],
    resamples: int = RESAMPLES,
    level: float = LEVEL,
) -> dict[str, Interval]:
    """Each metric's percentile-bootstrap interval over the samples (one stats row
    each; every metric over the same samples, resampled together), seeded by ``key``."""
    sizes = {len(rows) for _, rows in metrics.values()}
    if len(sizes) > 1:
        raise ValueError(f"metrics over different sample counts: {sorted(sizes)}")
    n = sizes.pop() if sizes else 0
    if n == 0:
        return {name: (None, None) for name in metrics}
    rng = _rng(key)
    aggregators = {name: Aggregator(m, rows) for name, (m, rows) in metrics.items()}
    figures: dict[str, list[Floats]] = {name: [] for name in metrics}
    for size in _sizes(resamples, n):
        counts = _counts(rng.integers(0, n, size=(size, n)), n)
        for name, aggregate in aggregators.items():
            figures[name].append(aggregate(counts))
    return {name: interval(np.concatenate(parts), level) for name, parts in figures.items()}


def figure_interval(
    key: Key,
    values: Sequence[float],
    q: float | None,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
) -> Interval:
    """The percentile-bootstrap interval of a percentile ``q`` of the values (the
    mean when None), seeded by ``key``."""
    n = len(values)
    if n == 0:
        return None, None
    figure = Quantile(q, np.sort(np.asarray(values, dtype=np.float64)))
    rng = _rng(key)
    parts = [
        figure(_counts(rng.integers(0, n, size=(size, n)), n)) for size in _sizes(resamples, n)
    ]
    return interval(np.concatenate(parts), level)


@dataclass(frozen=True)
class PairedResult:
    """A paired comparison of a baseline with this run over the same samples.

    ``change`` is a score's drop (positive: worse, whichever way the metric runs)
    or a latency figure's relative increase; ``ci_low``/``ci_high`` its paired
    bootstrap interval; ``p_value`` the one-sided paired permutation test of "no
    change" (each sample's two results swapped at random); None where undefined.
    """

    baseline: float | None
    now: float | None
    change: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    pairs: int


def _p_value(observed: float, permuted: Floats) -> float | None:
    """One-sided: the share of permutations at least as extreme (NaN counts as such)."""
    if not math.isfinite(observed):
        return None
    tolerance = 1e-12 * max(1.0, abs(observed))
    extreme = np.isnan(permuted) | (permuted >= observed - tolerance)
    return float((1 + int(extreme.sum())) / (1 + permuted.size))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _paired(
    key: Key,
    n: int,
    resamples: int,
    bootstrap: Callable[[Floats], Floats],
    permuted: Callable[[Floats, Floats], Floats],
) -> tuple[Floats, Floats]:
    """The bootstrap's changes (pairs resampled together) and the permutations'
    changes (each pair's two results swapped at random), from one seeded stream."""
    rng = _rng(key)
    changes = [
        bootstrap(_counts(rng.integers(0, n, size=(size, n)), n))
        for size in _sizes(resamples, 2 * n)
    ]
    swaps = []
    for size in _sizes(resamples, 2 * n):
        swap = rng.integers(0, 2, size=(size, n)).astype(np.float64)
        swaps.append(permuted(1.0 - swap, swap))
    return np.concatenate(changes), np.concatenate(swaps)


def paired_metric_test(
    key: Key,
    metric: Metric,
    baseline: Sequence[Stats],
    now: Sequence[Stats],
    resamples: int = RESAMPLES,
    level: float = LEVEL,
) -> PairedResult:
    """A metric's drop from ``baseline`` to ``now`` (stats of the same samples, in
    the same order): its interval and the permutation test's p-value."""
    n = len(baseline)
    if len(now) != n:
        raise ValueError(f"{n} baseline samples but {len(now)} now")
    if n == 0:
        return PairedResult(None, None, None, None, None, None, 0)
    sign = 1.0 if metric.higher_is_better else -1.0
    base_figure, now_figure = _num(metric.aggregate(baseline)), _num(metric.aggregate(now))
    observed = sign * (base_figure - now_figure)
    base, new, both = (
        Aggregator(metric, baseline),
        Aggregator(metric, now),
        Aggregator(metric, baseline, now),
    )
    drops, permuted = _paired(
        key,
        n,
        resamples,
        lambda c: sign * (base(c) - new(c)),
        lambda keep, swap: sign * (both(keep, swap) - both(swap, keep)),
    )
    low, high = interval(drops, level)
    return PairedResult(
        _finite(base_figure),
        _finite(now_figure),
        _finite(observed),
        low,
        high,
        _p_value(observed, permuted),
        n,
    )


def paired_latency_test(
    key: Key,
    baseline: Sequence[float],
    now: Sequence[float],
    q: float | None,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
) -> PairedResult:
    """A latency figure's (percentile ``q``, or the mean) relative increase from
    ``baseline`` to ``now`` (the same samples, in the same order) and its interval.

    The permutation test's statistic is the mean over samples of the relative
    difference ``(now - base) / (now + base)``, which a swap turns into its
    negative: a percentile barely moves under swaps where every sample slowed
    alike, so testing the figure itself would miss the plainest slowdown.
    """
    old, new = np.asarray(baseline, dtype=np.float64), np.asarray(now, dtype=np.float64)
    n = old.size
    if new.size != n:
        raise ValueError(f"{n} baseline samples but {new.size} now")
    if n == 0:
        return PairedResult(None, None, None, None, None, None, 0)
    ones = np.ones((1, n))
    base, current = Quantile(q, old), Quantile(q, new)
    base_figure, now_figure = float(base(ones)[0]), float(current(ones)[0])
    change = now_figure / base_figure - 1.0 if base_figure > 0 else math.nan
    total = old + new
    relative = np.divide(new - old, total, out=np.zeros(n), where=total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios, permuted = _paired(
            key,
            n,
            resamples,
            lambda c: current(c) / base(c) - 1.0,
            lambda keep, swap: _dot(keep - swap, relative) / n,
        )
    low, high = interval(ratios, level)
    return PairedResult(
        base_figure,
        now_figure,
        _finite(change),
        low,
        high,
        _p_value(float(relative.mean()), permuted),
        n,
    )
