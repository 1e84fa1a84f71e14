"""A backend server as a Slurm job; pytest runs where the user is.

Each server is one batch job (``sbatch``, argv only, never a shell; the
model's ``slurm_args`` are extra sbatch words). The job script picks a free
port on its node, writes ``{"host", "port", "job"}`` into a rendezvous file
next to it (atomically) and ``exec``s the server, bound to the node's address:
the one exception to "servers listen on 127.0.0.1 only", so the server always
requires an API key (the model's ``api_key_env``, else a random one per
server) that it reads from a 0600 file, never from an argv. The harness waits
for the job to start (reporting Slurm's pending reason), for the rendezvous
file, then for ``/health``; a job that ends, or is still pending at the
startup timeout, fails with Slurm's own state and reason.

Everything the job reads lives in the cache (``<cache>/slurm/<run id>/``, the
venv, the model), which must be on storage the nodes share. Jobs carry the
owner process in their comment; ``stop`` cancels the job, a watchdog process
cancels it if pytest is killed, and jobs whose owner is gone are cancelled at
the next start. ``slurm_container=apptainer|singularity`` runs the backend's
image as a SIF built from ``model_images/`` (through the Docker daemon here).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import ClassVar

from filelock import FileLock

from ..backends.base import Backend, ServeRequest
from ..config import ModelSpec, Settings
from ..envs import Progress, clean_env, ensure_env, venv_python
from ..errors import ServerError
from ..models import resolve_model
from ..modelsource import ResolvedModel
from ..redact import redact, redact_then_truncate, register_value
from .base import (
    VERSIONS_SCRIPT,
    Launcher,
    RunningServer,
    api_key,
    container_mounts,
    log_tail,
    parse_versions,
    poll_until_healthy,
    provenance_of,
    serve_request,
)
from .docker_daemon import owner_alive, owner_id
from .slurm_reaper import remove_files

#: Marks the jobs of this plugin: ``--comment=vlmhb-owner=<host:pid:start>``.
OWNER_PREFIX = "vlmhb-owner="
INSTALL_HINT = (
    "install Slurm's client tools (Debian/Ubuntu: `apt-get install slurm-client`, "
    "RHEL: `dnf install slurm`; on a cluster: `module load slurm`) or put the folder "
    "holding sbatch on PATH"
)
#: Job states in which the job may still serve; every other state has ended it.
ALIVE_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "SUSPENDED",
        "STOPPED",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SIGNALING",
        "RESV_DEL_HOLD",
        "UNKNOWN",  # scontrol did not answer: judged again at the next poll
    }
)
#: Folders that are private to one machine, whatever their file system.
NODE_LOCAL_DIRS = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"), Path("/run"))
MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs", "devtmpfs"})
# Two different placeholder addresses/ports: the argv words that differ between
# the two renderings are the ones the job fills in on its node.
_HOSTS = ("__VLMHB_NODE_A__", "__VLMHB_NODE_B__")
_PORTS = (65601, 65602)  # above 65535: never a real port
#: The job's free-port probe (run by the job's Python, on its node).
PORT_SCRIPT = "import socket; s = socket.socket(); s.bind(('', 0)); print(s.getsockname()[1])"


def _run(argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """A Slurm command (argv only), its output captured; OSError/timeouts as ServerError."""
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, env=clean_env()
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerError(f"{argv[0]} failed: {exc}") from None


# -- what Slurm says --------------------------------------------------------------------


def parse_scontrol(text: str) -> dict[str, str]:
    """``scontrol show job|node`` text -> {key: value}; a word without ``=`` belongs to
    the previous value (``OS=Linux 6.1 #1``, a job name with a space)."""
    fields: dict[str, str] = {}
    last = None
    for word in text.split():
        key, eq, value = word.partition("=")
        if eq and key:
            fields[key] = value
            last = key
        elif last is not None:
            fields[last] += " " + word
    return fields


@dataclass(frozen=True)
class JobState:
    """A job as ``scontrol show job`` reports it (``state`` GONE: no longer known)."""

    state: str
    reason: str = ""
    exit_code: str = ""
    node: str = ""
    tres: str = ""

    @classmethod
    def parse(cls, text: str) -> JobState:
        fields = parse_scontrol(text)
        node = fields.get("BatchHost") or fields.get("NodeList", "")
        return cls(
            state=fields.get("JobState", "UNKNOWN"),
            reason=fields.get("Reason", ""),
            exit_code=fields.get("ExitCode", ""),
            node="" if node == "(null)" else node,
            tres=fields.get("TRES", ""),
        )

    @property
    def alive(self) -> bool:
        return self.state in ALIVE_STATES

    @property
    def code(self) -> int | None:
        """The job's exit code once it has ended (None while alive): the script's
        status, else 128 + the signal that ended it, else 1 (-1 when gone)."""
        if self.alive:
            return None
        if self.state == "GONE":
            return -1
        status, _, signal = self.exit_code.partition(":")
        if status.isdigit() and int(status):
            return int(status)
        if signal.isdigit() and int(signal):
            return 128 + int(signal)
        return 0 if self.state == "COMPLETED" else 1

    @property
    def gpus(self) -> str:
        """GPUs allocated to the job (``gres/gpu`` of its TRES; '0' when none)."""
        for item in self.tres.split(","):
            key, _, value = item.partition("=")
            if key == "gres/gpu":
                return value
        return "0"

    def describe(self) -> str:
        """Slurm's own words: state, reason and exit code."""
        parts = [self.state]
        if self.reason and self.reason != "None":
            parts.append(f"reason {self.reason}")
        if self.exit_code and not self.alive:
            parts.append(f"ExitCode {self.exit_code}")
        return ", ".join(parts)


def job_state(job_id: str) -> JobState:
    """``scontrol show job``; GONE once Slurm has forgotten the job, UNKNOWN on errors."""
    proc = _run(["scontrol", "show", "job", job_id])
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:
            return JobState("GONE")
        return JobState("UNKNOWN", reason=proc.stderr.strip())
    return JobState.parse(proc.stdout)


def queue_state(job_id: str) -> tuple[str, str] | None:
    """``squeue -h -j ID -o "%T %r"``: (state, reason) while queued, None once it left."""
    proc = _run(["squeue", "-h", "-j", job_id, "-o", "%T %r"])
    words = proc.stdout.split(maxsplit=1)
    if proc.returncode != 0 or not words:
        return None
    return words[0], words[1].strip() if len(words) > 1 else ""


def node_address(node: str) -> str:
    """Where the harness reaches ``node``: its NodeAddr, else the node name."""
    proc = _run(["scontrol", "show", "node", node])
    address = parse_scontrol(proc.stdout).get("NodeAddr", "") if proc.returncode == 0 else ""
    return address or node


def cluster_nodes() -> int:
    """How many nodes the cluster has (``sinfo -h -N -o %N``, each name once)."""
    proc = _run(["sinfo", "-h", "-N", "-o", "%N"])
    if proc.returncode != 0:
        raise ServerError(f"sinfo failed: {redact(proc.stderr.strip())}")
    return len(set(proc.stdout.split()))


def orphan_jobs(squeue_text: str, alive: Callable[[str], bool] = owner_alive) -> list[str]:
    """Job ids in ``squeue -h -o "%i %k"`` output whose vlmhb owner process is gone."""
    out = []
    for line in squeue_text.splitlines():
        job, _, comment = line.strip().partition(" ")
        comment = comment.strip()
        owner = comment.removeprefix(OWNER_PREFIX)
        if job and comment.startswith(OWNER_PREFIX) and not alive(owner):
            out.append(job)
    return out


def sweep_orphans(progress: Progress) -> list[str]:
    """Cancel this user's jobs left by a killed run; their ids."""
    proc = _run(["squeue", "--me", "-h", "-o", "%i %k"])
    jobs = orphan_jobs(proc.stdout) if proc.returncode == 0 else []
    if jobs:
        _run(["scancel", *jobs])
        progress(f"cancelled {len(jobs)} Slurm job(s) left by a killed run: {', '.join(jobs)}")
    return jobs


@cache
def sweep_once(progress: Progress) -> list[str]:
    """``sweep_orphans`` once per process."""
    return sweep_orphans(progress)


# -- shared storage ---------------------------------------------------------------------


def filesystem_of(path: Path, mounts: str) -> str:
    """The file system type of ``path`` from /proc/mounts text ('' if unknown)."""
    best, fstype = -1, ""
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point = Path(parts[1].replace("\\040", " "))
        if path.is_relative_to(point) and len(point.parts) > best:
            best, fstype = len(point.parts), parts[2]
    return fstype


def storage_problem(cache: Path, nodes: int, mounts: str) -> str | None:
    """Why ``cache`` cannot hold what the jobs read on a cluster of ``nodes`` (None: fine).

    On one node everything is shared; otherwise a node-local folder (/tmp,
    /var/tmp, /dev/shm, /run) or a memory file system is refused.
    """
    if nodes <= 1:
        return None
    resolved = cache.resolve()
    where = next((str(d) for d in NODE_LOCAL_DIRS if resolved.is_relative_to(d)), None)
    fstype = filesystem_of(resolved, mounts)
    if where is None and fstype not in MEMORY_FILESYSTEMS:
        return None
    what = f"under {where}" if where else f"on {fstype}"
    return (
        f"launcher 'slurm': the cache {resolved} is {what}, which is private to this "
        f"machine, but the cluster has {nodes} nodes and the job reads its venv, model, "
        "script and key from the cache; set --vlmhb-cache (or VLMHB_CACHE) to a folder "
        "the nodes share (e.g. under your home or a project file system)"
    )


def _check_storage(cache: Path) -> None:
    try:
        mounts = Path("/proc/mounts").read_text()
    except OSError:
        mounts = ""
    problem = storage_problem(cache, cluster_nodes(), mounts)
    if problem:
        raise ServerError(problem)


# -- what the job runs ------------------------------------------------------------------


def requests_gpus(slurm_args: Sequence[str]) -> bool:
    """Whether the sbatch words ask for GPUs (``--gpus*``, ``-G``, ``--gres=gpu``)."""
    for i, word in enumerate(slurm_args):
        if word.startswith(("--gpus", "-G", "--gres=gpu")):
            return True
        if word == "--gres" and i + 1 < len(slurm_args) and slurm_args[i + 1].startswith("gpu"):
            return True
    return False


def sbatch_argv(
    slurm_args: Sequence[str], *, job_name: str, run_dir: Path, log: Path, owner: str, script: Path
) -> list[str]:
    """The sbatch command: the model's own words, then what the harness needs.

    A word of ``slurm_args`` is one argv word, whatever characters it holds.
    """
    return [
        "sbatch",
        "--parsable",
        f"--job-name={job_name}",
        f"--chdir={run_dir}",
        *slurm_args,
        f"--comment={OWNER_PREFIX}{owner}",
        f"--output={log}",
        f"--error={log}",
        "--export=ALL",
        str(script),
    ]


def sif_build_argv(runtime: str, sif: Path, tag: str) -> list[str]:
    """Build a SIF from the image the Docker daemon holds."""
    return [runtime, "build", str(sif), f"docker-daemon://{tag}"]


def container_prefix(
    runtime: str, sif: Path, mounts: Sequence[tuple[str, str]], gpu: bool
) -> list[str]:
    """What runs a command inside the SIF: ``mounts`` (host path, container path)
    read-only, NVIDIA GPUs with ``--nv``; the job's environment (the API key)
    passes through."""
    argv = [runtime, "exec"]
    for host_path, mount in mounts:
        argv += ["--bind", f"{host_path}:{mount}:ro"]
    if gpu:
        argv.append("--nv")
    return [*argv, str(sif)]


def _shell_word(word_a: str, word_b: str) -> str:
    """One argv word as shell text: literal, or with the node's address/port filled in."""
    if word_a == word_b:
        return shlex.quote(word_a)
    pieces = re.split(f"({_HOSTS[0]}|{_PORTS[0]})", word_a)
    out = []
    for piece in pieces:
        if piece == _HOSTS[0]:
            out.append('"$addr"')
        elif piece == str(_PORTS[0]):
            out.append('"$port"')
        elif piece:
            out.append(shlex.quote(piece))
    return "".join(out)


def server_words(backend: Backend, request: ServeRequest) -> str:
    """The backend's argv as shell words, the node's address and port left to the job."""
    first = backend.command(replace(request, host=_HOSTS[0], port=_PORTS[0]))
    second = backend.command(replace(request, host=_HOSTS[1], port=_PORTS[1]))
    return " ".join(_shell_word(a, b) for a, b in zip(first, second, strict=True))


def job_script(
    *,
    label: str,
    prefix: Sequence[str],
    python: str,
    server: str,
    env: dict[str, str],
    key_var: str,
    key_file: Path,
    rendezvous: Path,
) -> str:
    """The batch script: key from its file, a free port, the rendezvous file, the server."""
    q = shlex.quote
    run = "".join(q(w) + " " for w in prefix)
    exports = "".join(f"export {name}={q(value)}\n" for name, value in env.items())
    return (
        "#!/bin/bash\n"
        f"# {label.replace(chr(10), ' ')}: written by pytest-vlmhb (launcher=slurm)\n"
        "set -euo pipefail\n"
        f"IFS= read -r {key_var} < {q(str(key_file))}\n"
        f"export {key_var}\n"
        f"{exports}"
        'addr=$(scontrol show node "${SLURMD_NODENAME:-$(hostname)}" 2>/dev/null'
        " | sed -n 's/.*NodeAddr=\\([^ ]*\\).*/\\1/p' || true)\n"
        "addr=${addr:-$(hostname)}\n"
        f"port=$({run}{q(python)} -c {q(PORT_SCRIPT)})\n"
        f"rendezvous={q(str(rendezvous))}\n"
        'printf \'{"host": "%s", "port": %s, "job": "%s"}\\n\' "$addr" "$port" '
        '"$SLURM_JOB_ID" > "$rendezvous.tmp"\n'
        'mv -f "$rendezvous.tmp" "$rendezvous"\n'
        'echo "vlmhb: serving on $addr:$port (job $SLURM_JOB_ID on $(hostname))"\n'
        f"exec {run}{server}\n"
    )


# -- the launcher -----------------------------------------------------------------------


_RUN_ID = secrets.token_hex(6)


def run_dir(cache: Path) -> Path:
    """This process's folder of job scripts, logs, keys and rendezvous files."""
    return cache / "slurm" / _RUN_ID


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _write_private(path: Path, text: str) -> None:
    """A new file only its owner can read (the key)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as sink:
        sink.write(text)


def register_secret(value: str) -> None:
    """Mask ``value`` in everything the harness writes from now on."""
    register_value(value)


def _final(job_id: str, state: JobState, wait_s: float = 5.0) -> JobState:
    """An ended job's final state: COMPLETING (still cleaning up, exit code not yet
    known) is asked again for up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while state.state == "COMPLETING" and time.monotonic() < deadline:
        time.sleep(0.2)
        state = job_state(job_id)
    return state


