"""SGLang's server (GPU only: its wheel pins a CUDA torch)."""

from __future__ import annotations

from .base import Backend, ServeRequest


class SGLangBackend(Backend):
    """``python -m sglang.launch_server`` in its own venv."""

    name = "sglang"

    def requirements(self) -> list[str]:
        return ["sglang[all]"]

    def command(self, request: ServeRequest) -> list[str]:
        return [
            request.python,
            "-m",
            "sglang.launch_server",
            "--model-path",
            request.model,
            "--served-model-name",
            request.served_name,
            "--host",
            request.host,
            "--port",
            str(request.port),
            *request.server_args,
        ]
