"""The run's plan as text: cases, sample counts, server groups and their argv.

Shown by ``pytest --collect-only`` with the plugin active; computing it
builds nothing (no venv, image, model or server): each server's argv is the
backend's command for the model as it would be resolved, with the parts only
known at start (the venv's python, the port) shown as placeholders.
"""

from __future__ import annotations

import shlex

from . import registry
from .backends.base import Backend
from .cases import Plan
from .config import Case
from .launchers.base import load_launcher
from .models import planned_model
from .settings import Settings


def server_argv(case: Case, settings: Settings) -> str:
    """The argv (or endpoint) of the case's server, as one shell-quoted line."""
    if case.model.endpoint:
        return f"(external endpoint {case.model.endpoint})"
    backend: Backend = registry.load(registry.BACKENDS, case.backend)()
    request = load_launcher(case.launcher).planned_request(
        case.backend, case.model, planned_model(case.model, settings.cache)
    )
    try:
        argv = backend.command(request)
    except NotImplementedError as exc:
        return f"({exc})"
    line = " ".join(shlex.quote(word) for word in argv)
    return line.replace("--port 0", "--port <port>") if request.port == 0 else line


def plan_lines(plan: Plan, settings: Settings) -> list[str]:
    """The plan, one line per case under one heading per server group."""
    groups: dict[str, list[Case]] = {}
    for case in plan.cases:
        groups.setdefault(case.server_key, []).append(case)
    total = sum(len(plan.samples[c.id]) for c in plan.cases)
    lines = [
        f"vlmhb plan: {len(plan.cases)} cases, {total} samples, "
        f"{len(groups)} server groups (nothing is built or started by --collect-only)"
    ]
    if plan.shard is not None:
        lines.append(plan.shard.describe())
    for key, cases in groups.items():
        lines.append(f"server {key}")
        lines.append(f"  argv: {server_argv(cases[0], settings)}")
        for case in cases:
            gates = ", ".join(t.name for t in case.thresholds) or "none"
            lines.append(
                f"  case {case.id}: task {case.task.name} ({case.task.type}), "
                f"{len(plan.samples[case.id])} samples, concurrency "
                f"{case.concurrency}, max_tokens {case.max_tokens}, gates: {gates}"
            )
    return lines
