"""``--vlmhb-shard I/N``: split the cases by server group across CI jobs or nodes.

The split is computed from the CSVs alone, before any manifest is resolved,
so a shard never downloads or materialises another shard's datasets:

1. **Groups.** Cases are grouped as they share a server: model x backend x
   launcher as configured, where ``auto`` and the launchers it may pick
   (``docker``, ``local``) count as one launcher, so a group stays whole
   whatever ``auto`` resolves to on each node.
2. **Work.** A case's expected work is ``samples x (max_tokens +``
   :data:`PROMPT_COST` ``)``: generated tokens bound decode time, and the
   constant stands for a sample's prompt and image. Samples are counted
   without fetching data: the lines of a local JSONL manifest, a preset's
   published split size, :data:`SYNTHETIC_SAMPLES` for the built-in
   documents, :data:`DEFAULT_SAMPLES` for an ``hf:``/``parquet:`` source
   without a preset (or a manifest that cannot be read); capped by the
   case's ``limit``. A group's work is its cases' sum.
3. **Assignment.** Greedy longest-processing-time: groups in order of
   decreasing work (ties: group key), each to the shard with the least work
   so far (ties: the lowest shard number). Every shard computes the same
   assignment from the same CSVs; more shards than groups leaves some empty.

The config hash (:func:`config_hash`) says whether shards ran the same
configuration: a merge refuses stores whose hashes differ.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .config import Case, TaskSpec
from .launchers.auto import DOCKER, LOCAL
from .launchers.base import AUTO
from .settings import Settings
from .store import RunInfo, RunLine
from .tasks.hub import is_dataset_source
from .tasks.presets import load_preset, preset_of_data
from .tasks.synthetic import SYNTHETIC_VERSION
from .tasks.synthetic_pdf import MULTIPAGE_VERSION

if TYPE_CHECKING:
    from .cases import Plan

#: A sample's prompt and image, counted as this many generated tokens.
PROMPT_COST = 32
#: Samples per task type of ``builtin:synthetic-docs`` (``synthetic_docs_dir``'s default).
SYNTHETIC_SAMPLES = 12
#: Samples assumed for a source whose size is unknown without fetching it.
DEFAULT_SAMPLES = 100
#: Version of the hashed identity (bump when :func:`config_hash`'s inputs change).
HASH_FORMAT = 1
_AUTO_PICKS = frozenset({AUTO, DOCKER, LOCAL})


def split_key(model: str, backend: str, launcher: str) -> str:
    """The group a case is split with: ``model@backend@launcher``, with ``auto``,
    ``docker`` and ``local`` as one launcher (``auto`` picks one of the two)."""
    return f"{model}@{backend}@{AUTO if launcher in _AUTO_PICKS else launcher}"


def _manifest_lines(path: Path) -> int | None:
    try:
        with path.open("rb") as lines:
            return sum(1 for line in lines if line.strip())
    except OSError:
        return None


def estimated_samples(task: TaskSpec) -> int:
    """A task's sample count, known without fetching or materialising its data."""
    data = task.data
    preset_name = preset_of_data(data) or (task.preset if is_dataset_source(data) else None)
    if preset_name is not None:
        size = getattr(load_preset(preset_name), "size", None)
        return size if isinstance(size, int) and size > 0 else DEFAULT_SAMPLES
    if is_dataset_source(data):
        return DEFAULT_SAMPLES
    if data.startswith("builtin:"):
        return SYNTHETIC_SAMPLES
    path = Path(data)
    counted = _manifest_lines(path if path.is_absolute() else task.base_dir / path)
    return DEFAULT_SAMPLES if counted is None else counted


def case_work(case: Case) -> int:
    """Expected work of a case: samples (capped by its limit) x (max_tokens + prompt)."""
    samples = estimated_samples(case.task)
    if case.limit is not None:
        samples = min(samples, case.limit)
    return samples * (case.max_tokens + PROMPT_COST)


@dataclass(frozen=True)
class Group:
    """One split group: its key, its cases (ids) and their expected work."""

    key: str
    cases: tuple[str, ...]
    work: int


