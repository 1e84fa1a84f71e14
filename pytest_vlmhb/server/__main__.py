"""CLI: ``python -m pytest_vlmhb.server --model DIR [--port 8000] ...``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import DEFAULT_MODEL_CLASS


def json_object(value: str) -> dict[str, Any]:
    """argparse type: a JSON object (``{"do_image_splitting": false}``)."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {value!r}") from exc
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(
            f"must be a JSON object, got {type(parsed).__name__}: {value!r}"
        )
    return parsed


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return number


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
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run the model folder's own Python code (config/processor/model auto_map)",
    )
    parser.add_argument(
        "--model-class",
        default=DEFAULT_MODEL_CLASS,
        help=f"the transformers class that loads the model (default {DEFAULT_MODEL_CLASS})",
    )
    parser.add_argument(
        "--mm-processor-kwargs",
        type=json_object,
        default=None,
        metavar="JSON",
        help="a JSON object for the processor, at load and on every call (as vLLM's)",
    )
    parser.add_argument(
        "--chat-template",
        metavar="PATH",
        help="a Jinja chat template file (or the template itself) instead of the model's",
    )
    parser.add_argument(
        "--max-model-len",
        type=positive_int,
        metavar="N",
        help="prompt plus max_tokens above N is a 400 (default: the model's positions)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Load the model, then serve until interrupted."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if not args.model.is_dir():
        print(f"error: --model {args.model} is not a directory", file=sys.stderr)
        return 2
    from .templates import load_chat_template

    try:
        chat_template = load_chat_template(args.chat_template) if args.chat_template else None
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    from .app import API_KEY_ENV, create_app
    from .engine import Engine, resolve_model_class

    try:
        resolve_model_class(args.model_class)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log = logging.getLogger("pytest_vlmhb.server")
    started = time.perf_counter()
    try:
        engine = Engine(
            args.model,
            served_model_name=args.served_model_name or args.model.resolve().name,
            dtype=args.dtype,
            device=args.device,
            max_new_tokens_limit=args.max_new_tokens_limit,
            max_images=args.max_images_per_prompt,
            trust_remote_code=args.trust_remote_code,
            model_class=args.model_class,
            mm_processor_kwargs=args.mm_processor_kwargs,
            chat_template=chat_template,
            max_model_len=args.max_model_len,
        )
    except Exception:
        log.exception("cannot load the model in %s", args.model)
        return 1
    log.info(
        "loaded %s on %s (%s) in %.1f s",
        args.model,
        engine.device,
        engine.dtype,
        time.perf_counter() - started,
    )
    log.info(
        "max_model_len %d, model class %s, trust_remote_code %s, mm_processor_kwargs %s",
        engine.max_model_len,
        args.model_class,
        args.trust_remote_code,
        json.dumps(engine.mm_processor_kwargs),
    )
    api_key = os.environ.get(API_KEY_ENV) or None
    app = create_app(engine, api_key)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