class JobWatch:
    """The job's state for the startup wait (asked at most every ``min_interval_s``) and,
    once it serves, from a background thread (``watch``), so that ``exit_code`` never
    blocks the event loop that times the requests. ``on_end`` gets the final state once
    the job is first seen ended, before that state is published."""

    def __init__(
        self,
        job_id: str,
        min_interval_s: float = 1.0,
        on_end: Callable[[JobState], None] = lambda _: None,
    ) -> None:
        self.job_id, self.min_interval_s, self.on_end = job_id, min_interval_s, on_end
        self._last = JobState("UNKNOWN")
        self._at = -1e9
        self._closed = threading.Event()

    def state(self, fresh: bool = False) -> JobState:
        """The job's state, asked again when ``fresh`` or older than ``min_interval_s``."""
        if self._last.alive and (fresh or time.monotonic() - self._at >= self.min_interval_s):
            state = job_state(self.job_id)
            if not state.alive:
                state = _final(self.job_id, state)
                if not self._closed.is_set():
                    self.on_end(state)
            self._last, self._at = state, time.monotonic()
        return self._last

    def exit_code(self) -> int | None:
        """The job's exit code once it has ended (None while alive); asks Slurm."""
        return self.state().code

    def watched_exit_code(self) -> int | None:
        """As ``exit_code``, from the background thread's last answer (never blocks)."""
        return self._last.code

    def watch(self) -> None:
        """Ask Slurm every ``min_interval_s`` in a daemon thread until the job ends or
        ``close`` is called."""

        def loop() -> None:
            while not self._closed.wait(self.min_interval_s) and self._last.alive:
                with contextlib.suppress(ServerError):
                    self.state(fresh=True)

        threading.Thread(target=loop, name=f"vlmhb-slurm-{self.job_id}", daemon=True).start()

    def close(self) -> None:
        """Stop watching: the job is being cancelled on purpose (no ``on_end``)."""
        self._closed.set()


