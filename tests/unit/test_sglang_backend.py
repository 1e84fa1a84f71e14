"""The sglang backend: its argv and readiness handling (SGLang itself is GPU-only
and cannot run on the project's CPU machines; see model_images/sglang/README.md).

The readiness tests run the backend's exact argv against a stand-in
``sglang.launch_server`` module that honours SGLang's command-line contract
(the flags we pass, argparse's exit code 2 on a bad flag, /health answering
503 while loading, then 200).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_vlmhb.backends.base import ServeRequest
from pytest_vlmhb.backends.sglang import SGLangBackend
from pytest_vlmhb.errors import ServerError
from pytest_vlmhb.launchers.local import free_port, stop_process, wait_healthy

FAKE = textwrap.dedent("""
    import argparse, http.server, time
    parser = argparse.ArgumentParser(prog="sglang.launch_server")
    for flag in ("--model-path", "--served-model-name", "--host"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mem-fraction-static", type=float)
    args = parser.parse_args()
    print("args", vars(args), flush=True)
    ready_at = time.monotonic() + 1.5

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = 200 if self.path == "/health" and time.monotonic() > ready_at else 503
            self.send_response(code)
            self.end_headers()

    http.server.HTTPServer((args.host, args.port), Handler).serve_forever()
""")


def _request(port: int, *extra: str) -> ServeRequest:
    return ServeRequest(
        python=sys.executable,
        model="/model",
        served_name="tiny",
        host="127.0.0.1",
        port=port,
        server_args=extra,
    )


def test_command_is_an_argv_list_with_server_args_last() -> None:
    cmd = SGLangBackend().command(_request(30000, "--mem-fraction-static", "0.8"))
    assert cmd == [
        sys.executable,
        "-m",
        "sglang.launch_server",
        "--model-path",
        "/model",
        "--served-model-name",
        "tiny",
        "--host",
        "127.0.0.1",
        "--port",
        "30000",
        "--mem-fraction-static",
        "0.8",
    ]
    # a CSV value is one argv word, never shell syntax
    hostile = SGLangBackend().command(_request(1, "--x", "a; rm -rf /"))
    assert hostile[-1] == "a; rm -rf /"


def test_backend_declares_gpu_only_install_and_health() -> None:
    backend = SGLangBackend()
    assert backend.requirements() == ["sglang[all]"]
    assert backend.health_path == "/health"
    assert backend.api_key_env_var is None  # SGLang takes its key only as an argv flag


@pytest.fixture
def fake_sglang(tmp_path: Path) -> dict[str, str]:
    package = tmp_path / "sglang"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "launch_server.py").write_text(FAKE)
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


def _start(env: dict[str, str], log: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    cmd = SGLangBackend().command(_request(free_port(), *extra))
    port = cmd[cmd.index("--port") + 1]
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            cmd, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return proc, f"http://127.0.0.1:{port}/health"


def test_readiness_waits_through_503_until_health_answers(
    fake_sglang: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "sglang.log"
    proc, url = _start(fake_sglang, log, "--mem-fraction-static", "0.8")
    try:
        start = time.monotonic()
        wait_healthy(url, proc, log, 30, lambda _: None, "sglang server")
        assert time.monotonic() - start >= 1.0  # it did wait for the loading phase
    finally:
        stop_process(proc)
    assert "'mem_fraction_static': 0.8" in log.read_text()


def test_a_bad_server_arg_fails_at_once_with_exit_code_and_log(
    fake_sglang: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "sglang.log"
    proc, url = _start(fake_sglang, log, "--no-such-flag")
    start = time.monotonic()
    with pytest.raises(
        ServerError,
        match=r"(?s)exited with code 2 during startup.*"
        r"unrecognized arguments: --no-such-flag",
    ):
        wait_healthy(url, proc, log, 600, lambda _: None, "sglang server")
    assert time.monotonic() - start < 30
