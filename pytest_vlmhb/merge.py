"""``--vlmhb-merge DIR``: one set of outputs from the results stores of all shards.

Every check runs before anything is written (a refusal is a usage error,
exit 4): each DIR has a store with a run record, all ran the configuration
of this merge's ``--vlmhb-config`` (same config hash) split the same way,
no case was run by two shards, and no shard is missing. The merged outputs
are then rebuilt from the stores as ``--vlmhb-rebuild-reports`` rebuilds
one run's (:mod:`rebuild`), with the gates re-checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .cases import Draft, Plan, finish_plan, load_draft
from .errors import ConfigError
from .rebuild import results_from_stores
from .report import RunResults
from .settings import Settings
from .store import (
    STORE_DIR,
    ResultStore,
    RunInfo,
    StoreContents,
    case_info_entry,
    load_store,
    record_key,
)


@dataclass(frozen=True)
class ShardStore:
    """One ``--vlmhb-merge`` dir: its store's contents and run record."""

    path: Path
    contents: StoreContents
    info: RunInfo

    @property
    def label(self) -> str:
        return f"{self.info['shard_index']}/{self.info['shard_total']}"


def read_shard(path: Path) -> ShardStore:
    """A shard's output dir; ConfigError when it has no store or no run record."""
    store = path / STORE_DIR
    if not any(p.is_file() for p in store.glob("*.jsonl")):
        raise ConfigError(f"--vlmhb-merge {path}: no results store ({store}/*.jsonl)")
    contents = load_store(path)
    if contents.run_info is None:
        raise ConfigError(
            f"--vlmhb-merge {path}: the results store has no run record (run_info); "
            "it was written by an earlier version of pytest-vlmhb"
        )
    return ShardStore(path, contents, contents.run_info)


def check_shards(shards: Sequence[ShardStore], draft: Draft) -> dict[str, ShardStore]:
    """Which shard ran each case; ConfigError when the shards do not add up to
    one run of the draft's configuration."""
    for shard in shards:
        if shard.info["config_hash"] != draft.config_hash:
            raise ConfigError(
                f"--vlmhb-merge {shard.path} (shard {shard.label}) ran another configuration: "
                f"config hash {shard.info['config_hash']}, while this merge's --vlmhb-config "
                f"gives {draft.config_hash} (the CSV files, a local manifest, --vlmhb-limit "
                "or --vlmhb-launcher differ)"
            )
    totals = sorted({s.info["shard_total"] for s in shards})
    if len(totals) > 1:
        listed = ", ".join(f"{s.path} ran {s.label}" for s in shards)
        raise ConfigError(f"--vlmhb-merge: shards of different splits ({listed})")
    by_index: dict[int, ShardStore] = {}
    owner: dict[str, ShardStore] = {}
    for shard in shards:
        first = by_index.setdefault(shard.info["shard_index"], shard)
        if first is not shard:
            raise ConfigError(
                f"--vlmhb-merge: shard {shard.label} given twice ({first.path} and {shard.path})"
            )
        for case_id in shard.info["cases"]:
            other = owner.setdefault(case_id, shard)
            if other is not shard:
                raise ConfigError(
                    f"--vlmhb-merge: case {case_id!r} is in two shards: {other.path} "
                    f"(shard {other.label}) and {shard.path} (shard {shard.label})"
                )
    total = totals[0]
    missing = [i for i in range(1, total + 1) if i not in by_index]
    if missing:
        given = ", ".join(f"{s.label} from {s.path}" for s in shards)
        raise ConfigError(
            f"--vlmhb-merge: {', '.join(f'shard {i}/{total}' for i in missing)} missing "
            f"(given: {given})"
        )
    unrun = [c.id for c in draft.cases if c.id not in owner]
    if unrun:
        raise ConfigError(
            f"--vlmhb-merge: no shard ran the case{'s' * (len(unrun) > 1)} "
            f"{', '.join(map(repr, unrun))}"
        )
    return owner


def merged_plan(settings: Settings) -> Plan:
    """The whole configuration's plan, each case with the launcher its shard ran
    it on; ConfigError when the shards cannot be merged."""
    shards = [read_shard(path) for path in settings.merge]
    draft = load_draft(settings)
    owner = check_shards(shards, draft)
    launchers = {c.id: owner[c.id].info["cases"][c.id] for c in draft.cases}
    return finish_plan(settings, draft, launchers)


def merged_results(plan: Plan, dirs: Sequence[Path]) -> tuple[RunResults, list[str]]:
    """Each case's records from the store of the shard that ran it (checked by
    :func:`merged_plan`), the gates re-checked; and the skipped store lines."""
    stores = {}
    skipped: list[str] = []
    for path in dirs:
        shard = read_shard(path)
        skipped += shard.contents.skipped
        for case_id in shard.info["cases"]:
            stores[case_id] = shard.contents
    return results_from_stores(plan, stores, skipped), skipped


def incomplete_notes(plan: Plan, results: RunResults) -> list[str]:
    """One note per case with fewer stored records than samples."""
    notes = []
    for case in plan.cases:
        have, want = len(results.records.get(case.id, [])), len(plan.samples[case.id])
        if have < want:
            notes.append(f"merge: case {case.id} has {have} of {want} samples in its shard's store")
    return notes


def store_merged(output: Path, plan: Plan, results: RunResults) -> None:
    """The merged records and case figures, as ``results/samples-merged.jsonl``."""
    store = ResultStore(output, "merged")
    try:
        for case in plan.cases:
            for record in results.records.get(case.id, []):
                key = record_key(case, plan.sample(case.id, record["sample_id"]))
                store.append({**record, "key": key})
            if case.id in results.case_info:
                store.append(case_info_entry(case.id, results.case_info[case.id]))
    finally:
        store.close()
