"""End-to-end: the plugin driven by pytester against the real HF server (tiny model).

Every run here is a real ``pytest`` subprocess with the plugin loaded from its
entry point. They share one cache (tests/conftest.py), so the HF venv and the
tiny model are built once per machine.
"""

from __future__ import annotations

import json
import os
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers import (
    KILL_SERVER_AFTER_S1,
    REPO,
    page_manifest,
    read_csv,
    run,
    setup_suite,
)
from tests.hf_server_checks import STREAM_TOKENS, check_streamed_over_time
from tests.stub_openai import StubScript, running_stub


@pytest.mark.server
def test_all_five_task_types_end_to_end_with_junit(pytester: pytest.Pytester) -> None:
    config = "model,task,backend,launcher,min_anls\ntiny,vqa,hf,local,0\n" + "".join(
        f"tiny,{t},hf,local,\n" for t in ("chart", "ocr", "kie", "cls")
    )
    setup_suite(pytester, config)
    result = run(pytester, "--vlmhb-limit=3", "--junitxml=junit.xml", "-v")
    result.assert_outcomes(passed=5 * 3 + 1)
    result.stdout.fnmatch_lines(
        [
            "*test_sample?tiny:vqa:hf/*PASSED*",
            "*test_gate?tiny:vqa:hf/min_anls*PASSED*",
            "*vlmhb summary*",
            "tiny:vqa:hf *3 *0 *anls=*",
        ]
    )
    out = pytester.path / "vlmhb-results"
    answers = read_csv(out / "answers.csv")
    assert len(answers) == 15
    assert [a["case_id"] for a in answers[:3]] == ["tiny:vqa:hf"] * 3
    assert {a["task"] for a in answers} == {"vqa", "chart", "ocr", "kie", "cls"}
    for row in answers:
        assert row["error"] == "" and row["finish_reason"] in ("stop", "length")
        assert float(row["ttft_ms"]) > 0 and float(row["e2e_ms"]) >= float(row["ttft_ms"])
        assert int(row["completion_tokens"]) >= 1 and int(row["prompt_tokens"]) > 10
    vqa = [a for a in answers if a["task"] == "vqa"]
    assert all(0.0 <= float(a["anls"]) <= 1.0 for a in vqa)
    assert all(json.loads(a["reference"])["answers"] for a in vqa)
    ocr = [a for a in answers if a["task"] == "ocr"]
    assert all(float(a["cer"]) >= 0 for a in ocr)
    metrics = read_csv(out / "metrics.csv")
    assert [m["case_id"] for m in metrics] == [
        f"tiny:{t}:hf" for t in ("vqa", "chart", "ocr", "kie", "cls")
    ]
    for m in metrics:
        assert m["n"] == "3" and m["errors"] == "0"
        assert float(m["ttft_p50_ms"]) <= float(m["ttft_p99_ms"])
        assert float(m["requests_per_s"]) > 0 and float(m["peak_memory_mb"]) > 10
    assert metrics[3]["f1"] != "" and metrics[4]["accuracy"] != ""
    # each score and TTFT p50 within its bootstrap interval (real server figures)
    primary = ("anls", "relaxed_accuracy", "cer", "f1", "accuracy")
    for m, metric in zip(metrics, primary, strict=True):
        low, high = float(m[f"{metric}_ci_low"]), float(m[f"{metric}_ci_high"])
        assert low <= float(m[metric]) <= high, (metric, m)
        ttft = float(m["ttft_p50_ms"])
        assert float(m["ttft_p50_ci_low_ms"]) <= ttft <= float(m["ttft_p50_ci_high_ms"])
    gates = read_csv(out / "gates.csv")
    assert [(g["case_id"], g["gate"], g["result"]) for g in gates] == [
        ("tiny:vqa:hf", "min_anls", "pass")
    ]
    html = (out / "report.html").read_text()
    island = html.split('id="vlmhb-data">', 1)[1].split("</script>", 1)[0]
    assert all(f"tiny:{t}:hf" in island for t in ("vqa", "chart", "ocr", "kie", "cls"))
    assert any((out / "plots").glob("*.png"))  # the plots were drawn
    report = (out / "report.md").read_text()
    for case in ("tiny:vqa:hf", "tiny:chart:hf", "tiny:ocr:hf", "tiny:kie:hf", "tiny:cls:hf"):
        assert report.count(f"| {case} | tiny | hf | local | 3 | 0 |") == 1  # its task table
        # provenance: source, the built-in model's revision, its recipe, backend, launcher
        assert f"| {case} | builtin:tiny-idefics3 | builtin:tiny-idefics3-" in report
        assert "| tiny-idefics3 | hf | local |" in report
    assert "## Gates" in report and "transformers" in report
    cases = ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    samples = [c for c in cases if c.get("name", "").startswith("test_sample")]
    assert len(samples) == 15
    for case_el in samples:
        props = {p.get("name"): p.get("value") for p in case_el.iter("property")}
        assert float(props["ttft_ms"]) > 0
        assert "answer" in props and (
            {"anls", "relaxed_accuracy", "cer", "f1", "accuracy"} & set(props)
        )
    assert (out / "logs" / "tiny@hf@local.log").stat().st_size > 0
    stored = [
        json.loads(line)
        for line in (out / "results" / "samples-main.jsonl").read_text().splitlines()
    ]
    assert sum("key" in entry for entry in stored) == 15  # one line per sample
    assert sum("case_info" in entry for entry in stored) == 5  # one per finished case


