"""HF transformers behind our own OpenAI-compatible wrapper (pytest_vlmhb.server)."""

from __future__ import annotations

from typing import ClassVar

from ..envs import plugin_extra_requirements
from .base import Backend, ServeRequest


class HFBackend(Backend):
    """transformers ``generate`` served by the plugin's FastAPI wrapper."""

    name = "hf"
    api_key_env_var = "VLMHB_API_KEY"  # read by pytest_vlmhb.server
    server_metrics: ClassVar[dict[str, str]] = {
        "generation_tokens": "vlmhb_generation_tokens_total",
        "running": "vlmhb_requests_running",
        "peak_memory_bytes": "vlmhb_peak_memory_bytes",
    }

    def request_extras(self) -> dict[str, object]:
        return {"return_token_ids": True}

    def requirements(self) -> list[str]:
        return plugin_extra_requirements("server")

    def command(self, request: ServeRequest) -> list[str]:
        return [
            request.python,
            "-m",
            "pytest_vlmhb.server",
            "--model",
            request.model,
            "--served-model-name",
            request.served_name,
            "--host",
            request.host,
            "--port",
            str(request.port),
            *request.server_args,
        ]
