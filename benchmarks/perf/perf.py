"""On-demand performance benchmark of the harness (not collected by pytest).

    python benchmarks/perf/perf.py [--rounds 5] [--prompts 256] [--out DIR]

Starts ONE vLLM CPU server with the built-in tiny model (the plugin's own
local launcher and cache), then interleaves, round after round:

1. ``vllm bench serve`` (vLLM's own load generator, run inside the vLLM venv
   through ``vllm.benchmarks.serve.add_cli_args`` + ``main``) at concurrency 16;
2. the harness (``pytest`` + the plugin, launcher=external on that server)
   at concurrency 16;
3. the harness at concurrency 1.

Every request carries one 56x56 image and a short prompt, and generates
exactly ``--output-len`` tokens (``ignore_eos``), so each does the same work.
The two runs compared go first in turn, round by round. Each ratio is the
median over the rounds of the ratio between the two runs of one round (the
ratio of the medians is shown beside it): these 2-core machines are noisy.
Finally it measures the harness's overhead per sample item against a
near-zero-latency stub endpoint, next to bare pytest running the same number
of trivial parametrised items.

Results: printed, and written to ``<out>/perf.json`` and ``<out>/perf.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from pytest_vlmhb.backends.vllm import VLLMBackend  # noqa: E402
from pytest_vlmhb.config import ModelSpec, Settings  # noqa: E402
from pytest_vlmhb.envs import clean_env  # noqa: E402
from pytest_vlmhb.launchers.local import LocalLauncher  # noqa: E402
from tests.stub_openai import StubScript, running_stub  # noqa: E402

SUITE = (REPO / "benchmarks" / "test_vlmhb.py").read_text()
# Times pytest's run loop alone (no interpreter start, plugin imports, collection).
LOOP_TIMER = (
    "import time\nimport pytest\n"
    "@pytest.hookimpl(wrapper=True)\n"
    "def pytest_runtestloop(session):\n"
    "    start = time.perf_counter()\n"
    "    try:\n        return (yield)\n"
    "    finally:\n        print(f'\\nRUNLOOP {time.perf_counter() - start:.4f}')\n"
)
BENCH = (
    "import argparse, sys\n"
    "from vllm.benchmarks.serve import add_cli_args, main\n"
    "p = argparse.ArgumentParser(); add_cli_args(p)\n"
    "main(p.parse_args(sys.argv[1:]))\n"
)


def say(message: str) -> None:
    print(f"[perf] {message}", flush=True)


def write_suite(
    root: Path, endpoint: str, n: int, concurrency: int, output_len: int, backend: str = "vllm"
) -> None:
    """A pytest suite of n one-image samples against an external endpoint."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (56, 56), (200, 200, 200)).save(data / "p.png")
    (data / "m.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "id": f"s{i}",
                    "image": "p.png",
                    "question": f"What is item {i}?",
                    "answers": ["x"],
                }
            )
            + "\n"
            for i in range(n)
        )
    )
    (root / "test_vlmhb.py").write_text(SUITE)
    (root / "conftest.py").write_text(LOOP_TIMER)
    (root / "models.csv").write_text(
        f"name,source,endpoint,served_name\ntiny,builtin:tiny-idefics3,{endpoint},tiny\n"
    )
    (root / "tasks.csv").write_text("name,type,data,prompt\nq,docvqa,data/m.jsonl,{question}\n")
    (root / "user_config.csv").write_text(
        "model,task,backend,concurrency,max_tokens,request_params\n"
        f'tiny,q,{backend},{concurrency},{output_len},"{{""ignore_eos"": true}}"\n'
    )


def run_harness(root: Path) -> dict[str, float]:
    """One pytest run of the suite; its metrics.csv row and wall time."""
    out = root / "vlmhb-results"
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--vlmhb-config=user_config.csv",
            f"--vlmhb-output={out}",
        ],
        cwd=root,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"harness run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    with (out / "metrics.csv").open() as f:
        row = next(csv.DictReader(f))
    seconds = float(re.findall(r"RUNLOOP ([\d.]+)", proc.stdout)[-1])
    return {
        "requests_per_s": float(row["requests_per_s"]),
        "ttft_p50_ms": float(row["ttft_p50_ms"]),
        "runloop_s": seconds,
        "wall_s": wall,
    }


