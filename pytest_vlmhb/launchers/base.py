"""The launcher interface and the handle of a running server."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..backends.base import Backend
from ..config import ModelSpec, Settings
from ..envs import Progress
from ..errors import ServerError


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
    #: The server's exit code once it has died (None while running or unknown).
    exit_code: Callable[[], int | None] = lambda: None
    pid: int | None = None
    #: Resource peaks since the previous call (e.g. ``container_peak_memory_bytes``,
    #: ``gpu_peak_memory_bytes``); the runner calls it at the start and end of a case.
    take_peaks: Callable[[], dict[str, float]] = lambda: {}


def api_key(model: ModelSpec) -> str | None:
    """The model's API key, read from the variable ``api_key_env`` names (or None)."""
    if not model.api_key_env:
        return None
    key = os.environ.get(model.api_key_env)
    if not key:
        raise ServerError(f"environment variable {model.api_key_env} (api_key_env of "
                          f"model {model.name!r}) is not set")
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
        raise ServerError(f"backend {backend.name!r} reads no API key from its environment; "
                          f"remove api_key_env of model {model.name!r} or use launcher=external")
    return {backend.api_key_env_var: key}, {"Authorization": f"Bearer {key}"}


class Launcher:
    """Starts a backend's server somewhere; registered under ``vlmhb.launchers``."""

    name: ClassVar[str]

    def start(self, backend: Backend, model: ModelSpec, settings: Settings,
              progress: Progress) -> RunningServer:
        raise NotImplementedError
