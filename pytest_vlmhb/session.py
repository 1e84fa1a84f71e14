"""The session's start and end, as plain functions the hooks call.

Start: every check that can fail runs before anything is moved, written or
started (a usage error leaves earlier results untouched); then the store
gets its run record. End: outputs are written atomically, and the exit
status of a rebuild or a merge follows its gates.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .cases import Plan, load_plan
from .columns import CaseRow
from .endpoint_headers import referenced_env
from .errors import ConfigError
from .gates import GateResult
from .outputdir import OutputLock, check_writable
from .redact import register_env
from .report import RunResults, write_outputs
from .settings import Settings
from .store import RUN_FILE, STORE_DIR, ResultStore, set_aside

Progress = Callable[[str], None]


def secret_env_names(plan: Plan) -> list[str]:
    """The variables holding the plan's keys: ``api_key_env`` and the ones
    ``endpoint_headers`` values name."""
    names: list[str] = []
    for case in plan.cases:
        if case.model.api_key_env:
            names.append(case.model.api_key_env)
        names.extend(referenced_env(case.model.endpoint_headers))
    return list(dict.fromkeys(names))


def prepare(
    config: pytest.Config, settings: Settings, progress: Progress, *, controller: bool
) -> tuple[Plan, OutputLock | None]:
    """Validate everything and take the output dir; ConfigError on any problem.

    The controller (or a plain run) checks the output dir is writable and
    locks it; xdist workers share their controller's lock.
    """
    if settings.merge:
        from .merge import merged_plan

        plan = merged_plan(settings)
    else:
        plan = load_plan(settings)
    for warning in register_env(secret_env_names(plan)):
        progress(warning)
    if settings.rebuild_reports and not any((settings.output / STORE_DIR).glob("*.jsonl")):
        raise ConfigError(
            f"--vlmhb-rebuild-reports: no results store in {settings.output / STORE_DIR}"
        )
    if not controller:
        return plan, None
    if plan.shard is not None:
        progress(plan.shard.describe())
    check_writable(settings.output)
    lock = OutputLock.acquire(settings.output)
    if lock.took_over:
        progress(lock.took_over)
    return plan, lock


def record_run(plan: Plan, settings: Settings) -> None:
    """The store's run record (``results/run.jsonl``: shard, config hash, cases),
    which a merge checks; a rebuild writes none. ``OutputError`` when it cannot."""
    if settings.config is None or settings.rebuild_reports:
        return
    from .shard import run_info_entry

    store = ResultStore(settings.output, "main", name=RUN_FILE)
    try:
        store.append(
            run_info_entry(plan.cases, plan.shard, plan.config_hash, merged=bool(settings.merge))
        )
    finally:
        store.close()


def set_previous_aside(settings: Settings, progress: Progress) -> None:
    """A fresh run keeps the previous results under a timestamped name."""
    if settings.resume or settings.rebuild_reports:
        return
    previous = set_aside(settings.output)
    if previous is not None:
        progress(f"previous results kept in {previous} (use --vlmhb-resume to reuse them instead)")


def _gates_status(results: RunResults) -> int:
    return int(
        pytest.ExitCode.TESTS_FAILED
        if any(not g.passed for g in results.gates)
        else pytest.ExitCode.OK
    )


def check_controller_gates(plan: Plan, results: RunResults) -> list[GateResult]:
    """The thresholds only the controller can check (``agreement`` needs another
    case's records, which another xdist worker may hold), added to the run's gate
    results; the failed ones."""
    from .gates import gate_result
    from .parity import CONTROLLER_COLUMNS

    failed = []
    for case in plan.cases:
        records = results.records.get(case.id, [])
        info = results.case_info.get(case.id)
        for threshold in case.thresholds:
            if threshold.column in CONTROLLER_COLUMNS:
                result = gate_result(case, threshold, records, info, results.records)[0]
                results.gates.append(result)
                if not result.passed:
                    failed.append(result)
    return failed


def finish_outputs(
    settings: Settings, plan: Plan, results: RunResults
) -> tuple[list[CaseRow], list[str], int | None]:
    """Write the outputs; (metrics rows, notes for the terminal, exit status to set).

    The exit status is None for a normal run (pytest's own outcome stands);
    a rebuild or a merge exits 1 when a re-checked gate fails, else 0. A merge
    also writes the records it used into its own store (``samples-merged.jsonl``),
    so ``--vlmhb-rebuild-reports`` works on its output dir too.
    """
    notes: list[str] = []
    status: int | None = None
    if settings.rebuild_reports or settings.merge:
        from .merge import incomplete_notes, merged_results
        from .rebuild import results_from_store

        if settings.merge:
            results, skipped = merged_results(plan, settings.merge)
        else:
            results, skipped = results_from_store(plan, settings.output)
        notes += [f"results store: skipped {line}" for line in skipped]
        if settings.merge:
            notes += incomplete_notes(plan, results)
        status = _gates_status(results)
    else:
        failed = check_controller_gates(plan, results)
        notes += [
            f"gate failed: {gate.case_id} {gate.threshold}: {gate.message}" for gate in failed
        ]
        if failed:
            status = int(pytest.ExitCode.TESTS_FAILED)
    rows: list[CaseRow] = []
    if results.records:
        try:
            if settings.merge:
                from .merge import store_merged

                store_merged(settings.output, plan, results)
            rows = write_outputs(settings.output, plan, results, cache_dir=settings.cache)
        except OSError as exc:
            notes.append(
                f"could not write the outputs to {settings.output}: "
                f"{exc.strerror or exc}; the previous files are kept, and "
                "--vlmhb-rebuild-reports writes them from the results store"
            )
            status = int(pytest.ExitCode.INTERNAL_ERROR)
    return rows, notes, status