@dataclass(frozen=True)
class Split:
    """The assignment of every group to a shard, and which shard this run is."""

    index: int
    total: int
    groups: tuple[Group, ...]  # in assignment order
    assignment: Mapping[str, int]  # group key -> shard (1-based)

    @property
    def label(self) -> str:
        return f"{self.index}/{self.total}"

    @property
    def own(self) -> list[Group]:
        """This shard's groups."""
        return [g for g in self.groups if self.assignment[g.key] == self.index]

    def load(self, shard: int) -> int:
        """The expected work of one shard."""
        return sum(g.work for g in self.groups if self.assignment[g.key] == shard)

    def shard_of(self, key: str) -> int:
        """The shard of a group key; one no CSV case has (a user's own test) goes
        by a stable hash of the key."""
        found = self.assignment.get(key)
        return found if found is not None else 1 + zlib.crc32(key.encode()) % self.total

    def describe(self) -> str:
        """One line: this shard's groups and work, or that it is empty."""
        total = sum(g.work for g in self.groups)
        own = self.own
        if not own:
            count = len(self.groups)
            return (
                f"shard {self.label}: empty ({count} server group{'s' * (count != 1)} over "
                f"{self.total} shards): nothing to run"
            )
        return (
            f"shard {self.label}: groups {', '.join(g.key for g in own)} "
            f"(estimated work {self.load(self.index)} of {total})"
        )


def assign(works: Mapping[str, int], shards: int) -> dict[str, int]:
    """Greedy longest-processing-time: largest work first (ties: key), each to the
    least loaded shard (ties: lowest number). Deterministic."""
    loads = [0] * shards
    out: dict[str, int] = {}
    for key in sorted(works, key=lambda k: (-works[k], k)):
        target = min(range(shards), key=lambda i: (loads[i], i))
        loads[target] += works[key]
        out[key] = target + 1
    return out


def split_cases(cases: Sequence[Case], index: int, total: int) -> Split:
    """Group ``cases`` (launchers as configured, not yet resolved) and assign the groups."""
    members: dict[str, list[Case]] = {}
    for case in cases:
        members.setdefault(split_key(case.model.name, case.backend, case.launcher), []).append(case)
    works = {key: sum(case_work(c) for c in group) for key, group in members.items()}
    assignment = assign(works, total)
    groups = tuple(
        Group(key, tuple(c.id for c in members[key]), works[key])
        for key in sorted(works, key=lambda k: (-works[k], k))
    )
    return Split(index, total, groups, assignment)


def user_tests_elsewhere(
    items: Sequence[pytest.Item], plan: Plan, split: Split
) -> tuple[Plan, list[pytest.Item]]:
    """Users' own ``vlmhb_model`` tests of other shards (their group's shard, see
    :meth:`Split.shard_of`), and the plan without their cases."""
    from .collect import USER_CASE

    elsewhere: list[pytest.Item] = []
    away: set[str] = set()
    for item in items:
        case_id = item.stash.get(USER_CASE, None)
        if case_id is None:
            continue
        case = plan.case(case_id)
        if split.shard_of(split_key(case.model.name, case.backend, case.launcher)) != split.index:
            elsewhere.append(item)
            away.add(case_id)
    if not away:
        return plan, []
    kept = tuple(c for c in plan.cases if c.id not in away)
    samples = {c.id: plan.samples[c.id] for c in kept}
    return replace(plan, cases=kept, samples=samples), elsewhere


def _sha256(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def data_identity(task: TaskSpec) -> str:
    """What identifies a task's data without fetching it: a local manifest's bytes,
    else the source as written with its preset's version, or the synthetic set's."""
    data = task.data
    preset_name = preset_of_data(data) or (task.preset if is_dataset_source(data) else None)
    if preset_name is not None:
        return f"{data}|{load_preset(preset_name).key}"
    if is_dataset_source(data):
        return data
    if data.startswith("builtin:"):
        return f"{data}|v{SYNTHETIC_VERSION}.{MULTIPAGE_VERSION}"
    path = Path(data)
    digest = _sha256(path if path.is_absolute() else task.base_dir / path)
    return f"sha256:{digest}"


def config_hash(
    settings: Settings, files: Iterable[tuple[str, Path | None]], cases: Sequence[Case]
) -> str:
    """A hash of everything that changes the answers: the CSV files' bytes, each used
    task's data identity, ``--vlmhb-limit`` and ``--vlmhb-launcher``. No absolute
    path goes in, so every CI job and node computes the same value."""
    identity = {
        "format": HASH_FORMAT,
        "files": {name: _sha256(path) for name, path in files},
        "data": {c.task.name: data_identity(c.task) for c in sorted(cases, key=lambda c: c.id)},
        "limit": settings.limit,
        "launcher": settings.launcher,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def run_info_entry(
    cases: Sequence[Case], split: Split | None, digest: str, *, merged: bool = False
) -> RunLine:
    """The store line naming this run: shard, config hash, its cases' launchers."""
    info: RunInfo = {
        "shard_index": split.index if split else 1,
        "shard_total": split.total if split else 1,
        "config_hash": digest,
        "cases": {c.id: c.launcher for c in cases},
        "mode": "merge" if merged else "run",
        "version": version("pytest-vlmhb"),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    return {"run_info": info}
