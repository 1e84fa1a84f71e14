"""The slurm launcher's pieces without a cluster: sbatch and apptainer argv, the job
script, Slurm's output (fixtures captured from the one-node cluster of
``.ci/slurm-setup``, Slurm 22.05), the shared-storage check and the config columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_vlmhb.backends.base import Backend, ServeRequest
from pytest_vlmhb.cases import load_cases, load_models
from pytest_vlmhb.config import ModelRow, ModelSpec, Settings
from pytest_vlmhb.errors import ConfigError
from pytest_vlmhb.launchers.slurm import (
    JobState,
    SlurmLauncher,
    container_prefix,
    filesystem_of,
    job_script,
    orphan_jobs,
    parse_scontrol,
    register_secret,
    requests_gpus,
    sbatch_argv,
    server_words,
    sif_build_argv,
    storage_problem,
)
from pytest_vlmhb.modelsource import ResolvedModel
from pytest_vlmhb.redact import redact

RUNNING = """\
JobId=3 JobName=wrap
   UserId=root(0) GroupId=root(0) MCS_label=N/A
   Priority=4294901757 Nice=0 Account=(null) QOS=(null)
   JobState=RUNNING Reason=None Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0
   RunTime=00:00:02 TimeLimit=UNLIMITED TimeMin=N/A
   SubmitTime=2026-12-01T15:12:20 EligibleTime=2026-12-01T15:12:20
   AccrueTime=2026-12-01T15:12:20
   StartTime=2026-12-01T15:12:21 EndTime=Unknown Deadline=N/A
   SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-12-01T15:12:21 Scheduler=Main
   Partition=debug AllocNode:Sid=localhost:13580
   ReqNodeList=(null) ExcNodeList=(null)
   NodeList=vm
   BatchHost=vm
   NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=1,mem=22900M,node=1,billing=1
   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*
   MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0
   Features=(null) DelayBoot=00:00:00
   OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null)
   Command=(null)
   WorkDir=/tmp/slcap
   Comment=vlmhb-owner=vm:1:2
   StdErr=/tmp/slcap/run.out
   StdIn=/dev/null
   StdOut=/tmp/slcap/run.out
   Power=
"""
HELD = """\
JobId=25 JobName=x;touch /tmp/p q
   UserId=root(0) GroupId=root(0) MCS_label=N/A
   Priority=0 Nice=0 Account=(null) QOS=(null)
   JobState=PENDING Reason=JobHeldUser Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0
   RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A
   Partition=debug AllocNode:Sid=localhost:13580
   ReqNodeList=(null) ExcNodeList=(null)
   NodeList=
   NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=1,mem=22900M,node=1,billing=1
   Comment=vlmhb-owner=vm:123:456
"""
BEGIN = """\
JobId=5 JobName=wrap
   JobState=PENDING Reason=BeginTime Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0
   SubmitTime=2026-12-01T15:12:20 EligibleTime=2026-12-01T16:12:20
   NodeList=
"""
FAILED = """\
JobId=6 JobName=wrap
   JobState=FAILED Reason=NonZeroExitCode Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=3:0
   NodeList=vm
   BatchHost=vm
   TRES=cpu=1,mem=22900M,node=1,billing=1
"""
CANCELLED = """\
JobId=3 JobName=wrap
   JobState=CANCELLED Reason=None Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:15
   NodeList=vm
   BatchHost=vm
"""
TIMEOUT = """\
JobId=7 JobName=wrap
   JobState=TIMEOUT Reason=TimeLimit Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:15
   RunTime=00:01:06 TimeLimit=00:01:00 TimeMin=N/A
"""
NODE = """\
NodeName=vm Arch=x86_64 CoresPerSocket=1
   CPUAlloc=1 CPUEfctv=2 CPUTot=2 CPULoad=3.88
   AvailableFeatures=(null)
   ActiveFeatures=(null)
   Gres=(null)
   NodeAddr=127.0.0.1 NodeHostName=vm Version=22.05.8
   OS=Linux 6.18.44-fc-v857 #1 SMP PREEMPT_DYNAMIC @0
   RealMemory=22900 AllocMem=22900 FreeMem=15786 Sockets=2 Boards=1
   State=MIXED ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A
