"""Users' own tests against a served model: ``@pytest.mark.vlmhb_model`` + ``vlmhb_chat``.

    @pytest.mark.vlmhb_model("smolvlm", backend="vllm")
    def test_invoice_total(vlmhb_chat):
        reply = vlmhb_chat("What is the total amount?", image="docs/invoice-17.png")
        assert reply.text == "$1,234.00"

Each (model, backend, test module) is a case of its own (task ``pytest``,
case id ``<model>:<module path>:<backend>``), served by the same server pool
as the CSV cases (one server per model x backend x launcher, shared), and
each call is a sample (the test's name; ``#2``, ``#3``... for further calls in
one test) in answers.csv, the store, the report and JUnit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from . import registry
from .backends.base import Backend
from .cases import Plan
from .chat_request import chat_body
from .client import Completion, StreamError, stream_chat
from .collect import USER_CASE
from .config import RESERVED_REQUEST_FIELDS, Case, ModelSpec, TaskSpec
from .errors import ConfigError, SampleError, ServerError
from .images import image_data_url
from .launchers.base import default_launcher, load_launcher
from .models import check_model
from .records import Record, make_record
from .runner import Runtime
from .settings import Settings
from .store import record_key
from .tasks.manifest import Sample

MARKER = "vlmhb_model"
USER_TASK = "pytest"
#: Generation defaults of a ``vlmhb_chat`` call (each call may override them).
DEFAULT_MAX_TOKENS = 256
#: The records an item's calls produced (they travel to the xdist controller).
USER_RECORDS = pytest.StashKey[list[Record]]()


@dataclass(frozen=True)
class Reply:
    """One answer of the served model, with its timing (milliseconds).

    ``text`` is made as a CSV case's scored ``answer`` is
    (:func:`reasoning.answer_to_score` with the default reasoning tags);
    reasoning the server streams apart is in ``reasoning``, never in the texts.
    """

    text: str  #: the answer with reasoning blocks removed, stripped
    raw_text: str  #: the answer text as the server sent it (``content``)
    prompt_tokens: int | None
    completion_tokens: int | None
    ttft_ms: float | None  #: first token of any kind (reasoning or answer)
    tpot_ms: float | None
    e2e_ms: float | None
    finish_reason: str | None
    reasoning: str = ""  #: reasoning streamed apart from the answer (``delta.reasoning``)
    ttfa_ms: float | None = None  #: first answer token, after such reasoning
    reasoning_tokens: int | None = None  #: as the server's ``usage`` reports them


def marker_args(item: pytest.Item) -> tuple[str, str, str | None] | None:
    """(model, backend, launcher) of the item's ``vlmhb_model`` marker, or None."""
    mark = item.get_closest_marker(MARKER)
    if mark is None:
        return None
    if len(mark.args) != 1 or not isinstance(mark.args[0], str):
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.vlmhb_model takes one model "
            'name from models.csv, e.g. vlmhb_model("smolvlm", '
            'backend="vllm")'
        )
    unknown = set(mark.kwargs) - {"backend", "launcher"}
    if unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: vlmhb_model got unknown arguments "
            f"{', '.join(sorted(unknown))} (allowed: backend, launcher)"
        )
    return mark.args[0], str(mark.kwargs.get("backend", "hf")), mark.kwargs.get("launcher")


def _launcher(model: ModelSpec, name: str | None, where: str) -> str:
    chosen = name or default_launcher(model)
    try:
        cls = load_launcher(chosen)
    except ConfigError as exc:
        raise pytest.UsageError(f"{where}: vlmhb_model launcher: {exc}") from None
    problem = cls.check_model(model) or cls.check_available()
    if problem:
        raise pytest.UsageError(f"{where}: {problem}")
    return cls.resolve(model)


