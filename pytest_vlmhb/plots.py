"""The report's plots, as PNGs in ``<output>/plots/`` (matplotlib, Agg, imported lazily).

- per task: the primary score (the first of the task's metrics) against TTFT p50
  and against requests/s, one point per case, with the 95% interval where
  metrics.csv has ``<metric>_ci_low/_ci_high``, and the Pareto frontier marked
  (the cases no other case beats on both axes);
- per task: the TTFT and E2E latency CDF of each case (samples without an error);
- per case whose samples have categories: the primary score per category (as
  report.md's sub-scores) with its 95% percentile-bootstrap interval over the
  category's samples (:func:`stats.metric_intervals`, as metrics.csv's intervals).

The points come from metrics.csv and answers.csv as :func:`results.load` reads
them; :func:`draw_plots` returns what each plot drew, read back from its artists.
Which plots exist is known before drawing (:func:`plot_specs`), so report.md's
"Plots" section is written with the other outputs.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .cases import Plan
from .config import Case
from .outputdir import atomic_write_bytes
from .records import Record, category_rows, metric
from .redact import redact
from .stats import metric_intervals

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .results import Results

PLOTS_DIR = "plots"
Kind = Literal["score-ttft", "score-rps", "latency", "categories"]
_OURS = re.compile(r"(score-ttft|score-rps|latency|categories)-.+\.png")


@dataclass(frozen=True)
class PlotSpec:
    """One plot: its file in ``plots/``, title, kind and subject (a task or a case id)."""

    file: str
    title: str
    kind: Kind
    subject: str


@dataclass
class Drawn:
    """What a plot drew: ``points`` as (label, x, y) (bars: (category, index, height)),
    ``frontier`` the labels on the Pareto frontier, ``curves`` each CDF's x values,
    ``intervals`` each bar's or point's (low, high)."""

    spec: PlotSpec
    points: list[tuple[str, float, float]] = field(default_factory=list)
    frontier: list[str] = field(default_factory=list)
    curves: dict[str, list[float]] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)


def _file(kind: Kind, subject: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", subject).strip("._")[:48] or "x"
    return f"{kind}-{slug}-{hashlib.sha256(subject.encode()).hexdigest()[:6]}.png"


def _primary(case: Case) -> str | None:
    return case.task.metrics[0] if case.task.metrics else None


def plot_specs(plan: Plan, records: Mapping[str, Sequence[Record]]) -> list[PlotSpec]:
    """The plots of the cases that have records, in config-row order."""
    ran = [c for c in plan.cases if records.get(c.id)]
    specs: list[PlotSpec] = []
    for task in dict.fromkeys(c.task.name for c in ran if _primary(c)):
        name = next(_primary(c) for c in ran if c.task.name == task)
        specs += [
            PlotSpec(_file("score-ttft", task), f"{task}: {name} vs TTFT p50", "score-ttft", task),
            PlotSpec(_file("score-rps", task), f"{task}: {name} vs requests/s", "score-rps", task),
        ]
    for task in dict.fromkeys(c.task.name for c in ran):
        specs.append(PlotSpec(_file("latency", task), f"{task}: latency CDF", "latency", task))
    for case in ran:
        if _primary(case) and any(r.get("category") is not None for r in records[case.id]):
            title = f"{case.id}: {_primary(case)} per category"
            specs.append(PlotSpec(_file("categories", case.id), title, "categories", case.id))
    return [PlotSpec(s.file, redact(s.title), s.kind, s.subject) for s in specs]


def plots_section(specs: Sequence[PlotSpec]) -> list[str]:
    """report.md's "Plots" section: one image line per plot ([] when there is none)."""
    if not specs:
        return []
    lines = ["## Plots", ""]
    for spec in specs:
        lines += [f"![{spec.title}]({PLOTS_DIR}/{spec.file})", ""]
    return lines


def pareto(points: Sequence[tuple[float, float]], x_low: bool, y_high: bool) -> list[int]:
    """Indices of the points no other point beats on both axes (``x_low``: a lower x
    is better; ``y_high``: a higher y is better)."""
    sx, sy = (-1 if x_low else 1), (1 if y_high else -1)
    keyed = [(sx * x, sy * y) for x, y in points]
    out = []
    for i, (x, y) in enumerate(keyed):
        beaten = any(
            ox >= x and oy >= y and (ox > x or oy > y) for j, (ox, oy) in enumerate(keyed) if j != i
        )
        if not beaten:
            out.append(i)
    return out