def run_vllm_bench(
    python: str, base_url: str, model_dir: str, n: int, output_len: int, result_dir: Path
) -> dict[str, float]:
    """vllm bench serve at concurrency 16 on the same server."""
    name = f"bench-{time.time_ns()}.json"
    args = [
        "--backend",
        "openai-chat",
        "--base-url",
        base_url,
        "--endpoint",
        "/v1/chat/completions",
        "--model",
        model_dir,
        "--served-model-name",
        "tiny",
        "--tokenizer",
        model_dir,
        "--dataset-name",
        "random-mm",
        "--random-mm-bucket-config",
        "{(56, 56, 1): 1.0}",
        "--random-mm-base-items-per-request",
        "1",
        "--random-mm-limit-mm-per-prompt",
        '{"image": 1, "video": 0}',
        "--random-input-len",
        "8",
        "--random-output-len",
        str(output_len),
        "--ignore-eos",
        "--num-prompts",
        str(n),
        "--max-concurrency",
        "16",
        "--disable-tqdm",
        "--save-result",
        "--result-dir",
        str(result_dir),
        "--result-filename",
        name,
        "--percentile-metrics",
        "ttft,tpot,e2el",
    ]
    proc = subprocess.run(
        [python, "-c", BENCH, *args], capture_output=True, text=True, env=clean_env()
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"vllm bench serve failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    result = json.loads((result_dir / name).read_text())
    return {
        "requests_per_s": float(result["request_throughput"]),
        "ttft_p50_ms": float(result["median_ttft_ms"]),
    }


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def median_interval(values: list[float]) -> tuple[float, float]:
    """A distribution-free ~95% interval of the median (order statistics, normal
    approximation of the binomial); the whole range below 6 values."""
    ordered = sorted(values)
    n = len(ordered)
    k = max(0, math.floor(n / 2 - 1.96 * math.sqrt(n) / 2))
    return ordered[k], ordered[n - 1 - k]


def serve_vllm(cache: Path, out: Path) -> tuple[Any, str, str]:
    settings = Settings(
        config=None,
        output=out,
        limit=None,
        cache=cache,
        models=None,
        tasks=None,
        startup_timeout=900,
        request_timeout=300,
    )
    model = ModelSpec(
        name="tiny", source="builtin:tiny-idefics3", served_name="tiny", base_dir=REPO
    )
    server = LocalLauncher().start(VLLMBackend(), model, settings, say)
    python = server.provenance["venv"] + "/bin/python"
    return server, python, server.provenance["model_path"]


def vllm_rounds(args: argparse.Namespace, cache: Path, out: Path) -> dict[str, Any]:
    server, python, model_dir = serve_vllm(cache, out)
    results: dict[str, list[dict[str, float]]] = {
        "bench_c16": [],
        "harness_c16": [],
        "harness_c1": [],
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            c16, c1 = Path(tmp, "c16"), Path(tmp, "c1")
            write_suite(c16, server.base_url, args.prompts, 16, args.output_len)
            write_suite(c1, server.base_url, args.c1_prompts, 1, args.output_len)
            runs = {
                "bench_c16": lambda: run_vllm_bench(
                    python, server.root_url, model_dir, args.prompts, args.output_len, out
                ),
                "harness_c16": lambda: run_harness(c16),
                "harness_c1": lambda: run_harness(c1),
            }
            say("warm-up round (not counted)")
            runs["harness_c16"]()
            runs["bench_c16"]()
            for r in range(args.rounds):
                # Alternate which of the two compared runs goes first, so a drift
                # of the machine within a round favours neither.
                order = ["bench_c16", "harness_c16"] if r % 2 == 0 else ["harness_c16", "bench_c16"]
                for name in [*order, "harness_c1"]:
                    results[name].append(runs[name]())
                say(
                    f"round {r + 1}/{args.rounds}: "
                    + ", ".join(
                        f"{k} {v[-1]['requests_per_s']:.1f} req/s ttft p50 "
                        f"{v[-1]['ttft_p50_ms']:.1f} ms"
                        for k, v in results.items()
                    )
                )
    finally:
        server.stop()
    med = {
        k: {m: median(v, m) for m in ("requests_per_s", "ttft_p50_ms")} for k, v in results.items()
    }

    def per_round(a: str, b: str, m: str) -> list[float]:
        """The ratio between two runs of the same round, round by round."""
        return [x[m] / y[m] for x, y in zip(results[a], results[b], strict=True)]

    compared = {
        "harness_vs_vllm_bench_rps": ("harness_c16", "bench_c16", "requests_per_s"),
        "harness_vs_vllm_bench_ttft_p50": ("harness_c16", "bench_c16", "ttft_p50_ms"),
        "harness_c16_vs_c1_rps": ("harness_c16", "harness_c1", "requests_per_s"),
    }
    return {
        "rounds": results,
        "medians": med,
        "ratios": {k: statistics.median(per_round(*v)) for k, v in compared.items()},
        "ratio_intervals": {k: median_interval(per_round(*v)) for k, v in compared.items()},
        "ratios_of_medians": {k: med[a][m] / med[b][m] for k, (a, b, m) in compared.items()},
        "targets": {
            "harness_vs_vllm_bench_rps": ">= 0.95",
            "harness_vs_vllm_bench_ttft_p50": "within 0.95-1.05",
            "harness_c16_vs_c1_rps": ">= 4",
        },
    }


def overhead(args: argparse.Namespace) -> dict[str, Any]:
    """Items/s through pytest against a zero-latency stub, next to bare pytest."""
    n = args.overhead_items
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_stub(StubScript(default_answer="x", chunk_chars=1)) as url,
    ):
        suite = Path(tmp, "h")
        write_suite(suite, url, n, 16, 1, backend="openai")
        harness = [run_harness(suite)["runloop_s"] for _ in range(args.rounds)]
        bare = Path(tmp, "bare")
        bare.mkdir()
        (bare / "conftest.py").write_text(LOOP_TIMER)
        (bare / "test_bare.py").write_text(
            "import pytest\n"
            f"@pytest.mark.parametrize('i', range({n}))\n"
            "def test_item(i):\n    assert i >= 0\n"
        )
        bare_s = []
        for _ in range(args.rounds):
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                cwd=bare,
                capture_output=True,
                text=True,
            )
            bare_s.append(float(re.findall(r"RUNLOOP ([\d.]+)", proc.stdout)[-1]))
    h, b = statistics.median(harness), statistics.median(bare_s)
    return {
        "items": n,
        "harness_items_per_s": n / h,
        "bare_pytest_items_per_s": n / b,
        "harness_vs_bare": b / h,
        "target": "harness >= 1000 items/s",
        "harness_s": harness,
        "bare_s": bare_s,
    }


