"""The backend interface: how to install and start one kind of server."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class ServeRequest:
    """What a launcher asks a backend to serve."""

    python: str
    model: str
    served_name: str
    host: str
    port: int
    server_args: Sequence[str]
    #: Whether the server runs with an NVIDIA GPU; None: probe this host (a
    #: container decides by its own image and device requests instead).
    gpu: bool | None = None


class Backend:
    """One kind of inference server; subclasses register under ``vlmhb.backends``.

    ``requirements`` is the pip spec of the backend's isolated venv (empty:
    the backend cannot be started locally); ``command`` the argv that starts
    it (never run through a shell).
    """

    name: ClassVar[str]
    health_path: ClassVar[str] = "/health"
    metrics_path: ClassVar[str | None] = "/metrics"
    #: The environment variable the server reads its required API key from.
    api_key_env_var: ClassVar[str | None] = None

    def requirements(self) -> list[str]:
        """pip requirement specifiers of the backend's own venv."""
        return []

    def uninstall(self) -> list[str]:
        """Packages removed from the venv after installing ``requirements``."""
        return []

    def command(self, request: ServeRequest) -> list[str]:
        """argv that starts the server (the launcher adds nothing to it)."""
        raise NotImplementedError(f"backend {self.name!r} cannot be started by a launcher")

    #: Prometheus sample names on ``metrics_path`` by role, for the server-side
    #: cross-check: ``generation_tokens`` (counter), ``running`` (gauge),
    #: ``ttft_sum``/``ttft_count`` (TTFT histogram, seconds), ``steps`` (counter of
    #: engine steps that produced output), ``peak_memory_bytes``.
    server_metrics: ClassVar[dict[str, str]] = {}

    def request_extras(self) -> dict[str, object]:
        """Fields this backend understands beyond the OpenAI API, sent on every request."""
        return {}

    def env(self, gpu: bool | None = None) -> dict[str, str]:
        """Extra environment variables for the server process (``gpu`` as in ServeRequest)."""
        return {}

    def after_ready(self, pid: int, gpu: bool | None = None) -> list[str]:
        """Adjust a started server's processes once it answers (``pid``: its first
        process as this host sees it, 0 if unknown); lines saying what was done."""
        return []