@dataclass
class _Job:
    """One submitted job and its files; ``stop`` cancels and cleans up."""

    job_id: str
    files: list[Path]
    log: Path
    saved_log: Path
    rendezvous: Path
    reaper: subprocess.Popen[bytes] | None = None
    #: How the job ended, when it ended by itself (not by ``stop``).
    ended: JobState | None = None
    watch: JobWatch | None = None

    def cancel(self, wait_s: float = 30.0) -> None:
        proc = _run(["scancel", self.job_id])
        if proc.returncode != 0 and "Invalid job id" not in proc.stderr:
            raise ServerError(
                f"could not cancel Slurm job {self.job_id}: {redact(proc.stderr.strip())}; "
                "its watchdog cancels it when this run ends"
            )
        deadline = time.monotonic() + wait_s
        while queue_state(self.job_id) is not None and time.monotonic() < deadline:
            time.sleep(0.25)

    def save_log(self) -> None:
        """The job's output, redacted, into the output dir's logs/ (with Slurm's word on
        how it ended, when it ended by itself)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            text = ""
        if self.ended is not None:
            text += f"\n[vlmhb] Slurm job {self.job_id} ended: {self.ended.describe()}\n"
        if text:
            self.saved_log.parent.mkdir(parents=True, exist_ok=True)
            self.saved_log.write_text(redact(text))

    def on_end(self, state: JobState) -> None:
        self.ended = state
        self.save_log()

    def stop(self) -> None:
        if self.watch is not None:
            self.watch.close()
        try:
            self.cancel()
            if self.reaper is not None and self.reaper.poll() is None:  # kept if cancel failed
                self.reaper.terminate()
                self.reaper.wait(timeout=5)
        finally:
            self.save_log()
            remove_files(self.files)


def _start_reaper(job: _Job) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest_vlmhb.launchers.slurm_reaper",
            owner_id(),
            job.job_id,
            *map(str, job.files),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


class SlurmLauncher(Launcher):
    """Runs the backend's server as a Slurm batch job (see the module docstring)."""

    name: ClassVar[str] = "slurm"

    @classmethod
    def check_available(cls) -> str | None:
        """Why not: no ``sbatch`` on PATH (with how to get it)."""
        if shutil.which("sbatch"):
            return None
        return f"launcher 'slurm': sbatch is not on PATH; {INSTALL_HINT}"

    @classmethod
    def check_model(cls, model: ModelSpec) -> str | None:
        """Why not: ``slurm_container`` names a runtime this machine lacks."""
        runtime = model.slurm_container  # the command is named like the setting
        if runtime == "none" or shutil.which(runtime):
            return None
        return (
            f"slurm_container={runtime} of model {model.name!r}: {runtime} is not on PATH "
            f"(it builds the SIF here and runs it on the nodes); install Apptainer "
            "(https://apptainer.org/docs/admin/main/installation.html) or use "
            "slurm_container=none (the backend's venv)"
        )

    @classmethod
    def planned_request(
        cls, backend: str, model: ModelSpec, located: ResolvedModel
    ) -> ServeRequest:
        """As on the node: the venv's (or image's) python, the node's address."""
        in_sif = model.slurm_container != "none"
        return serve_request(
            backend,
            model,
            located,
            python="<image python>" if in_sif else "<venv python>",
            host="<node address>",
            port=0,
            gpu=requests_gpus(model.slurm_args),
            in_container=in_sif,
        )

    def start(
        self, backend: Backend, model: ModelSpec, settings: Settings, progress: Progress
    ) -> RunningServer:
        problem = self.check_available() or self.check_model(model)
        if problem:
            raise ServerError(problem)
        key_var = backend.api_key_env_var
        if key_var is None:
            raise ServerError(
                f"backend {backend.name!r} reads no API key from its environment; "
                "launcher=slurm requires one (the job's server listens on the node's address)"
            )
        _check_storage(settings.cache)
        sweep_once(progress)
        gpu = requests_gpus(model.slurm_args)
        prefix: list[str] = []
        provenance: dict[str, object] = {"source": model.source}
        if model.slurm_container == "none":
            requirements = list(model.requirements) or backend.requirements()
            if not requirements:
                raise ServerError(
                    f"backend {backend.name!r} cannot run in a venv; "
                    "use launcher=external with an endpoint"
                )
            env_dir = ensure_env(
                settings.cache, backend.name, requirements, progress, backend.uninstall()
            )
            python = str(venv_python(env_dir))
            located = resolve_model(model, settings.cache, progress)
            versions_argv = [python, "-c", VERSIONS_SCRIPT]
            provenance["venv"] = str(env_dir)
        else:
            runtime = model.slurm_container
            sif, python = _ensure_sif(runtime, backend, model, settings, progress, gpu)
            located = resolve_model(model, settings.cache, progress)
            prefix = container_prefix(runtime, sif, container_mounts(model, located), gpu)
            versions_argv = [*prefix, python, "-c", VERSIONS_SCRIPT]
            provenance["sif"] = str(sif)
        key = api_key(model) or secrets.token_urlsafe(32)
        register_secret(key)
        request = serve_request(
            backend.name,
            model,
            located,
            python=python,
            host=_HOSTS[0],
            port=_PORTS[0],
            gpu=gpu,
            in_container=model.slurm_container != "none",
        )
        provenance.update(provenance_of(model, located, request))
        folder = run_dir(settings.cache)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        stem = f"{_safe(model.name)}@{_safe(backend.name)}"
        script, key_file = folder / f"job-{stem}.sh", folder / f"{stem}.key"
        rendezvous, log = folder / f"{stem}.json", folder / f"{stem}.log"
        for path in (rendezvous, log):
            path.unlink(missing_ok=True)
        _write_private(key_file, key + "\n")
        label = f"{backend.name} server for {model.name}"
        script.write_text(
            job_script(
                label=label,
                prefix=prefix,
                python=python,
                server=server_words(backend, request),
                env=backend.env(gpu=gpu),
                key_var=key_var,
                key_file=key_file,
                rendezvous=rendezvous,
            )
        )
        script.chmod(0o700)
        argv = sbatch_argv(
            model.slurm_args,
            job_name=f"vlmhb-{_safe(model.name)}",
            run_dir=folder,
            log=log,
            owner=owner_id(),
            script=script,
        )
        saved_log = settings.output / "logs" / f"{model.name}@{backend.name}@slurm.log"
        files = [script, key_file, rendezvous, log]
        progress(f"submitting a Slurm job for the {label} (script {script})")
        submitted = _run(argv)
        job_id = (submitted.stdout.strip().splitlines() or [""])[-1].split(";")[0]
        if submitted.returncode != 0 or not job_id:
            remove_files(files)
            said = (submitted.stderr + submitted.stdout).strip() or "(no output)"
            raise ServerError(
                f"sbatch refused the job for the {label} (exit {submitted.returncode}): "
                f"{redact_then_truncate(said, 2000, keep='tail')}"
            )
        job = _Job(job_id, files, log, saved_log, rendezvous)
        try:
            job.reaper = _start_reaper(job)
            url, bound, state = _wait_for_server(job, backend, label, settings, progress)
        except BaseException as exc:
            try:
                job.stop()
            except ServerError as failed:  # the startup error stays the one raised
                exc.add_note(str(failed))
            raise
        key_file.unlink()  # read by the job at its start: no longer needed on disk
        versions = _run(versions_argv, timeout=120).stdout
        port = int(url.rsplit(":", 1)[1])
        # A job that ends mid-case: its log is saved before the runner reads the tail.
        job.watch = JobWatch(job.job_id, on_end=job.on_end)
        job.watch.watch()
        return RunningServer(
            base_url=url + "/v1",
            root_url=url,
            served_name=model.served_name,
            headers={"Authorization": f"Bearer {key}"},
            log_path=saved_log,
            stop=job.stop,
            exit_code=job.watch.watched_exit_code,
            provenance={
                **provenance,
                "slurm_job": job.job_id,
                "slurm_node": state.node,
                "slurm_gpus": state.gpus,
                "slurm_tres": state.tres,
                "slurm_args": list(model.slurm_args),
                "command": backend.command(replace(request, host=bound, port=port))[1:],
                "packages": parse_versions(versions),
            },
        )


