"""Backend images: specs from ``model_images/*/image.toml``, content-hashed tags, builds.

An image's tag is a hash of everything its build reads (Dockerfile and the
other files of its folder, pip specs, base image id, extra CA bundle, wheel
names), so an image is rebuilt only when one of them changes. Builds run
under a file lock (parallel xdist workers wait, not race) and stream their
headline lines through ``progress``; the whole build log is kept on disk.

Also a command line, used by CI to pre-build through the launcher's own code:
``python -m pytest_vlmhb.launchers.docker_images build hf vllm-cpu``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock

from ..envs import Progress, plugin_extra_requirements
from ..errors import ConfigError, ServerError
from ..redact import redact, redact_then_truncate
from .docker_daemon import MANAGED_LABEL, connect

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
#: The top-level folder of a source checkout (also what an editable install reads).
REPO_IMAGES = PLUGIN_ROOT.parent / "model_images"
#: The image ``model_images/base/build-base.sh`` makes (no registry needed).
LOCAL_BASE = "vlmhb/python-base:bookworm"
REGISTRY_BASE = "python:3.11-slim-bookworm"
TAIL_LINES = 40
_PLUGIN_FILES = ("__init__.py", "tinymodel.py", "server/*.py")
_HEADLINES = ("Step ", "Successfully installed", "Successfully built", "Successfully tagged")

GpuUse = Literal["none", "optional", "required"]


@dataclass(frozen=True)
class ImageSpec:
    """One ``[[image]]`` of an ``image.toml``."""

    name: str
    backend: str
    folder: Path
    dockerfile: str = "Dockerfile"
    gpu: GpuUse = "none"
    python: str = "python3"
    python_base: bool = False
    requirements: tuple[str, ...] = ()
    requirements_extra: str | None = None
    uninstall: tuple[str, ...] = ()
    plugin_source: bool = False

    def pip_requirements(self, override: Sequence[str] = ()) -> list[str]:
        """The pip specs baked in: a model's override, else the image's own."""
        if override:
            return list(override)
        if self.requirements_extra:
            return plugin_extra_requirements(self.requirements_extra)
        return list(self.requirements)

    def fits(self, want_gpu: bool) -> bool:
        return self.gpu != "none" if want_gpu else self.gpu != "required"


def bundled_images() -> Path:
    """The ``model_images/`` this very plugin came with.

    A wheel carries it inside the package, as ``pytest_vlmhb/model_images/``
    (pyproject maps the top-level folder there); a source checkout or an
    editable install has it beside the package, at the repository's top level.
    Both hold the same files, so an image's tag is the same from either.
    """
    packaged = files("pytest_vlmhb") / "model_images"
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return REPO_IMAGES


def images_root() -> Path:
    """``$VLMHB_MODEL_IMAGES``, else the plugin's own images (:func:`bundled_images`)."""
    return Path(os.environ.get("VLMHB_MODEL_IMAGES") or bundled_images())


@cache
def load_specs(root: Path) -> tuple[ImageSpec, ...]:
    """Every image declared under ``root`` (folders in name order)."""
    specs = []
    for toml in sorted(root.glob("*/image.toml")):
        for entry in tomllib.loads(toml.read_text()).get("image", []):
            fields: dict[str, Any] = {
                k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()
            }
            try:
                specs.append(ImageSpec(folder=toml.parent, **fields))
            except TypeError as exc:
                raise ConfigError(f"bad [[image]] entry: {exc}", file=toml) from None
    return tuple(specs)


def spec_named(name: str, root: Path | None = None) -> ImageSpec:
    specs = load_specs(root or images_root())
    for spec in specs:
        if spec.name == name:
            return spec
    raise ConfigError(f"unknown image {name!r}", allowed=[s.name for s in specs])


def select_image(backend: str, want_gpu: bool, root: Path | None = None) -> ImageSpec:
    """The first image of ``backend`` whose GPU use fits the request."""
    specs = [s for s in load_specs(root or images_root()) if s.backend == backend]
    for spec in specs:
        if spec.fits(want_gpu):
            return spec
    where = "with GPUs" if want_gpu else "without GPUs"
    have = ", ".join(f"{s.name} (gpu={s.gpu})" for s in specs) or "none"
    raise ServerError(
        f"no container image for backend {backend!r} {where} under "
        f"{root or images_root()} (images: {have})"
    )


