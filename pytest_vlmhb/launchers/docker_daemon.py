"""The Docker daemon: connection, our container labels, and cleanup of orphans.

testcontainers' reaper (Ryuk) needs a registry to pull from, so it is
disabled and the plugin cleans up itself: every container it starts carries
``org.vlmhb.managed`` and the identity of the process that owns it
(host:pid:process start time); a container whose owner process is gone was
left by a killed run and is removed the next time a launcher starts.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING

from ..envs import Progress
from ..redact import redact_then_truncate

if TYPE_CHECKING:
    import docker


@contextmanager
def without_ryuk() -> Iterator[None]:
    """testcontainers without its Ryuk reaper (its image cannot be pulled here) while
    our container starts; the user's own testcontainers settings are restored after.

    The harness removes its containers itself (a reaper process per container,
    and a sweep of orphans by owner label); nothing is set in the environment.
    """
    from testcontainers.core.config import testcontainers_config

    saved = testcontainers_config.ryuk_disabled
    testcontainers_config.ryuk_disabled = True
    try:
        yield
    finally:
        testcontainers_config.ryuk_disabled = saved


MANAGED_LABEL = "org.vlmhb.managed"
OWNER_LABEL = "org.vlmhb.owner"
OUTPUT_LABEL = "org.vlmhb.output"
SERVER_LABEL = "org.vlmhb.server"
START_HINT = (
    "start one (e.g. `sudo systemctl start docker`, or `dockerd &` as root) or use launcher=local"
)


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' if unknown)."""
    try:
        stat = open(f"/proc/{pid}/stat").read()  # noqa: SIM115 - tiny read
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def owner_id(pid: int | None = None) -> str:
    """This process's identity as stored on its containers."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def owner_alive(owner: str) -> bool:
    """False only when ``owner`` is provably gone (same host, pid dead or reused)."""
    host, _, rest = owner.partition(":")
    pid_text, _, ticks = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine's (or malformed) label: not ours to judge
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not ticks or _start_ticks(pid) == ticks


def connect(timeout: int = 60) -> docker.DockerClient:
    """A client of the daemon testcontainers would use (DOCKER_HOST or the socket)."""
    return _client(timeout)


@cache
def _client(timeout: int) -> docker.DockerClient:
    from testcontainers.core.docker_client import DockerClient

    return DockerClient(timeout=timeout).client


#: The xdist controller's answer, taken by a worker instead of its own ping.
_adopted: tuple[bool, str] | None = None
#: What this process's own ping answered (None: it has not pinged).
_probed: tuple[bool, str] | None = None


def adopt_status(status: tuple[bool, str]) -> None:
    """Answer :func:`daemon_status` with the xdist controller's answer from now on.

    A worker that pings on its own can get another answer than its controller
    (the 5 s ping times out while the daemon is busy, e.g. building images):
    ``launcher=auto`` would then pick another launcher there, hence other
    xdist groups and node ids than its sibling's, and xdist aborts the run
    ("Different tests were collected"); ``launcher=docker`` would fail that
    worker's config check alone.
    """
    global _adopted
    _adopted = (bool(status[0]), str(status[1]))


def adopted_status() -> tuple[bool, str] | None:
    """The controller's answer this worker took (None: not an xdist worker, or none)."""
    return _adopted


def probed_status() -> tuple[bool, str] | None:
    """What :func:`daemon_status` answered in this process (None: never asked)."""
    return _probed


def daemon_status() -> tuple[bool, str]:
    """Whether a Docker daemon answers, and a sentence saying where or why not
    (in an xdist worker: what the controller was told)."""
    global _probed
    if _adopted is not None:
        return _adopted
    _probed = _ping()
    return _probed


def _ping() -> tuple[bool, str]:
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            client.ping()
            version = client.version().get("Version", "?")
            where = client.api.base_url.replace("http+docker://localhost", "the local socket")
        finally:
            client.close()
    except Exception as exc:  # any failure means: no usable daemon
        reason = (
            redact_then_truncate(str(exc).splitlines()[0], 200, keep="head")
            if str(exc)
            else type(exc).__name__
        )
        return False, f"no Docker daemon answers ({reason})"
    return True, f"Docker {version} answers at {where}"


def managed_containers(**labels: str) -> list[docker.models.containers.Container]:
    """All containers (running or not) started by this plugin, filtered by labels."""
    wanted = [f"{MANAGED_LABEL}=true", *(f"{k}={v}" for k, v in labels.items())]
    return list(connect().containers.list(all=True, filters={"label": wanted}))


def sweep_orphans(progress: Progress) -> list[str]:
    """Remove containers whose owning process is gone; their names."""
    import docker.errors

    removed = []
    for container in managed_containers():
        owner = container.labels.get(OWNER_LABEL, "")
        if owner and not owner_alive(owner):
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                continue
            removed.append(container.name)
    if removed:
        progress(f"removed {len(removed)} container(s) left by a killed run: {', '.join(removed)}")
    return removed


@cache
def sweep_once(progress: Progress) -> list[str]:
    """``sweep_orphans`` once per process."""
    return sweep_orphans(progress)