@pytest.mark.server
def test_gate_fails_when_threshold_missed(pytester: pytest.Pytester) -> None:
    setup_suite(pytester, "model,task,backend,min_anls,max_errors\ntiny,vqa,hf,1.01,0\n")
    result = run(pytester, "--vlmhb-limit=2")
    assert result.ret == 1
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_gate?tiny:vqa:hf/min_anls? _*",
            "anls 0 < min_anls 1.01",
            "FAILED *test_gate?tiny:vqa:hf/min_anls*",
        ]
    )
    report = (pytester.path / "vlmhb-results" / "report.md").read_text()
    assert "| tiny:vqa:hf | min_anls | FAIL |" in report
    assert "| tiny:vqa:hf | max_errors | pass |" in report


@pytest.mark.server
def test_streaming_is_real_and_missing_image_fails_only_its_item(pytester: pytest.Pytester) -> None:
    data = pytester.path / "data"
    data.mkdir()
    synth = sorted((REPO / ".vlmhb-cache").glob("data/synthetic-docs-*/images/*.png"))
    image = synth[0] if synth else None
    if image is None:  # generate the synthetic set through the plugin's own code
        from pytest_vlmhb.tasks.sources import synthetic_docs_dir

        image = sorted(
            (synthetic_docs_dir(Path(os.environ["VLMHB_CACHE"])) / "images").glob("*.png")
        )[0]
    (data / "page.png").write_bytes(image.read_bytes())
    lines = [
        {"id": f"s{i}", "image": "page.png", "question": "What is it?", "answers": ["x"]}
        for i in range(3)
    ]
    lines.insert(1, {"id": "gone", "image": "missing.png", "question": "?", "answers": ["x"]})
    (data / "m.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    setup_suite(
        pytester,
        # concurrency 1: the HF server generates one request at a time, so
        # queued requests would count their wait as TTFT
        "model,task,backend,launcher,max_tokens,concurrency,request_params\n"
        f'tiny,long,hf,local,{STREAM_TOKENS},1,"{{""ignore_eos"": true}}"\n',
        tasks="name,type,data\nlong,docvqa,data/m.jsonl\n",
    )
    result = run(pytester)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        ["*_ test_sample?tiny:long:hf/gone? _*", "sample gone: image not found: *missing.png"]
    )
    rows = {r["sample_id"]: r for r in read_csv(pytester.path / "vlmhb-results" / "answers.csv")}
    assert "image not found" in rows["gone"]["error"] and rows["gone"]["anls"] == "0.0"
    store = pytester.path / "vlmhb-results" / "results" / "samples-main.jsonl"
    # Split at "\n" only: str.splitlines() also splits at U+0085 and U+2028, which
    # JSON leaves unescaped and the tiny model may well generate.
    stored = {
        r["sample_id"]: r
        for r in (json.loads(line) for line in store.read_text().split("\n") if line.strip())
        if r.get("key")
    }
    for sid in ("s0", "s1", "s2"):
        row = rows[sid]
        assert int(row["completion_tokens"]) == STREAM_TOKENS
        # A server that generated everything first and then split it would send
        # every token within about a millisecond; one that streams spreads them
        # over the decode (margins: tests/hf_server_checks.py; no TTFT/E2E ratio,
        # which load breaks).
        ttft_ms, e2e_ms = float(row["ttft_ms"]), float(row["e2e_ms"])
        check_streamed_over_time(
            (e2e_ms - ttft_ms) / 1e3, [gap / 1e3 for gap in stored[sid]["itl_ms"]]
        )
        assert float(row["tpot_ms"]) > 0
    metrics = read_csv(pytester.path / "vlmhb-results" / "metrics.csv")[0]
    assert metrics["n"] == "4" and metrics["errors"] == "1"


