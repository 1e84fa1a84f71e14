"""``hf:`` and ``parquet:`` data sources, opened through the ``datasets`` library.

``hf:<repo>[:<config>]@<split>[#<revision>]`` loads from the Hugging Face hub,
or from the local HF cache when offline (``HF_HUB_OFFLINE=1``); ``HF_TOKEN``
is read from the environment for gated sets and never written anywhere.
``parquet:<path>[@<split>]`` is a local copy in the same layout: one parquet
file, or a folder whose files are named by split as on the hub
(``validation-00000-of-00001.parquet``, or a ``<config>/`` subfolder of such
files, as a downloaded hub snapshot has). Both go through
``datasets.load_dataset`` and come back as a memory-mapped Arrow table, so a
split is never held in memory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

HF_PREFIX = "hf:"
PARQUET_PREFIX = "parquet:"
INSTALL_HINT = "pip install 'pytest-vlmhb[datasets]'"

_HF = re.compile(
    r"^hf:(?P<repo>[^:@#\s]+)(?::(?P<config>[^@#\s]+))?@(?P<split>[^#\s]+)"
    r"(?:#(?P<revision>\S+))?$"
)
_PARQUET_SPLIT = re.compile(r"^(?P<path>.+?)@(?P<split>[A-Za-z0-9_.\-\[\]:%]+)$")


class HubUnreachable(ConfigError):
    """A hub dataset that is neither reachable nor in the local HF cache."""


def is_dataset_source(data: str) -> bool:
    return data.startswith((HF_PREFIX, PARQUET_PREFIX))


@dataclass(frozen=True)
class DataSource:
    """One split of a hub dataset or of a local parquet copy."""

    kind: str  # "hf" or "parquet"
    location: str  # repo id, or an absolute path
    config: str | None
    split: str | None
    revision: str | None = None

    @property
    def label(self) -> str:
        """How errors name the dataset: ``lmms-lab/DocVQA (config DocVQA)``."""
        config = f" (config {self.config})" if self.config else ""
        revision = f" at revision {self.revision}" if self.revision else ""
        return f"{self.location}{config}{revision}"

    def with_defaults(self, config: str | None, split: str) -> DataSource:
        """This source with a preset's config and split where it names none."""
        return DataSource(
            self.kind, self.location, self.config or config, self.split or split, self.revision
        )


def parse_source(data: str, base_dir: Path) -> DataSource:
    """A tasks.csv ``data`` cell -> DataSource (ConfigError on a malformed one)."""
    if data.startswith(HF_PREFIX):
        match = _HF.match(data)
        if match is None:
            raise ConfigError(
                f"malformed hub source {data!r}; expected "
                "hf:<repo>[:<config>]@<split>[#<revision>], e.g. "
                "hf:lmms-lab/DocVQA:DocVQA@validation",
                column="data",
            )
        return DataSource("hf", match["repo"], match["config"], match["split"], match["revision"])
    text = data.removeprefix(PARQUET_PREFIX)
    split = None
    match = _PARQUET_SPLIT.match(text)
    if match is not None and not (base_dir / text).exists():
        text, split = match["path"], match["split"]
    path = Path(text).expanduser()
    path = path if path.is_absolute() else base_dir / path
    return DataSource("parquet", str(path.resolve()), None, split)


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            f"hf: and parquet: data sources need the 'datasets' library: {INSTALL_HINT}"
        ) from None
    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()
    return datasets


def _offline(datasets: Any) -> bool:
    return bool(getattr(datasets.config, "HF_HUB_OFFLINE", False))


def local_copy_hint(source: DataSource) -> str:
    """How to provide a local copy of a hub dataset."""
    folder = f"DIR/{source.config}" if source.config else "DIR"
    return (
        f"download it where the hub is reachable (e.g. `hf download {source.location} "
        f"--repo-type dataset --local-dir DIR`), copy DIR here and set the task's "
        f"data to parquet:{folder} (keeping its preset), or fill the HF cache "
        "(HF_HOME) there and run with HF_HUB_OFFLINE=1"
    )


def _parquet_kwargs(source: DataSource) -> dict[str, Any]:
    path = Path(source.location)
    if path.is_file():
        return {"data_files": {source.split or "train": [str(path)]}}
    if not path.is_dir():
        raise ConfigError(f"parquet source {path} does not exist")
    if source.config and (path / source.config).is_dir():
        path = path / source.config
    if not any(path.rglob("*.parquet")):
        raise ConfigError(f"parquet source {path} holds no .parquet file")
    return {"data_dir": str(path)}


def open_split(source: DataSource) -> Any:
    """The split as a ``datasets.Dataset``; ConfigError naming dataset and split."""
    datasets = _datasets()
    split = source.split or "train"
    where = f"{source.label}, split {split!r}"
    try:
        if source.kind == "hf":
            token = os.environ.get("HF_TOKEN") or None
            return datasets.load_dataset(
                source.location, source.config, split=split, revision=source.revision, token=token
            )
        return datasets.load_dataset("parquet", split=split, **_parquet_kwargs(source))
    except ConfigError:
        raise
    except ValueError as exc:
        known = re.search(r"Should be one of (\[.*\])", str(exc))
        if "split" in str(exc).lower():
            allowed = re.findall(r"'([^']+)'", known[1]) if known else None
            raise ConfigError(f"{where}: no such split ({exc})", allowed=allowed) from None
        raise ConfigError(f"{where}: {type(exc).__name__}: {exc}") from None
    except (ConnectionError, TimeoutError) as exc:
        raise HubUnreachable(_unreachable(source, where, exc, datasets)) from None
    except Exception as exc:
        if source.kind == "hf" and _is_network(exc):
            raise HubUnreachable(_unreachable(source, where, exc, datasets)) from None
        raise ConfigError(f"{where} cannot be loaded: {type(exc).__name__}: {exc}") from None


def _is_network(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(
        names
        & {
            "OfflineModeIsEnabled",
            "LocalEntryNotFoundError",
            "HTTPError",
            "ConnectError",
            "DatasetNotFoundError",
            "HfHubHTTPError",
        }
    )


def _unreachable(source: DataSource, where: str, exc: BaseException, datasets: Any) -> str:
    state = "offline (HF_HUB_OFFLINE is set)" if _offline(datasets) else "the hub cannot be reached"
    gated = "" if os.environ.get("HF_TOKEN") else "; a gated set also needs HF_TOKEN"
    return (
        f"dataset {where} is not in the local HF cache and {state} "
        f"({type(exc).__name__}: {exc}){gated}. To use it, {local_copy_hint(source)}"
    )
