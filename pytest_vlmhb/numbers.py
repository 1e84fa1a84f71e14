"""Reading numbers from text users wrote: finite, in range, or a clear reason why not.

Every number the plugin reads (CSV cells, options, baseline files) goes
through here, so ``nan``, ``inf`` and out-of-range values never reach a gate
or a timeout (``nan`` compares false with everything: a ``nan`` threshold
would pass every gate).
"""

from __future__ import annotations

import math


def finite_float(text: str) -> float:
    """``text`` as a finite float; ValueError naming what is wrong otherwise."""
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {text!r}")
    return value


def parse_fraction(text: str) -> float:
    """``10%`` or ``0.1`` -> 0.1; finite and >= 0."""
    stripped = text.strip()
    try:
        value = (
            finite_float(stripped[:-1]) / 100.0
            if stripped.endswith("%")
            else finite_float(stripped)
        )
    except ValueError:
        raise ValueError(
            f"expected a fraction or percentage such as 0.1 or 10%, got {text!r}"
        ) from None
    if value < 0:
        raise ValueError(f"must be >= 0, got {text!r}")
    return value


def in_range(
    value: float, *, low: float | None = None, high: float | None = None, low_open: bool = False
) -> float:
    """``value`` if it lies in the range; ValueError saying the allowed range otherwise."""
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        lower = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        upper = "" if high is None else f"<= {high:g}"
        raise ValueError(f"must be {' and '.join(p for p in (lower, upper) if p)}, got {value:g}")
    return value