"""


@pytest.mark.parametrize(
    ("text", "state", "alive", "code", "describe"),
    [
        (RUNNING, "RUNNING", True, None, "RUNNING"),
        (HELD, "PENDING", True, None, "PENDING, reason JobHeldUser"),
        (BEGIN, "PENDING", True, None, "PENDING, reason BeginTime"),
        (FAILED, "FAILED", False, 3, "FAILED, reason NonZeroExitCode, ExitCode 3:0"),
        (CANCELLED, "CANCELLED", False, 143, "CANCELLED, ExitCode 0:15"),
        (TIMEOUT, "TIMEOUT", False, 143, "TIMEOUT, reason TimeLimit, ExitCode 0:15"),
    ],
)
def test_job_state_from_scontrol(
    text: str, state: str, alive: bool, code: int | None, describe: str
) -> None:
    job = JobState.parse(text)
    assert (job.state, job.alive, job.code, job.describe()) == (state, alive, code, describe)


def test_job_state_details() -> None:
    running = JobState.parse(RUNNING)
    assert running.node == "vm" and running.tres == "cpu=1,mem=22900M,node=1,billing=1"
    assert running.gpus == "0"
    assert JobState.parse(HELD).node == ""  # no node yet
    gpus = JobState.parse(RUNNING.replace("billing=1", "billing=1,gres/gpu=2"))
    assert gpus.gpus == "2"
    assert JobState("GONE").code == -1 and JobState("UNKNOWN").alive
    assert JobState("CANCELLED", exit_code="0:0").code == 1  # cancelled while pending
    assert JobState("COMPLETED", exit_code="0:0").code == 0  # ended: not None


def test_parse_scontrol_keeps_values_with_spaces() -> None:
    fields = parse_scontrol(HELD)
    assert fields["JobName"] == "x;touch /tmp/p q"
    assert fields["Comment"] == "vlmhb-owner=vm:123:456"
    node = parse_scontrol(NODE)
    assert node["NodeAddr"] == "127.0.0.1"
    assert node["OS"] == "Linux 6.18.44-fc-v857 #1 SMP PREEMPT_DYNAMIC @0"


def test_sbatch_argv_keeps_metacharacters_literal() -> None:
    row = ModelRow(
        name="m",
        source="s",
        slurm_args="--partition=gpu \"--job-name=a;touch /tmp/pwned\" --begin='now+1hour' $(id)",
    )
    argv = sbatch_argv(
        row.slurm_args,
        job_name="vlmhb-m",
        run_dir=Path("/shared/run"),
        log=Path("/shared/run/m.log"),
        owner="vm:1:2",
        script=Path("/shared/run/job.sh"),
    )
    assert argv == [
        "sbatch",
        "--parsable",
        "--job-name=vlmhb-m",
        "--chdir=/shared/run",
        "--partition=gpu",
        "--job-name=a;touch /tmp/pwned",
        "--begin=now+1hour",
        "$(id)",
        "--comment=vlmhb-owner=vm:1:2",
        "--output=/shared/run/m.log",
        "--error=/shared/run/m.log",
        "--export=ALL",
        "/shared/run/job.sh",
    ]


@pytest.mark.parametrize("runtime", ["apptainer", "singularity"])
def test_container_argv(runtime: str) -> None:
    sif = Path("/shared/cache/slurm/sif/hf-abc.sif")
    assert sif_build_argv(runtime, sif, "vlmhb/hf:abc") == [
        runtime,
        "build",
        str(sif),
        "docker-daemon://vlmhb/hf:abc",
    ]
    assert container_prefix(runtime, sif, [("/models/tiny", "/model")], gpu=True) == [
        runtime,
        "exec",
        "--bind",
        "/models/tiny:/model:ro",
        "--nv",
        str(sif),
    ]
    assert container_prefix(runtime, sif, [], gpu=False) == [runtime, "exec", str(sif)]


def test_gpu_requests_in_slurm_args() -> None:
    assert requests_gpus(["--gres=gpu:a100:2"]) and requests_gpus(["--gres", "gpu:1"])
    assert requests_gpus(["--gpus-per-node=4"]) and requests_gpus(["-G", "1"])
    assert not requests_gpus(["--partition=gpu", "--gres", "nvme:1", "--time=10"])


class EchoBackend(Backend):
    """A server that prints its argv and the key it got, then exits."""

    name = "echo"
    api_key_env_var = "ECHO_KEY"

    def command(self, request: ServeRequest) -> list[str]:
        code = "import os, sys; print(sys.argv[1:], os.environ['ECHO_KEY'])"
        return [request.python, "-c", code, "--host", request.host, f"--port={request.port}",
                *request.server_args]  # fmt: skip


def test_job_script_runs_key_port_rendezvous_then_server(tmp_path: Path) -> None:
    key = "k-" + "x" * 20
    (tmp_path / "m.key").write_text(key + "\n")
    request = ServeRequest(
        python=sys.executable,
        model="/m",
        served_name="m",
        host="?",
        port=0,
        server_args=["a b", "$(touch pwned)", "--port-ish=65601"],
    )
    script = tmp_path / "job.sh"
    script.write_text(
        job_script(
            label="echo server for m",
            prefix=[],
            python=sys.executable,
            server=server_words(EchoBackend(), request),
            env={"EXTRA": "it's"},
            key_var="ECHO_KEY",
            key_file=tmp_path / "m.key",
            rendezvous=tmp_path / "m.json",
        )
    )
    env = {**os.environ, "SLURM_JOB_ID": "42", "SLURMD_NODENAME": "no-such-node-vlmhb"}
    env.pop("ECHO_KEY", None)
    out = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, env=env, cwd=tmp_path, check=True
    ).stdout
    found = json.loads((tmp_path / "m.json").read_text())
    assert found["job"] == "42" and 0 < found["port"] < 65536 and found["host"]
    printed = out.splitlines()[-1]
    words = ["--host", found["host"], f"--port={found['port']}", "a b", "$(touch pwned)"]
    assert printed == f"{[*words, '--port-ish=65601']} {key}"
    assert not (tmp_path / "pwned").exists() and key not in script.read_text()


MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
tmpfs /dev/shm tmpfs rw,nosuid,nodev 0 0
tmpfs /scratch/ram tmpfs rw 0 0
server:/export /shared nfs4 rw 0 0
"""


