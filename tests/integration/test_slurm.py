"""The slurm launcher for real: the HF server with the tiny model as a Slurm job.

Runs against the one-node cluster ``.ci/slurm-setup`` starts (node address
127.0.0.1). Each run is a real pytest subprocess; every job a test submits
carries a job name unique to the test, so "nothing left in squeue" is checked
by name. Under CI=true a missing cluster is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_vlmhb.launchers.docker_daemon import owner_id
from pytest_vlmhb.launchers.slurm import OWNER_PREFIX, job_state, sweep_orphans
from pytest_vlmhb.store import load_case_info
from tests.helpers import page_manifest, read_csv, run, setup_suite, spawn_run, stored_records


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster() -> None:
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%N %t"], capture_output=True, text=True, timeout=30
        )
        why = proc.stderr.strip() if proc.returncode else ""
    except OSError as exc:
        why = str(exc)
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs a Slurm cluster (.ci/slurm-setup starts one): {why}")
        pytest.skip(f"no Slurm cluster answers: {why}")


@pytest.fixture
def not_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs below are top-level pytest runs, even when this suite runs under -n."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)


def _queued(name: str) -> list[str]:
    """Ids of queued jobs (any state squeue lists) with this job name."""
    proc = subprocess.run(
        ["squeue", "-h", "-n", name, "-o", "%i"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return proc.stdout.split()


def _wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


#: Runs in the pytest subprocess: on the first slurm item, a request without the
#: key, whether the key shows in any process's argv, and where the server is.
PROBE = (
    "import json, os, urllib.error, urllib.request\n"
    "from pytest_vlmhb.plugin import RUNTIME\n"
    "def pytest_runtest_teardown(item):\n"
    "    server = item.config.stash[RUNTIME].pool.current\n"
    "    if server is None or 'slurm_job' not in server.provenance or os.path.exists('p.json'):\n"
    "        return\n"
    "    try:\n"
    "        urllib.request.urlopen(server.base_url + '/models', timeout=10)\n"
    "        status = 200\n"
    "    except urllib.error.HTTPError as exc:\n"
    "        status = exc.code\n"
    "    key = server.headers['Authorization'].removeprefix('Bearer ')\n"
    "    in_argv = []\n"
    "    for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "        try:\n"
    "            if key.encode() in open(f'/proc/{pid}/cmdline', 'rb').read():\n"
    "                in_argv.append(pid)\n"
    "        except OSError:\n"
    "            pass\n"
    "    open('p.json', 'w').write(json.dumps({'status': status, 'key': key,\n"
    "        'in_argv': in_argv, 'url': server.base_url, 'job': server.provenance['slurm_job']}))\n"
)


@pytest.mark.server
@pytest.mark.usefixtures("not_a_worker")
def test_slurm_matches_local_key_required_args_literal_nothing_left(
    pytester: pytest.Pytester,
) -> None:
    pwned = Path(f"/tmp/pwned-vlmhb-{secrets.token_hex(4)}")
    name = f"x;touch {pwned} $(touch {pwned})`touch {pwned}`"
    setup_suite(
        pytester,
        "id,model,task,backend,launcher,max_tokens\n"
        "on-slurm,tiny,vqa,hf,slurm,24\nin-venv,tiny,vqa,hf,local,24\n",
        models=f"name,source,slurm_args\ntiny,builtin:tiny-idefics3,"
        f"\"--job-name='{name}' --time=10\"\n",
    )
    pytester.makeconftest(PROBE)
    result = run(pytester, "--vlmhb-limit=2")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["*Slurm job * (hf server for tiny) is up on http://127.0.0.1:* (*s)"]
    )
    out = pytester.path / "vlmhb-results"
    answers = read_csv(out / "answers.csv")
    store = stored_records(out)
    by_case: dict[str, dict[str, dict[str, str]]] = {}
    for row in answers:
        assert row["error"] == "", row
        by_case.setdefault(row["case_id"], {})[row["sample_id"]] = row
    assert by_case["on-slurm"].keys() == by_case["in-venv"].keys()
    assert len(by_case["on-slurm"]) == 2
    for sample, row in by_case["on-slurm"].items():
        assert row["answer"] == by_case["in-venv"][sample]["answer"], sample
        slurm_ids = store["on-slurm", sample]["token_ids"]
        assert slurm_ids and slurm_ids == store["in-venv", sample]["token_ids"], sample
    server = load_case_info(out)["on-slurm"]["server"]
    assert server["slurm_node"] == socket.gethostname() and server["slurm_gpus"] == "0"
    assert server["slurm_job"] and server["packages"]
    # the server on the node's address requires the key; the key is on no argv
    probe = json.loads((pytester.path / "p.json").read_text())
    assert probe["status"] == 401 and probe["in_argv"] == []
    assert probe["url"].startswith("http://127.0.0.1:")
    for path in out.rglob("*"):
        if path.is_file():
            assert probe["key"] not in path.read_text(errors="replace"), path
    assert probe["key"] not in result.stdout.str() + result.stderr.str()
    # the job name went to sbatch as one literal word: no shell ever ran it
    state = subprocess.run(
        ["scontrol", "show", "job", probe["job"]], capture_output=True, text=True, check=True
    ).stdout
    assert f"JobName={name}" in state
    assert not pwned.exists()
    assert "vlmhb: serving on 127.0.0.1:" in (out / "logs" / "tiny@hf@slurm.log").read_text()
    assert _queued(name) == []
    assert job_state(probe["job"]).state in ("CANCELLED", "GONE")


@pytest.mark.server
@pytest.mark.usefixtures("not_a_worker")
def test_failed_held_and_refused_jobs_fail_their_cases_with_slurms_reason(
    pytester: pytest.Pytester,
) -> None:
    name = f"vlmhb-test-{secrets.token_hex(4)}"
    page_manifest(pytester, 1)
    setup_suite(
        pytester,
        "model,task,backend,launcher\nnope,vqa,hf,slurm\nheld,vqa,hf,slurm\nbroken,vqa,hf,slurm\n",
        models=f"name,source,slurm_args,server_args\n"
        f"nope,builtin:tiny-idefics3,--job-name={name} --partition=nope,\n"
        f"held,builtin:tiny-idefics3,--job-name={name} --hold,\n"
        f"broken,builtin:tiny-idefics3,--job-name={name},--no-such-flag\n",
        tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
    )
    start = time.monotonic()
    result = run(pytester, "--vlmhb-startup-timeout=5")
    assert time.monotonic() - start < 120
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines_random(
        [
            "*server nope@hf@slurm failed to start: sbatch refused the job for the hf server for "
            "nope (exit 1): sbatch: error: invalid partition specified: nope*",
            "*server held@hf@slurm failed to start: Slurm job * (hf server for held) still PENDING "
            "after 5 s (Slurm's reason: JobHeldUser); cancelled*",
            "*server broken@hf@slurm failed to start: Slurm job * (hf server for broken) ended "
            "before its server came up: FAILED, reason NonZeroExitCode, ExitCode 2:0; log *",
            "*error: unrecognized arguments: --no-such-flag*",
        ]
    )
    assert _queued(name) == []


#: Cancels the case's job once sample s0's item is done (as an admin or a preemption would).
CANCEL_AFTER_S0 = (
    "import subprocess\n"
    "from pytest_vlmhb.plugin import RUNTIME\n"
    "def pytest_runtest_teardown(item):\n"
    "    if item.name.endswith('/s0]'):\n"
    "        job = item.config.stash[RUNTIME].pool.current.provenance['slurm_job']\n"
    "        subprocess.run(['scancel', job], check=True)\n"
)


@pytest.mark.server
@pytest.mark.usefixtures("not_a_worker")
def test_job_ended_mid_case_fails_the_rest_at_once(pytester: pytest.Pytester) -> None:
    name = f"vlmhb-test-{secrets.token_hex(4)}"
    page_manifest(pytester, 12)
    setup_suite(
        pytester,
        "model,task,backend,launcher,concurrency,max_tokens\ntiny,vqa,hf,slurm,1,64\n",
        models=f"name,source,slurm_args\ntiny,builtin:tiny-idefics3,--job-name={name}\n",
        tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
    )
    pytester.makeconftest(CANCEL_AFTER_S0)
    start = time.monotonic()
    result = run(pytester)
    assert time.monotonic() - start < 120  # not a request timeout per sample
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] >= 1 and outcomes["failed"] >= 6, outcomes
    # the job's state is the server's death, in Slurm's words at the end of the log tail
    result.stdout.fnmatch_lines(
        [
            "*the server exited with code * during case tiny:vqa:hf; log *tiny@hf@slurm.log:*",
            "[[]vlmhb] Slurm job * ended: CANCELLED*",
        ]
    )
    log = (pytester.path / "vlmhb-results" / "logs" / "tiny@hf@slurm.log").read_text()
    assert "CANCELLED AT" in log
    assert _queued(name) == []


@pytest.mark.server
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_interrupted_run_leaves_no_job(pytester: pytest.Pytester, how: signal.Signals) -> None:
    name = f"vlmhb-test-{secrets.token_hex(4)}"
    page_manifest(pytester, 200)
    setup_suite(
        pytester,
        "model,task,backend,launcher,concurrency,max_tokens\ntiny,vqa,hf,slurm,1,64\n",
        models=f"name,source,slurm_args\ntiny,builtin:tiny-idefics3,--job-name={name}\n",
        tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
    )
    proc = spawn_run(pytester)
    try:
        assert _wait_for(lambda: bool(_queued(name)), 300), "no job submitted"
        show = ["scontrol", "show", "job", _queued(name)[0]]
        fields = subprocess.run(show, capture_output=True, text=True, check=True).stdout.split()
        run_dir = Path(next(f for f in fields if f.startswith("WorkDir=")).split("=", 1)[1])
        assert (run_dir / "tiny@hf.key").exists()
        # once answers arrive the run is mid-case
        samples = pytester.path / "vlmhb-results" / "results" / "samples-main.jsonl"
        assert _wait_for(lambda: samples.exists() and '"sample_id"' in samples.read_text(), 300)
        proc.send_signal(how)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Ctrl-C: pytest's own teardown; kill -9: the watchdog process
    assert _wait_for(lambda: _queued(name) == [], 30), _queued(name)
    # the job's files (script, key, rendezvous, log) and the run's folder are gone
    assert _wait_for(lambda: not run_dir.exists(), 30), list(run_dir.iterdir())


def test_jobs_of_a_dead_owner_are_swept() -> None:
    name = f"vlmhb-test-{secrets.token_hex(4)}"
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner = owner_id(proc.pid)
    proc.wait()
    jobs = {}
    for owner in (dead_owner, owner_id()):
        jobs[owner] = subprocess.run(
            [
                "sbatch",
                "--parsable",
                f"--job-name={name}",
                f"--comment={OWNER_PREFIX}{owner}",
                "--output=/dev/null",
                "--hold",
                "--wrap",
                "sleep 300",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    try:
        cancelled = sweep_orphans(lambda _: None)
        assert jobs[dead_owner] in cancelled and jobs[owner_id()] not in cancelled
        assert _wait_for(lambda: _queued(name) == [jobs[owner_id()]], 30), _queued(name)
    finally:
        subprocess.run(["scancel", *jobs.values()], check=False)
