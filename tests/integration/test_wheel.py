"""A normal install: the built wheel, installed into a fresh venv outside the checkout.

The wheel must carry what the launchers read at run time: ``model_images/``
(as ``pytest_vlmhb/model_images/``) and the metrics' ``ENTRY_POINTS.txt``.
From a directory outside the checkout, with a venv that cannot see the
checkout's editable install, the installed plugin must register every
built-in metric, and run a docker case whose image tag is the checkout's own
(so the image CI pre-built with ``.ci/docker-setup`` is reused, not rebuilt).

The wheel is built and installed once per module; the venv's dependencies come
from the package index pip is configured with (about a minute when cached).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

from pytest_vlmhb.envs import clean_env
from pytest_vlmhb.launchers.docker_daemon import OUTPUT_LABEL, daemon_status, managed_containers
from pytest_vlmhb.launchers.docker_images import image_id
from tests.helpers import MODELS, SUITE, read_csv

REPO = Path(__file__).resolve().parents[2]
#: What the build reads (pyproject.toml names no other file).
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "pytest_vlmhb", "model_images")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".mypy_cache")
# Probes the installed plugin from a directory outside the checkout.
PROBE = """
import json, sys
from pathlib import Path
import pytest_vlmhb
from pytest_vlmhb import registry
from pytest_vlmhb.launchers.docker_images import images_root, load_specs
from pytest_vlmhb.metrics import builtin_entry_points
from pytest_vlmhb.metrics.base import Metric

listed = builtin_entry_points()
assert listed, "ENTRY_POINTS.txt is empty"
for name, target in listed.items():
    entry = registry._entries(registry.METRICS)[name]
    assert entry.value == target, (name, entry.value, target)
    cls = registry.load(registry.METRICS, name)
    assert isinstance(cls, type) and issubclass(cls, Metric), name
    assert cls().name == name, name
root = images_root()
print(json.dumps({
    "plugin": pytest_vlmhb.__file__,
    "metrics": sorted(listed),
    "images_root": str(root),
    "images": [s.name for s in load_specs(root)],
    "build_base": (root / "base" / "build-base.sh").stat().st_mode & 0o111 != 0,
    "sys_path": sys.path,
}))
"""


def _env() -> dict[str, str]:
    """The parent's environment without anything that points into the checkout."""
    env = clean_env()
    env.pop("VLMHB_MODEL_IMAGES", None)
    env["VLMHB_CACHE"] = os.environ["VLMHB_CACHE"]  # the shared cache (tests/conftest.py)
    return env


