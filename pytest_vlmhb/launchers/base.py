"""The launcher interface and the handle of a running server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..backends.base import Backend
from ..config import ModelSpec, Settings
from ..envs import Progress


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


class Launcher:
    """Starts a backend's server somewhere; registered under ``vlmhb.launchers``."""

    name: ClassVar[str]

    def start(self, backend: Backend, model: ModelSpec, settings: Settings,
              progress: Progress) -> RunningServer:
        raise NotImplementedError
