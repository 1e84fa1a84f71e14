"""A watchdog process per container: removes it when its owner process dies.

Ctrl-C and failures are handled by the launcher's own teardown; this covers
``kill -9`` of pytest or of an xdist worker, where no Python code runs. It
lives in its own session, so signals to the test run do not reach it, and
exits by itself once the container is gone. Containers of a run killed
together with its watchdogs are removed at the next start (label sweep).

    python -m pytest_vlmhb.launchers.docker_reaper OWNER CONTAINER_ID
"""

from __future__ import annotations

import contextlib
import sys
import time

from .docker_daemon import connect, owner_alive


def watch(owner: str, container_id: str, interval_s: float = 0.5) -> int:
    """Block until the owner dies (then remove the container) or the container goes."""
    import docker.errors

    client = connect()
    last_check = time.monotonic()
    while True:
        if not owner_alive(owner):
            with contextlib.suppress(docker.errors.NotFound):
                client.containers.get(container_id).remove(force=True)
            return 0
        if time.monotonic() - last_check > 5:
            last_check = time.monotonic()
            try:
                client.containers.get(container_id)
            except docker.errors.NotFound:
                return 0
        time.sleep(interval_s)


if __name__ == "__main__":
    raise SystemExit(watch(sys.argv[1], sys.argv[2]))
