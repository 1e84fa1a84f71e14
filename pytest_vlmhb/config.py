"""Pydantic models of the configuration: CSV rows, resolved cases, settings."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .gates import Threshold as Threshold
from .reasoning import DEFAULT_REASONING_TAGS
from .settings import Settings as Settings

if TYPE_CHECKING:
    from .imageprep import ImagePrep

# Numbers in CSV cells must be finite: pydantic otherwise reads "nan" and "inf".
_ROW = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, allow_inf_nan=False)
#: Case, model and task names. They may not begin with '+', '-' or '@' (nor '='),
#: which spreadsheets read as the start of a formula.
_NAME = r"^[A-Za-z0-9_.][A-Za-z0-9_.:@+/ -]*$"
#: The largest request timeout a CSV cell may set (seconds): one week.
MAX_TIMEOUT_S = 7 * 24 * 3600.0
#: Request fields the harness sets itself (they have their own columns or belong
#: to the streaming client): ``request_params`` may not set them.
RESERVED_REQUEST_FIELDS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "n",
        "return_token_ids",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
    }
)


#: The weights' dtype on the server (CPU keeps float32 where the backend needs it).
Dtype = Literal["auto", "float32", "float16", "bfloat16"]
#: An HTTP header name (RFC 9110 token).
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

#: How a ``launcher=slurm`` job runs the server: the backend venv, or a SIF image.
SlurmContainer = Literal["none", "apptainer", "singularity"]
#: sbatch options the slurm launcher sets itself (or that would stop it from
#: working): ``slurm_args`` may not hold them.
RESERVED_SBATCH_OPTIONS = (
    "--output",
    "-o",
    "--error",
    "-e",
    "--comment",
    "--export",
    "--parsable",
    "--wrap",
    "--array",
    "-a",
    "--wait",
    "-W",
    "--test-only",
)


def _reserved_sbatch_option(word: str) -> str | None:
    """The reserved sbatch option ``word`` sets (``--output=x``, ``-ox``), or None."""
    for option in RESERVED_SBATCH_OPTIONS:
        if option.startswith("--"):
            hit = word == option or word.startswith(option + "=")
        else:
            hit = word.startswith(option) and not word.startswith("--")
        if hit:
            return option
    return None


def _split_semicolons(value: object) -> object:
    """A ``;``-separated CSV cell -> tuple of its non-empty, stripped items."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(";") if item.strip())
    return value


def _json_object(value: object, example: str) -> object:
    """A JSON-object CSV cell -> dict (finite numbers only); other values pass."""
    if not isinstance(value, str):
        return value
    parsed = _json_value(value)
    if not isinstance(parsed, dict):
        raise ValueError(f"must be a JSON object, e.g. {example}")
    return parsed


def _json_value(text: str) -> Any:
    """Standard JSON (finite numbers only), or a ValueError saying why not."""
    try:
        parsed = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} (at char {exc.pos})") from None
    try:
        json.dumps(parsed, allow_nan=False)
    except ValueError:
        raise ValueError("numbers must be finite (got one too large for a float)") from None
    return parsed


#: A ``reasoning_tags`` cell: ``none`` (off) or a JSON list of ``[open, close]`` pairs.
ReasoningTags = tuple[tuple[str, str], ...]


def _reasoning_tags(value: object) -> object:
    """``none`` -> () (removal off); a JSON list of [open, close] pairs -> tuple."""
    if not isinstance(value, str):
        return value
    if value.strip().lower() == "none":
        return ()
    parsed = _json_value(value)
    example = '[["<think>", "</think>"]] or none'
    if not isinstance(parsed, list) or not parsed:
        raise ValueError(f"must be a non-empty JSON list of [open, close] pairs, e.g. {example}")
    pairs = []
    for pair in parsed:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(tag, str) and tag for tag in pair)
        ):
            raise ValueError(f"each pair must be two non-empty strings, e.g. {example}")
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)


