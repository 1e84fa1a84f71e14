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
        options = request.options
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
            "--dtype",
            options.dtype,
            "--max-images-per-prompt",
            str(options.limit_mm_per_prompt),
            *(["--max-model-len", str(options.max_model_len)] if options.max_model_len else []),
            *(
                ["--mm-processor-kwargs", options.mm_processor_json()]
                if options.mm_processor_kwargs
                else []
            ),
            *(["--trust-remote-code"] if options.trust_remote_code else []),
            *(["--chat-template", options.chat_template] if options.chat_template else []),
            *(["--model-class", options.hf_model_class] if options.hf_model_class else []),
            *options.recipe_args,
            *request.server_args,  # last: the user's own words win over the recipe's
        ]