def test_unknown_backend_is_a_usage_error_before_any_server(pytester: pytest.Pytester) -> None:
    setup_suite(pytester, "model,task,backend\ntiny,vqa,hf\ntiny,vqa,nope\n")
    result = run(pytester)
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        [
            "*user_config.csv:3: column 'backend': unknown backend 'nope'"
            "*allowed: hf, openai, sglang, vllm*"
        ]
    )
    assert not (pytester.path / "vlmhb-results").exists()


def _reference_anls(pred: str, answers: list[str]) -> float:
    """An independent ANLS: plain dynamic-programming Levenshtein, no rapidfuzz."""

    def lev(a: str, b: str) -> int:
        row = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            prev, row[0] = row[0], i
            for j, cb in enumerate(b, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
        return row[-1]

    best = 0.0
    for ans in answers:
        a = " ".join(ans.strip().lower().split())
        p = " ".join(pred.strip().lower().split())
        length = max(len(ans.upper()), len(pred.upper()))
        score = 1.0 - (lev(a, p) / length if length else 0.0)
        best = max(best, score)
    return best if best >= 0.5 else 0.0


def test_external_endpoint_scored_with_correct_anls(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = pytester.path / "data"
    data.mkdir()
    from PIL import Image

    Image.new("L", (40, 30), 255).save(data / "p.png")
    qa = [
        ("What is the total?", ["$12.50", "12.50"], "12.5"),
        ("Who signed?", ["Ann Lee"], "ann  lee"),
        ("Invoice number?", ["INV-0042"], "INV 0042"),
        ("Date?", ["2024-01-02"], "yesterday"),
        ("Street?", ["Straße 5"], "STRASSE 5"),
    ]
    (data / "m.jsonl").write_text(
        "".join(
            json.dumps({"id": f"q{i}", "image": "p.png", "question": q, "answers": a}) + "\n"
            for i, (q, a, _) in enumerate(qa)
        )
    )
    suffix = "\nAnswer the question using a single word or phrase."
    script = StubScript(answers={q + suffix: pred for q, _, pred in qa})
    with running_stub(script) as url:
        setup_suite(
            pytester,
            "model,task,backend,concurrency\nremote,vqa,openai,3\n",
            models=f"name,source,endpoint,api_key_env\nremote,some/model,{url},STUB_KEY\n",
            tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
        )
        monkeypatch.setenv("STUB_KEY", "sk-secret-value-123")
        result = run(pytester, "--junitxml=junit.xml")
    result.assert_outcomes(passed=5)
    rows = read_csv(pytester.path / "vlmhb-results" / "answers.csv")
    for row, (_, answers, pred) in zip(rows, qa, strict=True):
        assert row["answer"] == pred
        assert float(row["anls"]) == pytest.approx(_reference_anls(pred, answers), abs=1e-9)
    assert {h.get("Authorization") for h in script.headers} == {"Bearer sk-secret-value-123"}
    for produced in (pytester.path / "vlmhb-results").rglob("*"):
        if produced.is_file():
            assert "sk-secret-value-123" not in produced.read_text(errors="replace"), produced
    assert "sk-secret-value-123" not in (pytester.path / "junit.xml").read_text()
    assert "sk-secret-value-123" not in result.stdout.str() + result.stderr.str()


def test_third_party_task_type_and_metric_via_entry_points(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = pytester.mkdir("site")
    (site / "vlmhb_extra.py").write_text(
        "from pytest_vlmhb.metrics.base import MeanMetric\n"
        "from pytest_vlmhb.tasks.base import TaskType\n"
        "class Shout(MeanMetric):\n"
        "    name = 'shout'\n"
        "    def score(self, prediction, reference):\n"
        "        return float(prediction == prediction.upper() == reference['word'])\n"
        "class Echo(TaskType):\n"
        "    name = 'echo'\n"
        "    reference_fields = ('word',)\n"
        "    default_metrics = ('shout',)\n"
        "    default_prompt = 'Say {word} loudly.'\n"
    )
    dist = site / "vlmhb_extra-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vlmhb-extra\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[vlmhb.tasks]\necho = vlmhb_extra:Echo\n\n[vlmhb.metrics]\nshout = vlmhb_extra:Shout\n"
    )
    data = pytester.mkdir("data")
    from PIL import Image

    Image.new("RGB", (20, 20)).save(data / "p.png")
    (data / "m.jsonl").write_text(
        "".join(
            json.dumps({"id": i, "image": "p.png", "word": w}) + "\n"
            for i, w in (("a", "HI"), ("b", "YO"))
        )
    )
    script = StubScript(answers={"Say HI loudly.": "HI", "Say YO loudly.": "yo"})
    with running_stub(script) as url:
        setup_suite(
            pytester,
            "model,task,backend,min_shout\nremote,e,openai,0.5\n",
            models=f"name,source,endpoint\nremote,x,{url}\n",
            tasks="name,type,data\ne,echo,data/m.jsonl\n",
        )
        monkeypatch.setenv("PYTHONPATH", str(site), prepend=os.pathsep)
        result = run(pytester)
    result.assert_outcomes(passed=3)
    metrics = read_csv(pytester.path / "vlmhb-results" / "metrics.csv")[0]
    assert float(metrics["shout"]) == 0.5


@pytest.mark.server
def test_one_server_at_a_time_stopped_after_its_last_item(pytester: pytest.Pytester) -> None:
    # Rows interleave the two models; items are grouped so each server starts once.
    setup_suite(
        pytester,
        "model,task,backend,launcher\na,vqa,hf,local\nb,vqa,hf,local\na,cls,hf,local\n",
        models="name,source\na,builtin:tiny-idefics3\nb,builtin:tiny-idefics3\n",
    )
    result = run(pytester, "--vlmhb-limit=1", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*starting hf server for a on*",
            "*test_sample?a:vqa:hf/*PASSED*",
            "*test_sample?a:cls:hf/*PASSED*",
            "*stopping server a@hf@local*",
            "*starting hf server for b on*",
            "*test_sample?b:vqa:hf/*PASSED*",
            "*stopping server b@hf@local*",
        ]
    )
    assert result.stdout.str().count("starting hf server") == 2
    answers = read_csv(pytester.path / "vlmhb-results" / "answers.csv")
    assert [a["case_id"] for a in answers] == ["a:vqa:hf", "b:vqa:hf", "a:cls:hf"]


def test_missing_model_dir_is_a_usage_error_before_any_venv(pytester: pytest.Pytester) -> None:
    """Found at load, not after a backend venv was built (1.2 GB, about a minute)."""
    page_manifest(pytester, 2)
    setup_suite(
        pytester,
        "model,task,backend,launcher\ngone,vqa,hf,local\nremote,vqa,openai,\n",
        models="name,source,endpoint\ngone,./no-such-model,\nremote,x,http://127.0.0.1:9/v1\n",
        tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
    )
    result = run(pytester, "--vlmhb-cache=fresh-cache")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*models.csv:2: column 'source': model directory *no-such-model does not exist*"]
    )
    assert not (pytester.path / "fresh-cache" / "envs").exists()


