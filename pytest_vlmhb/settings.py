"""The plugin's options, validated once into a frozen Settings (no heavy imports).

Kept apart from :mod:`pytest_vlmhb.config` (pydantic) so that an inactive
plugin costs pytest next to nothing: this module imports only the standard
library.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    """The plugin's options (CLI -> ini -> env -> default), already range-checked."""

    config: Path | None
    output: Path
    limit: int | None
    cache: Path
    models: Path | None
    tasks: Path | None
    startup_timeout: float
    request_timeout: float
    resume: bool = False
    rebuild_reports: bool = False
    baseline: Path | None = None
    max_score_drop: float | None = None
    max_latency_increase: float | None = None  # a fraction: 0.1 means +10%
    #: ``--vlmhb-significance``: the level of the regression gates' paired tests.
    significance: float | None = None
    gpus_per_worker: int | None = None
    worker_index: int = 0  # xdist worker gwN -> N; 0 without xdist
    #: ``--vlmhb-shard I/N``: (I, N), 1 <= I <= N; None runs every server group.
    shard: tuple[int, int] | None = None
    #: ``--vlmhb-launcher``: the launcher of every case (None: each row's own).
    launcher: str | None = None
    #: ``--vlmhb-merge``: shard output dirs whose stores become this run's outputs.
    merge: tuple[Path, ...] = ()

    def model_copy(self, *, update: dict[str, Any]) -> Settings:
        """A copy with some fields replaced (pydantic's spelling, kept for callers)."""
        return replace(self, **update)
