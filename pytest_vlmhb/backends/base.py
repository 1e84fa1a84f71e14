"""The backend interface: how to install and start one kind of server."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class ModelOptions:
    """How the model is loaded and served: models.csv's columns over its recipe's
    defaults (see :func:`pytest_vlmhb.modeloptions.model_options`)."""

    dtype: str = "auto"
    #: The context length; None: the model's own.
    max_model_len: int | None = None
    #: The processor's settings (image resolution, splitting); None: its defaults.
    mm_processor_kwargs: Mapping[str, Any] | None = None
    trust_remote_code: bool = False
    #: The chat template file as the server sees it; None: the model's own.
    chat_template: str | None = None
    #: Images one request may carry.
    limit_mm_per_prompt: int = 1
    #: The recipe's own words for this backend's command line.
    recipe_args: tuple[str, ...] = ()
    #: The transformers class that loads the model (HF wrapper); None: its default.
    hf_model_class: str | None = None

    def mm_processor_json(self) -> str:
        """``mm_processor_kwargs`` as one JSON argument (keys sorted)."""
        return json.dumps(dict(self.mm_processor_kwargs or {}), sort_keys=True)


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
    options: ModelOptions = field(default_factory=ModelOptions)


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
