"""user_config.csv + models.csv + tasks.csv -> validated, resolved cases."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from . import registry
from .columns import gateable_columns
from .config import (
    THRESHOLD_PREFIXES,
    Case,
    CaseRow,
    ImageColumns,
    ModelRow,
    ModelSpec,
    Settings,
    TaskRow,
    TaskSpec,
    Threshold,
)
from .csvfiles import check_columns, header_of, read_csv_rows, validate_row
from .documents import check_placeholders, with_page_counts
from .endpoint_headers import referenced_env
from .errors import ConfigError
from .launchers.base import default_launcher, launcher_names, load_launcher
from .models import check_model, model_recipe
from .numbers import finite_float, in_range
from .pairing import Pairing, load_baseline, with_baseline
from .redact import check_api_key_env
from .shard import Split, config_hash, split_cases
from .tasks.base import TaskType
from .tasks.manifest import Sample, load_manifest
from .tasks.presets import (
    PRESET_PREFIX,
    check_preset_type,
    load_preset,
    preset_names,
    preset_of_data,
)
from .tasks.sources import resolve_manifest


@dataclass(frozen=True)
class Plan:
    """Everything a run needs: the cases and the samples of each."""

    cases: tuple[Case, ...]
    samples: dict[str, list[Sample]]
    baseline: dict[str, dict[str, float]] | None = None
    #: How the cases pair with ``--vlmhb-baseline`` (None without one).
    pairing: Pairing | None = None
    #: models.csv's models (users' own tests name them) and where it is.
    models: dict[str, ModelSpec] = field(default_factory=dict)
    models_file: Path | None = None
    #: This run's shard of the server groups (None: every group).
    shard: Split | None = None
    #: :func:`shard.config_hash` of the configuration ("" without a config).
    config_hash: str = ""

    @cached_property
    def _cases_by_id(self) -> dict[str, Case]:
        return {c.id: c for c in self.cases}

    @cached_property
    def _samples_by_id(self) -> dict[str, dict[str, Sample]]:
        return {cid: {s.id: s for s in samples} for cid, samples in self.samples.items()}

    def case(self, case_id: str) -> Case:
        return self._cases_by_id[case_id]

    def sample(self, case_id: str, sample_id: str) -> Sample:
        return self._samples_by_id[case_id][sample_id]


def _read_table(
    path: Path,
    row_model: type[Any],
    required: tuple[str, ...],
    pattern: Callable[[str], bool] = lambda _: False,
) -> list[tuple[int, Any, dict[str, str]]]:
    rows = read_csv_rows(path)
    check_columns(
        path,
        header_of(path),
        required=required,
        allowed=row_model.model_fields,
        allowed_pattern=pattern,
    )
    out = []
    for line, raw in rows:
        plain = {k: v for k, v in raw.items() if not pattern(k)}
        out.append((line, validate_row(row_model, path, line, plain), raw))
    return out


def _sibling(explicit: Path | None, config: Path, name: str) -> Path:
    return explicit if explicit is not None else config.parent / name


def _chat_template(value: str | None, models_csv: Path, line: int) -> Path | None:
    """A ``chat_template`` cell -> the template file (relative to models.csv), checked."""
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = models_csv.parent.resolve() / path
    if not path.is_file():
        raise ConfigError(
            f"chat template {path} is not a file",
            file=models_csv,
            line=line,
            column="chat_template",
        )
    return path.resolve()


def load_models(path: Path) -> dict[str, ModelSpec]:
    """models.csv -> {name: ModelSpec}."""
    models: dict[str, ModelSpec] = {}
    for line, row, _ in _read_table(path, ModelRow, ("name", "source")):
        if row.name in models:
            raise ConfigError(
                f"duplicate model name {row.name!r}", file=path, line=line, column="name"
            )
        if row.api_key_env:
            problem = check_api_key_env(row.api_key_env)
            if problem:
                raise ConfigError(problem, file=path, line=line, column="api_key_env")
        for name in referenced_env(row.endpoint_headers):
            problem = check_api_key_env(name)
            if problem:
                raise ConfigError(
                    problem.replace("api_key_env", "endpoint_headers", 1),
                    file=path,
                    line=line,
                    column="endpoint_headers",
                )
        models[row.name] = ModelSpec(
            **row.model_dump(exclude={"served_name", "chat_template"}),
            served_name=row.served_name or row.name,
            chat_template=_chat_template(row.chat_template, path, line),
            base_dir=path.parent.resolve(),
            source_file=path,
            source_line=line,
        )
    return models


def _task(row: TaskRow, base_dir: Path, where: dict[str, Any]) -> tuple[TaskSpec, TaskType]:
    """One tasks.csv row (or a built-in preset) resolved; defaults from its preset."""
    own = preset_of_data(row.data)
    if own is not None and row.preset is not None and row.preset != own:
        raise ConfigError(
            f"data names preset {own!r} but column 'preset' says {row.preset!r}",
            column="preset",
            **where,
        )
    name = own or row.preset
    preset = load_preset(name, column="preset" if row.preset else "data", **where) if name else None
    type_name = check_preset_type(preset, row.type, **where) if preset else row.type
    if not type_name:
        raise ConfigError(
            "empty task type (required unless the row names a preset)",
            column="type",
            allowed=registry.names(registry.TASKS),
            **where,
        )
    task_type: TaskType = registry.load(registry.TASKS, type_name, column="type", **where)()
    metrics = row.metrics or (preset.metrics if preset else task_type.default_metrics)
    for metric in metrics:
        registry.load(registry.METRICS, metric, column="metrics", **where)
    return (
        TaskSpec(
            name=row.name,
            type=type_name,
            data=row.data,
            prompt=row.prompt or (preset.prompt if preset else task_type.default_prompt),
            metrics=tuple(metrics),
            max_tokens=row.max_tokens
            or (preset.max_tokens if preset else task_type.default_max_tokens),
            base_dir=base_dir,
            preset=name,
            system_prompt=row.system_prompt,
            chat_template_kwargs=row.chat_template_kwargs,
            reasoning_tags=row.reasoning_tags,
            **{name: getattr(row, name) for name in ImageColumns.model_fields},
        ),
        task_type,
    )


def _prompt_settings(row: CaseRow, task: TaskSpec, where: dict[str, Any]) -> dict[str, Any]:
    """A case's system prompt, chat-template kwargs and reasoning tags (the case's
    cell wins over its task's; the defaults otherwise)."""
    kwargs = row.chat_template_kwargs
    kwargs = task.chat_template_kwargs if kwargs is None else kwargs
    if kwargs is not None and "chat_template_kwargs" in row.request_params:
        raise ConfigError(
            "request_params sets chat_template_kwargs, which the chat_template_kwargs "
            "column also sets: set it in one place",
            column="request_params",
            **where,
        )
    tags = row.reasoning_tags if row.reasoning_tags is not None else task.reasoning_tags
    settings: dict[str, Any] = {
        "system_prompt": row.system_prompt if row.system_prompt is not None else task.system_prompt,
        "chat_template_kwargs": kwargs or {},
    }
    if tags is not None:
        settings["reasoning_tags"] = tags
    for name in ImageColumns.model_fields:  # the case's cell, the task's, the default
        value = getattr(row, name)
        value = getattr(task, name) if value is None else value
        if value is not None:
            settings[name] = value
    return settings