@dataclass(frozen=True)
class BuildInputs:
    """The optional inputs of a build on a Python base (from the environment)."""

    base_image: str
    ca_bundle: Path | None = None
    wheel_dirs: tuple[Path, ...] = ()
    build_args: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> BuildInputs:
        """``VLMHB_BASE_IMAGE`` (default: the local debootstrap base if built, else
        python:3.11-slim), ``VLMHB_EXTRA_CA_BUNDLE`` (default: the host pip's
        ``cert``), ``VLMHB_IMAGE_WHEELS`` (folders, ``os.pathsep``-separated),
        pip's index URLs as build args."""
        base = os.environ.get("VLMHB_BASE_IMAGE") or (
            LOCAL_BASE if image_id(LOCAL_BASE) else REGISTRY_BASE
        )
        ca = os.environ.get("VLMHB_EXTRA_CA_BUNDLE") or host_pip_cert()
        wheels = [Path(p) for p in os.environ.get("VLMHB_IMAGE_WHEELS", "").split(os.pathsep) if p]
        args = {
            k: os.environ[k]
            for k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")
            if os.environ.get(k, "").startswith(("http://", "https://"))
        }
        return cls(base, Path(ca) if ca else None, tuple(wheels), args)


def host_pip_cert() -> str | None:
    """The CA bundle the host's pip verifies with (``PIP_CERT`` or a pip.conf ``cert``),
    so a build behind the same TLS-intercepting proxy trusts what the host trusts."""
    import configparser

    if os.environ.get("PIP_CERT"):
        return os.environ["PIP_CERT"]
    files = [
        "/etc/xdg/pip/pip.conf",
        "/etc/pip.conf",
        "~/.pip/pip.conf",
        "~/.config/pip/pip.conf",
        os.environ.get("PIP_CONFIG_FILE", ""),
    ]
    cert = None
    for name in filter(None, files):
        parser = configparser.ConfigParser()
        parser.read(os.path.expanduser(name))
        for section in ("global", "install"):
            cert = parser.get(section, "cert", fallback=cert)
    return cert if cert and Path(cert).is_file() else None


def image_id(tag: str) -> str | None:
    """The local image's id, or None when the daemon has no such image."""
    import docker.errors

    try:
        return str(connect().images.get(tag).id)
    except docker.errors.ImageNotFound:
        return None


def _wheel_files(dirs: Sequence[Path]) -> Iterator[Path]:
    for folder in dirs:
        if folder.is_dir():
            yield from sorted(
                p
                for p in folder.iterdir()
                if p.is_file() and p.name.endswith((".whl", ".tar.gz", ".zip"))
            )


def _plugin_files() -> Iterator[Path]:
    for pattern in _PLUGIN_FILES:
        yield from sorted(PLUGIN_ROOT.glob(pattern))


@dataclass(frozen=True)
class BuildPlan:
    """What one build reads; ``tag`` hashes all of it (once: the first read's answer)."""

    spec: ImageSpec
    requirements: tuple[str, ...]
    inputs: BuildInputs

    def digest(self) -> str:
        h = hashlib.sha256()

        def add(label: str, data: bytes) -> None:
            h.update(f"{label}\0{len(data)}\0".encode())
            h.update(data)

        spec = self.spec
        add(
            "spec",
            json.dumps(
                {**spec.__dict__, "folder": spec.folder.name}, sort_keys=True, default=list
            ).encode(),
        )
        for path in sorted(p for p in spec.folder.rglob("*") if p.is_file()):
            if path.name != "README.md":
                add(str(path.relative_to(spec.folder)), path.read_bytes())
        add("requirements", "\n".join(self.requirements).encode())
        if spec.python_base:
            base = self.inputs.base_image
            add("base", f"{base}@{image_id(base) or '?'}".encode())
            if self.inputs.ca_bundle:
                add("ca", self.inputs.ca_bundle.read_bytes())
            for wheel in _wheel_files(self.inputs.wheel_dirs):
                add("wheel", f"{wheel.name}:{wheel.stat().st_size}".encode())
            add("args", json.dumps(self.inputs.build_args, sort_keys=True).encode())
        if spec.plugin_source:
            for path in _plugin_files():
                add(str(path.relative_to(PLUGIN_ROOT)), path.read_bytes())
        return h.hexdigest()[:16]

    @cached_property
    def tag(self) -> str:
        """``vlmhb/<image>:<digest>``; the files and the daemon are read on first use only."""
        return f"vlmhb/{self.spec.name}:{self.digest()}"


