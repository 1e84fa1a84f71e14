"""The docker launcher for real: the hf and vllm-cpu images on the local daemon.

Every run is a real pytest subprocess with the plugin loaded from its entry
point; servers run in containers built from model_images/ (the same tags CI
pre-builds with ``.ci/docker-setup``). Under CI=true a missing daemon is a
failure, not a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_vlmhb.launchers.docker_daemon import (
    MANAGED_LABEL,
    OUTPUT_LABEL,
    OWNER_LABEL,
    daemon_status,
    managed_containers,
    owner_id,
    sweep_orphans,
)
from pytest_vlmhb.launchers.docker_images import LOCAL_BASE, REGISTRY_BASE, image_id
from tests.helpers import REPO, read_csv, run, setup_suite, spawn_run
from tests.hubcache import DEFAULT_COMMIT, TINY_REPO, tiny_hub_cache
from tests.stub_openai import StubScript, running_stub


@pytest.fixture(scope="module", autouse=True)
def docker_daemon() -> None:
    answers, why = daemon_status()
    if not answers:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs a Docker daemon (.ci/docker-setup starts one): {why}")
        pytest.skip(why)


def _page_manifest(pytester: pytest.Pytester, n: int) -> str:
    """n docvqa samples on one synthetic page; returns a tasks.csv."""
    from pytest_vlmhb.tasks.sources import synthetic_docs_dir

    data = pytester.mkdir("data")
    synth = synthetic_docs_dir(Path(os.environ["VLMHB_CACHE"]))
    pages = sorted((synth / "images").glob("*.png"))
    for i in range(n):
        (data / f"p{i}.png").write_bytes(pages[i % len(pages)].read_bytes())
    (data / "m.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "id": f"s{i}",
                    "image": f"p{i}.png",
                    "question": f"What is field {i}?",
                    "answers": ["x"],
                }
            )
            + "\n"
            for i in range(n)
        )
    )
    return "name,type,data\nvqa,docvqa,data/m.jsonl\n"


def _ours(pytester: pytest.Pytester) -> list[str]:
    """Names of containers (any state) started for this pytester run's output dir."""
    out = str((pytester.path / "vlmhb-results").resolve())
    return [c.name for c in managed_containers(**{OUTPUT_LABEL: out})]


def _wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


def _parity(answers: list[dict[str, str]], first: str, second: str) -> None:
    by_case: dict[str, dict[str, dict[str, str]]] = {}
    for row in answers:
        assert row["error"] == "", row
        by_case.setdefault(row["case_id"], {})[row["sample_id"]] = row
    a, b = by_case[first], by_case[second]
    assert a.keys() == b.keys() and len(a) >= 4
    for sample in a:
        assert a[sample]["answer"] == b[sample]["answer"], sample
        assert a[sample]["completion_tokens"] == b[sample]["completion_tokens"], sample
        if "token_ids" in a[sample]:
            assert a[sample]["token_ids"] == b[sample]["token_ids"], sample


@pytest.fixture
def not_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs below are top-level pytest runs, even when this suite runs under -n."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)