def render(result: dict[str, Any]) -> str:
    lines = ["# VLMHyperBench harness performance", ""]
    if "vllm" in result:
        v = result["vllm"]
        lines += ["| run (median over rounds) | requests/s | TTFT p50 ms |", "|---|---|---|"]
        for k, m in v["medians"].items():
            lines.append(f"| {k} | {m['requests_per_s']:.2f} | {m['ttft_p50_ms']:.2f} |")
        lines += [
            "",
            "| ratio | median of per-round ratios | its ~95% interval | "
            "ratio of medians | target |",
            "|---|---|---|---|---|",
        ]
        for k, r in v["ratios"].items():
            low, high = v["ratio_intervals"][k]
            lines.append(
                f"| {k} | {r:.3f} | {low:.3f}-{high:.3f} | "
                f"{v['ratios_of_medians'][k]:.3f} | {v['targets'][k]} |"
            )
        lines.append("")
    if "overhead" in result:
        o = result["overhead"]
        lines += [
            f"Harness overhead: {o['harness_items_per_s']:.0f} sample items/s through "
            f"pytest against a zero-latency stub ({o['items']} items; bare pytest: "
            f"{o['bare_pytest_items_per_s']:.0f} trivial items/s; ratio "
            f"{o['harness_vs_bare']:.2f}; target {o['target']}).",
            "",
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--prompts",
        type=int,
        default=256,
        help="requests per concurrency-16 run (a few seconds each)",
    )
    parser.add_argument("--c1-prompts", type=int, default=64, help="requests per concurrency-1 run")
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--overhead-items", type=int, default=2000)
    parser.add_argument("--skip-vllm", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("vlmhb-perf"))
    args = parser.parse_args()
    cache = Path(os.environ.get("VLMHB_CACHE", REPO / ".vlmhb-cache"))
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    if not args.skip_vllm:
        result["vllm"] = vllm_rounds(args, cache, out)
    result["overhead"] = overhead(args)
    (out / "perf.json").write_text(json.dumps(result, indent=2))
    text = render(result)
    (out / "perf.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
