"""pytest hooks: thin wrappers around options, cases, collect, runner and report.

pytest imports this module in every session of an environment where the
plugin is installed, so it imports only the standard library, pytest and the
import-light options; everything else is imported once ``--vlmhb-config``
makes the plugin active. It changes no environment variable.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

from .options import register, settings_from
from .settings import Settings

if TYPE_CHECKING:
    from .cases import Plan
    from .collect import GateCheck, SampleCheck
    from .columns import CaseRow
    from .gates import GateResult
    from .outputdir import OutputLock
    from .records import CaseInfo, Record
    from .report import RunResults
    from .runner import Runtime
    from .usertests import Chat

SETTINGS = pytest.StashKey[Settings]()
PLAN: pytest.StashKey[Plan] = pytest.StashKey()
RUNTIME: pytest.StashKey[Runtime] = pytest.StashKey()
RECORD: pytest.StashKey[Record] = pytest.StashKey()
CASE_INFO: pytest.StashKey[CaseInfo] = pytest.StashKey()
GATE: pytest.StashKey[GateResult] = pytest.StashKey()
LOCK: pytest.StashKey[OutputLock] = pytest.StashKey()

_FIXTURES = ("vlmhb_sample", "vlmhb_gate")


def pytest_addoption(parser: pytest.Parser) -> None:
    register(parser)


def _worker_id(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else "main"


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _progress(config: pytest.Config) -> Callable[[str], None]:
    """A line printer that shows through pytest's output capture (like live logs)."""
    from .redact import redact

    def say(message: str) -> None:
        message = redact(message)
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or _is_worker(config):
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


class _DockerStatusToWorkers:
    """Hands each xdist worker the controller's Docker answer (see ``adopt_status``)."""

    def pytest_configure_node(self, node: Any) -> None:
        from .launchers.docker_daemon import probed_status

        status = probed_status()  # pinged while the plan loaded, if any case needed it
        if status is not None:
            node.workerinput["vlmhb_docker_status"] = list(status)


def _take_controller_answers(config: pytest.Config) -> None:
    """In an xdist worker, before its plan loads: the controller's Docker answer."""
    status = getattr(config, "workerinput", {}).get("vlmhb_docker_status")
    if status is not None:
        from .launchers.docker_daemon import adopt_status

        adopt_status((bool(status[0]), str(status[1])))


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
    config.pluginmanager.register(_DockerStatusToWorkers(), "vlmhb-docker-status")
    dist = config.getoption("dist", "no")
    explicit = any(
        a == "--dist" or a.startswith(("--dist=", "-d")) for a in config.invocation_params.args
    )
    if dist == "load" and not explicit:
        config.option.dist = "loadgroup"
        config.pluginmanager.register(_LoadGroupToWorkers(), "vlmhb-loadgroup")
    elif dist not in ("no", "loadgroup"):
        raise pytest.UsageError(
            f"vlmhb: --dist={dist} would split a server's samples across workers; "
            "use --dist=loadgroup (the default with -n under vlmhb)"
        )


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "xdist_group(name): vlmhb groups items by server")
    config.addinivalue_line(
        "markers",
        "vlmhb_model(name, backend='hf', launcher=None): "
        "serve a models.csv model to this test's vlmhb_chat",
    )
    settings = settings_from(config)
    config.stash[SETTINGS] = settings
    if settings.config is None and settings.models is None:
        return
    from .errors import ConfigError
    from .session import prepare

    # --collect-only shows the plan and touches nothing: no lock, nothing set aside.
    takes_output = not _is_worker(config) and not config.option.collectonly
    _take_controller_answers(config)
    try:
        plan, lock = prepare(config, settings, _progress(config), controller=takes_output)
    except ConfigError as exc:
        raise pytest.UsageError(f"vlmhb: {exc}") from None
    if lock is not None:
        config.stash[LOCK] = lock
        config.add_cleanup(lock.release)
    config.stash[PLAN] = plan
    try:
        _use_loadgroup(config)
    except pytest.UsageError:
        if lock is not None:
            lock.release()
        raise
    from .outputdir import OutputError
    from .runner import Runtime
    from .session import record_run, set_previous_aside

    if takes_output:
        set_previous_aside(settings, _progress(config))  # after every usage error
        try:
            record_run(plan, settings)
        except OutputError as exc:
            if lock is not None:
                lock.release()
            raise pytest.UsageError(f"vlmhb: {exc}") from None
    config.stash[RUNTIME] = Runtime(settings, plan, _progress(config), _worker_id(config))
    if not _is_worker(config):
        config.pluginmanager.register(ResultsCollector(config), "vlmhb-results")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not any(name in metafunc.fixturenames for name in _FIXTURES):
        return
    from . import collect

    collect.parametrize(metafunc, metafunc.config.stash.get(PLAN, None))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    plan = config.stash.get(PLAN, None)
    if plan is None:
        if any(item.get_closest_marker("vlmhb_model") for item in items):
            raise pytest.UsageError(
                "vlmhb: tests marked vlmhb_model need a models.csv: pass "
                "--vlmhb-models=PATH (or --vlmhb-config next to one)"
            )
        return
    from . import collect
    from .usertests import add_user_cases

    plan = add_user_cases(items, plan, config.stash[SETTINGS], config.rootpath)
    config.stash[PLAN] = plan
    config.stash[RUNTIME].plan = plan

    settings = config.stash[SETTINGS]
    if settings.rebuild_reports or settings.merge:
        config.hook.pytest_deselected(items=list(items))  # the stores have the answers
        items[:] = []
        return
    kept, unused = collect.split_unparametrized(items)
    if plan.shard is not None:
        from .shard import user_tests_elsewhere

        plan, elsewhere = user_tests_elsewhere(kept, plan, plan.shard)
        config.stash[PLAN] = config.stash[RUNTIME].plan = plan
        away = set(elsewhere)
        kept = [item for item in kept if item not in away]
        unused += elsewhere
    if unused:  # e.g. test_gate when no case has a threshold: no skipped noise
        config.hook.pytest_deselected(items=unused)
    items[:] = collect.ordered(kept, plan)


