"""The per-sample results store: append-only JSONL, one file per process.

Every scored sample is appended (written straight to the OS) the moment its
item finishes, so a crashed or interrupted run keeps all it scored. A run
without ``--vlmhb-resume`` moves the previous store aside under a timestamped
name; with it, stored answers whose key still matches are reused.

Loading validates every line against :class:`records.StoredRecord` (the
record :func:`records.make_record` builds, and its key), :class:`CaseLine`
or :class:`RunLine` (which run wrote the store: shard, config hash); a line
that is torn, not JSON, or of the wrong shape is skipped and reported as
``file:line (why)``, never raised.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Final, cast

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from .config import Case
from .errors import VlmhbError
from .modeloptions import served_identity
from .outputdir import STORE_DIR, OutputError, describe_os_error
from .pagecache import document_hash
from .records import CaseInfo, StoredRecord
from .redact import redact
from .tasks.manifest import Sample

__all__ = [
    "RUN_FILE",
    "STORE_DIR",
    "CaseLine",
    "ResultStore",
    "RunInfo",
    "RunLine",
    "StoreContents",
    "StoredRecord",
    "case_info_entry",
    "load_case_info",
    "load_records",
    "load_store",
    "record_key",
    "set_aside",
]


def record_key(case: Case, sample: Sample) -> str:
    """What must match for a stored answer to stand for a new request."""
    identity = {
        "model_source": case.model.source,
        "served_name": case.model.served_name,
        "server_args": list(case.model.server_args),
        "requirements": list(case.model.requirements),
        "backend": case.backend,
        "task": case.task.name,
        "task_type": case.task.type,
        "sample_id": sample.id,
        # the pixels: each file's content hash, the pages, how they were prepared
        "files": _file_ids(sample),
        "pages": list(sample.pages) if sample.pages is not None else None,
        "image_prep": case.image_prep.key(),
        "prompt": sample.prompt,
        "max_tokens": case.max_tokens,
        "temperature": case.temperature,
        "request_params": case.request_params,
        "system_prompt": case.system_prompt,
        "chat_template_kwargs": case.chat_template_kwargs,
        "reasoning_tags": [list(pair) for pair in case.reasoning_tags],
        **({} if case.model.endpoint else served_identity(case.model, case.backend)),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def _file_ids(sample: Sample) -> list[str]:
    """The sample's files by content (sha256, memoised per file version); by path
    where a file is unusable (its sample fails, nothing is read) or unreadable."""
    if sample.error:
        return [str(path) for path in sample.files]
    ids = []
    for path in sample.files:
        try:
            ids.append(document_hash(path))
        except (OSError, VlmhbError):
            ids.append(str(path))
    return ids


def set_aside(output: Path) -> Path | None:
    """Move a previous run's store to ``results-<UTC time>``; returns its new path."""
    current = output / STORE_DIR
    if not current.is_dir() or not any(current.iterdir()):
        return None
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    target = output / f"{STORE_DIR}-{stamp}"
    current.rename(target)
    return target


@with_config(ConfigDict(strict=True, extra="allow"))
class CaseLine(TypedDict):
    """A store line holding a finished case's server figures (it has no ``key``)."""

    case_id: Annotated[str, Field(min_length=1)]
    case_info: CaseInfo


def case_info_entry(case_id: str, info: CaseInfo) -> CaseLine:
    """The store line of a finished case's server figures."""
    return {"case_info": info, "case_id": case_id}


_Positive = Annotated[int, Field(ge=1)]
#: The store file of the run records (written by the controller only).
RUN_FILE = "run.jsonl"


@with_config(ConfigDict(strict=True, extra="allow"))
class RunInfo(TypedDict):
    """Which run wrote the store: its shard, config hash and cases (with the launcher
    each ran on); a run appends one at its start (a resume another: the last counts)."""

    shard_index: _Positive
    shard_total: _Positive
    config_hash: Annotated[str, Field(min_length=1)]
    cases: dict[str, str]
    mode: str  # "run", or "merge" for a merge's own store
    version: str
    started: str


@with_config(ConfigDict(strict=True, extra="allow"))
class RunLine(TypedDict):
    """The store line holding a :class:`RunInfo`."""

    run_info: RunInfo


_RECORD: Final = TypeAdapter(StoredRecord)
_CASE_LINE: Final = TypeAdapter(CaseLine)
_RUN_LINE: Final = TypeAdapter(RunLine)
#: Record fields the stores of earlier versions may lack, with the value each reads as.
OLDER_RECORD_DEFAULTS: Final[dict[str, object]] = {
    "model": "",
    "task": "",
    "backend": "",
    "launcher": "",
    "category": None,
    "prompt": None,
    "reference": {},
    "itl_ms": [],
    "prompt_tokens": None,
    "finish_reason": None,
    "retries": 0,
}


