"""Isolated virtualenvs per requirement spec, cached by a hash of the spec.

A venv is built once under a file lock (parallel xdist workers wait rather
than race), marked complete only when pip succeeded, and reused by every
later run. The plugin's own source is linked in through a ``.pth`` file, so
the server and model builder that run inside are exactly the plugin's code.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import requires
from pathlib import Path

from filelock import FileLock
from packaging.requirements import Requirement

from .errors import ServerError
from .redact import redact_then_truncate

Progress = Callable[[str], None]
_MARKER = ".vlmhb-complete"
_PLUGIN_ROOT = Path(__file__).resolve().parent


def env_key(name: str, requirements: Sequence[str], uninstall: Sequence[str] = ()) -> str:
    """Cache key: the backend name, the Python version and the sorted spec."""
    spec: dict[str, object] = {"python": sys.version_info[:2], "requirements": sorted(requirements)}
    if uninstall:
        spec["uninstall"] = sorted(uninstall)
    digest = hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:12]
    return f"{name}-py{sys.version_info[0]}{sys.version_info[1]}-{digest}"


def plugin_extra_requirements(extra: str) -> list[str]:
    """The requirements of one of this package's extras, as installed."""
    out = []
    for spec in requires("pytest-vlmhb") or []:
        req = Requirement(spec)
        if req.marker is not None and req.marker.evaluate({"extra": extra}):
            req.marker = None
            out.append(str(req))
    return out


def venv_python(env_dir: Path) -> Path:
    return env_dir / "bin" / "python"


def _run_streamed(cmd: list[str], log: Path, progress: Progress, label: str) -> None:
    """Run a command, logging all output and reporting its headline lines."""
    with log.open("a") as sink:
        sink.write(f"$ {' '.join(cmd)}\n")
        sink.flush()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            sink.write(line)
            tail = [*tail[-30:], line.rstrip()]
            if line.startswith(("Collecting ", "Installing collected", "Successfully")):
                progress(f"{label}: {redact_then_truncate(line.strip(), 120, keep='head')}")
        if proc.wait() != 0:
            raise ServerError(
                f"{label} failed (exit {proc.returncode}); log: {log}\n" + "\n".join(tail)
            )


def _link_plugin(env_dir: Path) -> None:
    """Make this very plugin importable in the venv without copying it."""
    python = venv_python(env_dir)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    link_dir = env_dir / "vlmhb-plugin"
    link_dir.mkdir(exist_ok=True)
    link = link_dir / "pytest_vlmhb"
    # Made under a private name and moved into place: two processes (xdist
    # workers) relinking at once must never see the link missing.
    staged = link_dir / f".pytest_vlmhb-{os.getpid()}"
    staged.unlink(missing_ok=True)
    staged.symlink_to(_PLUGIN_ROOT, target_is_directory=True)
    os.replace(staged, link)
    Path(purelib, "vlmhb-plugin.pth").write_text(f"{link_dir}\n")


def ensure_env(
    cache: Path,
    name: str,
    requirements: Sequence[str],
    progress: Progress,
    uninstall: Sequence[str] = (),
) -> Path:
    """The venv's directory, creating it (once, under a lock) if needed.

    ``uninstall`` names packages removed after the install (e.g. PyPI's CUDA
    torchvision, which cannot import beside a CPU torch).
    """
    env_dir = cache / "envs" / env_key(name, requirements, uninstall)
    if (env_dir / _MARKER).exists():
        _link_plugin(env_dir)
        return env_dir
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(env_dir) + ".lock"):
        if (env_dir / _MARKER).exists():
            _link_plugin(env_dir)
            return env_dir
        if env_dir.exists():
            progress(f"removing incomplete venv {env_dir}")
            shutil.rmtree(env_dir)
        log = env_dir.parent / f"{env_dir.name}.log"
        log.write_text("")
        progress(f"creating {name} venv {env_dir} (once; pip log: {log})")
        _run_streamed([sys.executable, "-m", "venv", str(env_dir)], log, progress, "venv")
        python = str(venv_python(env_dir))
        _run_streamed(
            [python, "-m", "pip", "install", "--progress-bar", "off", "--upgrade", "pip"],
            log,
            progress,
            f"{name} venv",
        )
        _run_streamed(
            [python, "-m", "pip", "install", "--progress-bar", "off", *requirements],
            log,
            progress,
            f"{name} venv",
        )
        if uninstall:
            _run_streamed(
                [python, "-m", "pip", "uninstall", "-y", *uninstall], log, progress, f"{name} venv"
            )
        _link_plugin(env_dir)
        (env_dir / _MARKER).write_text(json.dumps(sorted(requirements)) + "\n")
        progress(f"{name} venv ready")
    return env_dir


def gpu_env(gpus_per_worker: int | None, worker_index: int) -> dict[str, str]:
    """CUDA_VISIBLE_DEVICES for servers started by one worker (empty: no split)."""
    if not gpus_per_worker:
        return {}
    first = worker_index * gpus_per_worker
    devices = ",".join(str(i) for i in range(first, first + gpus_per_worker))
    return {"CUDA_VISIBLE_DEVICES": devices}


def clean_env() -> dict[str, str]:
    """The parent's environment minus what would leak the parent venv into a child."""
    env = dict(os.environ)
    for name in (
        "PYTHONPATH",
        "PYTHONHOME",
        "VIRTUAL_ENV",
        "PYTEST_ADDOPTS",
        "PYTEST_PLUGINS",
        "PYTEST_XDIST_WORKER",
        "PYTEST_CURRENT_TEST",
    ):
        env.pop(name, None)
    return env
