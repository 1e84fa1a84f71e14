"""A watchdog process per Slurm job: cancels it when its owner process dies.

Ctrl-C and failures are handled by the launcher's own teardown; this covers
``kill -9`` of pytest or of an xdist worker, where no Python code runs. It
lives in its own session, so signals to the test run do not reach it, and
exits by itself once the job has left the queue. After cancelling it
removes the job's files (script, key, rendezvous file, log) and their folder
once empty. Jobs of a run killed together with its watchdogs are cancelled
at the next start (owner sweep).

    python -m pytest_vlmhb.launchers.slurm_reaper OWNER JOB_ID [FILE ...]
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .docker_daemon import owner_alive


def _queued(job_id: str) -> bool:
    """Whether the job is still in the queue (True when squeue cannot tell)."""
    try:
        proc = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return True
    if proc.returncode != 0:
        return "Invalid job id" not in proc.stderr
    return bool(proc.stdout.strip())


def remove_files(files: Sequence[Path]) -> None:
    """The job's files, then their folders once empty (other jobs of the run may use them)."""
    for path in files:
        path.unlink(missing_ok=True)
    for folder in {path.parent for path in files}:
        with contextlib.suppress(OSError):
            folder.rmdir()


def watch(owner: str, job_id: str, files: Sequence[Path] = (), interval_s: float = 0.5) -> int:
    """Block until the owner dies (then scancel the job and remove its files) or the job
    leaves the queue."""
    last_check = time.monotonic()
    while True:
        if not owner_alive(owner):
            for _ in range(5):  # a controller that is briefly away: try again
                try:
                    if subprocess.run(["scancel", job_id], timeout=30).returncode == 0:
                        break
                except (OSError, subprocess.TimeoutExpired):
                    pass
                time.sleep(1)
            deadline = time.monotonic() + 30  # the job stops writing its log
            while _queued(job_id) and time.monotonic() < deadline:
                time.sleep(0.5)
            remove_files(files)
            return 0
        if time.monotonic() - last_check > 5:
            last_check = time.monotonic()
            if not _queued(job_id):
                return 0
        time.sleep(interval_s)


if __name__ == "__main__":
    raise SystemExit(watch(sys.argv[1], sys.argv[2], [Path(p) for p in sys.argv[3:]]))