@dataclass
class StoreContents:
    """The valid lines of a results store, and the lines skipped as ``file:line (why)``."""

    records: dict[str, StoredRecord] = field(default_factory=dict)
    case_info: dict[str, CaseInfo] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    #: The last run record (None in a store of an earlier version).
    run_info: RunInfo | None = None


def _why(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'line'}: {e['msg']}" for e in errors[:3]]
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "wrong shape: " + "; ".join(parts) + more


def _take(contents: StoreContents, entry: object) -> str | None:
    """Add one parsed line to ``contents``; why it was skipped, or None."""
    if not isinstance(entry, dict):
        return f"not a JSON object but {type(entry).__name__}"
    try:
        if "case_info" in entry:
            line = _CASE_LINE.validate_python(entry)
            contents.case_info[line["case_id"]] = entry["case_info"]
        elif "run_info" in entry:
            run = _RUN_LINE.validate_python(entry)["run_info"]
            if run["shard_index"] > run["shard_total"]:
                return f"run_info: shard {run['shard_index']}/{run['shard_total']} out of range"
            contents.run_info = cast(RunInfo, entry["run_info"])
        elif "key" in entry:
            # Validated as it is; kept as read (the validated copy has 1.0 for 1).
            record = {**OLDER_RECORD_DEFAULTS, **entry}
            _RECORD.validate_python(record)
            contents.records[entry["key"]] = cast(StoredRecord, record)
        else:
            return (
                "neither a sample record (no 'key'), case figures (no 'case_info') "
                "nor a run record (no 'run_info')"
            )
    except ValidationError as exc:
        return _why(exc)
    return None


def _load_file(path: Path, contents: StoreContents) -> None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        contents.skipped.append(f"{path} (unreadable: {describe_os_error(exc)})")
        return
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        why: str | None
        try:
            why = _take(contents, json.loads(raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            why = f"not UTF-8 ({exc.reason} at byte {exc.start})"
        except ValueError as exc:  # json.JSONDecodeError, or a number too long to parse
            torn = number == len(lines)  # no newline after it: cut short by a killed process
            why = ("torn last line, " if torn else "") + f"not JSON: {exc}"
        except RecursionError:
            why = "not JSON: nested too deeply"
        if why is not None:
            contents.skipped.append(f"{path}:{number} ({why})")


def load_store(output: Path) -> StoreContents:
    """Every valid record (by key), case figure (by case id) and the run record of
    the store; the last one wins. Bad lines are skipped and listed, never raised."""
    contents = StoreContents()
    for path in sorted((output / STORE_DIR).glob("*.jsonl")):
        if path.is_file():
            _load_file(path, contents)
    return contents


def load_case_info(output: Path) -> dict[str, CaseInfo]:
    """Stored case figures by case id (the last one wins); bad lines are skipped."""
    return load_store(output).case_info


def load_records(output: Path) -> dict[str, StoredRecord]:
    """Stored records by key (the last one wins); bad lines are skipped."""
    return load_store(output).records


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        view = view[written:]


def _line(entry: StoredRecord | CaseLine | RunLine) -> bytes:
    """One JSONL line with secrets masked; non-ASCII escaped only when not UTF-8 encodable."""
    text = redact(json.dumps(entry, ensure_ascii=False))
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:  # a lone surrogate: \\uXXXX keeps it exactly
        return json.dumps(json.loads(text)).encode("ascii") + b"\n"


class ResultStore:
    """Appends this process's records to ``results/samples-<worker>.jsonl`` (or the
    file ``name``: :data:`RUN_FILE` for the run records).

    Each line goes to the OS in one unbuffered write. A file whose last line
    was torn (a killed process) or a failed write gets a newline first, so
    the next record starts on a line of its own. A failed append raises
    :class:`~pytest_vlmhb.outputdir.OutputError` naming the file and the cause.
    """

    def __init__(self, output: Path, worker_id: str, *, name: str | None = None) -> None:
        self.path = output / STORE_DIR / (name or f"samples-{worker_id}.jsonl")
        self._fd: int | None = None

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                _write_all(fd, b"\n")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def append(self, entry: StoredRecord | CaseLine | RunLine) -> None:
        """Write one line; ``OutputError`` when it cannot (the store stays loadable)."""
        line = _line(entry)
        try:
            if self._fd is None:
                self._fd = self._open()
            _write_all(self._fd, line)
        except OSError as exc:
            self.close()  # the next append reopens and starts a fresh line
            hint = (
                "free some space, then "
                if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                else "fix that, then "
            )
            raise OutputError(
                f"cannot append to the results store {self.path}: {describe_os_error(exc)}; "
                f"the records stored before are kept: {hint}rerun with --vlmhb-resume",
                exc,
            ) from exc

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)
