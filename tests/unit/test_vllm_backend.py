"""The vLLM backend's argv and environment follow where the server runs,
not the host the harness runs on (a CPU container on a GPU host)."""

from __future__ import annotations

import pytest

from pytest_vlmhb.backends import vllm
from pytest_vlmhb.backends.base import ServeRequest


def _request(gpu: bool | None) -> ServeRequest:
    return ServeRequest(
        python="py",
        model="/model",
        served_name="m",
        host="0.0.0.0",
        port=8000,
        server_args=("--seed", "1"),
        gpu=gpu,
    )


@pytest.mark.parametrize("host_has_gpu", [True, False])
def test_a_cpu_server_gets_float32_and_a_kv_cache_size_on_any_host(
    monkeypatch: pytest.MonkeyPatch, host_has_gpu: bool
) -> None:
    monkeypatch.setattr(vllm, "has_nvidia_gpu", lambda: host_has_gpu)
    backend = vllm.VLLMBackend()
    argv = backend.command(_request(gpu=False))
    assert argv[argv.index("--dtype") + 1] == "float32"
    assert argv[-2:] == ["--seed", "1"]  # server_args last, as an argv list
    assert backend.env(gpu=False) == {"VLLM_CPU_KVCACHE_SPACE": "1"}
    gpu_argv = backend.command(_request(gpu=True))
    assert gpu_argv[gpu_argv.index("--dtype") + 1] == "auto"
    assert backend.env(gpu=True) == {}


@pytest.mark.parametrize("host_has_gpu", [True, False])
def test_unknown_placement_probes_the_host(
    monkeypatch: pytest.MonkeyPatch, host_has_gpu: bool
) -> None:
    monkeypatch.setattr(vllm, "has_nvidia_gpu", lambda: host_has_gpu)
    argv = vllm.VLLMBackend().command(_request(gpu=None))
    assert argv[argv.index("--dtype") + 1] == ("auto" if host_has_gpu else "float32")
