"""A backend server in its own container (testcontainers), published on 127.0.0.1.

The backend's image is built on first use (content-hashed tag, see
docker_images); the model directory is mounted read-only; the server listens
on 0.0.0.0:8000 inside and is published on the host's 127.0.0.1 only. The
container's log streams into the output dir's ``logs/``; its exit during
startup fails at once with the exit code and the log tail. Teardown removes
the container, also after a failure or Ctrl-C; a watchdog process removes it
if pytest is killed, and containers left by a killed run are swept at the
next start.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from filelock import FileLock
from testcontainers.core.container import DockerContainer
from testcontainers.core.exceptions import ContainerStartException
from testcontainers.core.waiting_utils import WaitStrategy, WaitStrategyTarget

from ..backends.base import Backend, ServeRequest
from ..config import ModelSpec, Settings
from ..envs import Progress, gpu_env
from ..errors import ServerError
from ..models import BUILTIN_MODELS, BUILTIN_PREFIX, builtin_model_dir, resolve_model
from ..modelsource import ResolvedModel
from ..redact import redact_file, redact_then_truncate
from . import docker_daemon as daemon
from .base import (
    HOST,
    VERSIONS_SCRIPT,
    Launcher,
    RunningServer,
    api_key_setup,
    container_mounts,
    parse_versions,
    poll_until_healthy,
    provenance_of,
    serve_request,
)
from .docker_images import ImageSpec, ensure_image, plan_build, select_image
from .docker_watch import (
    GpuSampler,
    LogFollower,
    StatsSampler,
    container_pids,
    peaks_reader,
)

PORT = 8000


def device_requests(gpus: str | None, gpus_per_worker: int | None, worker: int) -> list[Any]:
    """Docker device requests for the ``gpus`` column (``all``, N, ``device=0,1``).

    Under ``--vlmhb-gpus-per-worker`` the worker's own devices are requested.
    """
    if not gpus:
        return []
    from docker.types import DeviceRequest

    split = gpu_env(gpus_per_worker, worker).get("CUDA_VISIBLE_DEVICES")
    if split:
        return [DeviceRequest(device_ids=split.split(","), capabilities=[["gpu"]])]
    if gpus.startswith("device="):
        return [
            DeviceRequest(
                device_ids=gpus.removeprefix("device=").split(","), capabilities=[["gpu"]]
            )
        ]
    count = -1 if gpus == "all" else int(gpus)
    return [DeviceRequest(count=count, capabilities=[["gpu"]])]


class ServerReady(WaitStrategy):
    """testcontainers' wait strategy for our servers: the shared health poll
    (:func:`poll_until_healthy`) on the published port, failing within a poll once
    the container exits, with its exit code and log tail."""

    def __init__(
        self, url: str, follower: LogFollower, label: str, progress: Progress, timeout_s: float
    ) -> None:
        super().__init__()
        self.url, self.follower, self.label, self.progress = url, follower, label, progress
        self.with_startup_timeout(int(timeout_s)).with_poll_interval(0.25)

    def exit_code(self, container: WaitStrategyTarget) -> int | None:
        """The container's exit code once it has exited (None while it runs)."""
        container.reload()
        if container.status not in ("exited", "dead"):
            return None
        self.follower.join(5)  # the last lines, then the exit code
        code = self.follower.exit_code()
        if code is None:
            state = container.get_wrapped_container().attrs.get("State", {})
            code = int(state.get("ExitCode", -1))
        return code

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        poll_until_healthy(
            self.url,
            lambda: self.exit_code(container),
            self._startup_timeout,
            self.follower.path,
            self.progress,
            self.label,
            interval_s=self._poll_interval,
        )


