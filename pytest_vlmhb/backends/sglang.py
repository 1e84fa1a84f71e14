"""SGLang's server (GPU only: its wheel pins a CUDA torch)."""

from __future__ import annotations

from .base import Backend, ServeRequest


class SGLangBackend(Backend):
    """``python -m sglang.launch_server`` in its own venv."""

    name = "sglang"

    def requirements(self) -> list[str]:
        return ["sglang[all]"]

    def command(self, request: ServeRequest) -> list[str]:
        """SGLang has no processor-kwargs flag: ``mm_processor_kwargs`` does not reach
        it (a recipe's ``sglang_args`` carry what SGLang has instead)."""
        options = request.options
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
            *(["--dtype", options.dtype] if options.dtype != "auto" else []),
            *(["--context-length", str(options.max_model_len)] if options.max_model_len else []),
            *(["--trust-remote-code"] if options.trust_remote_code else []),
            *(["--chat-template", options.chat_template] if options.chat_template else []),
            *options.recipe_args,
            *request.server_args,  # last: the user's own words win over the recipe's
        ]
