"""Command-line and ini options, validated once into a frozen Settings.

Import-light on purpose (standard library and pytest only): pytest loads the
plugin in every session of an environment where it is installed, also when
``--vlmhb-config`` is not given.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .numbers import finite_float, in_range, parse_fraction
from .settings import Settings

#: The largest timeout accepted (seconds): one week. Beyond it is a typo, and
#: an unbounded wait is what a timeout exists to prevent.
MAX_TIMEOUT_S = 7 * 24 * 3600.0


def _positive_int(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"expected int, got {text!r}") from None
    if value < 1:
        raise ValueError(f"must be >= 1, got {text!r}")
    return value


def _timeout(text: str) -> float:
    return in_range(finite_float(text), low=0.0, low_open=True, high=MAX_TIMEOUT_S)


def _non_negative(text: str) -> float:
    return in_range(finite_float(text), low=0.0)


@dataclass(frozen=True)
class Option:
    """One ``--vlmhb-<name>`` option (ini ``vlmhb_<name>``)."""

    name: str
    convert: Callable[[str], Any]
    default: Any
    help: str
    #: For paths: "file" (must not be a directory) or "dir"; None for other kinds.
    path_kind: str | None = None

    @property
    def dest(self) -> str:
        return "vlmhb_" + self.name.replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option(
        "config", Path, None, "user_config.csv listing the cases (model x task x backend)", "file"
    ),
    Option(
        "output",
        Path,
        Path("vlmhb-results"),
        "directory for report.md, answers.csv, metrics.csv",
        "dir",
    ),
    Option("limit", _positive_int, None, "at most N samples per case (N >= 1)"),
    Option(
        "cache",
        Path,
        None,
        "cache for venvs, built models and generated data "
        "(env VLMHB_CACHE; default: the user cache dir)",
        "dir",
    ),
    Option("models", Path, None, "models.csv (default: next to the config)", "file"),
    Option("tasks", Path, None, "tasks.csv (default: next to the config)", "file"),
    Option("startup-timeout", _timeout, 900.0, "seconds a server may take to become healthy (> 0)"),
    Option("request-timeout", _timeout, 300.0, "seconds one request may take (> 0)"),
    Option(
        "gpus-per-worker",
        _positive_int,
        None,
        "give each xdist worker its own N GPUs: servers it starts see "
        "CUDA_VISIBLE_DEVICES = its share",
    ),
    Option(
        "baseline",
        Path,
        None,
        "metrics.csv of an earlier run: report deltas, gate regressions",
        "file",
    ),
    Option(
        "max-score-drop",
        _non_negative,
        None,
        "with a baseline: gate a score drop larger than this (absolute, e.g. 0.02)",
    ),
    Option(
        "max-latency-increase",
        parse_fraction,
        None,
        "with a baseline: gate a latency percentile rising more than this (e.g. 10%)",
    ),
)


def register(parser: pytest.Parser) -> None:
    group = parser.getgroup("vlmhb", "VLMHyperBench")
    group.addoption(
        "--vlmhb-resume",
        dest="vlmhb_resume",
        action="store_true",
        default=False,
        help="reuse stored answers whose key matches; send only the rest",
    )
    group.addoption(
        "--vlmhb-rebuild-reports",
        dest="vlmhb_rebuild_reports",
        action="store_true",
        default=False,
        help="run nothing: rewrite answers.csv, metrics.csv and report.md "
        "from the results store in the output dir",
    )
    for option in OPTIONS:
        shown = f" (default: {option.default})" if option.default is not None else ""
        # argparse formats help with %: a literal percent sign must be doubled.
        text = (option.help + shown).replace("%", "%%")
        group.addoption(
            f"--vlmhb-{option.name}",
            dest=option.dest,
            default=None,
            metavar=option.name.upper(),
            help=text,
        )
        parser.addini(option.dest, help=option.help + shown, default=None)


def _convert(option: Option, raw: str, source: str, base: Path) -> Any:
    try:
        value = option.convert(raw)
    except (TypeError, ValueError) as exc:
        raise pytest.UsageError(f"{source}: {exc}") from None
    if isinstance(value, Path):
        if not str(raw).strip():
            raise pytest.UsageError(f"{source}: expected a path, got {raw!r}")
        value = (base / value.expanduser()).resolve()
        if option.path_kind == "file" and value.is_dir():
            raise pytest.UsageError(f"{source}: {value} is a directory, expected a file")
        if option.path_kind == "dir" and value.exists() and not value.is_dir():
            raise pytest.UsageError(f"{source}: {value} is a file, expected a directory")
    return value


def _user_cache(config: pytest.Config) -> str:
    """The user cache dir; an inactive plugin skips platformdirs (40 ms to import)."""
    if not is_active(config):
        return os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "vlmhb")
    import platformdirs

    return platformdirs.user_cache_dir("vlmhb")


def is_active(config: pytest.Config) -> bool:
    """Whether a config or a models.csv was given (CLI or ini): the plugin does nothing
    otherwise (a models.csv alone serves users' own ``vlmhb_model`` tests)."""
    return any(
        config.getoption(dest) or config.getini(dest) for dest in ("vlmhb_config", "vlmhb_models")
    )


def settings_from(config: pytest.Config) -> Settings:
    """CLI -> ini -> environment -> default; relative ini paths resolve against rootdir."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw = config.getoption(option.dest)
        base, source = Path.cwd(), f"--vlmhb-{option.name}"
        if raw is None and config.getini(option.dest):
            raw = config.getini(option.dest)
            base, source = config.rootpath, f"ini option {option.dest} (--vlmhb-{option.name})"
        if raw is None and option.name == "cache":
            raw, source = os.environ.get("VLMHB_CACHE") or _user_cache(config), "VLMHB_CACHE"
        value = option.default if raw is None else _convert(option, str(raw), source, base)
        if isinstance(value, Path) and raw is None:
            value = (base / value).resolve()
        values[option.dest.removeprefix("vlmhb_")] = value
    workerinput = getattr(config, "workerinput", None)
    worker_index = int(str(workerinput["workerid"]).removeprefix("gw")) if workerinput else 0
    return Settings(
        **values,
        resume=bool(config.getoption("vlmhb_resume")),
        rebuild_reports=bool(config.getoption("vlmhb_rebuild_reports")),
        worker_index=worker_index,
    )