class ServerContainer(DockerContainer):
    """A DockerContainer whose port is published on the host's 127.0.0.1 only."""

    def __init__(self, image: str, **kwargs: Any) -> None:
        super().__init__(image, **kwargs)
        # testcontainers binds 0.0.0.0; a (host_ip,) tuple asks for a free port on it.
        self.ports: dict[str, Any] = {f"{PORT}/tcp": (HOST,)}

    def host_port(self) -> int:
        self.reload()
        ports = self.get_wrapped_container().attrs["NetworkSettings"]["Ports"]
        return int(ports[f"{PORT}/tcp"][0]["HostPort"])


def _build_builtin_in_container(model: ModelSpec, settings: Settings, progress: Progress) -> None:
    """Build a built-in model with the hf image, so no local venv is needed."""
    name = model.source.removeprefix(BUILTIN_PREFIX)
    if name not in BUILTIN_MODELS:
        return  # resolve_model reports the unknown name
    out = builtin_model_dir(settings.cache, name)
    if (out / ".complete").exists():
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if (out / ".complete").exists():
            return
        spec = select_image("hf", want_gpu=False)
        tag = ensure_image(
            plan_build(spec, settings.cache, progress),
            settings.cache,
            progress,
            settings.output / "logs",
        )
        progress(f"building built-in model {name} into {out} (once, in {tag})")
        client = daemon.connect()
        container = client.containers.run(
            tag,
            [spec.python, "-m", BUILTIN_MODELS[name], f"/models/{out.name}"],
            detach=True,
            volumes={str(out.parent): {"bind": "/models", "mode": "rw"}},
            labels={daemon.MANAGED_LABEL: "true", daemon.OWNER_LABEL: daemon.owner_id()},
        )
        try:
            code = int(container.wait()["StatusCode"])
            logs = container.logs().decode(errors="replace")
        finally:
            container.remove(force=True)
        if code != 0 or not (out / ".complete").exists():
            raise ServerError(
                f"building {name} in {tag} failed (exit {code}):\n"
                f"{redact_then_truncate(logs, 3000, keep='tail')}"
            )


