"""Deployment parity: how often a case answers as the case it names in
``parity_with`` does, on the samples both ran, and the cost of a case.

``agreement`` is the share of shared samples (by sample id) whose scored
answers are equal; an error on either side counts as a disagreement. Only
the controller sees every case's records (xdist may run the two cases on
different workers), so it computes the figure, and checks ``min_agreement`` /
``max_agreement`` thresholds, when it writes the outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .records import Record

#: metrics.csv columns only the controller can compute (they need other cases).
CONTROLLER_COLUMNS = frozenset({"agreement"})


def agreement(mine: Sequence[Record], theirs: Sequence[Record]) -> float | None:
    """The share of the samples both cases ran whose answers are equal (errors
    disagree); None when they share no sample."""
    other = {record["sample_id"]: record for record in theirs}
    shared = [
        (record, other[record["sample_id"]]) for record in mine if record["sample_id"] in other
    ]
    if not shared:
        return None
    same = sum(
        1 for a, b in shared if not a["error"] and not b["error"] and a["answer"] == b["answer"]
    )
    return round(same / len(shared), 6)


def agreements(
    parity: Mapping[str, str | None], records: Mapping[str, Sequence[Record]]
) -> dict[str, float | None]:
    """``agreement`` per case id that names a ``parity_with`` case."""
    return {
        case_id: agreement(records.get(case_id, []), records.get(other, []))
        for case_id, other in parity.items()
        if other is not None
    }


def gpu_count(gpus: str | None) -> int:
    """GPUs a server held from the models.csv ``gpus`` cell (``all`` counts the
    machine's; 0 when none)."""
    if not gpus:
        return 0
    if gpus.startswith("device="):
        return len(gpus.removeprefix("device=").split(","))
    if gpus == "all":
        return visible_gpu_count()
    return int(gpus)


def visible_gpu_count() -> int:
    """NVIDIA GPUs this machine shows (``nvidia-smi -L``); 0 without one."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listed = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in listed.stdout.splitlines() if line.startswith("GPU "))


def wall_seconds(records: Sequence[Record]) -> float | None:
    """From the first request sent to the last answer finished (None: unknown)."""
    sent = [r["sent_at"] for r in records if r["sent_at"] is not None]
    done = [r["finished_at"] for r in records if r["finished_at"] is not None]
    if not sent or not done:
        return None
    return max(0.0, max(done) - min(sent))


def cost_per_1k_samples(
    gpu_hour_cost: float | None, gpus: int, wall_s: float | None, samples: int
) -> float | None:
    """What 1,000 samples cost at ``gpu_hour_cost`` per GPU-hour for ``gpus`` GPUs
    held for ``wall_s`` seconds over ``samples`` samples; None when unknown or
    when the server held no GPU."""
    if gpu_hour_cost is None or not gpus or not wall_s or not samples:
        return None
    return round(gpu_hour_cost * gpus * (wall_s / 3600.0) / samples * 1000.0, 6)
