"""The report's plots: they draw metrics.csv's and answers.csv's numbers, mark the
Pareto frontier, and report.md links every one of them."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from pytest_vlmhb.cases import Plan
from pytest_vlmhb.client import Completion
from pytest_vlmhb.csvsafe import read_csv_dicts
from pytest_vlmhb.plots import PLOTS_DIR, draw_plots, pareto, plot_specs
from pytest_vlmhb.records import category_rows, make_record
from pytest_vlmhb.report import RunResults, write_outputs
from pytest_vlmhb.results import load
from pytest_vlmhb.tasks.manifest import Sample
from tests.helpers import make_case

N = 12
#: case id -> (TTFT s, share of samples answered right)
CASES = {"fast": (0.1, 0.5), "slow-good": (0.3, 0.9), "dominated": (0.2, 0.25)}


def _run(tmp_path: Path) -> tuple[Plan, RunResults]:
    """Three docvqa cases over N samples in two categories, with distinct speeds and scores."""
    data = tmp_path / "data"
    data.mkdir()
    Image.new("L", (40, 50), 255).save(data / "p.png")
    manifest = data / "m.jsonl"
    manifest.write_text("{}\n")
    base = make_case(("anls", "exact_match"), task_type="docvqa")
    cases = tuple(
        base.model_copy(update={"id": case_id, "index": i}) for i, case_id in enumerate(CASES)
    )
    samples = [
        Sample(
            id=f"s{j}",
            image=data / "p.png",
            prompt=f"Q{j}?",
            reference={"answers": [f"a{j}"]},
            manifest=manifest,
            category="even" if j % 2 == 0 else "odd",
        )
        for j in range(N)
    ]
    plan = Plan(cases=cases, samples={c.id: samples for c in cases})
    results = RunResults()
    for case in cases:
        ttft, right = CASES[case.id]
        for j, sample in enumerate(samples):
            start = 1000.0 + j * ttft * 2
            done = Completion(
                text=f"a{j}" if j < right * N else "wrong",
                ttft_s=ttft + j / 1000,
                e2e_s=ttft * 2 + j / 1000,
                completion_tokens=3,
                sent_at=start,
                finished_at=start + ttft * 2,
            )
            results.add_record(make_record(case, sample, done, None))
    return plan, results


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Plan, RunResults]:
    """One run's outputs, shared by the tests (which only read them, or redraw plots)."""
    tmp_path = tmp_path_factory.mktemp("plots")
    plan, results = _run(tmp_path)
    out = tmp_path / "out"
    write_outputs(out, plan, results, cache_dir=tmp_path / "cache")
    return out, plan, results


def test_pareto_keeps_the_points_nothing_beats_on_both_axes() -> None:
    points = [(100.0, 0.5), (300.0, 0.9), (200.0, 0.25), (100.0, 0.4), (400.0, 0.9)]
    assert pareto(points, x_low=True, y_high=True) == [0, 1]
    # requests/s: higher is better; an error rate: lower is better
    assert pareto(points, x_low=False, y_high=False) == [2, 4]


def test_score_plots_draw_metrics_csv_values_and_mark_the_frontier(
    written: tuple[Path, Plan, RunResults],
) -> None:
    out, plan, results = written
    specs = plot_specs(plan, results.records)
    drawn = {d.spec.kind: d for d in draw_plots(out, specs, load(out), plan, results.records)}
    rows = {r["case_id"]: r for r in read_csv_dicts(out / "metrics.csv")}
    for kind, column in (("score-ttft", "ttft_p50_ms"), ("score-rps", "requests_per_s")):
        plotted = {label: (x, y) for label, x, y in drawn[kind].points}
        assert plotted == {
            case_id: (float(row[column]), float(row["anls"])) for case_id, row in rows.items()
        }
        values = [(float(r[column]), float(r["anls"])) for r in rows.values()]
        front = pareto(values, x_low=kind == "score-ttft", y_high=True)
        assert set(drawn[kind].frontier) == {list(rows)[i] for i in front}
    assert set(drawn["score-ttft"].frontier) == {"fast", "slow-good"}  # "dominated" is not


def test_latency_cdf_draws_each_case_ttft_and_e2e_from_answers_csv(
    written: tuple[Path, Plan, RunResults],
) -> None:
    out, plan, results = written
    specs = [s for s in plot_specs(plan, results.records) if s.kind == "latency"]
    (drawn,) = draw_plots(out, specs, load(out), plan, results.records)
    answers = read_csv_dicts(out / "answers.csv")
    for case_id in CASES:
        for column, title in (("ttft_ms", "TTFT"), ("e2e_ms", "E2E")):
            expected = sorted(float(r[column]) for r in answers if r["case_id"] == case_id)
            assert drawn.curves[f"{title} {case_id}"] == expected


def test_category_bars_are_the_sub_scores_with_intervals(
    written: tuple[Path, Plan, RunResults],
) -> None:
    out, plan, results = written
    specs = [s for s in plot_specs(plan, results.records) if s.kind == "categories"]
    assert [s.subject for s in specs] == list(CASES)
    drawn_all = draw_plots(out, specs, load(out), plan, results.records)
    for spec, drawn in zip(specs, drawn_all, strict=True):
        case = plan.case(spec.subject)
        expected = {r["category"]: r["anls"] for r in category_rows(case, results.records[case.id])}
        assert {label: height for label, _, height in drawn.points} == expected
        for label, (low, high) in drawn.intervals.items():
            assert low <= expected[label] <= high


def test_report_md_links_every_plot_and_stale_plots_go(
    written: tuple[Path, Plan, RunResults],
) -> None:
    out, plan, results = written
    specs = plot_specs(plan, results.records)
    assert len(specs) == 2 + 1 + len(CASES)  # score x2 for the one task, latency, categories
    draw_plots(out, specs, load(out), plan, results.records)  # the other tests drew some only
    report = (out / "report.md").read_text()
    section = report[report.index("## Plots") :]
    for spec in specs:
        assert f"]({PLOTS_DIR}/{spec.file})" in section
        assert (out / PLOTS_DIR / spec.file).read_bytes().startswith(b"\x89PNG")
    stale = out / PLOTS_DIR / "latency-gone-000000.png"
    stale.write_bytes(b"old")
    mine = out / PLOTS_DIR / "notes.png"  # not a name the plots use: left alone
    mine.write_bytes(b"keep")
    draw_plots(out, specs, load(out), plan, results.records)
    assert not stale.exists() and mine.exists()
