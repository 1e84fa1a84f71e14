"""--vlmhb-baseline's samples paired with this run's (pytest_vlmhb.pairing), the
paired regression gates they give (gates.py), gates.csv, and --vlmhb-significance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_vlmhb.baseline import baseline_section
from pytest_vlmhb.cases import Plan
from pytest_vlmhb.client import Completion
from pytest_vlmhb.columns import answer_cells, answer_columns, case_cells, case_columns
from pytest_vlmhb.config import Case
from pytest_vlmhb.csvsafe import read_csv_dicts
from pytest_vlmhb.errors import ConfigError
from pytest_vlmhb.gates import GATE_COLUMNS, GateResult, Threshold, gate_result
from pytest_vlmhb.pairing import BaselineRun, load_baseline, with_baseline
from pytest_vlmhb.rebuild import results_from_store
from pytest_vlmhb.records import Record, make_record, summarize_case
from pytest_vlmhb.report import csv_text, write_outputs
from pytest_vlmhb.store import ResultStore, record_key
from pytest_vlmhb.tasks.manifest import Sample
from tests.helpers import make_case, make_sample, make_settings

#: Sample id -> (answer, reference text); "" as the answer: the sample errored.
SAMPLES = {"a": ("abc", "abc"), "b": ("abd", "abcd"), "c": ("=x", "=xyz"), "d": ("", "hello")}


def _samples(ids: Sequence[str], manifest: Path) -> list[Sample]:
    return [make_sample(sid, SAMPLES[sid][1], manifest) for sid in ids]


def _records(case: Case, samples: Sequence[Sample], ms: float = 0.1) -> list[Record]:
    out = []
    for sample in samples:
        answer = SAMPLES[sample.id][0]
        done = Completion(
            text=answer, ttft_s=ms, e2e_s=2 * ms, completion_tokens=2, sent_at=5.0, finished_at=6.0
        )
        error = None if answer else "timeout"
        out.append(make_record(case, sample, None if error else done, error))
    return out


def _earlier_run(root: Path, ids: Sequence[str] = ("a", "b", "c", "d")) -> tuple[Path, Case]:
    """An output dir with a results store, answers.csv and metrics.csv of case "c"
    (CER and WER), as a run writes them."""
    out = root / "base"
    manifest = root / "m.jsonl"
    manifest.write_text("{}\n")
    case = make_case(("cer", "wer"))
    samples = _samples(ids, manifest)
    records = _records(case, samples)
    store = ResultStore(out, "main")
    for sample, record in zip(samples, records, strict=True):
        store.append({**record, "key": record_key(case, sample)})
    store.close()
    metrics = ["cer", "wer"]
    (out / "answers.csv").write_text(
        csv_text(answer_columns(metrics), [answer_cells(r, metrics) for r in records])
    )
    (out / "metrics.csv").write_text(
        csv_text(case_columns(metrics), [case_cells(summarize_case(case, records))])
    )
    return out, case


# ------------------------------------------------------------------ pairing


def test_a_dir_pairs_from_its_results_store(tmp_path: Path) -> None:
    out, case = _earlier_run(tmp_path)
    baseline = load_baseline(out)
    assert baseline.source == "results store" and baseline.samples is not None
    stored = {r["sample_id"]: r for r in _records(case, _samples("abcd", tmp_path / "m.jsonl"))}
    samples = baseline.samples["c"]
    assert sorted(samples) == ["a", "b", "c", "d"]
    for sid, sample in samples.items():
        assert sample.metric_stats("cer") == stored[sid]["stats"]["cer"]
    assert samples["b"].metric_stats("cer") == {"edits": 1.0, "ref_len": 4.0}
    assert samples["d"].error and samples["d"].metric_stats("cer") == {"edits": 5.0, "ref_len": 5.0}
    assert samples["a"].timings == {"ttft_ms": 100.0, "tpot_ms": 100.0, "e2e_ms": 200.0}
    assert samples["d"].timings == {}  # an errored sample has no latency
    assert baseline.rows["c"]["cer"] == (0 + 1 + 2 + 5) / (3 + 4 + 4 + 5)
    assert baseline.pair("c", ["d", "c", "b", "a"]).status == "paired"
    unmatched = baseline.pair("c", ["a", "b", "z"])
    assert unmatched.status == "unmatched" and not unmatched.samples
    assert (
        unmatched.detail
        == "the baseline's samples of this case differ (2 of this run's 3 are among its 4)"
    )
    assert baseline.pair("other", ["a"]).status == "new"


def test_answers_csv_samples_are_rescored_exactly(tmp_path: Path) -> None:
    """answers.csv holds per-sample values, not stats: each sample is scored again from
    its answer (formula escaping undone) and reference, so pooled CER pairs exactly."""
    out, _ = _earlier_run(tmp_path)
    from_store = load_baseline(out)
    for path in (out / "answers.csv", out):
        if path == out:
            for line in (out / "results").iterdir():
                line.unlink()  # a dir without a store: its answers.csv
        baseline = load_baseline(path)
        assert baseline.source == "answers.csv" and baseline.samples is not None
        assert baseline.rows == from_store.rows  # from the metrics.csv beside it
        assert from_store.samples is not None
        for sid, sample in baseline.samples["c"].items():
            stored = from_store.samples["c"][sid]
            assert (sample.answer or "") == (stored.answer or "")  # "=x" read back as written
            for name in ("cer", "wer"):
                assert sample.metric_stats(name) == stored.metric_stats(name)
            assert sample.timings == stored.timings


def test_a_store_sample_without_a_metric_is_scored_from_its_answer(tmp_path: Path) -> None:
    out, _ = _earlier_run(tmp_path)
    baseline = load_baseline(out)
    assert baseline.samples is not None
    sample = baseline.samples["c"]["b"]
    assert sample.metric_stats("exact_match") is None  # no "answers" in an OCR reference
    bare = replace(sample, stats={})
    assert bare.metric_stats("cer") == sample.metric_stats("cer")


def test_the_last_record_of_a_sample_wins(tmp_path: Path) -> None:
    out, case = _earlier_run(tmp_path, ids=("a",))
    (sample,) = _samples(["a"], tmp_path / "m.jsonl")
    later = make_record(case, sample, Completion(text="zzz", sent_at=8.0, finished_at=9.0), None)
    store = ResultStore(out, "gw1")
    store.append({**later, "key": "another key: the settings changed under --vlmhb-resume"})
    store.close()
    samples = load_baseline(out).samples
    assert samples is not None and samples["c"]["a"].answer == "zzz"


def test_metrics_csv_only_is_unpaired_and_the_report_says_so(tmp_path: Path) -> None:
    out, case = _earlier_run(tmp_path)
    baseline = load_baseline(out / "metrics.csv")
    assert (baseline.source, baseline.samples) == ("metrics.csv", None)
    pairing = baseline.pair("c", ["a"])
    assert pairing.status == "unpaired"
    settings = replace(make_settings(tmp_path), significance=0.05)
    samples = {"c": _samples("abcd", tmp_path / "m.jsonl")}
    (gated,), plan_pairing = with_baseline(baseline, [case], samples, settings)
    assert [t.name for t in gated.thresholds] == ["baseline_max_cer", "baseline_max_wer"]
    assert all(t.paired is None for t in gated.thresholds)
    assert gated.thresholds[0].unpaired == "the baseline is a metrics.csv, without samples"
    assert gated.thresholds[0].value == baseline.rows["c"]["cer"]  # no drop given: 0
    plan = Plan((gated,), samples, baseline=plan_pairing.rows, pairing=plan_pairing)
    records = _records(gated, samples["c"])
    (result, _) = gate_result(gated, gated.thresholds[0], records, None)
    assert result.passed and result.message.endswith(
        "(unpaired: the baseline is a metrics.csv, without samples)"
    )
    section = "\n".join(baseline_section(plan, [summarize_case(gated, records)], [result], _table))
    assert f"Baseline: `{out / 'metrics.csv'}` (metrics.csv)" in section
    assert "It is a metrics.csv, without samples: the regression gates compare case" in section
    assert "--vlmhb-significance 0.05 needs the baseline's samples" in section
    assert "| c | cer |" in section and "| compared |" in section


def _table(columns: Sequence[str], rows: object) -> list[str]:
    from pytest_vlmhb.report import _table as table

    return table(columns, rows)  # type: ignore[arg-type]


def _cases(ids: Sequence[str]) -> list[Case]:
    base = make_case(("cer",))
    return [base.model_copy(update={"id": case_id}) for case_id in ids]


def test_unmatched_and_new_cases_are_reported_never_crash(tmp_path: Path) -> None:
    out, _ = _earlier_run(tmp_path)
    baseline = load_baseline(out)
    manifest = tmp_path / "m.jsonl"
    paired, other, fresh = _cases(["c", "c2", "fresh"])
    # c2: the store has none of its samples but the metrics.csv row of c stands in.
    baseline = replace(baseline, rows={**baseline.rows, "c2": baseline.rows["c"]})
    samples = {
        "c": _samples("abcd", manifest),
        "c2": _samples("ab", manifest),
        "fresh": _samples("a", manifest),
    }
    settings = replace(make_settings(tmp_path), max_score_drop=0.01, significance=0.05)
    cases, pairing = with_baseline(baseline, [paired, other, fresh], samples, settings)
    assert {k: p.status for k, p in pairing.cases.items()} == {
        "c": "paired",
        "c2": "unmatched",
        "fresh": "new",
    }
    (gate,) = cases[0].thresholds
    assert gate.paired is not None and gate.paired.tolerance == 0.01
    assert sorted(gate.paired.samples) == ["a", "b", "c", "d"]
    (gate,) = cases[1].thresholds
    assert gate.paired is None and gate.unpaired.startswith("the baseline's samples of this case")
    assert cases[2].thresholds == ()
    plan = Plan(tuple(cases), samples, baseline=pairing.rows, pairing=pairing)
    rows = [summarize_case(c, _records(c, samples[c.id])) for c in cases]
    section = "\n".join(baseline_section(plan, rows, [], _table))
    assert "| c | cer | 0.5 | 0.5 | 0 | paired |" in section
    assert "| c2 | cer | 0.5 | 0.1429 | -0.3571 | unmatched |" in section
    assert "| fresh | (all) | - | - | - | new |" in section
    assert (
        "- c2: unmatched: the baseline's samples of this case differ (0 of this run's 2" in section
    )
    assert "Baseline cases this run does not have" not in section
    # A run of "fresh" alone: the baseline's own cases are listed.
    (alone,), pairing = with_baseline(baseline, [fresh], {"fresh": samples["fresh"]}, settings)
    plan = Plan((alone,), {"fresh": samples["fresh"]}, baseline=pairing.rows, pairing=pairing)
    section = "\n".join(baseline_section(plan, [], [], _table))
    assert "Baseline cases this run does not have (2): c, c2" in section


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "not the output dir of an earlier run"),
        ({"answers.csv": "case_id,sample_id\n"}, "no sample rows"),
        ({"answers.csv": "case_id,sample_id\nc,a\nc,a\n"}, "case 'c', sample 'a' is listed twice"),
        ({"answers.csv": "case_id,sample_id\n,a\n"}, "a row without a case_id or sample_id"),
        ({"answers.csv": "case_id,sample_id,e2e_ms\nc,a,soon\n"}, "column 'e2e_ms': case 'c'"),
        ({"answers.csv": 'case_id,sample_id,reference\nc,a,"[1]"\n'}, "not a JSON object"),
        ({"metrics.csv": "case_id,cer\nc,oops\n"}, "column 'cer': expected a number"),
    ],
)
def test_a_bad_baseline_dir_is_a_usage_error(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    out = tmp_path / "base"
    out.mkdir()
    for name, text in files.items():
        (out / name).write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_baseline(out)


# ------------------------------------------------------------------ paired gates


def _paired_case(tmp_path: Path) -> tuple[Case, list[Sample], Plan]:
    """Case "c" gated on CER against a baseline of 40 samples all read right."""
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("{}\n")
    case = make_case(("cer",))
    samples = [make_sample(f"s{i}", "abcd", manifest) for i in range(40)]
    baseline_records = [
        make_record(case, s, Completion(text="abcd", ttft_s=0.1, e2e_s=0.2), None) for s in samples
    ]
    out = tmp_path / "base"
    store = ResultStore(out, "main")
    for sample, record in zip(samples, baseline_records, strict=True):
        store.append({**record, "key": record_key(case, sample)})
    store.close()
    settings = replace(
        make_settings(tmp_path),
        max_score_drop=0.02,
        significance=0.05,
        max_latency_increase=0.5,
    )
    (gated,), pairing = with_baseline(load_baseline(out), [case], {"c": samples}, settings)
    plan = Plan((gated,), {"c": samples}, baseline=pairing.rows, pairing=pairing)
    return gated, samples, plan


def _now(case: Case, samples: Sequence[Sample], wrong: int, ms: float = 0.1) -> list[Record]:
    """This run: the first ``wrong`` samples read with one error in four characters."""
    return [
        make_record(
            case, s, Completion(text="abcx" if i < wrong else "abcd", ttft_s=ms, e2e_s=2 * ms), None
        )
        for i, s in enumerate(samples)
    ]


def _gate(case: Case, records: Sequence[Record], name: str) -> GateResult:
    threshold = next(t for t in case.thresholds if t.name == name)
    return gate_result(case, threshold, records, None)[0]


def test_a_paired_gate_fails_only_a_significant_drop_beyond_the_tolerance(
    tmp_path: Path,
) -> None:
    case, samples, _ = _paired_case(tmp_path)
    assert [t.name for t in case.thresholds][:2] == ["baseline_max_cer", "baseline_max_ttft_p50_ms"]
    big = _gate(case, _now(case, samples, wrong=20), "baseline_max_cer")
    assert not big.passed and big.paired is not None
    assert big.paired["change"] == pytest.approx(20 / 160)  # 20 edits over 160 characters
    assert big.paired["pairs"] == 40 and big.paired["p_value"] is not None
    assert big.paired["p_value"] < 0.01
    assert big.message.startswith("cer drop 0.125 (95% CI ")
    assert "beyond 0.02 and significant (one-sided paired permutation test p = " in big.message
    assert (big.limit, big.value) == (pytest.approx(0.02), 0.125)
    # 1 sample in 40: 1/160 = 0.00625, within the tolerance.
    small = _gate(case, _now(case, samples, wrong=1), "baseline_max_cer")
    assert small.passed and ": within 0.02 (" in small.message
    # 4 samples in 40: 0.025 beyond 0.02, but 4 discordant pairs: p about 1/16.
    noisy = _gate(case, _now(case, samples, wrong=4), "baseline_max_cer")
    assert noisy.passed and "beyond 0.02 but not significant" in noisy.message
    assert noisy.paired is not None and noisy.paired["p_value"] == pytest.approx(1 / 16, abs=0.02)


def test_a_paired_latency_gate_and_its_fallbacks(tmp_path: Path) -> None:
    case, samples, _ = _paired_case(tmp_path)
    slow = _gate(case, _now(case, samples, wrong=0, ms=0.3), "baseline_max_ttft_p50_ms")
    assert not slow.passed and slow.paired is not None
    assert slow.paired["change_kind"] == "increase" and slow.paired["change"] == pytest.approx(2.0)
    assert slow.message.startswith("ttft_p50_ms increase +200.0% (95% CI +200.0% to +200.0%;")
    same = _gate(case, _now(case, samples, wrong=0), "baseline_max_ttft_p50_ms")
    assert same.passed and "within +50.0%" in same.message
    # One sample of this run: nothing to pair, so the unpaired gate decides and says so.
    lone = _gate(case, _now(case, samples[:1], wrong=1), "baseline_max_cer")
    assert lone.paired is None and not lone.passed
    assert lone.message == (
        "cer 0.25 > max_cer 0.02 (unpaired: fewer than two of this run's samples pair "
        "with the baseline's)"
    )


def test_a_threshold_on_an_interval_column(tmp_path: Path) -> None:
    """min_<metric>_ci_low and the like gate the interval metrics.csv holds."""
    case, samples, _ = _paired_case(tmp_path)
    records = _now(case, samples, wrong=20)
    low, high = summarize_case(case, records)["metric_intervals"]["cer"]
    assert low is not None and high is not None and low < 0.125 < high
    result = gate_result(
        case, Threshold(column="cer_ci_high", bound="max", value=0.1), records, None
    )[0]
    assert not result.passed and result.message == f"cer_ci_high {high:g} > max_cer_ci_high 0.1"
    assert (result.limit, result.value) == (0.1, high)


def test_gates_csv_holds_every_gate_and_rebuild_rechecks_them(tmp_path: Path) -> None:
    case, samples, plan = _paired_case(tmp_path)
    out = tmp_path / "out"
    store = ResultStore(out, "main")
    for sample, record in zip(samples, _now(case, samples, wrong=20), strict=True):
        store.append({**record, "key": record_key(case, sample)})
    store.close()
    results, _ = results_from_store(plan, out)  # --vlmhb-rebuild-reports (and merge)
    results.gates.append(GateResult("c", "min_x", True, "=1+1 is text, not a formula", 0.5, 1))
    write_outputs(out, plan, results)
    raw = (out / "gates.csv").read_text().splitlines()
    assert raw[0] == ",".join(GATE_COLUMNS)
    assert raw[-1] == 'c,min_x,0.5,1,pass,"\'=1+1 is text, not a formula"'  # escaped
    rows = {r["gate"]: r for r in read_csv_dicts(out / "gates.csv")}
    assert list(rows) == [t.name for t in case.thresholds] + ["min_x"]
    cer = rows["baseline_max_cer"]
    assert (cer["case_id"], cer["threshold"], cer["value"], cer["result"]) == (
        "c",
        "0.02",
        "0.125",
        "fail",
    )
    assert "significant (one-sided paired permutation test" in cer["detail"]
    assert rows["min_x"]["detail"] == "=1+1 is text, not a formula"
    report = (out / "report.md").read_text()
    assert "### Paired tests" in report
    assert "| c | baseline_max_cer | 0 | 0.125 | drop 0.125 |" in report


# ------------------------------------------------------------------ the option


@pytest.mark.parametrize("value", ["0", "1", "nan", "-1", "x"])
def test_significance_outside_zero_to_one_is_a_usage_error(
    pytester: pytest.Pytester, value: str
) -> None:
    result = pytester.runpytest(f"--vlmhb-significance={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    why = "expected a number" if value == "x" else "finite" if value == "nan" else "> 0 and < 1"
    result.stderr.fnmatch_lines([f"*--vlmhb-significance: *{why}*"])


def test_a_level_reaches_the_settings(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "from pytest_vlmhb.plugin import SETTINGS\n"
        "def pytest_sessionstart(session):\n"
        "    print('LEVEL', session.config.stash[SETTINGS].significance)\n"
    )
    result = pytester.runpytest_subprocess("-s", "--vlmhb-significance=0.01")
    result.stdout.fnmatch_lines(["LEVEL 0.01"])


def test_baseline_run_describes_its_source(tmp_path: Path) -> None:
    run = BaselineRun(tmp_path, "answers.csv", {}, {})
    assert run.describe() == f"`{tmp_path}` (answers.csv)"
    assert run.pair("c", ["a"]).status == "new"