@pytest.mark.server
def test_server_death_mid_case_fails_the_rest_promptly(pytester: pytest.Pytester) -> None:
    page_manifest(pytester, 6)
    setup_suite(
        pytester,
        "model,task,backend,launcher,concurrency\ntiny,vqa,hf,local,1\n",
        tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
    )
    pytester.makeconftest(KILL_SERVER_AFTER_S1)
    result = run(pytester, "--vlmhb-request-timeout=120")
    result.assert_outcomes(passed=2, failed=4)
    result.stdout.fnmatch_lines(["*the server exited with code -9 during case tiny:vqa:hf*"])
    assert result.duration < 90  # no waiting for request timeouts
    rows = read_csv(pytester.path / "vlmhb-results" / "answers.csv")
    assert [bool(r["error"]) for r in rows] == [False, False, True, True, True, True]


_TIMING = ("ttft_ms", "ttfa_ms", "tpot_ms", "e2e_ms", "prep_ms")


@pytest.mark.server
def test_xdist_gives_the_same_results_as_one_process(pytester: pytest.Pytester) -> None:
    """Under -n 2 each server's group runs on one worker; the controller merges."""
    page_manifest(pytester, 3)
    with running_stub(StubScript(default_answer="a")) as url:
        setup_suite(
            pytester,
            "model,task,backend,launcher,max_errors\ntiny,vqa,hf,local,0\nremote,vqa,openai,,0\n",
            models=f"name,source,endpoint\ntiny,builtin:tiny-idefics3,\nremote,x,{url}\n",
            tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
        )
        tables = {}
        for label, extra in (("n0", ["-p", "no:xdist"]), ("n2", ["-n", "2", "-v"])):
            result = run(pytester, f"--vlmhb-output=out-{label}", "--junitxml=j.xml", *extra)
            result.assert_outcomes(passed=8)
            rows = read_csv(pytester.path / f"out-{label}" / "answers.csv")
            tables[label] = [{k: v for k, v in r.items() if k not in _TIMING} for r in rows]
            metrics = read_csv(pytester.path / f"out-{label}" / "metrics.csv")
            assert [m["n"] for m in metrics] == ["3", "3"]
            assert (
                "| remote:vqa:openai | max_errors | pass |"
                in (pytester.path / f"out-{label}" / "report.md").read_text()
            )
    assert tables["n0"] == tables["n2"]
    assert len(tables["n2"]) == 6
    # Which worker ran each sample (xdist's -v lines) and which worker's store
    # holds it: a split group shows in both, a record in the wrong store only
    # in the second.
    ran: dict[str, set[tuple[str, str]]] = {}
    for line in result.stdout.lines:
        m = re.match(r"\[(gw\d+)\] \[ *\d+%\] PASSED \S*::test_sample\[([^/\]]+)/([^\]]+)\]", line)
        if m:
            ran.setdefault(m[1], set()).add((m[2], m[3]))
    stored: dict[str, list[tuple[str, str]]] = {}
    for path in sorted((pytester.path / "out-n2" / "results").glob("samples-gw*.jsonl")):
        entries = [json.loads(line) for line in path.read_text().split("\n") if line.strip()]
        stored[path.stem.removeprefix("samples-")] = [
            (e["case_id"], e["sample_id"]) for e in entries if e.get("key")
        ]
    where = f"stored by worker: {stored}; ran on worker: {ran}"
    everything = [pair for pairs in stored.values() for pair in pairs]
    assert len(everything) == len(set(everything)) == 6, where  # each sample stored once
    assert {w: set(pairs) for w, pairs in stored.items()} == ran, where  # by its worker
    for case_id in ("tiny:vqa:hf", "remote:vqa:openai"):  # a server's group: one worker
        assert sum(any(c == case_id for c, _ in pairs) for pairs in stored.values()) == 1, where


