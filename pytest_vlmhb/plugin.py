"""pytest hooks: thin wrappers around options, cases, collect, runner and report."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Generator
from typing import Any

import pytest

from . import collect
from .cases import Plan, load_plan
from .config import Settings
from .errors import ConfigError
from .options import register, settings_from
from .rebuild import results_from_store
from .redact import redact, register_env
from .report import GateResult, RunResults, summary_lines, write_outputs
from .runner import Runtime
from .store import STORE_DIR, set_aside

SETTINGS = pytest.StashKey[Settings]()
PLAN = pytest.StashKey[Plan]()
RUNTIME = pytest.StashKey[Runtime]()
RECORD = pytest.StashKey[dict[str, Any]]()
CASE_INFO = pytest.StashKey[dict[str, Any]]()
GATE = pytest.StashKey[GateResult]()


def pytest_addoption(parser: pytest.Parser) -> None:
    register(parser)


def _worker_id(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else "main"


def _progress(config: pytest.Config) -> Any:
    """A line printer that shows through pytest's output capture (like live logs)."""
    def say(message: str) -> None:
        message = redact(message)
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or hasattr(config, "workerinput"):
            print(f"[vlmhb {_worker_id(config)}] {message}", file=sys.__stderr__, flush=True)
            return
        if capture is None:
            reporter.write_line(f"[vlmhb] {message}")
            return
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(f"[vlmhb] {message}")
    return say


class _LoadGroupToWorkers:
    """Tells each xdist worker that the controller switched to loadgroup."""

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["vlmhb_loadgroup"] = True


def _use_loadgroup(config: pytest.Config) -> None:
    """Under ``-n N``, distribute by xdist_group so each server starts once."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        # xdist's worker derives its group-suffixed node ids from this flag.
        if workerinput.get("vlmhb_loadgroup"):
            config.option.loadgroup = True
        return
    dist = config.getoption("dist", "no")
    explicit = any(a == "--dist" or a.startswith(("--dist=", "-d")) for a in
                   config.invocation_params.args)
    if dist == "load" and not explicit:
        config.option.dist = "loadgroup"
        config.pluginmanager.register(_LoadGroupToWorkers(), "vlmhb-loadgroup")
    elif dist not in ("no", "loadgroup") and config.stash.get(PLAN, None) is not None:
        raise pytest.UsageError(
            f"vlmhb: --dist={dist} would split a server's samples across workers; "
            "use --dist=loadgroup (the default with -n under vlmhb)")


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "xdist_group(name): vlmhb groups items by server")
    settings = settings_from(config)
    config.stash[SETTINGS] = settings
    if settings.config is None:
        return
    try:
        plan = load_plan(settings)
    except ConfigError as exc:
        raise pytest.UsageError(f"vlmhb: {exc}") from None
    config.stash[PLAN] = plan
    register_env(c.model.api_key_env for c in plan.cases if c.model.api_key_env)
    if settings.rebuild_reports and not any((settings.output / STORE_DIR).glob("*.jsonl")):
        raise pytest.UsageError(f"vlmhb: --vlmhb-rebuild-reports: no results store in "
                                f"{settings.output / STORE_DIR}")
    if not hasattr(config, "workerinput") and not (settings.resume or settings.rebuild_reports):
        previous = set_aside(settings.output)
        if previous is not None:
            _progress(config)(f"previous results kept in {previous} (use --vlmhb-resume to "
                              "reuse them instead)")
    config.stash[RUNTIME] = Runtime(settings, plan, _progress(config), _worker_id(config))
    _use_loadgroup(config)
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(ResultsCollector(config), "vlmhb-results")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    collect.parametrize(metafunc, metafunc.config.stash.get(PLAN, None))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    plan = config.stash.get(PLAN, None)
    if plan is not None and config.stash[SETTINGS].rebuild_reports:
        config.hook.pytest_deselected(items=list(items))  # the store has the answers
        items[:] = []
    elif plan is not None:
        kept, unused = collect.split_unparametrized(items)
        if unused:  # e.g. test_gate when no case has a threshold: no skipped noise
            config.hook.pytest_deselected(items=unused)
        items[:] = collect.ordered(kept, plan)


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop a server as soon as the next item does not need it."""
    runtime = item.config.stash.get(RUNTIME, None)
    if runtime is None:
        return
    current = collect.server_key_of(item, runtime.plan)
    if current is not None and collect.server_key_of(nextitem, runtime.plan) != current:
        runtime.pool.stop()


@pytest.fixture
def vlmhb_sample(request: pytest.FixtureRequest) -> collect.SampleCheck:
    """One sample of one case; ``.check()`` answers, scores and records it."""
    config = request.config
    return collect.SampleCheck(request.node, config.stash[RUNTIME], request.param,
                               RECORD, CASE_INFO)


@pytest.fixture
def vlmhb_gate(request: pytest.FixtureRequest) -> collect.GateCheck:
    """One threshold of one case; ``.check()`` fails when the case misses it."""
    return collect.GateCheck(request.node, request.config.stash[RUNTIME], request.param, GATE)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when == "call":
        # Plain attributes of a report travel to the xdist controller with it.
        record = item.stash.get(RECORD, None)
        if record is not None:
            report.vlmhb_record = record  # type: ignore[attr-defined]
        case_info = item.stash.get(CASE_INFO, None)
        if case_info is not None:
            report.vlmhb_case = case_info  # type: ignore[attr-defined]
        gate = item.stash.get(GATE, None)
        if gate is not None:
            report.vlmhb_gate = dataclasses.asdict(gate)  # type: ignore[attr-defined]
    return report


class ResultsCollector:
    """Controller-side plugin: gathers records from reports, writes the outputs.

    Registered only on the controller (or a plain run); xdist workers' reports
    reach it through ``pytest_runtest_logreport`` like local ones.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results = RunResults()
        self.rows: list[dict[str, Any]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "vlmhb_record", None)
        if record is not None:
            self.results.add_record(record)
            case = getattr(report, "vlmhb_case", None)
            if case is not None:
                self.results.case_info[record["case_id"]] = case
        gate = getattr(report, "vlmhb_gate", None)
        if gate is not None:
            self.results.gates.append(GateResult(**gate))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        settings = self.config.stash[SETTINGS]
        if settings.rebuild_reports:
            self.results = results_from_store(self.config.stash[PLAN], settings.output)
        if self.results.records:
            self.rows = write_outputs(self.config.stash[SETTINGS].output,
                                      self.config.stash[PLAN], self.results)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.rows:
            return
        terminalreporter.section("vlmhb summary")
        for line in summary_lines(self.config.stash[PLAN], self.rows):
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"results: {self.config.stash[SETTINGS].output}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    runtime: Runtime | None = session.config.stash.get(RUNTIME, None)
    if runtime is not None:
        runtime.close()