def _user_case(
    item: pytest.Item, plan: Plan, settings: Settings, rootpath: Path, index: int
) -> Case:
    model_name, backend, launcher = marker_args(item) or ("", "hf", None)
    where = item.nodeid
    if plan.models_file is None:
        raise pytest.UsageError(
            f"{where}: vlmhb_model needs a models.csv: pass "
            "--vlmhb-models=PATH (or --vlmhb-config next to one)"
        )
    model = plan.models.get(model_name)
    if model is None:
        allowed = ", ".join(sorted(plan.models)) or "none"
        raise pytest.UsageError(
            f"{where}: vlmhb_model: unknown model {model_name!r} in "
            f"{plan.models_file} (allowed: {allowed})"
        )
    try:
        registry.load(registry.BACKENDS, backend, column="backend")
        check_model(model)  # source, recipe and remote code, as for CSV cases
    except ConfigError as exc:
        raise pytest.UsageError(f"{where}: vlmhb_model: {exc}") from None
    module = item.path.resolve()
    try:
        shown = module.relative_to(rootpath.resolve()).as_posix()
    except ValueError:
        shown = module.as_posix()
    task = TaskSpec(
        name=USER_TASK,
        type=USER_TASK,
        data=shown,
        prompt="",
        metrics=(),
        max_tokens=DEFAULT_MAX_TOKENS,
        base_dir=module.parent,
    )
    return Case(
        id=f"{model.name}:{shown}:{backend}",
        index=index,
        model=model,
        task=task,
        backend=backend,
        launcher=_launcher(model, launcher, where),
        concurrency=1,
        max_tokens=DEFAULT_MAX_TOKENS,
        temperature=0.0,
        limit=None,
        request_params={},
        request_timeout=settings.request_timeout,
        max_retries=2,
        max_restarts=0,
        gauge_poll_s=0.0,
        thresholds=(),
        source_file=module,
        source_line=0,
    )


#: Images per request a server that serves user tests allows at least.
USER_TEST_IMAGES = 8


def add_user_cases(
    items: Sequence[pytest.Item], plan: Plan, settings: Settings, rootpath: Path
) -> Plan:
    """The plan with a case per (model, backend, module) of the marked items; each
    marked item gets its case id in its stash and an ``xdist_group`` mark."""
    cases = {c.id: c for c in plan.cases}
    samples = dict(plan.samples)
    for item in items:
        if marker_args(item) is None:
            continue
        case = _user_case(item, plan, settings, rootpath, len(cases))
        if case.id in cases and cases[case.id].task.type != USER_TASK:
            raise pytest.UsageError(
                f"{item.nodeid}: case id {case.id!r} is also a user_config.csv case"
            )
        cases.setdefault(case.id, case)
        samples.setdefault(case.id, []).append(sample_for(cases[case.id], item.name))
        item.stash[USER_CASE] = case.id
        item.add_marker(pytest.mark.xdist_group(case.xdist_group))
    if len(cases) == len(plan.cases):
        return plan
    return replace(plan, cases=_with_user_image_limits(cases.values(), plan), samples=samples)


def _with_user_image_limits(cases: Iterable[Case], plan: Plan) -> tuple[Case, ...]:
    """Cases whose server also serves user tests allow at least
    :data:`USER_TEST_IMAGES` images per request (a user test's count is unknown
    until it runs), unless models.csv sets ``limit_mm_per_prompt``."""
    cases = tuple(cases)
    shared = {c.server_key for c in cases if c.task.type == USER_TASK}

    def widened(case: Case) -> Case:
        own = plan.models.get(case.model.name)
        if case.server_key not in shared or (own and own.limit_mm_per_prompt is not None):
            return case
        limit = max(case.model.limit_mm_per_prompt or 1, USER_TEST_IMAGES)
        return case.model_copy(
            update={"model": case.model.model_copy(update={"limit_mm_per_prompt": limit})}
        )

    return tuple(widened(case) for case in cases)


def with_user_case(plan: Plan, case: Case) -> Plan:
    """The plan with ``case``, sent by an xdist worker (the controller collects no
    tests); its records then keep the order they arrive in."""
    if any(c.id == case.id for c in plan.cases):
        return plan
    return replace(plan, cases=(*plan.cases, case), samples={**plan.samples, case.id: []})


