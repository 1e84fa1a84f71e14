"""Rebuild the run's outputs from its results store alone, sending nothing."""

from __future__ import annotations

from pathlib import Path

from .cases import Plan
from .report import RunResults, gate_result
from .store import load_case_info, load_records, record_key


def results_from_store(plan: Plan, output: Path) -> RunResults:
    """The plan's stored records, case figures and re-checked gates."""
    stored = load_records(output)
    case_info = load_case_info(output)
    results = RunResults()
    for case in plan.cases:
        for sample in plan.samples[case.id]:
            record = stored.get(record_key(case, sample))
            if record is not None:
                results.add_record({**record, "case_id": case.id})
        if case.id in case_info:
            results.case_info[case.id] = case_info[case.id]
        records = results.records.get(case.id, [])
        for threshold in case.thresholds:
            results.gates.append(gate_result(case, threshold, records,
                                             case_info.get(case.id))[0])
    return results