def _wait_for_server(
    job: _Job, backend: Backend, label: str, settings: Settings, progress: Progress
) -> tuple[str, str, JobState]:
    """Wait for the job to run, its rendezvous file, then /health: the server's URL,
    the address it bound and the job's state.

    Every wait counts against ``--vlmhb-startup-timeout``; a job that ends, or
    is still pending at the timeout, raises ServerError with Slurm's words.
    """
    start = time.monotonic()
    deadline = start + settings.startup_timeout
    tag = f"Slurm job {job.job_id} ({label})"
    last = None
    while True:  # 1. queued -> running
        queued = queue_state(job.job_id)
        if queued is None or queued[0] != "PENDING":
            break
        if queued != last:
            progress(f"{tag}: PENDING ({queued[1] or 'no reason given'})")
            last = queued
        if time.monotonic() > deadline:
            raise ServerError(
                f"{tag} still PENDING after {settings.startup_timeout:g} s "
                f"(Slurm's reason: {queued[1] or 'none given'}); cancelled"
            )
        time.sleep(0.5)
    watch = JobWatch(job.job_id, min_interval_s=0.5)
    state = watch.state(fresh=True)
    if not state.alive:
        raise _ended(tag, state, job)
    address = node_address(state.node) if state.node else ""
    progress(f"{tag}: {state.state} on node {state.node} ({address})")
    rendezvous = job.rendezvous
    port, bound = None, ""
    while port is None:  # 2. the rendezvous file
        try:
            found = json.loads(rendezvous.read_text())
            if str(found.get("job")) == job.job_id:
                port, bound = int(found["port"]), str(found["host"])
                address = address or bound
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if port is not None:
            break
        state = watch.state()
        if not state.alive:
            raise _ended(tag, state, job)
        if time.monotonic() > deadline:
            raise ServerError(
                f"{tag} wrote no rendezvous file {rendezvous} within "
                f"{settings.startup_timeout:g} s; log {job.saved_log}:\n{log_tail(job.log)}"
            )
        time.sleep(0.25)
    url = f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"
    try:  # 3. /health, in the time left
        poll_until_healthy(
            url + backend.health_path,
            watch.exit_code,
            max(1.0, deadline - time.monotonic()),
            job.log,
            progress,
            tag,
        )
    except ServerError as exc:
        state = watch.state(fresh=True)
        if not state.alive:
            raise _ended(tag, state, job) from None
        # timed out: the log is saved into logs/ when the job is cancelled
        raise ServerError(str(exc).replace(str(job.log), str(job.saved_log))) from None
    progress(f"{tag} is up on {url} ({time.monotonic() - start:.1f} s)")
    return url, bound, state