class PromptColumns(BaseModel):
    """Columns of tasks.csv and user_config.csv that shape the chat and its scoring
    (a case's value wins over its task's)."""

    model_config = _ROW

    #: A system turn before the user turn (every backend, the HF wrapper included).
    system_prompt: str | None = None
    #: Extra arguments of the server's chat template, e.g. ``{"enable_thinking": false}``.
    chat_template_kwargs: dict[str, Any] | None = None
    #: ``[open, close]`` pairs whose blocks are removed before scoring; () = off.
    reasoning_tags: ReasoningTags | None = None

    _parse_kwargs = field_validator("chat_template_kwargs", mode="before")(
        lambda value: _json_object(value, '{"enable_thinking": false}')
    )
    _parse_tags = field_validator("reasoning_tags", mode="before")(
        lambda value: _reasoning_tags(value)
    )


class ImageColumns(BaseModel):
    """Columns of tasks.csv and user_config.csv that shape the images a request
    carries (a case's value wins over its task's; unset: the defaults)."""

    model_config = _ROW

    #: PDF render resolution (default 144).
    dpi: float | None = Field(default=None, ge=1, le=1200)
    #: Pages (or images) beyond it are dropped and counted (default 20).
    max_pages: int | None = Field(default=None, ge=1, le=10_000)
    #: Client-side caps keeping the aspect ratio; the stricter wins.
    max_image_side: int | None = Field(default=None, ge=1, le=1_000_000)
    max_image_pixels: int | None = Field(default=None, ge=1, le=10_000_000_000)
    #: ``png``, ``jpeg`` or ``jpeg:<quality>``; unset: files as they are, pages as PNG.
    image_format: str | None = None

    @field_validator("image_format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        from .imageprep import parse_image_format

        return None if value is None else parse_image_format(value)


def _reject_constant(name: str) -> Any:
    """JSON's non-standard NaN/Infinity: a request body must be standard JSON."""
    raise ValueError(f"{name} is not a valid JSON value (numbers must be finite)")


class ModelRow(BaseModel):
    """One row of models.csv."""

    model_config = _ROW

    name: str = Field(pattern=_NAME)
    source: str
    endpoint: str | None = None
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    served_name: str | None = None
    server_args: tuple[str, ...] = ()
    requirements: tuple[str, ...] = ()
    #: GPUs for the model's server container: ``all``, a count, or ``device=0,1``.
    gpus: str | None = Field(default=None, pattern=r"^(all|[0-9]+|device=[0-9]+(,[0-9]+)*)$")
    #: sbatch options of the model's job (launcher=slurm), shell-style words.
    slurm_args: tuple[str, ...] = ()
    #: How the job runs the server: the backend venv (``none``) or a SIF image.
    slurm_container: SlurmContainer = "none"
    #: Allow the model's own code (config.json ``auto_map``); never set by a recipe.
    trust_remote_code: bool = False
    dtype: Dtype = "auto"
    #: The server's context length; unset: the recipe's, else the model's own.
    max_model_len: int | None = Field(default=None, ge=16, le=10_000_000)
    #: The model processor's settings (image resolution, splitting), a JSON object.
    mm_processor_kwargs: dict[str, Any] | None = None
    #: A Jinja chat template file, relative to models.csv (for models that ship none).
    chat_template: str | None = None
    #: Images one request may carry; unset: the most any sample of the config has.
    limit_mm_per_prompt: int | None = Field(default=None, ge=1, le=1000)
    #: ``auto`` (matched on config.json), a recipe name, or ``none``.
    recipe: str = Field(default="auto", pattern=r"^[A-Za-z0-9_.-]+$")
    #: Extra HTTP headers for an external endpoint; values may be ``${ENV_NAME}``.
    endpoint_headers: dict[str, str] = Field(default_factory=dict)
    #: Price of one GPU-hour, for metrics.csv ``cost_per_1k_samples``.
    gpu_hour_cost: float | None = Field(default=None, ge=0, le=1_000_000)

    _parse_mm_kwargs = field_validator("mm_processor_kwargs", mode="before")(
        lambda value: _json_object(value, '{"max_pixels": 1003520}')
    )

    @field_validator("endpoint_headers", mode="before")
    @classmethod
    def _parse_headers(cls, value: object) -> object:
        value = _json_object(value, '{"api-key": "${AZURE_API_KEY}"}')
        if isinstance(value, dict):
            for name, text in value.items():
                if not isinstance(text, str):
                    raise ValueError(f"header {name!r}: values must be strings")
                if not HEADER_NAME.fullmatch(name):
                    raise ValueError(f"{name!r} is not a valid HTTP header name")
                if any(c in text for c in "\r\n\0"):
                    raise ValueError(f"header {name!r}: a value may not hold CR, LF or NUL")
        return value

    _split_requirements = field_validator("requirements", mode="before")(
        lambda value: _split_semicolons(value)
    )

    @field_validator("server_args", "slurm_args", mode="before")
    @classmethod
    def _split_args(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(shlex.split(value))
        return value

    @field_validator("slurm_args")
    @classmethod
    def _check_slurm_args(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for word in value:
            option = _reserved_sbatch_option(word)
            if option:
                raise ValueError(
                    f"{word!r}: the slurm launcher sets {option} itself (reserved: "
                    f"{', '.join(RESERVED_SBATCH_OPTIONS)})"
                )
        return value

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018  (raises on a port that is not a number in range)
        except ValueError as exc:
            raise ValueError(f"bad port in URL: {exc}") from None
        if not parts.hostname:
            raise ValueError("URL has no host, e.g. http://127.0.0.1:8000/v1")
        if parts.query or parts.fragment:
            raise ValueError("URL may not carry a query or fragment")
        return value.rstrip("/")


class TaskRow(PromptColumns, ImageColumns):
    """One row of tasks.csv."""

    model_config = _ROW

    name: str = Field(pattern=_NAME)
    #: Task type; may be left empty when a preset gives it.
    type: str | None = None
    data: str
    #: Dataset adapter (``vlmhb.presets``) whose layout, prompt and metrics the row uses.
    preset: str | None = None
    prompt: str | None = None
    metrics: tuple[str, ...] | None = None
    max_tokens: int | None = Field(default=None, ge=1)

    _split_metrics = field_validator("metrics", mode="before")(
        lambda value: _split_semicolons(value)
    )

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: str | None) -> str | None:
        from .tasks.templates import check_template

        problem = check_template(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value


THRESHOLD_PREFIXES = ("min_", "max_")


class CaseRow(PromptColumns, ImageColumns):
    """One row of user_config.csv (threshold columns are split off first)."""

    model_config = _ROW

    id: str | None = Field(default=None, pattern=_NAME)
    model: str
    task: str
    backend: str
    launcher: str | None = None
    concurrency: int = Field(default=8, ge=1, le=4096)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    limit: int | None = Field(default=None, ge=0)
    request_params: dict[str, Any] = Field(default_factory=dict)
    #: Seconds one request may take (default: --vlmhb-request-timeout).
    request_timeout: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S)
    #: Retries of a request after a connection error, HTTP 429 or HTTP 503.
    max_retries: int = Field(default=2, ge=0, le=20)
    #: Restarts of a server that died during the case before its samples fail.
    max_restarts: int = Field(default=0, ge=0, le=10)
    #: Seconds between reads of the server's running gauge; 0: not read.
    gauge_poll_s: float = Field(default=0.0, ge=0.0, le=60.0)
    #: Another case on the same samples this one should answer like (``agreement``).
    parity_with: str | None = Field(default=None, pattern=_NAME)

    @field_validator("request_params", mode="before")
    @classmethod
    def _parse_json(cls, value: object) -> object:
        value = _json_object(value, '{"ignore_eos": true}')
        if isinstance(value, dict):
            reserved = sorted(RESERVED_REQUEST_FIELDS & set(value))
            if reserved:
                raise ValueError(
                    f"may not set {', '.join(reserved)}: the harness sets "
                    f"{', '.join(sorted(RESERVED_REQUEST_FIELDS))} itself (use the "
                    "max_tokens and temperature columns)"
                )
        return value


class ModelSpec(BaseModel):
    """A resolved model: its row plus where models.csv lives."""

    model_config = ConfigDict(frozen=True)

    name: str
    source: str
    endpoint: str | None = None
    api_key_env: str | None = None
    served_name: str
    server_args: tuple[str, ...] = ()
    #: pip specs replacing the backend's own venv spec for this model (optional).
    requirements: tuple[str, ...] = ()
    #: GPUs the server's container asks for (docker launcher); None: none.
    gpus: str | None = None
    #: sbatch options of the model's job (slurm launcher), one word each.
    slurm_args: tuple[str, ...] = ()
    #: How the slurm job runs the server: ``none`` (the backend venv) or a SIF image.
    slurm_container: SlurmContainer = "none"
    trust_remote_code: bool = False
    dtype: Dtype = "auto"
    max_model_len: int | None = None
    mm_processor_kwargs: dict[str, Any] | None = None
    #: The chat template file (absolute), or None.
    chat_template: Path | None = None
    limit_mm_per_prompt: int | None = None
    recipe: str = "auto"
    endpoint_headers: dict[str, str] = Field(default_factory=dict)
    gpu_hour_cost: float | None = None
    base_dir: Path
    #: Where the model's row is (models.csv and its line), for errors found later.
    source_file: Path | None = None
    source_line: int = 0


class TaskSpec(BaseModel):
    """A resolved task: type, data source, prompt and metrics."""

    model_config = ConfigDict(frozen=True)

    name: str
    type: str
    data: str
    prompt: str
    metrics: tuple[str, ...]
    max_tokens: int
    base_dir: Path
    #: The dataset adapter the data is read with (None: the task type's own fields).
    preset: str | None = None
    #: The task's image columns (None: unset; a case's cell wins).
    dpi: float | None = None
    max_pages: int | None = None
    max_image_side: int | None = None
    max_image_pixels: int | None = None
    image_format: str | None = None
    #: The task's prompt columns (None: unset; a case's cell wins).
    system_prompt: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    reasoning_tags: ReasoningTags | None = None


class Case(BaseModel):
    """One benchmark case: model x task x backend with its settings."""

    model_config = ConfigDict(frozen=True)

    id: str
    index: int
    model: ModelSpec
    task: TaskSpec
    backend: str
    launcher: str
    concurrency: int
    max_tokens: int
    temperature: float
    limit: int | None
    request_params: dict[str, Any]
    request_timeout: float
    max_retries: int
    max_restarts: int
    gauge_poll_s: float
    #: A system turn before the user turn (None: none).
    system_prompt: str | None = None
    #: Extra chat-template arguments sent with every request ({}: none).
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    #: ``[open, close]`` pairs removed from answers before scoring (() = off).
    reasoning_tags: ReasoningTags = DEFAULT_REASONING_TAGS
    #: The case whose answers ``agreement`` compares with (None: none).
    parity_with: str | None = None
    #: How the sample's images are prepared (see :class:`imageprep.ImagePrep`).
    dpi: float = 144.0
    max_pages: int = 20
    max_image_side: int | None = None
    max_image_pixels: int | None = None
    image_format: str | None = None
    thresholds: tuple[Threshold, ...]
    source_file: Path
    source_line: int

    @property
    def image_prep(self) -> ImagePrep:
        """The case's image preparation settings."""
        from .imageprep import ImagePrep

        return ImagePrep(
            dpi=self.dpi,
            max_pages=self.max_pages,
            max_image_side=self.max_image_side,
            max_image_pixels=self.max_image_pixels,
            image_format=self.image_format,
        )

    @property
    def server_key(self) -> str:
        """Cases with the same key share one server (and one xdist group)."""
        return f"{self.model.name}@{self.backend}@{self.launcher}"

    @property
    def xdist_group(self) -> str:
        """The server key without '@': xdist's loadgroup takes the text after the
        last '@' of a node id as the group, so '@' inside the name would merge groups."""
        return self.server_key.replace("@", "|")
