"""``--vlmhb-shard`` and ``--vlmhb-merge`` end to end, against the scripted stub.

Three models on one stub URL are three server groups. Shards 1/3 (under
``-n 2``), 2/3 and 3/3 run into their own output dirs; their merge must
equal one unsharded run apart from timings. Merges that cannot add up to
one run are refused (exit 4) before anything is written.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import SUITE, read_csv
from tests.stub_openai import StubScript, running_stub

N = 4
CONFIG = (
    "id,model,task,backend,concurrency,min_anls\n"
    "m1-vqa,m1,vqa,openai,2,0.5\n"
    "m1-short,m1,short,openai,1,\n"
    "m2-vqa,m2,vqa,openai,2,0.1\n"
    "m3-short,m3,short,openai,1,0.2\n"
)
TASKS = (
    "name,type,data,prompt\n"
    "vqa,docvqa,data/m.jsonl,{question} Long.\n"
    "short,docvqa,data/m.jsonl,{question} Short.\n"
)
#: Answers that differ by case, so each case scores differently.
ANSWERS = {"Q1? Long.": "b", "Q2? Short.": "no", "Q3? Short.": "nope"}
TIMING = {"ttft_ms", "ttfa_ms", "tpot_ms", "e2e_ms", "prep_ms"}
THROUGHPUT = {"requests_per_s", "output_tokens_per_s", "pages_per_s"}


@dataclass
class Suite:
    root: Path
    script: StubScript
    sent: dict[str, int]  # output dir name -> requests the stub received for it

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """pytest on the suite in a subprocess (the plugin from its entry point)."""
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "--vlmhb-config=user_config.csv",
                "-p",
                "no:cacheprovider",
                "-q",
                *args,
            ],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=600,
            env=dict(os.environ),
            check=False,
        )

    def run_into(self, output: str, *args: str) -> subprocess.CompletedProcess[str]:
        before = len(self.script.received)
        result = self.run(f"--vlmhb-output={output}", *args)
        self.sent[output] = len(self.script.received) - before
        return result

    def merge(
        self, output: str, *dirs: str, extra: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        return self.run_into(output, *(f"--vlmhb-merge={d}" for d in dirs), *extra)


def _write_suite(root: Path, url: str) -> None:
    (root / "test_vlmhb.py").write_text(SUITE)
    (root / "user_config.csv").write_text(CONFIG)
    (root / "models.csv").write_text(
        "name,source,endpoint\n" + "".join(f"m{i},x,{url}\n" for i in (1, 2, 3))
    )
    (root / "tasks.csv").write_text(TASKS)
    data = root / "data"
    data.mkdir()
    Image.new("L", (60, 40), 255).save(data / "p.png")
    (data / "m.jsonl").write_text(
        "".join(
            json.dumps({"id": f"s{i}", "image": "p.png", "question": f"Q{i}?", "answers": ["a"]})
            + "\n"
            for i in range(N)
        )
    )


def _out(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    """The suite run whole, as three shards (1/3 under -n 2) and merged."""
    root = tmp_path_factory.mktemp("shards")
    script = StubScript(default_answer="a", answers=ANSWERS)
    with running_stub(script) as url:
        _write_suite(root, url)
        suite = Suite(root, script, {})
        for output, args in (
            ("whole", ()),
            ("s1", ("--vlmhb-shard=1/3", "-n", "2")),
            ("s2", ("--vlmhb-shard=2/3",)),
            ("s3", ("--vlmhb-shard", "3/3")),
        ):
            result = suite.run_into(output, *args)
            assert result.returncode == 0, (output, _out(result)[-3000:])
        merged = suite.merge("merged", "s1", "s2", "s3")
        assert merged.returncode == 0, _out(merged)[-3000:]
        yield suite


def _rows(path: Path, drop: set[str]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k not in drop} for row in read_csv(path)]


def _metrics_drop(path: Path) -> set[str]:
    header = read_csv(path)[0].keys()
    return {c for c in header if c.startswith(("ttft_", "ttfa_", "e2e_", "tpot_"))} | THROUGHPUT


def _gates(output: Path) -> list[str]:
    report = (output / "report.md").read_text().split("## Gates", 1)[1].split("##", 1)[0]
    return sorted(line for line in report.splitlines() if line.startswith("| m"))


def _run_info(output: Path) -> dict[str, object]:
    lines = (output / "results" / "run.jsonl").read_text().splitlines()
    infos = [json.loads(line)["run_info"] for line in lines if '"run_info"' in line]
    assert infos, f"{output} has no run record"
    info: dict[str, object] = infos[-1]
    return info


def test_three_shards_merge_into_the_outputs_of_one_unsharded_run(suite: Suite) -> None:
    root = suite.root
    whole, merged = root / "whole", root / "merged"
    assert _rows(merged / "answers.csv", TIMING) == _rows(whole / "answers.csv", TIMING)
    drop = _metrics_drop(whole / "metrics.csv")
    assert _rows(merged / "metrics.csv", drop) == _rows(whole / "metrics.csv", drop)
    gates = _gates(whole)
    assert len(gates) == 3 and all("| pass |" in g for g in gates)
    assert _gates(merged) == gates
    # Each shard ran whole server groups, each sample once; the merge sent nothing.
    cases = {
        name: {r["case_id"] for r in read_csv(root / name / "answers.csv")}
        for name in ("s1", "s2", "s3")
    }
    assert cases == {"s1": {"m1-vqa", "m1-short"}, "s2": {"m2-vqa"}, "s3": {"m3-short"}}
    assert suite.sent["s1"] + suite.sent["s2"] + suite.sent["s3"] == suite.sent["whole"] == 4 * N
    assert suite.sent["merged"] == 0
    infos = [_run_info(root / name) for name in ("s1", "s2", "s3", "whole")]
    assert [(i["shard_index"], i["shard_total"]) for i in infos] == [(1, 3), (2, 3), (3, 3), (1, 1)]
    assert len({i["config_hash"] for i in infos}) == 1
    assert infos[0]["cases"] == {"m1-vqa": "external", "m1-short": "external"}


def test_the_merged_dir_rebuilds_and_a_merge_rechecks_baseline_gates(suite: Suite) -> None:
    root = suite.root
    rebuilt = suite.run("--vlmhb-output=merged", "--vlmhb-rebuild-reports")
    assert rebuilt.returncode == 0, _out(rebuilt)[-3000:]
    assert _rows(root / "merged" / "answers.csv", TIMING) == _rows(
        root / "whole" / "answers.csv", TIMING
    )
    # A baseline whose scores are all 1.0: with no drop allowed, m1-vqa (0.75) fails.
    rows = read_csv(root / "whole" / "metrics.csv")
    with (root / "baseline.csv").open("w", newline="") as sink:
        writer = csv.DictWriter(sink, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "anls": "1.0"} for r in rows)
    failing = suite.merge(
        "merged-baseline",
        "s1",
        "s2",
        "s3",
        extra=("--vlmhb-baseline=baseline.csv", "--vlmhb-max-score-drop=0"),
    )
    assert failing.returncode == 1, _out(failing)[-3000:]
    gates = _gates(root / "merged-baseline")
    assert any(g.startswith("| m1-vqa | baseline_min_anls | FAIL |") for g in gates), gates


def test_merges_that_do_not_add_up_are_refused(suite: Suite) -> None:
    root = suite.root
    other = suite.run_into("s2-limit", "--vlmhb-shard=2/3", "--vlmhb-limit=2")
    assert other.returncode == 0, _out(other)[-3000:]
    shutil.copytree(root / "s1", root / "s1-copy")
    (root / "empty").mkdir()
    refusals = {
        ("s1", "s2-limit", "s3"): "*s2-limit (shard 2/3) ran another configuration: config hash*",
        ("s1", "s1-copy", "s2", "s3"): "*shard 1/3 given twice (*s1 and *s1-copy)*",
        ("s1", "s3"): "*--vlmhb-merge: shard 2/3 missing (given: 1/3 from *s1, 3/3 from *s3)*",
        ("s1", "s2", "s3", "empty"): "*--vlmhb-merge *empty: no results store*",
        ("s1", "s2", "nowhere"): "*--vlmhb-merge: *nowhere is not found, expected a shard's dir*",
    }
    for dirs, message in refusals.items():
        result = suite.merge("refused", *dirs)
        assert result.returncode == 4, (dirs, _out(result)[-2000:])
        assert any(_match(line, message) for line in result.stderr.splitlines()), (
            dirs,
            result.stderr[-2000:],
        )
        assert not (root / "refused").exists()  # nothing written, nothing locked
    assert suite.sent["refused"] == 0


def _match(line: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatch(line, pattern)


def test_a_shard_with_no_server_group_exits_0_and_says_so(suite: Suite) -> None:
    result = suite.run_into("s4of4", "--vlmhb-shard=4/4")
    assert result.returncode == 0, _out(result)[-3000:]
    assert "shard 4/4: empty (3 server groups over 4 shards): nothing to run" in _out(result)
    assert suite.sent["s4of4"] == 0
    info = _run_info(suite.root / "s4of4")
    assert (info["shard_index"], info["shard_total"], info["cases"]) == (4, 4, {})


def test_collect_only_shows_the_shard(suite: Suite) -> None:
    result = suite.run("--collect-only", "--vlmhb-shard=2/3")
    assert result.returncode == 0, _out(result)[-3000:]
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("vlmhb plan: 1 cases, 4 samples, 1 server groups") for line in lines
    ), result.stdout
    assert "shard 2/3: groups m2@openai@external (estimated work 256 of 1024)" in lines