def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    """Under ``--collect-only``: the plan (cases, samples, server groups, argv)."""
    plan = config.stash.get(PLAN, None)
    if plan is None or not config.option.collectonly:
        return []
    from .plan import plan_lines

    return plan_lines(plan, config.stash[SETTINGS])


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop a server as soon as the next item does not need it."""
    runtime = item.config.stash.get(RUNTIME, None)
    if runtime is None:
        return
    from .collect import server_key_of

    current = server_key_of(item, runtime.plan)
    if current is not None and server_key_of(nextitem, runtime.plan) != current:
        runtime.pool.stop()


def _runtime(request: pytest.FixtureRequest) -> Runtime:
    runtime = request.config.stash.get(RUNTIME, None)
    if runtime is None:
        pytest.skip("vlmhb is not active: pass --vlmhb-config=user_config.csv")
    return runtime


@pytest.fixture
def vlmhb_sample(request: pytest.FixtureRequest) -> SampleCheck:
    """One sample of one case; ``.check()`` answers, scores and records it."""
    from .collect import SampleCheck

    return SampleCheck(request.node, _runtime(request), request.param, RECORD, CASE_INFO)


@pytest.fixture
def vlmhb_gate(request: pytest.FixtureRequest) -> GateCheck:
    """One threshold of one case; ``.check()`` fails when the case misses it."""
    from .collect import GateCheck

    return GateCheck(request.node, _runtime(request), request.param, GATE)


@pytest.fixture
def vlmhb_chat(request: pytest.FixtureRequest) -> Chat:
    """Ask the model of the test's ``@pytest.mark.vlmhb_model`` one question per call:
    ``vlmhb_chat(prompt, image=..., images=[...], max_tokens=..., **request_fields)``."""
    from .collect import USER_CASE
    from .usertests import Chat

    case_id = request.node.stash.get(USER_CASE, None)
    if case_id is None:
        raise pytest.UsageError(
            f"{request.node.nodeid}: vlmhb_chat needs "
            '@pytest.mark.vlmhb_model("<model in models.csv>", '
            "backend=...)"
        )
    runtime = _runtime(request)
    return Chat(request.node, runtime, runtime.plan.case(case_id))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when == "call" and PLAN in item.config.stash:
        # Plain attributes of a report travel to the xdist controller with it.
        record = item.stash.get(RECORD, None)
        if record is not None:
            report.vlmhb_record = record  # type: ignore[attr-defined]
            if item.config.getoption("htmlpath", None):  # pytest-html's --html
                from .htmlreport.extras import add_html_extras

                plan, cache = item.config.stash[PLAN], item.config.stash[SETTINGS].cache
                add_html_extras(report, record, plan, cache)
        case_info = item.stash.get(CASE_INFO, None)
        if case_info is not None:
            report.vlmhb_case = case_info  # type: ignore[attr-defined]
        gate = item.stash.get(GATE, None)
        if gate is not None:
            import dataclasses

            report.vlmhb_gate = dataclasses.asdict(gate)  # type: ignore[attr-defined]
        from .collect import USER_CASE
        from .usertests import USER_RECORDS

        user_case = item.stash.get(USER_CASE, None)
        if user_case is not None:
            # The controller (under xdist) has not collected the user's test: send the case.
            plan = item.config.stash[PLAN]
            report.vlmhb_user_case = plan.case(user_case).model_dump(  # type: ignore[attr-defined]
                mode="json"
            )
            report.vlmhb_user_records = item.stash.get(  # type: ignore[attr-defined]
                USER_RECORDS, []
            )
    return report


class ResultsCollector:
    """Controller-side plugin: gathers records from reports, writes the outputs.

    Registered only on the controller (or a plain run); xdist workers' reports
    reach it through ``pytest_runtest_logreport`` like local ones.
    """

    def __init__(self, config: pytest.Config) -> None:
        from .report import RunResults

        self.config = config
        self.results: RunResults = RunResults()
        self.rows: list[CaseRow] = []
        self.notes: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from .gates import GateResult

        # Plain dicts, as a worker's report carries them (see pytest_runtest_makereport).
        record: Record | None = getattr(report, "vlmhb_record", None)
        if record is not None:
            self.results.add_record(record)
            case: CaseInfo | None = getattr(report, "vlmhb_case", None)
            if case is not None:
                self.results.case_info[record["case_id"]] = case
        gate = getattr(report, "vlmhb_gate", None)
        if gate is not None:
            self.results.gates.append(GateResult(**gate))
        user_case = getattr(report, "vlmhb_user_case", None)
        if user_case is not None:
            self._add_user_records(user_case, getattr(report, "vlmhb_user_records", []))

    def _add_user_records(self, case_data: dict[str, Any], records: list[Record]) -> None:
        """A user test's calls; its case joins the plan (an xdist controller has not
        collected the test)."""
        from .config import Case
        from .usertests import with_user_case

        case = Case.model_validate(case_data)
        self.config.stash[PLAN] = with_user_case(self.config.stash[PLAN], case)
        for record in records:
            self.results.add_record(record)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from .session import finish_outputs

        settings = self.config.stash[SETTINGS]
        plan = self.config.stash[PLAN]
        self.rows, self.notes, status = finish_outputs(settings, plan, self.results)
        if status is not None:
            session.exitstatus = status
        shard = plan.shard  # an empty shard is a success, not pytest's "no tests" (5)
        if shard and not shard.own and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            self.notes.append(f"{shard.describe()}; exit 0")
            session.exitstatus = pytest.ExitCode.OK

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from .report import summary_lines

        for note in self.notes:
            terminalreporter.write_line(f"[vlmhb] {note}")
        if not self.rows:
            return
        terminalreporter.section("vlmhb summary")
        for line in summary_lines(self.config.stash[PLAN], self.rows):
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"results: {self.config.stash[SETTINGS].output}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    runtime = session.config.stash.get(RUNTIME, None)
    if runtime is not None:
        runtime.close()


def pytest_unconfigure(config: pytest.Config) -> None:
    """After the reports: end the PDFium render thread, where one was started."""
    documents = sys.modules.get("pytest_vlmhb.documents")
    if documents is not None:
        documents.close_preparers()
