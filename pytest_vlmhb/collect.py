"""Items: one per (case, sample) and one per (case, threshold), ordered by server."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pytest

from .cases import Plan
from .gates import GateResult, gate_result
from .outputdir import OutputError
from .parity import CONTROLLER_COLUMNS
from .records import CaseInfo, Record
from .runner import Runtime

SAMPLE_FIXTURE = "vlmhb_sample"
GATE_FIXTURE = "vlmhb_gate"

# user_properties written per sample (they reach JUnit XML as <property>)
_PROPERTIES = (
    "raw_answer",
    "ttft_ms",
    "ttfa_ms",
    "tpot_ms",
    "e2e_ms",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "finish_reason",
)


@dataclass(frozen=True)
class SampleParam:
    case_id: str
    sample_id: str


@dataclass(frozen=True)
class GateParam:
    case_id: str
    threshold: str  # e.g. "min_anls"


def parametrize(metafunc: pytest.Metafunc, plan: Plan | None) -> None:
    """Parametrize test functions that use the vlmhb fixtures."""
    names = metafunc.fixturenames
    if SAMPLE_FIXTURE in names:
        params = (
            []
            if plan is None
            else [
                pytest.param(
                    SampleParam(case.id, s.id),
                    id=f"{case.id}/{s.id}",
                    marks=pytest.mark.xdist_group(case.xdist_group),
                )
                for case in plan.cases
                for s in plan.samples[case.id]
            ]
        )
        metafunc.parametrize(SAMPLE_FIXTURE, params, indirect=True)
    if GATE_FIXTURE in names:
        params = (
            []
            if plan is None
            else [
                pytest.param(
                    GateParam(case.id, t.name),
                    id=f"{case.id}/{t.name}",
                    marks=pytest.mark.xdist_group(case.xdist_group),
                )
                for case in plan.cases
                for t in case.thresholds
                # the controller checks these after every case ran (wherever xdist ran it)
                if t.column not in CONTROLLER_COLUMNS
            ]
        )
        metafunc.parametrize(GATE_FIXTURE, params, indirect=True)


def _param(item: pytest.Item) -> SampleParam | GateParam | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    value = callspec.params.get(SAMPLE_FIXTURE, callspec.params.get(GATE_FIXTURE))
    return value if isinstance(value, (SampleParam, GateParam)) else None


#: The case id of a user test marked ``vlmhb_model`` (set at collection).
USER_CASE = pytest.StashKey[str]()


def _case_and_kind(item: pytest.Item) -> tuple[str, int] | None:
    """(case id, 0 sample / 1 user test / 2 gate) of a vlmhb item; None for others."""
    param = _param(item)
    if param is not None:
        return param.case_id, 2 if isinstance(param, GateParam) else 0
    case_id = item.stash.get(USER_CASE, None)
    return (case_id, 1) if case_id is not None else None


def split_unparametrized(
    items: Sequence[pytest.Item],
) -> tuple[list[pytest.Item], list[pytest.Item]]:
    """(items to keep, vlmhb tests that got an empty parameter set)."""
    kept: list[pytest.Item] = []
    unused: list[pytest.Item] = []
    for item in items:
        uses = {SAMPLE_FIXTURE, GATE_FIXTURE} & set(getattr(item, "fixturenames", ()))
        (unused if uses and _param(item) is None else kept).append(item)
    return kept, unused


def ordered(items: Sequence[pytest.Item], plan: Plan) -> list[pytest.Item]:
    """Group vlmhb items by server, then case, samples (and user tests) before gates.

    Other items keep their places; vlmhb items are sorted within the slots
    they occupied, so each server starts once per process.
    """
    server_rank: dict[str, int] = {}
    for case in plan.cases:
        server_rank.setdefault(case.server_key, len(server_rank))
    case_by_id = {c.id: c for c in plan.cases}

    def key(pair: tuple[int, pytest.Item]) -> tuple[int, int, int, int]:
        position, item = pair
        found = _case_and_kind(item)
        assert found is not None
        case = case_by_id[found[0]]
        return (server_rank[case.server_key], case.index, found[1], position)

    ours = [(i, item) for i, item in enumerate(items) if _case_and_kind(item) is not None]
    slots = [i for i, _ in ours]
    out = list(items)
    for slot, (_, item) in zip(slots, sorted(ours, key=key), strict=True):
        out[slot] = item
    return out


def server_key_of(item: pytest.Item | None, plan: Plan) -> str | None:
    """The server a vlmhb item needs (None for other items or no item)."""
    found = _case_and_kind(item) if item is not None else None
    return plan.case(found[0]).server_key if found is not None else None


def scheduled_samples(item: pytest.Item, case_id: str) -> list[str]:
    """Sample ids of ``case_id`` among the session's items, in run order."""
    out = []
    for other in item.session.items:
        param = _param(other)
        if isinstance(param, SampleParam) and param.case_id == case_id:
            out.append(param.sample_id)
    return out


class SampleCheck:
    """What a ``test_sample`` item does: answer, score, record, fail on error."""

    def __init__(
        self,
        item: pytest.Item,
        runtime: Runtime,
        param: SampleParam,
        record_key: pytest.StashKey[Record],
        case_key: pytest.StashKey[CaseInfo],
    ) -> None:
        self.item, self.runtime, self.param = item, runtime, param
        self._record_key, self._case_key = record_key, case_key
        self.record: Record | None = None

    def check(self) -> Record:
        param = self.param
        try:
            record, info = self.runtime.run_sample(
                param.case_id, param.sample_id, lambda: scheduled_samples(self.item, param.case_id)
            )
        except OutputError as exc:
            # The store cannot take more (e.g. a full disk): stop rather than send
            # requests whose answers would be lost; --vlmhb-resume goes on later.
            self.item.session.shouldstop = f"vlmhb: {exc}"
            pytest.fail(f"sample {param.sample_id}: {exc}", pytrace=False)
        self.record = record
        self.item.stash[self._record_key] = record
        if info is not None:
            self.item.stash[self._case_key] = info
        props = self.item.user_properties
        props.append(("answer", record["answer"] if record["answer"] is not None else ""))
        for name, score in record["scores"].items():
            props.append((name, "" if score is None else score))
        fields: Mapping[str, object] = record
        for name in _PROPERTIES:
            value = fields.get(name)  # a record of an earlier version may lack one
            props.append((name, "" if value is None else value))
        if record["error"]:
            props.append(("error", record["error"]))
            pytest.fail(f"sample {param.sample_id}: {record['error']}", pytrace=False)
        return record


class GateCheck:
    """What a ``test_gate`` item does: compare the case aggregate with a threshold."""

    def __init__(
        self,
        item: pytest.Item,
        runtime: Runtime,
        param: GateParam,
        gate_key: pytest.StashKey[GateResult],
    ) -> None:
        self.item, self.runtime, self.param, self._gate_key = item, runtime, param, gate_key

    def check(self) -> None:
        case = self.runtime.plan.case(self.param.case_id)
        threshold = next(t for t in case.thresholds if t.name == self.param.threshold)
        records = self.runtime.records.get(case.id, [])
        result, value = gate_result(case, threshold, records, self.runtime.case_info.get(case.id))
        self.item.user_properties.append((threshold.column, json.dumps(value)))
        self.item.stash[self._gate_key] = result
        failure = None if result.passed else result.message
        if failure:
            pytest.fail(failure, pytrace=False)
