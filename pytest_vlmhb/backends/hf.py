"""HF transformers behind our own OpenAI-compatible wrapper (pytest_vlmhb.server)."""

from __future__ import annotations

from importlib.metadata import requires

from packaging.requirements import Requirement

from .base import Backend, ServeRequest


def server_extra_requirements() -> list[str]:
    """The ``server`` extra of this package, as installed."""
    out = []
    for spec in requires("pytest-vlmhb") or []:
        req = Requirement(spec)
        if req.marker is not None and req.marker.evaluate({"extra": "server"}):
            req.marker = None
            out.append(str(req))
    return out


class HFBackend(Backend):
    """transformers ``generate`` served by the plugin's FastAPI wrapper."""

    name = "hf"
    peak_memory_metric = "vlmhb_peak_memory_bytes"

    def request_extras(self) -> dict[str, object]:
        return {"return_token_ids": True}

    def requirements(self) -> list[str]:
        return server_extra_requirements()

    def command(self, request: ServeRequest) -> list[str]:
        return [
            request.python, "-m", "pytest_vlmhb.server",
            "--model", request.model,
            "--served-model-name", request.served_name,
            "--host", request.host, "--port", str(request.port),
            *request.server_args,
        ]
