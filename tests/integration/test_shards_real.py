"""Shards merged equal one unsharded run on real servers: the tiny model on the HF
backend, three server groups, through launcher=local and launcher=slurm (set
for the whole run with ``--vlmhb-launcher``); no Slurm job is left behind.
Under CI=true a missing Slurm cluster is a failure, not a skip."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import page_manifest, read_csv, run, setup_suite

MODELS = "name,source\na,builtin:tiny-idefics3\nb,builtin:tiny-idefics3\nc,builtin:tiny-idefics3\n"
CONFIG = "model,task,backend,max_tokens,max_errors\na,vqa,hf,6,0\nb,vqa,hf,4,0\nc,vqa,hf,8,0\n"
TIMING = {"ttft_ms", "ttfa_ms", "tpot_ms", "e2e_ms", "prep_ms"}


def _slurm_answers() -> str | None:
    try:
        proc = subprocess.run(["sinfo", "-h"], capture_output=True, text=True, timeout=30)
    except OSError as exc:
        return str(exc)
    return proc.stderr.strip() if proc.returncode else None


def _rows(out: Path, drop: set[str]) -> list[dict[str, str]]:
    rows = read_csv(out / "answers.csv")
    return [{k: v for k, v in row.items() if k not in drop} for row in rows]


def _gates(out: Path) -> list[str]:
    return [
        line for line in (out / "report.md").read_text().splitlines() if "| max_errors |" in line
    ]


@pytest.mark.server
@pytest.mark.parametrize("launcher", ["local", "slurm"])
def test_three_shards_merged_equal_one_run(
    pytester: pytest.Pytester, launcher: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    if launcher == "slurm" and (why := _slurm_answers()):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs a Slurm cluster (.ci/slurm-setup starts one): {why}")
        pytest.skip(f"no Slurm cluster answers: {why}")
    page_manifest(pytester, 2)
    setup_suite(pytester, CONFIG, models=MODELS, tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n")
    chosen = f"--vlmhb-launcher={launcher}"
    run(pytester, chosen, "--vlmhb-output=full").assert_outcomes(passed=6 + 3)
    for i in (1, 2, 3):
        result = run(pytester, chosen, f"--vlmhb-shard={i}/3", f"--vlmhb-output=s{i}")
        result.assert_outcomes(passed=2 + 1)  # one server group per shard
    merged = run(
        pytester,
        chosen,
        "--vlmhb-output=merged",  # the shards' options
        *(f"--vlmhb-merge=s{i}" for i in (1, 2, 3)),
    )
    assert merged.ret == pytest.ExitCode.OK, merged.stdout.str()[-2000:]
    full, joined = pytester.path / "full", pytester.path / "merged"
    assert _rows(joined, TIMING) == _rows(full, TIMING)
    assert sorted(_gates(joined)) == sorted(_gates(full))
    assert {r["launcher"] for r in read_csv(full / "answers.csv")} == {launcher}
    if launcher == "slurm":
        queued = subprocess.run(
            ["squeue", "-h", "-o", "%i %k"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        assert "vlmhb-owner" not in queued  # no job left behind


@pytest.mark.server
def test_slurm_answers_equal_local(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The main job's task types through --vlmhb-launcher=slurm equal launcher=local."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    if why := _slurm_answers():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs a Slurm cluster (.ci/slurm-setup starts one): {why}")
        pytest.skip(f"no Slurm cluster answers: {why}")
    setup_suite(
        pytester,
        "model,task,backend\n"
        + "".join(f"tiny,{t},hf\n" for t in ("vqa", "chart", "ocr", "kie", "cls")),
    )
    for launcher in ("local", "slurm"):
        run(
            pytester,
            f"--vlmhb-launcher={launcher}",
            "--vlmhb-limit=2",
            f"--vlmhb-output={launcher}",
        ).assert_outcomes(passed=10)
    drop = TIMING | {"launcher"}
    assert _rows(pytester.path / "slurm", drop) == _rows(pytester.path / "local", drop)