def _figure(panels: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4 * panels, 4.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, panels, i + 1) for i in range(panels)]
    return fig, axes


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _score_plot(spec: PlotSpec, frames: Results, plan: Plan) -> tuple[Figure, Drawn]:
    axis = "ttft_p50_ms" if spec.kind == "score-ttft" else "requests_per_s"
    cases = {c.id: c for c in plan.cases if c.task.name == spec.subject}
    name = next(p for c in cases.values() if (p := _primary(c)))
    lower = not metric(name).higher_is_better
    drawn = Drawn(spec)
    fig, (ax,) = _figure()
    table = frames.metrics
    rows = table[table["case_id"].isin(list(cases))].to_dict("records") if len(table) else []
    kept = []
    for row in rows:
        x, y = _finite(row.get(axis)), _finite(row.get(name))
        if x is not None and y is not None:
            kept.append((redact(str(row["case_id"])), x, y, row))
    if not kept:
        _no_data(ax)
    else:
        dots = ax.scatter([k[1] for k in kept], [k[2] for k in kept], zorder=3)
        offsets = np.asarray(dots.get_offsets(), dtype=float)
        drawn.points = [
            (label, float(offsets[i][0]), float(offsets[i][1]))
            for i, (label, *_) in enumerate(kept)
        ]
        for label, x, y, row in kept:
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
            low, high = _finite(row.get(f"{name}_ci_low")), _finite(row.get(f"{name}_ci_high"))
            if low is not None and high is not None:
                drawn.intervals[label] = (low, high)
                ax.errorbar(
                    [x], [y], yerr=[[max(0.0, y - low)], [max(0.0, high - y)]], fmt="none", c="C0"
                )
        best = pareto(
            [(k[1], k[2]) for k in kept], x_low=spec.kind == "score-ttft", y_high=not lower
        )
        front = sorted((kept[i] for i in best), key=lambda k: k[1])
        drawn.frontier = [k[0] for k in front]
        ax.plot(
            [k[1] for k in front],
            [k[2] for k in front],
            "--o",
            mfc="none",
            ms=12,
            c="C3",
            label="Pareto frontier",
        )
        ax.legend(loc="best", fontsize=8)
    ax.margins(x=0.25, y=0.15)  # room for the labels
    ax.set_xlabel("TTFT p50 (ms), lower is better" if axis == "ttft_p50_ms" else "requests/s")
    ax.set_ylabel(f"{name} ({'lower' if lower else 'higher'} is better)")
    ax.set_title(spec.title, fontsize=10)
    ax.grid(alpha=0.3)
    return fig, drawn


def _latency_plot(spec: PlotSpec, frames: Results, plan: Plan) -> tuple[Figure, Drawn]:
    drawn = Drawn(spec)
    fig, axes = _figure(2)
    answers = frames.answers
    ids = [c.id for c in plan.cases if c.task.name == spec.subject]
    for ax, column, title in zip(axes, ("ttft_ms", "e2e_ms"), ("TTFT", "E2E"), strict=True):
        any_curve = False
        for case_id in ids:
            if not len(answers) or column not in answers:
                continue
            mine = answers[(answers["case_id"] == case_id) & answers["error"].isna()]
            values = sorted(v for v in (_finite(x) for x in mine[column]) if v is not None)
            if not values:
                continue
            label = redact(case_id)
            fractions = [(i + 1) / len(values) for i in range(len(values))]
            (line,) = ax.step(values, fractions, where="post", label=label)
            drawn.curves[f"{title} {label}"] = np.asarray(line.get_xdata(), dtype=float).tolist()
            any_curve = True
        if any_curve:
            ax.legend(loc="lower right", fontsize=8)
        else:
            _no_data(ax)
        ax.set_xlabel(f"{title} (ms)")
        ax.set_ylabel("share of samples")
        ax.set_title(f"{spec.title}: {title}", fontsize=10)
        ax.grid(alpha=0.3)
    return fig, drawn


def _category(record: Record) -> str | None:
    value = record.get("category")
    return None if value is None else str(value)


def _category_plot(
    spec: PlotSpec, plan: Plan, records: Mapping[str, Sequence[Record]]
) -> tuple[Figure, Drawn]:
    case = plan.case(spec.subject)
    name = _primary(case)
    assert name is not None
    recs = records.get(case.id, [])
    rows = category_rows(case, recs)
    m = metric(name)
    drawn = Drawn(spec)
    fig, (ax,) = _figure()
    labels, heights, lows, highs = [], [], [], []
    for row in rows:
        value = _finite(row.get(name))
        if value is None:
            continue
        category = str(row["category"])
        members = [r for r in recs if _category(r) == category]
        key = f"{case.id}\x1fcategory\x1f{category}"
        low, high = metric_intervals(key, {name: (m, [r["stats"][name] for r in members])})[name]
        interval = (value, value) if low is None or high is None else (low, high)
        labels.append(redact(category))
        heights.append(value)
        lows.append(max(0.0, value - interval[0]))
        highs.append(max(0.0, interval[1] - value))
        drawn.intervals[labels[-1]] = interval
    if not labels:
        _no_data(ax)
    else:
        bars = ax.bar(range(len(labels)), heights, yerr=[lows, highs], capsize=4)
        drawn.points = [
            (label, float(bar.get_x() + bar.get_width() / 2), float(bar.get_height()))
            for label, bar in zip(labels, bars.patches, strict=True)
        ]
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"{name} (95% bootstrap interval)")
    ax.set_title(spec.title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig, drawn


def draw_plots(
    output: Path,
    specs: Sequence[PlotSpec],
    frames: Results,
    plan: Plan,
    records: Mapping[str, Sequence[Record]],
) -> list[Drawn]:
    """Draw each plot into ``output/plots/`` (written atomically; PNGs of plots no
    longer made are removed) and return what each drew."""
    folder = output / PLOTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for spec in specs:
        if spec.kind in ("score-ttft", "score-rps"):
            fig, drawn = _score_plot(spec, frames, plan)
        elif spec.kind == "latency":
            fig, drawn = _latency_plot(spec, frames, plan)
        else:
            fig, drawn = _category_plot(spec, plan, records)
        atomic_write_bytes(folder / spec.file, _png(fig))
        out.append(drawn)
    made = {spec.file for spec in specs}
    for path in folder.iterdir():
        if _OURS.fullmatch(path.name) and path.name not in made:
            path.unlink(missing_ok=True)
    return out