def load_tasks(path: Path) -> dict[str, tuple[TaskSpec, TaskType]]:
    """tasks.csv -> {name: (TaskSpec, task type instance)}."""
    tasks: dict[str, tuple[TaskSpec, TaskType]] = {}
    for line, row, _ in _read_table(path, TaskRow, ("name", "data")):
        where: dict[str, Any] = {"file": path, "line": line}
        if row.name in tasks:
            raise ConfigError(f"duplicate task name {row.name!r}", column="name", **where)
        tasks[row.name] = _task(row, path.parent.resolve(), where)
    return tasks


def builtin_task(name: str, base_dir: Path) -> tuple[TaskSpec, TaskType]:
    """A preset used by its own name as a task (``data=preset:<name>``)."""
    return _task(TaskRow(name=name, data=f"{PRESET_PREFIX}{name}"), base_dir, {})


def _is_threshold(column: str) -> bool:
    """``min_<col>``/``max_<col>``, except real columns such as ``max_tokens``."""
    return (
        column.startswith(THRESHOLD_PREFIXES)
        and len(column) > 4
        and column not in CaseRow.model_fields
    )


def _thresholds(
    raw: dict[str, str], metrics: tuple[str, ...], path: Path, line: int
) -> tuple[Threshold, ...]:
    out = []
    allowed = gateable_columns(metrics)
    for column, text in raw.items():
        if not _is_threshold(column):
            continue
        bound, target = column.split("_", 1)
        if target not in allowed:
            raise ConfigError(
                f"threshold on {target!r}, which this case does not produce",
                file=path,
                line=line,
                column=column,
                allowed=[f"{p}{c}" for p in THRESHOLD_PREFIXES for c in allowed],
            )
        try:
            value = in_range(finite_float(text), low=0.0)
        except ValueError as exc:
            raise ConfigError(
                f"threshold must be a finite number >= 0 ({exc})",
                file=path,
                line=line,
                column=column,
            ) from None
        out.append(Threshold(column=target, bound=bound, value=value))  # type: ignore[arg-type]
    return tuple(out)


