"""CLI: ``python -m pytest_vlmhb.server --model DIR [--port 8000] ...``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m pytest_vlmhb.server", description=__doc__)
    parser.add_argument("--model", required=True, type=Path, help="model directory")
    parser.add_argument("--served-model-name", help="name in the API (default: the dir name)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16", "float16"],
        default="auto",
        help="auto: float32 on CPU; on GPU the checkpoint's dtype (float32 -> bfloat16)",
    )
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, ...")
    parser.add_argument("--max-new-tokens-limit", type=int, default=4096)
    parser.add_argument("--max-images-per-prompt", type=int, default=8)
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Load the model, then serve until interrupted."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if not args.model.is_dir():
        print(f"error: --model {args.model} is not a directory", file=sys.stderr)
        return 2
    import uvicorn

    from .app import API_KEY_ENV, create_app
    from .engine import Engine

    started = time.perf_counter()
    engine = Engine(
        args.model,
        served_model_name=args.served_model_name or args.model.resolve().name,
        dtype=args.dtype,
        device=args.device,
        max_new_tokens_limit=args.max_new_tokens_limit,
        max_images=args.max_images_per_prompt,
    )
    logging.getLogger("pytest_vlmhb.server").info(
        "loaded %s on %s (%s) in %.1f s",
        args.model,
        engine.device,
        engine.dtype,
        time.perf_counter() - started,
    )
    api_key = os.environ.get(API_KEY_ENV) or None
    app = create_app(engine, api_key)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