@pytest.mark.server
def test_gpus_per_worker_sets_each_workers_server_devices(pytester: pytest.Pytester) -> None:
    page_manifest(pytester, 1)
    setup_suite(
        pytester,
        "model,task,backend,launcher\na,vqa,hf,local\nb,vqa,hf,local\n",
        models="name,source\na,builtin:tiny-idefics3\nb,builtin:tiny-idefics3\n",
        tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
    )
    pytester.makeconftest(
        "import os\n"
        "from pytest_vlmhb.plugin import RUNTIME\n"
        "def pytest_runtest_teardown(item):\n"
        "    server = item.config.stash[RUNTIME].pool.current\n"
        "    if server is None:\n"
        "        return\n"
        "    env = open(f'/proc/{server.pid}/environ', 'rb').read().split(b'\\0')\n"
        "    seen = [e.decode() for e in env if e.startswith(b'CUDA_VISIBLE_DEVICES=')]\n"
        "    wid = os.environ.get('PYTEST_XDIST_WORKER')\n"
        "    open(f'devices-{wid}.txt', 'w').write(';'.join(seen))\n"
    )
    # The conftest's teardown hook runs before the plugin's, while the server is up.
    result = run(pytester, "-n", "2", "--vlmhb-gpus-per-worker=2")
    result.assert_outcomes(passed=2)
    files = {p.name: p.read_text() for p in pytester.path.glob("devices-*.txt")}
    expected = {
        "devices-gw0.txt": "CUDA_VISIBLE_DEVICES=0,1",
        "devices-gw1.txt": "CUDA_VISIBLE_DEVICES=2,3",
    }
    assert files == expected  # one server group per worker, each with its own GPUs