def _launcher(row: CaseRow, model: ModelSpec, override: str | None, path: Path, line: int) -> str:
    """The case's launcher as configured (``--vlmhb-launcher``, the column, or the
    default), checked for its model; resolved later by :func:`_resolve_launcher`."""
    where: dict[str, Any] = {"file": path, "line": line, "column": "launcher"}
    name = override or row.launcher or default_launcher(model)
    allowed = launcher_names()
    if name not in allowed:
        raise ConfigError(f"unknown launcher {name!r}", allowed=allowed, **where)
    problem = load_launcher(name, **where).check_model(model)
    if problem:
        raise ConfigError(problem + _from_option(override), **where)
    return name


def _from_option(override: str | None) -> str:
    return f" (--vlmhb-launcher={override})" if override else ""


def _resolve_launcher(case: Case, override: str | None) -> Case:
    """The case with its launcher checked for this machine and resolved
    (``auto`` -> docker or local)."""
    where: dict[str, Any] = {"file": case.source_file, "line": case.source_line}
    launcher = load_launcher(case.launcher, column="launcher", **where)
    problem = launcher.check_available()
    if problem:
        raise ConfigError(problem + _from_option(override), column="launcher", **where)
    return case.model_copy(update={"launcher": launcher.resolve(case.model)})


def models_path(settings: Settings) -> Path | None:
    """models.csv: ``--vlmhb-models``, else next to the config (None without either)."""
    if settings.models is not None:
        return settings.models
    return settings.config.parent / "models.csv" if settings.config is not None else None


def load_cases(settings: Settings) -> list[Case]:
    """Validate user_config.csv and resolve its models, tasks, backends and launchers."""
    return [_resolve_launcher(c, settings.launcher) for c in load_draft(settings).cases]


@dataclass(frozen=True)
class Draft:
    """The validated cases before any data is read: launchers as configured
    (not yet resolved for this machine), and the configuration's hash."""

    cases: list[Case]
    models: dict[str, ModelSpec]
    config_hash: str


def load_draft(settings: Settings) -> Draft:
    """user_config.csv, models.csv and tasks.csv validated; no manifest is resolved."""
    path = settings.config
    assert path is not None
    if settings.launcher is not None and settings.launcher not in launcher_names():
        raise ConfigError(
            f"--vlmhb-launcher: unknown launcher {settings.launcher!r}", allowed=launcher_names()
        )
    rows = _read_table(path, CaseRow, ("model", "task", "backend"), _is_threshold)
    if not rows:
        raise ConfigError("no cases: the file has a header but no rows", file=path, line=2)
    models_file = _sibling(settings.models, path, "models.csv")
    models = load_models(models_file)
    tasks_path = _sibling(settings.tasks, path, "tasks.csv")
    # Without a tasks.csv beside the config, only the built-in presets are tasks.
    has_tasks = bool(settings.tasks) or tasks_path.exists()
    tasks = load_tasks(tasks_path) if has_tasks else {}
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for index, (line, row, raw) in enumerate(rows):
        where: dict[str, Any] = {"file": path, "line": line}
        if row.model not in models:
            raise ConfigError(
                f"unknown model {row.model!r}", column="model", allowed=models, **where
            )
        if row.task not in tasks and row.task in preset_names():
            tasks[row.task] = builtin_task(row.task, path.parent.resolve())
        if row.task not in tasks:
            raise ConfigError(
                f"unknown task {row.task!r}",
                column="task",
                allowed=[*tasks, *preset_names()],
                **where,
            )
        registry.load(registry.BACKENDS, row.backend, column="backend", **where)
        model = models[row.model]
        check_model(model)  # an endpoint serves its own model: nothing to check
        task, _ = tasks[row.task]
        case_id = row.id or f"{row.model}:{row.task}:{row.backend}"
        if case_id in seen:
            raise ConfigError(
                f"duplicate case id {case_id!r} (also on line {seen[case_id]}); "
                "set the 'id' column to tell the rows apart",
                column="id",
                **where,
            )
        seen[case_id] = line
        cases.append(
            Case(
                id=case_id,
                index=index,
                model=model,
                task=task,
                backend=row.backend,
                launcher=_launcher(row, model, settings.launcher, path, line),
                concurrency=row.concurrency,
                max_tokens=row.max_tokens or task.max_tokens,
                temperature=row.temperature,
                limit=_min_limit(row.limit, settings.limit),
                request_params=row.request_params,
                request_timeout=row.request_timeout or settings.request_timeout,
                max_retries=row.max_retries,
                max_restarts=row.max_restarts,
                gauge_poll_s=row.gauge_poll_s,
                parity_with=row.parity_with,
                **_prompt_settings(row, task, where),
                thresholds=_thresholds(raw, task.metrics, path, line),
                source_file=path,
                source_line=line,
            )
        )
    _check_parity(cases)
    files = (
        ("user_config.csv", path),
        ("models.csv", models_file),
        ("tasks.csv", tasks_path if has_tasks else None),
    )
    return Draft(cases, models, config_hash(settings, files, cases))


