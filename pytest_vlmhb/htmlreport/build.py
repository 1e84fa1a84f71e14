"""report.html's text: the template with its CSS, script, tables and data island.

The page loads nothing: CSS and script are inline, the only files it names are
the thumbnails and plots beside it (relative links), and its Content Security
Policy lets it load nothing else. Text is masked (:func:`redact.redact`) and
HTML-escaped; the data island is escaped by :func:`data.island_json`.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources

from ..redact import redact
from ..results import Results
from ..thumbs import SampleThumbs
from .data import CaseMeta, island, island_json, outcome_counts
from .leaderboard import Leaderboard, Ratio, leaderboard
from .markdown import to_html

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
TITLE = "VLMHyperBench report"


@cache
def asset(name: str) -> str:
    """A file of this package (template.html, report.css, report.js)."""
    return (resources.files(__package__) / name).read_text(encoding="utf-8")


def _e(value: object) -> str:
    return html.escape(redact(str(value)))


def _num(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.4g}{unit}"


def leaderboard_html(board: Leaderboard) -> str:
    """The leaderboard table: model@backend rows, task columns."""
    if not board.rows:
        return '<p class="note">No case has results.</p>'
    head = "".join(f"<th>{_e(task)}</th>" for task in board.tasks)
    body = []
    for label, cells in board.rows:
        tds = []
        for task in board.tasks:
            cell = cells.get(task)
            if cell is None:
                tds.append("<td></td>")
                continue
            interval = (
                f'<span class="lb-ci">[{_num(cell.ci_low)}, {_num(cell.ci_high)}] 95%</span>'
                if cell.ci_low is not None and cell.ci_high is not None
                else ""
            )
            sort = "" if cell.score is None else f' data-sort="{cell.score}"'
            tds.append(
                f'<td{sort} title="{_e(cell.case_id)}">'
                f'<span class="lb-score">{_e(cell.metric or "-")} {_num(cell.score)}</span>'
                f"{interval}"
                f'<span class="lb-perf">TTFT p50 {_num(cell.ttft_p50_ms, " ms")}, '
                f"{_num(cell.requests_per_s)} req/s</span></td>"
            )
        body.append(f"<tr><th>{_e(label)}</th>{''.join(tds)}</tr>")
    return (
        '<table class="sortable" id="leaderboard-table"><thead><tr><th>model@backend</th>'
        f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _ratio_row(r: Ratio) -> str:
    cells = [
        _e(r.model),
        _e(r.task),
        _e(r.first),
        _e(r.second),
        _num(r.rps_first),
        _num(r.rps_second),
        _num(r.rps_ratio),
        _num(r.ttft_first),
        _num(r.ttft_second),
        _num(r.ttft_ratio),
    ]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def ratios_html(ratios: Sequence[Ratio]) -> str:
    """The table of models that ran on two backends: requests/s and TTFT p50, and A/B."""
    if not ratios:
        return ""
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "model",
            "task",
            "A",
            "B",
            "req/s A",
            "req/s B",
            "req/s A/B",
            "TTFT p50 ms A",
            "TTFT p50 ms B",
            "TTFT A/B",
        )
    )
    return (
        "<h3>Backends compared</h3>"
        '<p class="note">One model and task on two backends: what each measured, and A/B.</p>'
        f'<table class="sortable" id="ratios-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(_ratio_row(r) for r in ratios)}</tbody></table>"
    )


def _gates_summary(results: Results) -> str:
    if results.gates.empty or "result" not in results.gates:
        return ""
    outcomes = [str(v).strip().lower() for v in results.gates["result"]]
    passed = sum(v in ("pass", "passed", "true") for v in outcomes)
    return f"; gates: {passed} passed, {len(outcomes) - passed} failed"


def build_html(
    results: Results,
    cases: Sequence[CaseMeta],
    thumbs: Mapping[tuple[str, str], SampleThumbs],
    report_md: str,
    *,
    generated: str | None = None,
) -> str:
    """The whole page from the loaded outputs, the cases, the thumbnails and report.md."""
    data = island(results.answers, cases, thumbs)
    board = leaderboard(results.metrics, cases)
    counts = outcome_counts(data)
    when = generated or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    summary = (
        f"{len(data['cases'])} case(s), {len(data['rows'])} sample rows: {counts['g']} good, "
        f"{counts['b']} bad, {counts['e']} errored{_gates_summary(results)}. Generated {when}."
    )
    parts = {
        "title": _e(TITLE),
        "summary": _e(summary),
        "css": asset("report.css"),
        "js": asset("report.js"),
        "leaderboard": leaderboard_html(board),
        "ratios": ratios_html(board.ratios),
        "report": to_html(redact(report_md)),
        "data": island_json(data),
    }
    return _PLACEHOLDER.sub(lambda match: parts[match.group(1)], asset("template.html"))
