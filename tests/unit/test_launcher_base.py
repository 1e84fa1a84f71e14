"""What every launcher shares (launchers/base.py): the one health poll, log tails,
the versions probe, and the launcher interface the config loader calls.

The poll runs in-process against a tiny http.server on 127.0.0.1, in milliseconds.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_vlmhb.config import ModelSpec
from pytest_vlmhb.errors import ServerError
from pytest_vlmhb.launchers import base
from pytest_vlmhb.launchers.auto import AutoLauncher
from pytest_vlmhb.launchers.docker import DockerLauncher
from pytest_vlmhb.launchers.external import ExternalLauncher
from pytest_vlmhb.launchers.local import LocalLauncher

FAST = {"interval_s": 0.005}


class Health:
    """A /health that answers 503 for the first ``loading`` polls, then 200."""

    def __init__(self, loading: int) -> None:
        self.loading, self.polls = loading, 0
        health = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                health.polls += 1
                self.send_response(200 if health.polls > health.loading else 503)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True).start()


@pytest.fixture
def health() -> Iterator[Callable[[int], Health]]:
    started: list[Health] = []

    def start(loading: int) -> Health:
        started.append(Health(loading))
        return started[-1]

    yield start
    for one in started:
        one.server.shutdown()
        one.server.server_close()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "server.log"
    path.write_text("".join(f"line {i}\n" for i in range(100)) + "Traceback: boom\n")
    return path


def running() -> int | None:
    return None


def test_healthy_after_the_loading_polls(health: Callable[[int], Health], log: Path) -> None:
    server = health(3)
    base.poll_until_healthy(server.url, running, 10, log, lambda _: None, "srv", **FAST)
    assert server.polls == 4


def test_a_dead_process_fails_at_once_with_its_exit_code_and_log_tail(
    health: Callable[[int], Health], log: Path
) -> None:
    server = health(1_000_000)
    codes = iter([None, None, 3])
    with pytest.raises(
        ServerError,
        match=r"(?s)^srv exited with code 3 during startup; "
        r"log .*server.log:\n.*line 99\nTraceback: boom$",
    ) as info:
        base.poll_until_healthy(
            server.url, lambda: next(codes), 600, log, lambda _: None, "srv", **FAST
        )
    assert server.polls == 2  # asked before each poll: no poll after the death
    assert "line 60\n" not in str(info.value)  # the tail only (40 lines)


def test_a_timeout_fails_with_the_log_tail_and_notes_progress(
    health: Callable[[int], Health], log: Path
) -> None:
    server = health(1_000_000)
    notes: list[str] = []
    with pytest.raises(
        ServerError,
        match=r"(?s)^srv not healthy after 0.05 s; "
        r"log .*server.log:\n.*Traceback: boom$",
    ):
        base.poll_until_healthy(
            server.url, running, 0.05, log, notes.append, "srv", note_every_s=0.01, **FAST
        )
    assert server.polls >= 2
    assert notes and notes[0].startswith("srv: still loading (0 s; log ")


def test_nothing_listening_is_not_an_error_until_the_timeout(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match=r"(?s)not healthy after 0.02 s; log None:\n\(no log\)"):
        base.poll_until_healthy(
            "http://127.0.0.1:9/health", running, 0.02, None, lambda _: None, "srv", **FAST
        )


def test_log_tail_masks_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_vlmhb import redact

    monkeypatch.setattr(redact, "_secrets", [])  # this test's secret only, forgotten after
    monkeypatch.setenv("VLMHB_TEST_SECRET_KEY", "sk-unit-test-secret-123")
    redact.register_env(["VLMHB_TEST_SECRET_KEY"])
    path = tmp_path / "log"
    path.write_text("a\nkey=sk-unit-test-secret-123\n")
    assert base.log_tail(path, 1) == "key=***"
    assert base.log_tail(tmp_path / "missing") == "(no log)"
    assert base.log_tail(None) == "(no log)"


def test_versions_probe_output_is_parsed_leniently() -> None:
    assert base.parse_versions('noise\n{"python": "3.11.7", "torch": "2.13.0"}\n') == {
        "python": "3.11.7",
        "torch": "2.13.0",
    }
    for text in ("", "not json", "[1, 2]", "Traceback...\n"):
        assert base.parse_versions(text) == {}


def _model(**fields: Any) -> ModelSpec:
    return ModelSpec(name="m", source="s", served_name="m", base_dir=Path("."), **fields)


def test_launchers_are_found_and_asked_by_name_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    assert base.launcher_names() == ["auto", "docker", "external", "local", "slurm"]
    assert base.load_launcher("auto") is AutoLauncher
    assert base.load_launcher("docker") is DockerLauncher
    plain, endpoint = _model(), _model(endpoint="http://h:1/v1")
    assert base.default_launcher(plain) == "auto"
    assert base.default_launcher(endpoint) == "external"
    # defaults: usable everywhere, for every model, resolving to themselves
    assert LocalLauncher.check_available() is None and LocalLauncher.check_model(plain) is None
    assert LocalLauncher.resolve(plain) == "local"
    assert ExternalLauncher.check_model(endpoint) is None
    assert ExternalLauncher.check_model(plain) == (
        "launcher 'external' needs an endpoint for model 'm' in models.csv"
    )
    from pytest_vlmhb.launchers import auto, docker_daemon

    monkeypatch.setattr(docker_daemon, "daemon_status", lambda: (False, "no Docker daemon"))
    assert str(DockerLauncher.check_available()).startswith(
        "launcher 'docker': no Docker daemon; start one"
    )
    monkeypatch.setattr(docker_daemon, "daemon_status", lambda: (True, "Docker 1 answers"))
    assert DockerLauncher.check_available() is None
    monkeypatch.setattr(auto, "resolve", lambda: auto.choose((True, "Docker answers")))
    assert AutoLauncher.check_available() is None and AutoLauncher.resolve(plain) == "docker"
    monkeypatch.setattr(auto, "resolve", lambda: auto.choose((False, "none")))
    assert AutoLauncher.resolve(plain) == "local"