def _min_limit(*limits: int | None) -> int | None:
    given = [n for n in limits if n is not None]
    return min(given) if given else None


def load_plan(settings: Settings) -> Plan:
    """Cases plus their samples; every config error surfaces here, before any server.

    Without a config (only ``--vlmhb-models``, for users' own tests) the plan has
    no cases, only the models."""
    models_file = models_path(settings)
    if settings.config is None:
        assert models_file is not None
        return Plan(cases=(), samples={}, models=load_models(models_file), models_file=models_file)
    return finish_plan(settings, load_draft(settings))


def _with_image_limit(case: Case, images: int) -> Case:
    """The case with its server's ``limit_mm_per_prompt``: models.csv's, else the
    most images any sample of the config sends to that server."""
    if case.model.limit_mm_per_prompt is not None:
        return case
    return case.model_copy(
        update={"model": case.model.model_copy(update={"limit_mm_per_prompt": images})}
    )


def _check_parity(cases: Sequence[Case]) -> None:
    """Every ``parity_with`` names another case of the config."""
    ids = [case.id for case in cases]
    for case in cases:
        if case.parity_with is not None and (
            case.parity_with not in ids or case.parity_with == case.id
        ):
            what = "itself" if case.parity_with == case.id else "no case of this config"
            raise ConfigError(
                f"parity_with {case.parity_with!r} names {what}",
                file=case.source_file,
                line=case.source_line,
                column="parity_with",
                allowed=[i for i in ids if i != case.id],
            )


def _with_recipe_stops(case: Case) -> Case:
    """The case with its recipe's ``stop_token_ids`` in every request (vLLM and
    SGLang take them per request only), unless ``request_params`` sets its own."""
    recipe = model_recipe(case.model)
    if recipe is None or not recipe.stop_token_ids or "stop_token_ids" in case.request_params:
        return case
    params = {**case.request_params, "stop_token_ids": list(recipe.stop_token_ids)}
    return case.model_copy(update={"request_params": params})


def finish_plan(
    settings: Settings, draft: Draft, launchers: Mapping[str, str] | None = None
) -> Plan:
    """The draft's plan: under ``--vlmhb-shard`` only this shard's cases; launchers
    resolved (or, for a merge, as the shards ran them: ``launchers`` by case id);
    the baseline read; then the manifests of the cases kept, and only those,
    resolved and loaded; then the baseline gates added (paired by sample id where
    the baseline has this run's samples)."""
    cases = draft.cases
    split = None
    if settings.shard is not None:
        split = split_cases(cases, *settings.shard)
        own = {case_id for group in split.own for case_id in group.cases}
        cases = [c for c in cases if c.id in own]
    if launchers is not None:
        cases = [c.model_copy(update={"launcher": launchers[c.id]}) for c in cases]
    else:
        cases = [_resolve_launcher(c, settings.launcher) for c in cases]
    baseline = load_baseline(settings.baseline) if settings.baseline else None
    task_types: dict[str, TaskType] = {}
    samples: dict[str, list[Sample]] = {}
    # the most images one sample sends, per server (before --vlmhb-limit)
    images: dict[str, int] = {}
    for case in cases:
        task = case.task
        task_type = task_types.setdefault(task.type, registry.load(registry.TASKS, task.type)())
        manifest = resolve_manifest(
            task.data, task.type, task.base_dir, settings.cache, preset=task.preset
        )
        loaded = with_page_counts(load_manifest(manifest, task_type, task.prompt), settings.cache)
        check_placeholders(case, loaded)
        images[case.server_key] = max(
            images.get(case.server_key, 1),
            *(sample.image_count(case.max_pages) for sample in loaded),
        )
        samples[case.id] = loaded[: case.limit] if case.limit is not None else loaded
    pairing = None
    if baseline is not None:  # regression gates, paired by sample where it can
        cases, pairing = with_baseline(baseline, cases, samples, settings)
    return Plan(
        cases=tuple(
            _with_recipe_stops(_with_image_limit(case, images[case.server_key])) for case in cases
        ),
        samples=samples,
        baseline=pairing.rows if pairing else None,
        pairing=pairing,
        models=draft.models,
        models_file=models_path(settings),
        shard=split,
        config_hash=draft.config_hash,
    )