def test_shared_storage_check() -> None:
    assert filesystem_of(Path("/shared/cache"), MOUNTS) == "nfs4"
    assert filesystem_of(Path("/scratch/ram/x"), MOUNTS) == "tmpfs"
    assert storage_problem(Path("/shared/cache"), 4, MOUNTS) is None
    assert storage_problem(Path("/home/u/.cache/vlmhb"), 4, MOUNTS) is None
    problem = storage_problem(Path("/tmp/cache"), 4, MOUNTS)
    assert problem and "under /tmp" in problem and "4 nodes" in problem
    assert "--vlmhb-cache" in problem
    ram = storage_problem(Path("/scratch/ram/cache"), 2, MOUNTS)
    assert ram and "on tmpfs" in ram
    # one node: everything it reads is on that node
    assert storage_problem(Path("/tmp/cache"), 1, MOUNTS) is None


def test_orphans_are_jobs_of_dead_owners_only() -> None:
    text = "5 (null)\n7 vlmhb-owner=vm:9:1\n8 vlmhb-owner=vm:10:1\n9 someone else's\n"
    assert orphan_jobs(text, alive=lambda owner: owner == "vm:10:1") == ["7"]


def test_generated_key_is_masked_and_not_left_in_the_environment() -> None:
    key = "slurm-key-" + os.urandom(8).hex()
    before = dict(os.environ)
    register_secret(key)
    assert dict(os.environ) == before
    assert redact(f"Bearer {key}") == "Bearer ***"