def _run(cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{cmd} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of the build inputs: an in-tree build would leave build/ and
    egg-info in the checkout, and a stale build/lib can leak deleted files."""
    src = tmp_path_factory.mktemp("wheel") / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=SKIP, symlinks=True)
        elif path.exists():
            shutil.copy2(path, src / name)
    return src


@pytest.fixture(scope="module")
def wheel(source: Path) -> Path:
    dist = source.parent / "dist"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--progress-bar",
        "off",
        "-w",
        str(dist),
        str(source),
    ]
    # The build backend here when it is new enough (no download), else pip's isolated one.
    if Version(version("setuptools")) >= Version("77"):
        cmd.insert(4, "--no-build-isolation")
    _run(cmd, source.parent, timeout=600)
    (found,) = dist.glob("pytest_vlmhb-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path) -> Path:
    """A plain venv (no system site-packages) with the wheel and its dependencies."""
    env_dir = wheel.parent.parent / "venv"
    _run([sys.executable, "-m", "venv", str(env_dir)], wheel.parent, timeout=300)
    python = env_dir / "bin" / "python"
    _run(
        [str(python), "-m", "pip", "install", "--progress-bar", "off", str(wheel)],
        wheel.parent,
        timeout=900,
    )
    return python


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    assert not tmp_path.resolve().is_relative_to(REPO)
    return tmp_path


def test_wheel_carries_model_images_entry_points_and_every_module(
    wheel: Path, source: Path
) -> None:
    with zipfile.ZipFile(wheel) as whl:
        infos = {info.filename: info for info in whl.infolist()}
        metadata = whl.read(next(n for n in infos if n.endswith(".dist-info/METADATA")))
    names = set(infos)
    for path in (
        "pytest_vlmhb/model_images/hf/Dockerfile",
        "pytest_vlmhb/model_images/hf/image.toml",
        "pytest_vlmhb/model_images/vllm/image.toml",
        "pytest_vlmhb/model_images/vllm/Dockerfile.cpu",
        "pytest_vlmhb/model_images/base/build-base.sh",
        "pytest_vlmhb/metrics/ENTRY_POINTS.txt",
        "pytest_vlmhb/py.typed",
        "pytest_vlmhb/data/reference_scores.csv",
    ):
        assert path in names, path
    # every file of model_images/, byte for byte (the image tags hash them)
    images = source / "model_images"
    with zipfile.ZipFile(wheel) as whl:
        for path in sorted(p for p in images.rglob("*") if p.is_file()):
            name = f"pytest_vlmhb/model_images/{path.relative_to(images).as_posix()}"
            assert name in names, name
            assert whl.read(name) == path.read_bytes(), name
    # build-base.sh stays executable
    assert infos["pytest_vlmhb/model_images/base/build-base.sh"].external_attr >> 16 & 0o111
    # every module: pyproject lists the subpackages, a new one must be added there
    package = source / "pytest_vlmhb"
    for path in package.rglob("*.py"):
        name = f"pytest_vlmhb/{path.relative_to(package).as_posix()}"
        assert name in names, f"{name} is not in the wheel: add its package to pyproject.toml"
    requires = [
        line
        for line in metadata.decode().splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert any(line.startswith("Requires-Dist: pytest-xdist") for line in requires), requires


def test_installed_wheel_registers_every_metric_and_reads_its_own_images(
    venv: Path, outside: Path
) -> None:
    out = _run([str(venv), "-c", PROBE], outside, timeout=300).stdout
    probe = json.loads(out.strip().splitlines()[-1])
    env_dir = venv.parent.parent
    plugin = Path(probe["plugin"]).resolve()
    assert plugin.is_relative_to(env_dir.resolve()), probe  # not the checkout
    assert not any(str(REPO) in entry for entry in probe["sys_path"] if entry), probe
    assert Path(probe["images_root"]) == plugin.parent / "model_images"
    assert {"hf", "vllm", "vllm-cpu", "sglang"} <= set(probe["images"])
    assert probe["build_base"]
    assert len(probe["metrics"]) >= 11


def test_installed_wheel_brings_xdist_and_the_plugin(venv: Path, outside: Path) -> None:
    help_text = _run([str(venv), "-m", "pytest", "--help"], outside, timeout=300).stdout
    assert "--vlmhb-config" in help_text
    assert "--numprocesses" in help_text  # pytest-xdist: the README's -n 4


@pytest.fixture
def docker_daemon() -> None:
    answers, why = daemon_status()
    if not answers:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs a Docker daemon (.ci/docker-setup starts one): {why}")
        pytest.skip(why)


def _hf_tag(python: Path, cwd: Path) -> str:
    cmd = [str(python), "-m", "pytest_vlmhb.launchers.docker_images", "tag", "hf"]
    return _run(cmd, cwd, timeout=900).stdout.strip().splitlines()[-1]


@pytest.mark.server
@pytest.mark.usefixtures("docker_daemon")
def test_installed_wheel_runs_a_docker_case_on_the_checkouts_image(
    venv: Path, outside: Path
) -> None:
    # The checkout's tag (run from the repo root: its own pytest_vlmhb) and the wheel's.
    tag = _hf_tag(Path(sys.executable), REPO)
    assert tag.startswith("vlmhb/hf:"), tag
    assert _hf_tag(venv, outside) == tag
    prebuilt = image_id(tag) is not None
    (outside / "test_vlmhb.py").write_text(SUITE)
    (outside / "user_config.csv").write_text("model,task,backend,launcher\ntiny,vqa,hf,docker\n")
    (outside / "models.csv").write_text(MODELS)
    (outside / "tasks.csv").write_text("name,type,data\nvqa,docvqa,builtin:synthetic-docs\n")
    (outside / "conftest.py").write_text(
        "import pathlib, pytest_vlmhb\n"
        "pathlib.Path('plugin.txt').write_text(pytest_vlmhb.__file__)\n"
    )
    proc = subprocess.run(
        [
            str(venv),
            "-m",
            "pytest",
            "--vlmhb-config=user_config.csv",
            "--vlmhb-limit=2",
            "-p",
            "no:cacheprovider",
            "-v",
        ],
        cwd=outside,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=1500,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert (
        Path((outside / "plugin.txt").read_text())
        .resolve()
        .is_relative_to(venv.parent.parent.resolve())
    )
    assert f"(image {tag}" in output, output[-6000:]
    if prebuilt:
        assert "building image" not in output, output[-6000:]
    results = outside / "vlmhb-results"
    answers = read_csv(results / "answers.csv")
    assert len(answers) == 2
    assert all(row["error"] == "" for row in answers), answers
    assert managed_containers(**{OUTPUT_LABEL: str(results.resolve())}) == []