def _start_reaper(container_id: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest_vlmhb.launchers.docker_reaper",
            daemon.owner_id(),
            container_id,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _teardown(
    container: DockerContainer,
    reaper: subprocess.Popen[bytes] | None,
    log: Path,
    gpu: GpuSampler | None,
) -> Callable[[], None]:
    def stop() -> None:
        try:
            _remove(container)
            if reaper is not None and reaper.poll() is None:  # kept if removal failed
                reaper.terminate()
                reaper.wait(timeout=5)
        finally:
            if gpu is not None:
                gpu.stop()
            redact_file(log)  # a server may have printed a key it was given

    return stop


def _remove(container: DockerContainer) -> None:
    """Remove the container; nothing to do if it was never created or is gone.

    Any other failure is raised: the container is still there (its watchdog
    removes it when this process exits).
    """
    import docker.errors

    try:
        wrapped = container.get_wrapped_container()
    except ContainerStartException:  # never created
        return
    try:
        wrapped.remove(force=True)
    except docker.errors.NotFound:  # already gone
        pass
    except docker.errors.APIError as exc:
        raise ServerError(
            f"could not remove container {wrapped.short_id}: {exc}; "
            "its watchdog removes it when this run ends"
        ) from exc


class DockerLauncher(Launcher):
    """Runs the backend's server in a container built from ``model_images/``."""

    name: ClassVar[str] = "docker"

    @classmethod
    def check_available(cls) -> str | None:
        """Why not: no Docker daemon answers (with how to start one)."""
        ok, why = daemon.daemon_status()
        return None if ok else f"launcher 'docker': {why}; {daemon.START_HINT}"

    @classmethod
    def planned_request(
        cls, backend: str, model: ModelSpec, located: ResolvedModel
    ) -> ServeRequest:
        """As in the container: the model folder mounted, all interfaces, fixed port."""
        return serve_request(
            backend,
            model,
            located,
            python="<image python>",
            host="0.0.0.0",
            port=PORT,
            gpu=bool(model.gpus),
            in_container=True,
        )

    def start(
        self, backend: Backend, model: ModelSpec, settings: Settings, progress: Progress
    ) -> RunningServer:
        problem = self.check_available()
        if problem:
            raise ServerError(problem)
        daemon.sweep_once(progress)
        spec: ImageSpec = select_image(backend.name, want_gpu=bool(model.gpus))
        logs = settings.output / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        tag = ensure_image(
            plan_build(spec, settings.cache, progress, model.requirements),
            settings.cache,
            progress,
            logs,
        )
        if model.source.startswith(BUILTIN_PREFIX):
            _build_builtin_in_container(model, settings, progress)
        located = resolve_model(model, settings.cache, progress)
        key_env, headers = api_key_setup(backend, model)
        request = serve_request(
            backend.name,
            model,
            located,
            python=spec.python,
            host="0.0.0.0",
            port=PORT,
            gpu=bool(model.gpus),
            in_container=True,
        )
        cmd = backend.command(request)
        log = logs / f"{model.name}@{backend.name}@docker.log"
        label = f"{backend.name} server for {model.name} (image {tag})"
        container = ServerContainer(
            tag,
            env={**backend.env(gpu=bool(model.gpus)), **key_env},
            entrypoint=[cmd[0]],
            labels={
                daemon.MANAGED_LABEL: "true",
                daemon.OWNER_LABEL: daemon.owner_id(),
                daemon.OUTPUT_LABEL: str(settings.output.resolve()),
                daemon.SERVER_LABEL: f"{model.name}@{backend.name}",
            },
            device_requests=device_requests(
                model.gpus, settings.gpus_per_worker, settings.worker_index
            ),
            shm_size="1g",
        )
        container.with_command(cmd[1:])
        for host_path, mount in container_mounts(model, located):
            container.with_volume_mapping(host_path, mount, "ro")
        progress(f"starting {label} (log {log})")
        started = time.monotonic()
        reaper: subprocess.Popen[bytes] | None = None
        gpu: GpuSampler | None = None
        stop = _teardown(container, None, log, None)
        try:
            log.write_bytes(b"")
            # testcontainers' start: create + start + our wait strategy; the log
            # follower must exist first, so the strategy is attached afterwards.
            with daemon.without_ryuk():
                container.start()
            wrapped = container.get_wrapped_container()
            reaper = _start_reaper(str(wrapped.id))
            follower = LogFollower(wrapped, log)
            stats = StatsSampler(wrapped)
            gpu = GpuSampler(container_pids(wrapped)) if model.gpus else None
            stop = _teardown(container, reaper, log, gpu)
            url = f"http://{HOST}:{container.host_port()}"
            ServerReady(
                url + backend.health_path, follower, label, progress, settings.startup_timeout
            ).wait_until_ready(container)
        except BaseException as exc:
            try:
                stop()
            except ServerError as failed:  # the startup error stays the one raised
                exc.add_note(str(failed))
            raise
        progress(f"{label} is up on {url} ({time.monotonic() - started:.1f} s)")
        for line in backend.after_ready(_host_pid(wrapped), gpu=bool(model.gpus)):
            progress(f"{label}: {line}")
        versions = wrapped.exec_run([spec.python, "-c", VERSIONS_SCRIPT]).output.decode()
        return RunningServer(
            base_url=url + "/v1",
            root_url=url,
            served_name=model.served_name,
            headers=headers,
            log_path=log,
            stop=stop,
            exit_code=follower.exit_code,
            take_peaks=peaks_reader(stats.tracker, gpu.tracker if gpu and gpu.available else None),
            provenance={
                **provenance_of(model, located, request),
                "image": tag,
                "container": str(wrapped.short_id),
                "command": cmd[1:],
                "packages": parse_versions(versions),
            },
        )


def _host_pid(wrapped: Any) -> int:
    """The container's first process as the host sees it (0 if unknown, e.g. a remote daemon)."""
    try:
        wrapped.reload()
        return int(wrapped.attrs.get("State", {}).get("Pid") or 0)
    except Exception:  # docker SDK/API errors: nothing to adjust
        return 0