def _ended(tag: str, state: JobState, job: _Job) -> ServerError:
    """The error of a job that ended before its server came up: Slurm's words + log tail."""
    job.on_end(state)
    return ServerError(
        f"{tag} ended before its server came up: {state.describe()}; "
        f"log {job.saved_log}:\n{log_tail(job.log)}"
    )


def _ensure_sif(
    runtime: str,
    backend: Backend,
    model: ModelSpec,
    settings: Settings,
    progress: Progress,
    gpu: bool,
) -> tuple[Path, str]:
    """The backend's image as a SIF in the cache (built once from the Docker image);
    its path and the image's python."""
    from .docker_images import ensure_image, plan_build, select_image

    spec = select_image(backend.name, want_gpu=gpu)
    logs = settings.output / "logs"
    tag = ensure_image(
        plan_build(spec, settings.cache, progress, model.requirements),
        settings.cache,
        progress,
        logs,
    )
    sif = settings.cache / "slurm" / "sif" / f"{spec.name}-{tag.rsplit(':', 1)[1]}.sif"
    if sif.exists():
        return sif, spec.python
    sif.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(sif) + ".lock"):
        if not sif.exists():
            partial = sif.with_suffix(".partial.sif")
            partial.unlink(missing_ok=True)
            progress(f"building {sif} from {tag} with {runtime} (once)")
            built = _run(sif_build_argv(runtime, partial, tag), timeout=3600)
            if built.returncode != 0:
                raise ServerError(
                    f"{runtime} build of {sif} failed (exit {built.returncode}):\n"
                    f"{redact_then_truncate(built.stderr, 3000, keep='tail')}"
                )
            os.replace(partial, sif)
    return sif, spec.python
