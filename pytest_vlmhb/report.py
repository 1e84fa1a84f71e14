"""answers.csv, metrics.csv and report.md from the collected records."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import platform
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from .baseline import baseline_section
from .benchjson import benchmark_json_text
from .cases import Plan
from .columns import (
    CaseRow,
    Cell,
    answer_cells,
    answer_columns,
    case_cells,
    case_columns,
)
from .config import Case
from .csvsafe import escape_cell
from .errors import SampleError
from .gates import GATE_COLUMNS, GateResult, gate_rows
from .outputdir import atomic_write_files, atomic_write_text, encode_text
from .pagecache import document_hash
from .parity import agreement
from .records import CaseInfo, Record, category_rows, summarize_case, token_mismatch
from .redact import redact
from .reference_scores import reference_section


@dataclass
class RunResults:
    """Everything the controller gathered from the item reports."""

    records: dict[str, list[Record]] = field(default_factory=dict)
    case_info: dict[str, CaseInfo] = field(default_factory=dict)
    gates: list[GateResult] = field(default_factory=list)
    #: Results-store lines that were not used, as ``file:line (why)`` (noted in report.md).
    store_skipped: list[str] = field(default_factory=list)

    def add_record(self, record: Record) -> None:
        self.records.setdefault(record["case_id"], []).append(record)


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _cell(value: object) -> object:
    """A CSV cell: text masked and escaped against formula injection; numbers as they are."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        return escape_cell(redact(value))
    return value


def _sample_rank(position: Mapping[str, int], sample_id: str) -> tuple[int, int]:
    """A sample's place; a user test's later call (``name#2``) follows its first, and
    a sample the plan does not list keeps its arrival order at the end."""
    if sample_id in position:
        return position[sample_id], 0
    base, _, number = sample_id.rpartition("#")
    if base in position and number.isdigit():
        return position[base], int(number)
    return len(position), 0


def ordered_records(plan: Plan, results: RunResults) -> list[tuple[Case, list[Record]]]:
    """Records in config-row then sample order."""
    out = []
    for case in plan.cases:
        position = {s.id: i for i, s in enumerate(plan.samples[case.id])}
        recs = sorted(
            results.records.get(case.id, []), key=lambda r: _sample_rank(position, r["sample_id"])
        )
        out.append((case, recs))
    return out


def case_rows(plan: Plan, results: RunResults) -> list[CaseRow]:
    """metrics.csv rows of the cases that ran (``agreement`` from both cases' records)."""
    rows = []
    for case, recs in ordered_records(plan, results):
        if not recs:
            continue
        row = summarize_case(case, recs, results.case_info.get(case.id))
        if case.parity_with is not None:
            row["agreement"] = agreement(recs, results.records.get(case.parity_with, []))
        rows.append(row)
    return rows


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> str:
    """CSV text with known secrets masked and every text cell (header included)
    escaped by :func:`csvsafe.escape_cell`; ``csvsafe.read_csv_dicts`` reads it back.

    A column a row lacks is an empty cell; a key the columns lack is a ValueError.
    """
    known = set(columns)
    sink = io.StringIO(newline="")
    writer = csv.writer(sink)
    writer.writerow([_cell(c) for c in columns])
    for row in rows:
        unknown = [key for key in row if key not in known]
        if unknown:
            raise ValueError(f"row keys missing from the CSV columns: {', '.join(unknown)}")
        writer.writerow([_cell(row.get(c)) for c in columns])
    return sink.getvalue()


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> None:
    """:func:`csv_text` written atomically (the previous file stays on failure)."""
    atomic_write_text(path, csv_text(columns, rows))


def dataset_hash(plan: Plan, case: Case) -> str:
    """sha256 over the manifest and the files (images, documents) of the samples used."""
    digest = hashlib.sha256()
    samples = plan.samples[case.id]
    if samples:
        digest.update(samples[0].manifest.read_bytes())
    for sample in samples:
        if sample.error:  # never read: it may escape its folder, or be a FIFO
            digest.update(b"<error>")
            continue
        for path in sample.files:
            try:
                digest.update(document_hash(path).encode())
            except (OSError, SampleError):
                digest.update(b"<missing>")
    return digest.hexdigest()[:16]


def _share(pairs: Sequence[tuple[object, object]]) -> float | None:
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else None