#: The tiny model twice: built in, and from an offline hub cache (by hub id).
HUB_MODELS = (
    "name,source,recipe\ntiny,builtin:tiny-idefics3,auto\n"
    f"tiny-hub,{TINY_REPO}@main,tiny-idefics3\n"
)


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny model in an offline hub cache as TINY_REPO (for the runs' env)."""
    tiny_hub_cache(tmp_path / "hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _served_from_the_hub_cache(report: str, log: str) -> None:
    """The container got the repo cache folder and its snapshot (by commit)."""
    assert DEFAULT_COMMIT in report  # the commit in provenance
    assert f"/model/snapshots/{DEFAULT_COMMIT}" in report  # the argv


@pytest.mark.server
@pytest.mark.usefixtures("not_a_worker", "offline_hub")
def test_hf_docker_matches_local_and_leaves_nothing(pytester: pytest.Pytester) -> None:
    """The container serves the tiny model by hub id, mounted from the hub cache."""
    tasks = _page_manifest(pytester, 6)
    setup_suite(
        pytester,
        "id,model,task,backend,launcher,max_tokens\n"
        "in-docker,tiny-hub,vqa,hf,,24\nin-venv,tiny,vqa,hf,local,24\n",
        models=HUB_MODELS,
        tasks=tasks,
    )
    result = run(pytester)
    result.assert_outcomes(passed=12)
    # launcher left empty means auto: one line says which and why
    result.stderr.fnmatch_lines(["*launcher=auto -> docker: Docker * answers at *"])
    result.stdout.fnmatch_lines(["*starting hf server for tiny-hub (image vlmhb/hf:*"])
    out = pytester.path / "vlmhb-results"
    _parity(read_csv(out / "answers.csv"), "in-docker", "in-venv")
    metrics = {m["case_id"]: m for m in read_csv(out / "metrics.csv")}
    assert float(metrics["in-docker"]["container_peak_memory_mb"]) > 50
    assert metrics["in-venv"]["container_peak_memory_mb"] == ""  # not a container
    report = (out / "report.md").read_text()
    # provenance: source, the commit served, the recipe, backend, launcher
    assert (
        f"| in-docker | {TINY_REPO}@main | {DEFAULT_COMMIT} | tiny-idefics3 | hf | docker |"
        in report
    )
    log = (out / "logs" / "tiny-hub@hf@docker.log").read_text()
    assert "Uvicorn running on http://0.0.0.0:8000" in log
    _served_from_the_hub_cache(report, log)
    assert _ours(pytester) == []


@pytest.mark.vllm
@pytest.mark.usefixtures("offline_hub")
def test_vllm_cpu_docker_matches_local(pytester: pytest.Pytester) -> None:
    """The container serves the tiny model by hub id, mounted from the hub cache."""
    tasks = _page_manifest(pytester, 8)
    setup_suite(
        pytester,
        "id,model,task,backend,launcher,max_tokens,concurrency\n"
        "in-docker,tiny-hub,vqa,vllm,docker,24,4\n"
        "in-venv,tiny,vqa,vllm,local,24,4\n",
        models=HUB_MODELS,
        tasks=tasks,
    )
    result = run(pytester)
    result.assert_outcomes(passed=16)
    result.stdout.fnmatch_lines(
        [
            "*vllm server for tiny-hub (image vlmhb/vllm-cpu:*) is up on http://127.0.0.1:*",
            # its engine core, seen from the host, moved as locally
            "*vllm server for tiny-hub (image vlmhb/vllm-cpu:*): * vLLM's engine-core process *",
        ]
    )
    out = pytester.path / "vlmhb-results"
    _parity(read_csv(out / "answers.csv"), "in-docker", "in-venv")
    metrics = {m["case_id"]: m for m in read_csv(out / "metrics.csv")}
    assert float(metrics["in-docker"]["container_peak_memory_mb"]) > 200
    report = (out / "report.md").read_text()
    assert (
        f"| in-docker | {TINY_REPO}@main | {DEFAULT_COMMIT} | tiny-idefics3 | vllm | docker |"
        in report
    )
    assert "vllm-cpu" in report  # the container's package versions in provenance
    log = (out / "logs" / "tiny-hub@vllm@docker.log").read_text()
    assert "0.0.0.0" in log
    _served_from_the_hub_cache(report, log)
    assert _ours(pytester) == []


@pytest.mark.server
def test_bad_server_arg_fails_fast_and_failing_run_leaves_nothing(
    pytester: pytest.Pytester,
) -> None:
    tasks = _page_manifest(pytester, 2)
    setup_suite(
        pytester,
        "id,model,task,backend,launcher,min_anls\n"
        "bad,broken,vqa,hf,docker,\ngate,tiny,vqa,hf,docker,1.01\n",
        models="name,source,server_args\ntiny,builtin:tiny-idefics3,\n"
        "broken,builtin:tiny-idefics3,--no-such-flag\n",
        tasks=tasks,
    )
    start = time.monotonic()
    result = run(pytester)
    elapsed = time.monotonic() - start
    assert result.ret == 1
    result.assert_outcomes(passed=2, failed=3)  # bad: 2 samples; gate: 2 samples + gate
    result.stdout.fnmatch_lines(
        [
            "*server broken@hf@docker failed to start: hf server for broken (image vlmhb/hf:*) "
            "exited with code 2 during startup; log *broken@hf@docker.log:*",
            "*error: unrecognized arguments: --no-such-flag*",
            "*anls * < min_anls 1.01*",
        ]
    )
    assert elapsed < 240, elapsed  # not the startup timeout (900 s)
    assert _ours(pytester) == []


SECRET = "sk-vlmhb-docker-7Hq2PzR4"
PROBE = (
    "import json, urllib.error, urllib.request\n"
    "from pytest_vlmhb.launchers.docker_daemon import connect\n"
    "from pytest_vlmhb.plugin import RUNTIME\n"
    "def pytest_runtest_teardown(item):\n"
    "    server = item.config.stash[RUNTIME].pool.current\n"
    "    if not item.name.endswith('/s0]') or server is None:\n"
    "        return\n"
    "    try:\n"
    "        urllib.request.urlopen(server.base_url + '/models', timeout=10)\n"
    "        status = 200\n"
    "    except urllib.error.HTTPError as exc:\n"
    "        status = exc.code\n"
    "    attrs = connect().containers.get(server.provenance['container']).attrs\n"
    "    ports = attrs['HostConfig']['PortBindings']\n"
    "    open('probe.json', 'w').write(json.dumps({'status': status, 'ports': ports,\n"
    "        'argv': [attrs['Path'], *attrs['Args']], 'env': attrs['Config']['Env'],\n"
    "        'mounts': [(m['Destination'], m['RW']) for m in attrs['Mounts']]}))\n"
)


@pytest.mark.server
def test_key_via_env_port_on_loopback_model_read_only(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = _page_manifest(pytester, 2)
    setup_suite(
        pytester,
        "model,task,backend,launcher\ntiny,vqa,hf,docker\n",
        models="name,source,api_key_env\ntiny,builtin:tiny-idefics3,VLMHB_DOCKER_KEY\n",
        tasks=tasks,
    )
    pytester.makeconftest(PROBE)
    monkeypatch.setenv("VLMHB_DOCKER_KEY", SECRET)
    result = run(pytester)
    result.assert_outcomes(passed=2)  # the server requires the key: the client sent it
    probe = json.loads((pytester.path / "probe.json").read_text())
    assert probe["status"] == 401  # a request without the key is refused
    assert f"VLMHB_API_KEY={SECRET}" in probe["env"]
    assert not any(SECRET in arg for arg in probe["argv"])
    assert "--host" in probe["argv"] and "0.0.0.0" in probe["argv"]
    assert [b["HostIp"] for b in probe["ports"]["8000/tcp"]] == ["127.0.0.1"]
    assert probe["mounts"] == [["/model", False]]
    for path in (pytester.path / "vlmhb-results").rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
    assert SECRET not in result.stdout.str()


@pytest.mark.server
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_interrupted_run_leaves_no_container(
    pytester: pytest.Pytester, how: signal.Signals
) -> None:
    tasks = _page_manifest(pytester, 200)
    setup_suite(
        pytester,
        "model,task,backend,launcher,concurrency,max_tokens\ntiny,vqa,hf,docker,1,64\n",
        tasks=tasks,
    )
    proc = spawn_run(pytester)
    try:
        assert _wait_for(lambda: bool(_ours(pytester)), 300), "no container started"
        # once answers arrive the run is mid-case
        samples = pytester.path / "vlmhb-results" / "results" / "samples-main.jsonl"
        assert _wait_for(lambda: samples.exists() and samples.stat().st_size > 0, 300)
        proc.send_signal(how)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Ctrl-C: pytest's own teardown; kill -9: the watchdog process
    assert _wait_for(lambda: _ours(pytester) == [], 30), _ours(pytester)


def test_containers_of_a_dead_owner_are_swept(tmp_path: Path) -> None:
    from pytest_vlmhb.launchers.docker_daemon import connect

    base = LOCAL_BASE if image_id(LOCAL_BASE) else REGISTRY_BASE
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner = owner_id(proc.pid)
    proc.wait()
    labels = {MANAGED_LABEL: "true", OUTPUT_LABEL: str(tmp_path)}
    client = connect()
    orphan = client.containers.run(
        base, ["sleep", "300"], detach=True, labels={**labels, OWNER_LABEL: dead_owner}
    )
    alive = client.containers.run(
        base, ["sleep", "300"], detach=True, labels={**labels, OWNER_LABEL: owner_id()}
    )
    try:
        removed = sweep_orphans(lambda _: None)
        assert orphan.name in removed and alive.name not in removed
        left = [c.name for c in managed_containers(**{OUTPUT_LABEL: str(tmp_path)})]
        assert left == [alive.name]
    finally:
        for container in (orphan, alive):
            with contextlib.suppress(Exception):
                container.remove(force=True)


def test_image_build_failure_shows_the_log_tail_and_other_cases_run(
    pytester: pytest.Pytester,
) -> None:
    images = pytester.mkdir("images")
    (images / "hf").mkdir()
    (images / "hf" / "image.toml").write_text(
        '[[image]]\nname = "hf-broken"\nbackend = "hf"\ngpu = "optional"\n'
    )
    (images / "hf" / "Dockerfile").write_text(
        f"FROM {LOCAL_BASE if image_id(LOCAL_BASE) else REGISTRY_BASE}\n"
        "RUN echo vlmhb-build-step-output && exit 3\n"
    )
    tasks = _page_manifest(pytester, 2)
    os.environ["VLMHB_MODEL_IMAGES"] = str(images)
    try:
        with running_stub(StubScript(default_answer="a")) as url:
            setup_suite(
                pytester,
                "model,task,backend,launcher\ntiny,vqa,hf,docker\nremote,vqa,openai,external\n",
                models=f"name,source,endpoint\ntiny,builtin:tiny-idefics3,\nremote,x,{url}\n",
                tasks=tasks,
            )
            result = run(pytester, "-v")
    finally:
        del os.environ["VLMHB_MODEL_IMAGES"]
    result.assert_outcomes(passed=2, failed=2)  # the other case still runs
    result.stdout.fnmatch_lines(
        [
            "*test_sample?remote:vqa:openai/s0? PASSED*",
            "*server tiny@hf@docker failed to start: building image vlmhb/hf-broken:* failed*",
            "*vlmhb-build-step-output*",
            "*returned a non-zero code: 3*",
        ]
    )
    assert _ours(pytester) == []


@pytest.mark.usefixtures("not_a_worker")
def test_launcher_docker_without_a_daemon_is_a_usage_error(pytester: pytest.Pytester) -> None:
    setup_suite(pytester, "model,task,backend,launcher\ntiny,vqa,hf,docker\n")
    os.environ["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
    try:
        result = run(pytester)
        auto = pytester.mkdir("auto")
        (auto / "user_config.csv").write_text("model,task,backend\ntiny,vqa,hf\n")
        for name in ("models.csv", "tasks.csv"):
            (auto / name).write_bytes((pytester.path / name).read_bytes())
        auto_result = pytester.runpytest_subprocess(
            "--vlmhb-config=auto/user_config.csv",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            timeout=300,
        )
    finally:
        del os.environ["DOCKER_HOST"]
    assert result.ret == 4
    text = result.stderr.str() + result.stdout.str()
    assert "user_config.csv:2: column 'launcher': launcher 'docker': no Docker daemon" in text
    assert "dockerd" in text and "launcher=local" in text
    auto_result.stderr.fnmatch_lines(["*launcher=auto -> local: no Docker daemon answers*"])


def test_model_images_readmes_exist() -> None:
    for folder in ("base", "hf", "vllm", "sglang"):
        assert (REPO / "model_images" / folder / "README.md").stat().st_size > 100
