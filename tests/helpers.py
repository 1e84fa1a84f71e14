"""Helpers shared by the project's tests (test modules import these, never each other).

- End to end: a pytester suite (user_config.csv, models.csv, tasks.csv and the
  benchmark test module), a real ``pytest`` subprocess run, small manifests,
  and CSV reading that undoes the outputs' formula escaping.
- In-process: a minimal Case and Sample for records, reports and the runner.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_vlmhb.cases import Plan
from pytest_vlmhb.client import Completion
from pytest_vlmhb.config import Case, ModelSpec, TaskSpec
from pytest_vlmhb.csvsafe import read_csv_dicts
from pytest_vlmhb.records import make_record
from pytest_vlmhb.report import RunResults
from pytest_vlmhb.settings import Settings
from pytest_vlmhb.store import record_key
from pytest_vlmhb.tasks.manifest import Sample
from tests.stub_openai import StubScript

REPO = Path(__file__).resolve().parent.parent
SUITE = (REPO / "benchmarks" / "test_vlmhb.py").read_text()
MODELS = "name,source\ntiny,builtin:tiny-idefics3\n"
TASKS = (
    "name,type,data\n"
    "vqa,docvqa,builtin:synthetic-docs\nchart,chartqa,builtin:synthetic-docs\n"
    "ocr,ocr,builtin:synthetic-docs\nkie,kie,builtin:synthetic-docs\n"
    "cls,doc_classification,builtin:synthetic-docs\n"
)
#: A conftest that SIGKILLs the running server once sample s1's item is done.
KILL_SERVER_AFTER_S1 = (
    "import os, signal\n"
    "from pytest_vlmhb.plugin import RUNTIME\n"
    "def pytest_runtest_teardown(item):\n"
    "    if item.name.endswith('/s1]'):\n"
    "        os.kill(item.config.stash[RUNTIME].pool.current.pid, signal.SIGKILL)\n"
)


def read_csv(path: Path) -> list[dict[str, str]]:
    """An output CSV as dicts, formula escaping undone (as our own readers do)."""
    return read_csv_dicts(path)


def setup_suite(
    pytester: pytest.Pytester, config: str, models: str = MODELS, tasks: str = TASKS
) -> None:
    """The benchmark suite in pytester's folder with these three CSV files."""
    pytester.makepyfile(test_vlmhb=SUITE)
    (pytester.path / "user_config.csv").write_text(config)
    (pytester.path / "models.csv").write_text(models)
    (pytester.path / "tasks.csv").write_text(tasks)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """The suite in a real pytest subprocess (the plugin from its entry point)."""
    return pytester.runpytest_subprocess(
        "--vlmhb-config=user_config.csv", "-p", "no:cacheprovider", *args, timeout=1200
    )