def agreement_rows(plan: Plan, results: RunResults) -> list[dict[str, Cell]]:
    """For each model x task served by several backends: share of identical answers.

    Compares every pair of cases sample by sample, on the samples both
    answered; token ids only where both servers returned them.
    """
    groups: dict[tuple[str, str], list[Case]] = {}
    for case in plan.cases:
        groups.setdefault((case.model.name, case.task.name), []).append(case)
    rows: list[dict[str, Cell]] = []
    for (model, task), cases in groups.items():
        for i, first in enumerate(cases):
            for second in cases[i + 1 :]:
                if first.backend == second.backend:
                    continue
                a = {r["sample_id"]: r for r in results.records.get(first.id, []) if not r["error"]}
                b = {
                    r["sample_id"]: r for r in results.records.get(second.id, []) if not r["error"]
                }
                common = [sid for sid in a if sid in b]
                with_ids = [
                    sid
                    for sid in common
                    if a[sid]["token_ids"] is not None and b[sid]["token_ids"] is not None
                ]
                rows.append(
                    {
                        "model": model,
                        "task": task,
                        "backends": (
                            f"{first.backend} ({first.id}) vs {second.backend} ({second.id})"
                        ),
                        "samples": len(common),
                        "text_agreement": _share(
                            [(a[s]["answer"], b[s]["answer"]) for s in common]
                        ),
                        "token_id_agreement": _share(
                            [(a[s]["token_ids"], b[s]["token_ids"]) for s in with_ids]
                        ),
                    }
                )
    return rows