def sample_for(case: Case, sample_id: str, prompt: str = "") -> Sample:
    """The sample one call of a user test stands for (no reference: nothing is scored)."""
    module = case.model.base_dir if case.source_file is None else case.source_file
    return Sample(
        id=sample_id, image=Path(module), prompt=prompt, reference={}, manifest=Path(module)
    )


def _image_parts(paths: Sequence[str | Path], base: Path) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for path in paths:
        full = Path(path) if Path(path).is_absolute() else base / path
        parts.append({"type": "image_url", "image_url": {"url": image_data_url(full)}})
    return parts


async def _send(
    url: str, body: dict[str, Any], headers: dict[str, str], timeout_s: float
) -> Completion:
    async with aiohttp.ClientSession() as session:
        return await stream_chat(session, url, body, headers, timeout_s)


@dataclass
class Chat:
    """``vlmhb_chat``: ask the marked model one question; returns a :class:`Reply`."""

    item: pytest.Item
    runtime: Runtime
    case: Case
    calls: int = 0
    records: list[Record] = field(default_factory=list)

    def __call__(
        self,
        prompt: str,
        *,
        image: str | Path | None = None,
        images: Sequence[str | Path] = (),
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float = 0.0,
        **request_params: Any,
    ) -> Reply:
        reserved = sorted(RESERVED_REQUEST_FIELDS & set(request_params))
        if reserved:
            raise TypeError(
                f"vlmhb_chat: {', '.join(reserved)} cannot be set as request "
                "fields (max_tokens and temperature are arguments)"
            )
        self.calls += 1
        sample_id = self.item.name + (f"#{self.calls}" if self.calls > 1 else "")
        case = self.case.model_copy(
            update={
                "max_tokens": max_tokens,
                "temperature": temperature,
                "request_params": request_params,
            }
        )
        sample = sample_for(case, sample_id, prompt)
        completion, error = self._ask(case, prompt, [*([image] if image else []), *images])
        record = make_record(case, sample, completion, error)
        self.runtime.store_record(record, record_key(case, sample))
        self.records.append(record)
        self.item.stash[USER_RECORDS] = self.records
        fields: Mapping[str, object] = record
        for name in ("ttft_ms", "ttfa_ms", "tpot_ms", "e2e_ms", "completion_tokens"):
            value = fields.get(name)
            self.item.user_properties.append(
                (f"{sample_id} {name}", "" if value is None else value)
            )
        if error:
            pytest.fail(f"vlmhb_chat ({case.model.name} on {case.backend}): {error}", pytrace=False)
        assert completion is not None
        return Reply(
            text=record["answer"] or "",
            raw_text=record.get("raw_answer") or "",
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            ttft_ms=record["ttft_ms"],
            tpot_ms=record["tpot_ms"],
            e2e_ms=record["e2e_ms"],
            finish_reason=completion.finish_reason,
            reasoning=record.get("reasoning") or "",
            ttfa_ms=record.get("ttfa_ms"),
            reasoning_tokens=completion.reasoning_tokens,
        )

    def _ask(
        self, case: Case, prompt: str, images: list[str | Path]
    ) -> tuple[Completion | None, str | None]:
        try:
            server = self.runtime.pool.get(case)
            backend: Backend = registry.load(registry.BACKENDS, case.backend)()
            content = [
                *_image_parts(images, self.item.path.parent),
                {"type": "text", "text": prompt},
            ]
            body = chat_body(case, server.served_name, backend, content)
            future = self.runtime.event_loop().submit(
                _send(
                    server.base_url + "/chat/completions",
                    body,
                    server.headers,
                    case.request_timeout,
                )
            )
            return future.result(), None
        except StreamError as exc:
            return exc.partial, str(exc)
        except (SampleError, ServerError) as exc:
            return None, str(exc)
