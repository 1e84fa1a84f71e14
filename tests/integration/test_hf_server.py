"""The HF wrapper server itself, started the way the plugin starts it.

The server runs in the HF backend venv built by the plugin's local launcher
(shared cache), on the built-in tiny model; the checks live in
tests/hf_server_checks.py, which also runs standalone against any venv.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from pytest_vlmhb.backends.hf import HFBackend
from pytest_vlmhb.config import ModelSpec, Settings
from pytest_vlmhb.launchers.local import LocalLauncher
from tests import hf_server_checks as checks

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def hf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[checks.Server, str, Path]]:
    settings = Settings(
        config=None,
        output=tmp_path_factory.mktemp("out"),
        limit=None,
        cache=Path(os.environ["VLMHB_CACHE"]),
        models=None,
        tasks=None,
        startup_timeout=600,
        request_timeout=60,
    )
    model = ModelSpec(
        name="tiny", source="builtin:tiny-idefics3", served_name="tiny-idefics3", base_dir=Path(".")
    )
    running = LocalLauncher().start(HFBackend(), model, settings, print)
    url = urlparse(running.root_url)
    assert running.log_path is not None
    try:
        yield (
            checks.Server(url.hostname or "", url.port or 0, 0.0, running.log_path),
            running.provenance["venv"] + "/bin/python",
            Path(running.provenance["model_path"]),
        )
    finally:
        running.stop()


@pytest.fixture(scope="module")
def png() -> bytes:
    return checks.make_image()


def test_models_endpoint(hf: tuple[checks.Server, str, Path]) -> None:
    checks.check_models(hf[0])


def test_stream_and_non_stream_agree(hf: tuple[checks.Server, str, Path], png: bytes) -> None:
    checks.check_stream_matches_non_stream(hf[0], png)


def test_one_chunk_per_token_and_real_ttft(hf: tuple[checks.Server, str, Path], png: bytes) -> None:
    timed = checks.check_usage_and_timing(hf[0], png)  # streamed over time, too
    assert len(timed.token_ids) == checks.STREAM_TOKENS
    assert 0 < timed.ttft < timed.e2e - checks.MIN_DECODE_SPAN_S, (timed.ttft, timed.e2e)


def test_token_ids_equal_transformers_generate(
    hf: tuple[checks.Server, str, Path], png: bytes
) -> None:
    server, python, model_dir = hf
    checks.check_parity_with_generate(server, python, model_dir, png)


def test_stop_strings(hf: tuple[checks.Server, str, Path], png: bytes) -> None:
    checks.check_stop_string(hf[0], png)


def test_bad_requests_get_openai_errors_quickly(hf: tuple[checks.Server, str, Path]) -> None:
    checks.check_bad_requests(hf[0])


def test_concurrent_requests_all_complete(hf: tuple[checks.Server, str, Path], png: bytes) -> None:
    checks.check_concurrent(hf[0], png)


def test_metrics_report_peak_memory(hf: tuple[checks.Server, str, Path], png: bytes) -> None:
    checks.check_usage_and_timing(hf[0], png)  # at least 64 generated tokens to count
    metrics = checks.check_metrics(hf[0])
    assert metrics["vlmhb_peak_memory_bytes"] > 50 * 2**20
    assert metrics["vlmhb_requests_total"] >= 1


def test_tiny_model_builds_byte_identical(
    hf: tuple[checks.Server, str, Path], tmp_path: Path
) -> None:
    """Every build of builtin:tiny-idefics3 gives the same bytes as the cached one."""
    _, python, cached = hf
    fresh = tmp_path / "tiny"
    checks.build_model(python, fresh)

    def files(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
        }

    assert files(fresh) == files(cached)
    assert (fresh / "model.safetensors").stat().st_size > 1_000_000