def test_planned_request() -> None:
    spec = ModelSpec(
        name="m",
        source="./m",
        served_name="m",
        base_dir=Path("."),
        slurm_args=("--gpus=1",),
        slurm_container="apptainer",
        recipe="none",
    )
    located = ResolvedModel(Path("/cache/models/m"), Path("/cache/models/m"), "", "sha256:0", {})
    request = SlurmLauncher.planned_request("hf", spec, located)
    assert (request.python, request.model, request.host, request.gpu) == (
        "<image python>",
        "/model",
        "<node address>",
        True,
    )
    plain = SlurmLauncher.planned_request(
        "hf", spec.model_copy(update={"slurm_container": "none"}), located
    )
    assert (plain.python, plain.model, plain.gpu) == ("<venv python>", "/cache/models/m", True)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("cells", "column", "says"),
    [
        ("--output=/x,", "slurm_args", "the slurm launcher sets --output itself"),
        ("-o x,", "slurm_args", "the slurm launcher sets -o itself"),
        ("--comment=mine,", "slurm_args", "sets --comment itself"),
        ("'unclosed,", "slurm_args", "No closing quotation"),
        (",docker", "slurm_container", "'none', 'apptainer' or 'singularity'"),
    ],
)
def test_bad_slurm_columns_are_config_errors(
    tmp_path: Path, cells: str, column: str, says: str
) -> None:
    models = _write(
        tmp_path / "models.csv", f"name,source,slurm_args,slurm_container\nm,x,{cells}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_models(models)
    assert err.value.column == column and err.value.line == 2
    assert says in str(err.value)


def test_slurm_columns_are_read(tmp_path: Path) -> None:
    models = _write(
        tmp_path / "models.csv",
        'name,source,slurm_args,slurm_container\nm,x,"-p debug --gres=gpu:1",singularity\nn,x,,\n',
    )
    loaded = load_models(models)
    assert loaded["m"].slurm_args == ("-p", "debug", "--gres=gpu:1")
    assert loaded["m"].slurm_container == "singularity"
    assert (loaded["n"].slurm_args, loaded["n"].slurm_container) == ((), "none")


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        config=tmp_path / "user_config.csv",
        output=tmp_path / "out",
        limit=None,
        cache=tmp_path / "cache",
        models=None,
        tasks=None,
        startup_timeout=60.0,
        request_timeout=60.0,
    )


def test_no_sbatch_is_a_usage_error_naming_the_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    _write(tmp_path / "models.csv", "name,source\nm,builtin:tiny-idefics3\n")
    _write(tmp_path / "tasks.csv", "name,type,data\nvqa,docvqa,builtin:synthetic-docs\n")
    _write(tmp_path / "user_config.csv", "model,task,backend,launcher\nm,vqa,hf,slurm\n")
    with pytest.raises(ConfigError) as err:
        load_cases(_settings(tmp_path))
    assert (err.value.line, err.value.column) == (2, "launcher")
    assert "sbatch is not on PATH" in str(err.value)
    assert "apt-get install slurm-client" in str(err.value)


def test_missing_container_runtime_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sbatch").write_text("#!/bin/sh\n")
    (tmp_path / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))  # sbatch, but no apptainer
    _write(
        tmp_path / "models.csv",
        "name,source,slurm_container\nm,builtin:tiny-idefics3,apptainer\n",
    )
    _write(tmp_path / "tasks.csv", "name,type,data\nvqa,docvqa,builtin:synthetic-docs\n")
    _write(tmp_path / "user_config.csv", "model,task,backend,launcher\nm,vqa,hf,slurm\n")
    with pytest.raises(ConfigError) as err:
        load_cases(_settings(tmp_path))
    assert "apptainer is not on PATH" in str(err.value) and "slurm_container=none" in str(err.value)
