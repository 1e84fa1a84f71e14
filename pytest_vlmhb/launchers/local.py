"""A backend server as a subprocess of an isolated venv, on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

from ..backends.base import Backend
from ..config import ModelSpec, Settings
from ..envs import Progress, clean_env, ensure_env, gpu_env, venv_python
from ..errors import ServerError
from ..models import resolve_model
from ..redact import redact_file
from .base import (
    HOST,
    VERSIONS_SCRIPT,
    Launcher,
    RunningServer,
    api_key_setup,
    parse_versions,
    poll_until_healthy,
    provenance_of,
    serve_request,
)


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when the process that started it dies
    (a killed xdist worker or pytest must not leave servers behind)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_healthy(
    url: str,
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout_s: float,
    progress: Progress,
    label: str,
) -> None:
    """:func:`poll_until_healthy` for a subprocess: fails fast if it dies."""
    poll_until_healthy(url, proc.poll, timeout_s, log, progress, label)


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM the server's process group, then SIGKILL after a grace period."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def _stop_and_clean(proc: subprocess.Popen[bytes], log: Path) -> None:
    stop_process(proc)
    redact_file(log)  # a server may have printed a key it was given


class LocalLauncher(Launcher):
    """Builds the backend's venv (cached), then runs its server as a subprocess."""

    name = "local"

    def start(
        self, backend: Backend, model: ModelSpec, settings: Settings, progress: Progress
    ) -> RunningServer:
        requirements = list(model.requirements) or backend.requirements()
        if not requirements:
            raise ServerError(
                f"backend {backend.name!r} cannot run locally; "
                "use launcher=external with an endpoint"
            )
        env_dir = ensure_env(
            settings.cache, backend.name, requirements, progress, backend.uninstall()
        )
        python = venv_python(env_dir)
        located = resolve_model(model, settings.cache, progress)
        key_env, headers = api_key_setup(backend, model)
        port = free_port()
        request = serve_request(
            backend.name, model, located, python=str(python), host=HOST, port=port
        )
        cmd = backend.command(request)
        settings.output.mkdir(parents=True, exist_ok=True)
        log = settings.output / "logs" / f"{model.name}@{backend.name}@local.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        label = f"{backend.name} server for {model.name}"
        progress(f"starting {label} on {HOST}:{port} (log {log})")
        with log.open("ab") as sink:
            proc = subprocess.Popen(
                cmd,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                env={
                    **clean_env(),
                    **backend.env(),
                    **key_env,
                    **gpu_env(settings.gpus_per_worker, settings.worker_index),
                },
            )
        root = f"http://{HOST}:{port}"
        try:
            wait_healthy(
                root + backend.health_path, proc, log, settings.startup_timeout, progress, label
            )
        except BaseException:
            stop_process(proc)
            raise
        progress(f"{label} is up")
        for line in backend.after_ready(proc.pid):
            progress(f"{label}: {line}")
        versions = subprocess.run(
            [str(python), "-c", VERSIONS_SCRIPT], capture_output=True, text=True, env=clean_env()
        ).stdout
        return RunningServer(
            base_url=root + "/v1",
            root_url=root,
            served_name=model.served_name,
            provenance={
                **provenance_of(model, located, request),
                "venv": str(env_dir),
                "command": cmd[1:],
                "packages": parse_versions(versions),
            },
            headers=headers,
            log_path=log,
            stop=lambda: _stop_and_clean(proc, log),
            exit_code=proc.poll,
            pid=proc.pid,
        )