def spawn_run(pytester: pytest.Pytester) -> subprocess.Popen[bytes]:
    """The suite in a background pytest process (to signal or kill it mid-run)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "--vlmhb-config=user_config.csv",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
        ],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTEST_ADDOPTS": ""},
    )


def make_settings(root: Path) -> Settings:
    """Settings for ``root/user_config.csv`` (output and cache under ``root``)."""
    return Settings(
        config=root / "user_config.csv",
        output=root / "out",
        limit=None,
        cache=root / "cache",
        models=None,
        tasks=None,
        startup_timeout=1,
        request_timeout=1,
    )


def page_manifest(pytester: pytest.Pytester, n: int) -> None:
    """data/m.jsonl: n docvqa samples s0..s{n-1} on one blank page, answer "a"."""
    data = pytester.mkdir("data")
    from PIL import Image

    Image.new("L", (60, 40), 255).save(data / "p.png")
    (data / "m.jsonl").write_text(
        "".join(
            json.dumps({"id": f"s{i}", "image": "p.png", "question": f"Q{i}?", "answers": ["a"]})
            + "\n"
            for i in range(n)
        )
    )


#: The docvqa task type's default prompt suffix (what a stub's answer table keys on).
DOCVQA_SUFFIX = "\nAnswer the question using a single word or phrase."


def stub_vqa_suite(pytester: pytest.Pytester, url: str, n: int) -> None:
    """n docvqa samples s{i} (question "Q{i}?", answer "a{i}") on the stub at ``url``,
    one case at concurrency 1 (model "remote", backend openai)."""
    data = pytester.path / "data"
    data.mkdir(exist_ok=True)
    from PIL import Image

    Image.new("L", (30, 30), 255).save(data / "p.png")
    (data / "m.jsonl").write_text(
        "".join(
            json.dumps(
                {"id": f"s{i}", "image": "p.png", "question": f"Q{i}?", "answers": [f"a{i}"]}
            )
            + "\n"
            for i in range(n)
        )
    )
    setup_suite(
        pytester,
        "model,task,backend,concurrency\nremote,vqa,openai,1\n",
        models=f"name,source,endpoint\nremote,x,{url}\n",
        tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
    )


def half_right_script(n: int, **settings: object) -> StubScript:
    """A stub that answers every other sample of :func:`stub_vqa_suite` right (so the
    scores say whether rows were mixed up): anls 0.5 for even n."""
    return StubScript(
        answers={f"Q{i}?{DOCVQA_SUFFIX}": f"a{i}" if i % 2 else "wrong" for i in range(n)},
        **settings,
    )  # type: ignore[arg-type]


def make_case(metrics: tuple[str, ...], task_type: str = "ocr") -> Case:
    """A minimal case "c" (model "m" on hf, local) scoring ``metrics``."""
    model = ModelSpec(name="m", source="x", served_name="m", base_dir=Path("."))
    task = TaskSpec(
        name="t",
        type=task_type,
        data="d",
        prompt="p",
        metrics=metrics,
        max_tokens=8,
        base_dir=Path("."),
    )
    return Case(
        id="c",
        index=0,
        model=model,
        task=task,
        backend="hf",
        launcher="local",
        concurrency=2,
        max_tokens=8,
        temperature=0.0,
        limit=None,
        request_params={},
        request_timeout=10.0,
        max_retries=0,
        max_restarts=0,
        gauge_poll_s=0.0,
        thresholds=(),
        source_file=Path("u.csv"),
        source_line=2,
    )


def make_sample(sid: str, text: str, manifest: Path = Path("m.jsonl")) -> Sample:
    """A sample whose reference is OCR ``text``."""
    return Sample(
        id=sid, image=Path("x.png"), prompt="p", reference={"text": text}, manifest=manifest
    )


def make_plan(tmp_path: Path, ids: list[str]) -> Plan:
    """One CER case over samples ``ids`` (reference "abc") with a real manifest file."""
    manifest = tmp_path / "data" / "m.jsonl"
    manifest.parent.mkdir(exist_ok=True)
    manifest.write_text("{}\n")
    case = make_case(("cer",))
    return Plan(cases=(case,), samples={case.id: [make_sample(i, "abc", manifest) for i in ids]})


def make_results(plan: Plan, answers: dict[str, str]) -> RunResults:
    """Answered records of the plan's first case (``answers`` by sample id, else "abc")."""
    case = plan.cases[0]
    results = RunResults()
    for sample in plan.samples[case.id]:
        done = Completion(
            text=answers.get(sample.id, "abc"),
            ttft_s=0.1,
            e2e_s=0.2,
            completion_tokens=3,
            sent_at=1000.0,
            finished_at=1000.2,
        )
        record = make_record(case, sample, done, None)
        results.add_record({**record, "key": record_key(case, sample)})
    return results


def make_pdf(path: Path, pages: int, size_pt: tuple[float, float] = (300.0, 400.0)) -> Path:
    """A PDF of ``pages`` pages of ``size_pt`` points, each with its number drawn
    large in a distinct grey (so rendered pages are told apart by their pixels)."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=size_pt)
    pdf.set_auto_page_break(False)
    for page in range(1, pages + 1):
        pdf.add_page()
        pdf.set_fill_color(page * 20 % 256, 0, 0)
        pdf.rect(0, 0, size_pt[0], 20, style="F")
        pdf.set_font("helvetica", size=48)
        pdf.text(40, 120, f"Page {page}")
    pdf.output(str(path))
    return path


def stored_records(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The sample records of a run's results store, by (case id, sample id)."""
    records = {}
    for path in (out / "results").glob("samples-*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "sample_id" in record:  # not a line of case figures or run facts
                records[record["case_id"], record["sample_id"]] = record
    return records
