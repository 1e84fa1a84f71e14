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


def _level(text: str) -> float:
    """A test's level: a finite number strictly between 0 and 1."""
    value = finite_float(text)
    if not 0.0 < value < 1.0:
        raise ValueError(f"must be > 0 and < 1 (e.g. 0.05), got {value:g}")
    return value


def parse_shard(text: str) -> tuple[int, int]:
    """``2/3`` -> (2, 3): shard I of N, 1-based, 1 <= I <= N."""
    index, slash, total = text.strip().partition("/")
    try:
        if not slash:
            raise ValueError
        i, n = int(index), int(total)
    except ValueError:
        raise ValueError(f"expected I/N such as 2/3, got {text!r}") from None
    if not 1 <= i <= n:
        raise ValueError(f"expected I/N with 1 <= I <= N (e.g. 2/3), got {text!r}")
    return i, n


def _name(text: str) -> str:
    if not text.strip():
        raise ValueError("expected a launcher name, got an empty value")
    return text.strip()


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
        "shard",
        parse_shard,
        None,
        "run shard I of N (e.g. 2/3): whole server groups, balanced by estimated work",
    ),
    Option(
        "launcher",
        _name,
        None,
        "launch every case's server with this launcher (names as in the launcher column)",
    ),
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
        "an earlier run's output dir, answers.csv or metrics.csv: report deltas, "
        "gate regressions (per-sample pairing needs the dir or its answers.csv)",
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
    Option(
        "significance",
        _level,
        None,
        "with a baseline: a regression gate fails only when a one-sided paired "
        "test over the baseline's samples rejects 'no change' at this level "
        "(0 < ALPHA < 1, e.g. 0.05)",
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
    group.addoption(
        "--vlmhb-merge",
        dest="vlmhb_merge",
        action="append",
        default=[],
        metavar="DIR",
        help="run nothing: write the outputs from these shards' output dirs "
        "(repeat it, one per shard)",
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
    settings = Settings(
        **values,
        resume=bool(config.getoption("vlmhb_resume")),
        rebuild_reports=bool(config.getoption("vlmhb_rebuild_reports")),
        worker_index=worker_index,
        merge=_merge_dirs(config.getoption("vlmhb_merge") or []),
    )
    _check_combination(settings)
    return settings


def _merge_dirs(raw: list[str]) -> tuple[Path, ...]:
    """``--vlmhb-merge`` values: existing directories, resolved against the cwd."""
    dirs = []
    for text in raw:
        if not str(text).strip():
            raise pytest.UsageError(f"--vlmhb-merge: expected a directory, got {text!r}")
        path = (Path.cwd() / Path(text).expanduser()).resolve()
        if not path.is_dir():
            what = "a file" if path.exists() else "not found"
            raise pytest.UsageError(f"--vlmhb-merge: {path} is {what}, expected a shard's dir")
        dirs.append(path)
    return tuple(dirs)


def _check_combination(settings: Settings) -> None:
    """Options that cannot go together."""
    needs_config = [
        f"--vlmhb-{name}"
        for name, given in (("shard", settings.shard), ("merge", settings.merge))
        if given
    ]
    if needs_config and settings.config is None:
        raise pytest.UsageError(
            f"{needs_config[0]} needs --vlmhb-config (the same config on every shard)"
        )
    if not settings.merge:
        return
    for name, given in (
        ("shard", settings.shard),
        ("resume", settings.resume),
        ("rebuild-reports", settings.rebuild_reports),
    ):
        if given:
            raise pytest.UsageError(
                f"--vlmhb-merge cannot go with --vlmhb-{name}: a merge runs nothing "
                "and writes the outputs from the shards' stores"
            )
    if settings.output in settings.merge:
        raise pytest.UsageError(
            f"--vlmhb-output {settings.output} is one of the --vlmhb-merge dirs; "
            "write the merged outputs to a dir of their own"
        )