def _fmt(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def _table(columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return lines


_PERF = (
    "ttft_p50_ms",
    "ttft_p95_ms",
    "e2e_p50_ms",
    "tpot_mean_ms",
    "requests_per_s",
    "output_tokens_per_s",
    "peak_memory_mb",
)


def _subscore_lines(plan: Plan, results: RunResults) -> list[str]:
    """Per-category scores of the cases whose samples carry a category."""
    found = [(case, category_rows(case, recs)) for case, recs in ordered_records(plan, results)]
    found = [(case, rows) for case, rows in found if rows]
    if not found:
        return []
    lines = [
        "## Sub-scores",
        "",
        "Each metric per sample category (e.g. ChartQA human/augmented split, OCRBench "
        "question type); the case table above has the overall figure.",
        "",
    ]
    for case, rows in found:
        lines += [
            f"### {case.id}",
            "",
            *_table(["category", "n", "errors", *case.task.metrics], rows),
            "",
        ]
    return lines


_MAX_SKIPPED_SHOWN = 20


def _skipped_lines(skipped: Sequence[str]) -> list[str]:
    """The note on results-store lines that could not be used."""
    if not skipped:
        return []
    lines = [
        f"{len(skipped)} store line{'s' * (len(skipped) != 1)} skipped (torn, not JSON "
        "or not a record of the expected shape; those samples are missing here):",
        "",
    ]
    lines += [f"- {line}" for line in skipped[:_MAX_SKIPPED_SHOWN]]
    if len(skipped) > _MAX_SKIPPED_SHOWN:
        lines.append(f"- ... and {len(skipped) - _MAX_SKIPPED_SHOWN} more")
    return [*lines, ""]


def render_report(plan: Plan, results: RunResults, rows: Sequence[CaseRow]) -> str:
    by_case = {c.id: c for c in plan.cases}
    lines = [
        "# VLMHyperBench report",
        "",
        f"Generated {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')} by "
        f"pytest-vlmhb {version('pytest-vlmhb')} on Python {platform.python_version()}.",
        "",
    ]
    total = sum(len(r) for r in results.records.values())
    reused = sum(bool(rec.get("reused")) for r in results.records.values() for rec in r)
    if reused:
        lines += [
            f"Resumed: {reused} of {total} samples reused from the stored results "
            f"(--vlmhb-resume); {total - reused} answered in this run.",
            "",
        ]
    cells = [case_cells(r) for r in rows]
    for task_type in _unique(c.task.type for c in plan.cases):
        task_rows = [
            (r, c)
            for r, c in zip(rows, cells, strict=True)
            if by_case[r["case_id"]].task.type == task_type
        ]
        if not task_rows:
            continue
        metrics = _unique(m for r, _ in task_rows for m in by_case[r["case_id"]].task.metrics)
        lines += [f"## {task_type}", ""]
        lines += _table(
            ["case_id", "model", "backend", "launcher", "n", "errors", *metrics, *_PERF],
            [c for _, c in task_rows],
        )
        lines.append("")
    lines += _skipped_lines(results.store_skipped)
    lines += _subscore_lines(plan, results)
    lines += reference_section(plan, cells, _table)
    agreement = agreement_rows(plan, results)
    if agreement:
        lines += [
            "## Backend agreement",
            "",
            "Share of samples whose answers are identical across backends (same model and task).",
            "",
        ]
        lines += _table(
            ["model", "task", "backends", "samples", "text_agreement", "token_id_agreement"],
            agreement,
        )
        lines.append("")
    checked = [r for r in rows if r["server_generation_tokens"] is not None]
    if checked:
        lines += [
            "## Server cross-check",
            "",
            "Completion tokens the client counted (from `usage`) against the "
            "server's own /metrics for the case.",
            "",
        ]
        lines += _table(
            [
                "case_id",
                "client_completion_tokens",
                "server_generation_tokens",
                "ttft_p50_ms",
                "server_ttft_mean_ms",
                "server_mean_batch",
                "server_max_running",
                "status",
            ],
            [{**case_cells(r), "status": token_mismatch(r) or "match"} for r in checked],
        )
        lines.append("")
    lines += baseline_section(plan, rows, results.gates, _table)
    if results.gates:
        lines += ["## Gates", ""]
        lines += _table(
            ["case_id", "threshold", "result", "detail"],
            [
                {
                    "case_id": g.case_id,
                    "threshold": g.threshold,
                    "result": "pass" if g.passed else "FAIL",
                    "detail": g.message,
                }
                for g in results.gates
            ],
        )
        lines.append("")
    lines += ["## Provenance", ""]
    prov = []
    for case in plan.cases:
        server = results.case_info.get(case.id, {}).get("server", {})
        packages = ", ".join(f"{k} {v}" for k, v in server.get("packages", {}).items())
        prov.append(
            {
                "case_id": case.id,
                "model source": case.model.source,
                "model revision": server.get("model_revision")
                or ("(external endpoint)" if case.model.endpoint else "(not started here)"),
                "recipe": server.get("recipe") or "(none)",
                "backend": case.backend,
                "launcher": case.launcher,
                "server argv": _argv(server.get("command")),
                "server packages": packages or "(unknown)",
                "task data": case.task.data,
                "images": case.image_prep.describe(),
                "dataset sha256": dataset_hash(plan, case),
            }
        )
    lines += _table(list(prov[0]) if prov else [], prov)
    lines.append("")
    return "\n".join(lines)


def _argv(command: object) -> str:
    """A server's argv from its provenance, shell-quoted."""
    if not isinstance(command, list) or not command:
        return "(not started here)"
    return shlex.join(str(word) for word in command)


def write_outputs(
    output: Path, plan: Plan, results: RunResults, cache_dir: Path | None = None
) -> list[CaseRow]:
    """Write answers.csv, metrics.csv, report.md, benchmark.json and gates.csv, then
    the plots, the page thumbnails (from ``cache_dir``'s page cache) and report.html;
    returns the metrics rows (for the terminal summary).

    The five are rendered first and then replaced together, each atomically:
    on a failure (``OutputError``, an ``OSError``) the previous files stay whole.
    """
    from .plots import plot_specs, plots_section

    output.mkdir(parents=True, exist_ok=True)
    metric_names = _unique(m for c in plan.cases for m in c.task.metrics)
    answers = [
        answer_cells(r, metric_names) for _, recs in ordered_records(plan, results) for r in recs
    ]
    rows = case_rows(plan, results)
    plots = plot_specs(plan, results.records)
    report_md = redact("\n".join([render_report(plan, results, rows), *plots_section(plots)]))
    atomic_write_files(
        {
            output / "answers.csv": encode_text(csv_text(answer_columns(metric_names), answers)),
            output / "metrics.csv": encode_text(
                csv_text(case_columns(metric_names), [case_cells(r) for r in rows])
            ),
            output / "report.md": encode_text(report_md),
            output / "benchmark.json": encode_text(
                benchmark_json_text(ordered_records(plan, results))
            ),
            output / "gates.csv": encode_text(csv_text(GATE_COLUMNS, gate_rows(results.gates))),
        }
    )
    from .htmlreport.write import write_visuals  # pandas, matplotlib: only now

    write_visuals(output, plan, results.records, plots, report_md, cache_dir)
    return rows


def summary_lines(plan: Plan, rows: Sequence[CaseRow]) -> list[str]:
    """A short table for the end of the terminal output."""
    by_case = {c.id: c for c in plan.cases}
    width = max([len(r["case_id"]) for r in rows] + [7])
    out = [f"{'case':<{width}}  {'n':>4} {'err':>4}  {'score':<24} {'ttft p50':>9} {'req/s':>7}"]
    for r in rows:
        metrics = by_case[r["case_id"]].task.metrics
        score = f"{metrics[0]}={_fmt(r['metrics'].get(metrics[0]))}" if metrics else "-"
        out.append(
            f"{r['case_id']:<{width}}  {r['n']:>4} {r['errors']:>4}  {score:<24} "
            f"{_fmt(r['ttft_p50_ms']):>9} {_fmt(r['requests_per_s']):>7}"
        )
    return out
