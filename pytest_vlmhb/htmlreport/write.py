"""Write the plots, the page thumbnails and report.html of a run's output dir.

:func:`write_visuals` runs after answers.csv, metrics.csv and report.md are
written: it reads them back with :func:`results.load`, so the page and the plots
show exactly what the CSV files hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ..cases import Plan
from ..outputdir import atomic_write_text
from ..plots import PlotSpec, draw_plots
from ..records import Record
from ..results import load
from ..thumbs import write_thumbs
from .build import build_html
from .data import case_metas

REPORT_HTML = "report.html"


def write_visuals(
    output: Path,
    plan: Plan,
    records: Mapping[str, Sequence[Record]],
    plots: Sequence[PlotSpec],
    report_md: str,
    cache_dir: Path | None = None,
) -> Path:
    """The plots, the thumbnails and report.html in ``output``; returns report.html's path."""
    frames = load(output)
    draw_plots(output, plots, frames, plan, records)
    answers = frames.answers
    answered = (
        set(zip(answers["case_id"], answers["sample_id"], strict=True)) if len(answers) else set()
    )
    samples = [
        (case, sample)
        for case in plan.cases
        for sample in plan.samples.get(case.id, [])
        if (case.id, sample.id) in answered
    ]
    thumbs = write_thumbs(output, samples, cache_dir)
    path = output / REPORT_HTML
    atomic_write_text(path, build_html(frames, case_metas(plan), thumbs, report_md))
    return path
