"""Command-line and ini options, validated once into a frozen Settings."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import platformdirs
import pytest

from .baseline import parse_fraction
from .config import Settings

# (name, converter, default, help); CLI --vlmhb-<name>, ini vlmhb_<name>
_OPTIONS: list[tuple[str, Callable[[str], Any], Any, str]] = [
    ("config", Path, None, "user_config.csv listing the cases (model x task x backend)"),
    ("output", Path, Path("vlmhb-results"), "directory for report.md, answers.csv, metrics.csv"),
    ("limit", int, None, "at most N samples per case"),
    ("cache", Path, None, "cache for venvs, built models and generated data "
                          "(env VLMHB_CACHE; default: the user cache dir)"),
    ("models", Path, None, "models.csv (default: next to the config)"),
    ("tasks", Path, None, "tasks.csv (default: next to the config)"),
    ("startup-timeout", float, 900.0, "seconds a server may take to become healthy"),
    ("request-timeout", float, 300.0, "seconds one request may take"),
    ("gpus-per-worker", int, None, "give each xdist worker its own N GPUs: servers it starts "
                                   "see CUDA_VISIBLE_DEVICES = its share"),
    ("baseline", Path, None, "metrics.csv of an earlier run: report deltas, gate regressions"),
    ("max-score-drop", float, None, "with a baseline: gate a score drop larger than this "
                                    "(absolute, e.g. 0.02)"),
    ("max-latency-increase", parse_fraction, None, "with a baseline: gate a latency "
                                                   "percentile rising more than this "
                                                   "(e.g. 10%)"),
]


def register(parser: pytest.Parser) -> None:
    group = parser.getgroup("vlmhb", "VLMHyperBench")
    group.addoption("--vlmhb-resume", dest="vlmhb_resume", action="store_true", default=False,
                    help="reuse stored answers whose key matches; send only the rest")
    group.addoption("--vlmhb-rebuild-reports", dest="vlmhb_rebuild_reports",
                    action="store_true", default=False,
                    help="run nothing: rewrite answers.csv, metrics.csv and report.md "
                         "from the results store in the output dir")
    for name, _kind, default, help_text in _OPTIONS:
        dest = "vlmhb_" + name.replace("-", "_")
        shown = f" (default: {default})" if default is not None else ""
        group.addoption(f"--vlmhb-{name}", dest=dest, default=None, metavar=name.upper(),
                        help=help_text + shown)
        parser.addini(dest, help=help_text, default=None)


def _convert(name: str, kind: Callable[[str], Any], raw: str) -> Any:
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        expected = {"parse_fraction": "a fraction or percentage such as 0.1 or 10%"}.get(
            kind.__name__, kind.__name__)
        raise pytest.UsageError(f"--vlmhb-{name}: expected {expected}, got {raw!r}") from None
    if isinstance(value, (int, float)) and value < 0:
        raise pytest.UsageError(f"--vlmhb-{name}: must be >= 0, got {raw!r}")
    return value


def settings_from(config: pytest.Config) -> Settings:
    """CLI -> ini -> environment -> default; relative ini paths resolve against rootdir."""
    values: dict[str, Any] = {}
    for name, kind, default, _ in _OPTIONS:
        dest = "vlmhb_" + name.replace("-", "_")
        raw = config.getoption(dest)
        base = Path.cwd()
        if raw is None and config.getini(dest):
            raw = config.getini(dest)
            base = config.rootpath
        if raw is None and name == "cache":
            raw = os.environ.get("VLMHB_CACHE") or platformdirs.user_cache_dir("vlmhb")
        value = default if raw is None else _convert(name, kind, str(raw))
        if isinstance(value, Path):
            value = (base / value.expanduser()).resolve()
        values[dest.removeprefix("vlmhb_")] = value
    workerinput = getattr(config, "workerinput", None)
    worker_index = int(str(workerinput["workerid"]).removeprefix("gw")) if workerinput else 0
    return Settings(**values, resume=bool(config.getoption("vlmhb_resume")),
                    rebuild_reports=bool(config.getoption("vlmhb_rebuild_reports")),
                    worker_index=worker_index)