@pytest.mark.server
def test_killed_worker_loses_nothing_and_takes_its_server_along(pytester: pytest.Pytester) -> None:
    page_manifest(pytester, 6)
    with running_stub(StubScript(default_answer="a")) as url:
        setup_suite(
            pytester,
            "model,task,backend,launcher,concurrency\ntiny,vqa,hf,local,1\nremote,vqa,openai,,1\n",
            models=f"name,source,endpoint\ntiny,builtin:tiny-idefics3,\nremote,x,{url}\n",
            tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
        )
        pytester.makeconftest(
            "import os, signal\n"
            "from pathlib import Path\n"
            "from pytest_vlmhb.plugin import RUNTIME\n"
            "def pytest_runtest_teardown(item):\n"
            "    marker = Path('killed.pid')\n"
            "    if item.name.endswith('tiny:vqa:hf/s2]') and not marker.exists():\n"
            "        marker.write_text(str(item.config.stash[RUNTIME].pool.current.pid))\n"
            "        os.kill(os.getpid(), signal.SIGKILL)\n"
        )
        result = run(pytester, "-n", "2")
    server_pid = int((pytester.path / "killed.pid").read_text())
    result.stdout.fnmatch_lines(["*worker*crashed*"])
    deadline = time.monotonic() + 15
    while Path(f"/proc/{server_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    status = Path(f"/proc/{server_pid}/status")
    assert not status.exists() or "zombie" in status.read_text(), "server outlived its worker"
    rows = read_csv(pytester.path / "vlmhb-results" / "answers.csv")
    hf = {r["sample_id"]: r for r in rows if r["case_id"] == "tiny:vqa:hf"}
    assert {"s0", "s1", "s2"} <= set(hf)  # completed before the crash: kept
    assert set(hf) == {f"s{i}" for i in range(6)}  # the rest re-run by the new worker
    remote = [r for r in rows if r["case_id"] == "remote:vqa:openai"]
    assert len(remote) == 6 and all(r["answer"] == "a" for r in remote)
    outcomes = result.parseoutcomes()
    # Every sample is accounted for: answered, re-run by the replacement worker,
    # or reported as failed; none silently dropped.
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) >= 12


def test_image_path_escaping_the_dataset_folder_fails_its_item(pytester: pytest.Pytester) -> None:
    page_manifest(pytester, 2)
    (pytester.path / "secret.png").write_bytes((pytester.path / "data" / "p.png").read_bytes())
    manifest = pytester.path / "data" / "m.jsonl"
    manifest.write_text(
        manifest.read_text()
        + json.dumps({"id": "sneaky", "image": "../secret.png", "question": "Q?", "answers": ["a"]})
        + "\n"
    )
    with running_stub(StubScript(default_answer="a")) as url:
        setup_suite(
            pytester,
            "model,task,backend\nremote,vqa,openai\n",
            models=f"name,source,endpoint\nremote,x,{url}\n",
            tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
        )
        result = run(pytester)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*m.jsonl:3: image path *secret.png escapes the dataset folder*"])


@pytest.mark.server
def test_resume_and_baseline_on_the_real_hf_server(pytester: pytest.Pytester) -> None:
    setup_suite(pytester, "model,task,backend,launcher\ntiny,vqa,hf,local\n")
    run(pytester, "--vlmhb-limit=3").assert_outcomes(passed=3)
    out = pytester.path / "vlmhb-results"
    first = read_csv(out / "answers.csv")
    (pytester.path / "base.csv").write_bytes((out / "metrics.csv").read_bytes())
    # Everything stored: resuming answers from the store without starting the server.
    resumed = run(
        pytester,
        "--vlmhb-limit=3",
        "--vlmhb-resume",
        "--vlmhb-baseline=base.csv",
        "--vlmhb-max-score-drop=0",
    )
    resumed.assert_outcomes(passed=3 + 2)  # samples + baseline gates for anls, exact_match
    assert "starting hf server" not in resumed.stdout.str()
    assert read_csv(out / "answers.csv") == first
    report = (out / "report.md").read_text()
    assert "Resumed: 3 of 3 samples reused" in report
    assert "| tiny:vqa:hf | anls | 0 | 0 | 0 | compared |" in report
    doc = json.loads((out / "benchmark.json").read_text())
    assert {b["name"] for b in doc["benchmarks"]} == {"ttft[tiny:vqa:hf]", "e2e[tiny:vqa:hf]"}