def stage_context(plan: BuildPlan, dest: Path) -> None:
    """Lay out the build context: the image folder, pip specs, certs/, wheels/, src/."""
    spec = plan.spec
    shutil.copytree(spec.folder, dest, dirs_exist_ok=True)
    (dest / "requirements.txt").write_text("".join(f"{r}\n" for r in plan.requirements))
    (dest / "uninstall.txt").write_text("".join(f"{r}\n" for r in spec.uninstall))
    (dest / "certs").mkdir(exist_ok=True)
    if plan.inputs.ca_bundle:
        shutil.copyfile(plan.inputs.ca_bundle, dest / "certs" / "extra-ca.crt")
    wheels = dest / "wheels"
    wheels.mkdir(exist_ok=True)
    if spec.python_base:
        for wheel in _wheel_files(plan.inputs.wheel_dirs):
            target = wheels / wheel.name
            if not target.exists():
                try:
                    os.link(wheel, target)  # same file system: no copy
                except OSError:
                    shutil.copy2(wheel, target)
    if spec.plugin_source:
        for path in _plugin_files():
            target = dest / "src" / "pytest_vlmhb" / path.relative_to(PLUGIN_ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def base_python(base_image: str, cache_dir: Path) -> str | None:
    """``major.minor`` of the base image's python3 (cached per image id)."""
    ident = image_id(base_image)
    if ident is None:
        return None
    memo = cache_dir / "base-python.json"
    known: dict[str, str] = json.loads(memo.read_text()) if memo.exists() else {}
    if ident not in known:
        out = connect().containers.run(
            base_image,
            ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            remove=True,
            labels={MANAGED_LABEL: "true"},
        )
        known[ident] = out.decode().strip()
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(json.dumps(known))
    return known[ident]


def prefetch_wheels(
    requirements: Sequence[str], python: str, cache: Path, progress: Progress
) -> Path | None:
    """Fill a wheel folder for ``requirements`` with the host's pip, once.

    The host's pip reads its own configuration (find-links such as a local
    torch wheel, mirrors) and its cache, so what the local venvs downloaded is
    not downloaded again. Only when the host's Python matches the image's.
    """
    if python != f"{sys.version_info[0]}.{sys.version_info[1]}":
        progress(f"image python {python} differs from the host's: no wheel prefetch")
        return None
    key = hashlib.sha256(json.dumps([python, sorted(requirements)]).encode()).hexdigest()[:12]
    folder = cache / "image-wheels" / key
    if (folder / ".complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if not (folder / ".complete").exists():
            progress(f"fetching wheels for the image build into {folder} (once)")
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--progress-bar",
                    "off",
                    "--dest",
                    str(folder),
                    *requirements,
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                progress(
                    f"wheel prefetch failed (the build downloads instead): "
                    f"{(redact(proc.stderr).strip().splitlines() or [''])[-1]}"
                )
                shutil.rmtree(folder, ignore_errors=True)
                return None
            (folder / ".complete").write_text(json.dumps(sorted(requirements)) + "\n")
    return folder


def plan_build(
    spec: ImageSpec,
    cache: Path,
    progress: Progress,
    override: Sequence[str] = (),
    inputs: BuildInputs | None = None,
) -> BuildPlan:
    """The build plan of ``spec``, with prefetched wheels added to its inputs."""
    inputs = inputs or BuildInputs.from_env()
    requirements = tuple(spec.pip_requirements(override))
    if spec.python_base and requirements:
        python = base_python(inputs.base_image, cache / "images")
        fetched = prefetch_wheels(requirements, python, cache, progress) if python else None
        # Every wheel prefetched: the build installs offline (no index round trips).
        args = {**inputs.build_args, "PIP_NO_INDEX": "1" if fetched else "0"}
        dirs = (*inputs.wheel_dirs, fetched) if fetched else inputs.wheel_dirs
        inputs = BuildInputs(inputs.base_image, inputs.ca_bundle, dirs, args)
    return BuildPlan(spec, requirements, inputs)


def _stream_build(plan: BuildPlan, context: Path, log: Path, progress: Progress) -> None:
    """Run the build, writing every line to ``log`` and headlines to ``progress``."""
    client = connect()
    args = dict(plan.inputs.build_args)
    if plan.spec.python_base:
        args["BASE_IMAGE"] = plan.inputs.base_image
    failed = ""
    with log.open("w") as sink:
        stream = client.api.build(
            path=str(context),
            tag=plan.tag,
            dockerfile=plan.spec.dockerfile,
            buildargs=args,
            rm=True,
            forcerm=True,
            decode=True,
            labels={MANAGED_LABEL: "true"},
        )
        for chunk in stream:
            text = str(chunk.get("stream") or chunk.get("status") or "")
            if "error" in chunk:
                failed = str(chunk.get("error"))
                text = failed + "\n"
            sink.write(text)
            sink.flush()
            for line in text.splitlines():
                if line.startswith(_HEADLINES):
                    progress(
                        f"image {plan.spec.name}: "
                        f"{redact_then_truncate(line.strip(), 120, keep='head')}"
                    )
    if failed or image_id(plan.tag) is None:
        tail = "\n".join(redact(log.read_text(errors="replace")).splitlines()[-TAIL_LINES:])
        hint = ""
        if plan.spec.python_base and image_id(plan.inputs.base_image) is None:
            script = bundled_images() / "base" / "build-base.sh"
            hint = (
                f" (base image {plan.inputs.base_image} is not here: without a registry, "
                f"build one with {script})"
            )
        raise ServerError(
            f"building image {plan.tag} failed: {failed or 'no image'}{hint}; "
            f"build log {log}:\n{tail}"
        )


def ensure_image(
    plan: BuildPlan, cache: Path, progress: Progress, log_dir: Path | None = None
) -> str:
    """The plan's tag, building the image first if the daemon lacks it."""
    tag = plan.tag
    if image_id(tag):
        return tag
    images = cache / "images"
    images.mkdir(parents=True, exist_ok=True)
    with FileLock(str(images / f"{tag.replace('/', '_').replace(':', '-')}.lock")):
        if image_id(tag):
            return tag
        log_dir = log_dir or images
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"build-{plan.spec.name}-{tag.rsplit(':', 1)[1]}.log"
        progress(f"building image {tag} (once; build log {log})")
        start = time.monotonic()
        with tempfile.TemporaryDirectory(dir=images, prefix="context-") as context:
            stage_context(plan, Path(context))
            _stream_build(plan, Path(context), log, progress)
        progress(f"built image {tag} in {time.monotonic() - start:.0f} s")
    return tag


def main(argv: Sequence[str] | None = None) -> int:
    """``build NAME...``: build images as the launcher would; ``tag NAME``: print a tag;
    ``list``: the images; ``root``: the folder they are read from."""
    parser = argparse.ArgumentParser(prog="python -m pytest_vlmhb.launchers.docker_images")
    parser.add_argument("command", choices=["build", "tag", "list", "root"])
    parser.add_argument("names", nargs="*")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="the vlmhb cache (default $VLMHB_CACHE, else the user cache dir)",
    )
    args = parser.parse_args(argv)
    cache = args.cache or _default_cache()

    def say(message: str) -> None:
        print(f"[vlmhb] {message}", flush=True)

    if args.command == "root":
        print(images_root())
        return 0
    if args.command == "list":
        for spec in load_specs(images_root()):
            print(f"{spec.name}\tbackend={spec.backend}\tgpu={spec.gpu}\t{spec.folder}")
        return 0
    status = 0
    for name in args.names:
        plan = plan_build(spec_named(name), cache, say)
        if args.command == "tag":
            print(plan.tag)
            continue
        start = time.monotonic()
        try:
            tag = ensure_image(plan, cache, say)
        except ServerError as exc:
            print(exc, file=sys.stderr)
            status = 1
            continue
        say(f"{name}: {tag} ready ({time.monotonic() - start:.0f} s)")
    return status


def _default_cache() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("VLMHB_CACHE") or user_cache_dir("vlmhb"))


if __name__ == "__main__":
    raise SystemExit(main())
