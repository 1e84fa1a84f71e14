"""JSONL manifests: one sample per line, validated with file:line errors."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError
from ..images import not_regular, too_large
from .base import TaskType
from .templates import check_template, render_template, template_fields


@dataclass(frozen=True)
class Sample:
    """One benchmark sample: what it shows (images or a document's pages), its
    prompt and its ground truth."""

    id: str
    #: The first file the sample shows (its image, first image or document): its
    #: real path (symlinks resolved) when it passed the checks of
    #: :func:`resolve_member`, else the path as the manifest names it.
    image: Path
    prompt: str
    reference: dict[str, Any] = field(hash=False)
    manifest: Path = field(hash=False)
    line: int = 0
    #: Sub-score group (ChartQA split, OCRBench question type); None when ungrouped.
    category: str | None = None
    #: Why this sample cannot run (e.g. its dataset row's image does not decode).
    error: str | None = None
    #: The image files, in order (one for an ``image`` line); () for a document.
    images: tuple[Path, ...] = ()
    #: The PDF of a ``document`` line, its selected 1-based pages (None: all)
    #: and its page count (None: not a document, or unreadable).
    document: Path | None = None
    pages: tuple[int, ...] | None = None
    page_count: int | None = None

    @property
    def image_files(self) -> tuple[Path, ...]:
        """The image files the sample sends, in order; () for a document."""
        if self.document is not None:
            return ()
        return self.images or (self.image,)

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file the sample reads, in order."""
        return (self.document,) if self.document is not None else self.image_files

    def image_count(self, max_pages: int) -> int:
        """Images the sample's request carries: its images or selected pages, at
        most ``max_pages`` (0 for a document whose page count is unknown)."""
        if self.document is None:
            return min(len(self.images) or 1, max_pages)
        if self.pages is not None:
            return min(len(self.pages), max_pages)
        return min(self.page_count or 0, max_pages)


def resolve_member(
    manifest: Path, line: int, value: str, field: str = "image", *, folder: str | None = None
) -> Path | str:
    """The real path of a file a manifest line names, or why that sample cannot use it.

    ``value`` is relative to the manifest's folder. Containment is checked on
    real paths (symlinks resolved), so neither ``..``, an absolute path nor a
    symlink (to a file or on a folder of the path) reaches outside that folder;
    the file must be a regular one of at most ``MAX_IMAGE_BYTES``. A file that
    does not exist is returned as its path: reading it fails that sample later.
    Every file field of a manifest (``image`` today) goes through this function;
    ``folder``, the real path of the manifest's folder, saves resolving it per line.
    """
    where = f"{manifest}:{line}: {field}"
    if "\0" in value:
        return f"{where} path {value!r} contains a NUL character"
    folder = folder or os.path.realpath(manifest.parent)
    target = os.path.realpath(os.path.join(manifest.parent, value))
    if os.path.commonpath([folder, target]) != folder:
        return f"{where} path {value} escapes the dataset folder {folder} (it is {target})"
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return Path(target)
    except OSError as exc:
        return f"{where} {value} cannot be read: {exc.strerror or exc}"
    problem = not_regular(info.st_mode) or too_large(info.st_size)
    return f"{where} {value} {problem}" if problem else Path(target)


def _invalid_line(exc: ValidationError, path: Path, line: int) -> ConfigError:
    """A ConfigError for the first problem pydantic found in a manifest line."""
    first = exc.errors()[0]
    column = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
    shown = repr(first["input"])
    if len(shown) > 60:
        shown = shown[:57] + "..."
    more = len(exc.errors()) - 1
    extra = f"; {more} more problem{'s' * (more > 1)} on this line" if more else ""
    return ConfigError(
        f"{first['msg']} (got {shown}){extra}",
        file=path,
        line=line,
        column=column.lstrip(".") or None,
    )


def load_manifest(path: Path, task: TaskType, prompt_template: str) -> list[Sample]:
    """All samples of a manifest; raises ConfigError naming file and line.

    Each line is validated with the task type's ``line_model``; a field the
    prompt template names must be in the line or the type's prompt variables.
    A sample whose image is unusable (see :func:`resolve_member`) gets
    :attr:`Sample.error` and fails alone.
    """
    problem = check_template(prompt_template)
    if problem is not None:
        raise ConfigError(f"prompt template {prompt_template!r}: {problem}", file=path)
    names = template_fields(prompt_template)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError("manifest not found", file=path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"manifest is not UTF-8 ({exc.reason})", file=path) from None
    required = ("id", *task.input_fields, *task.reference_fields)
    folder = os.path.realpath(path.parent)
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except RecursionError:
            raise ConfigError("invalid JSON: nested too deeply", file=path, line=line_no) from None
        except ValueError as exc:  # JSONDecodeError, or an integer of over 4300 digits
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise ConfigError(f"invalid JSON: {reason}", file=path, line=line_no) from None
        if not isinstance(record, dict):
            raise ConfigError("each line must be a JSON object", file=path, line=line_no)
        for name in required:
            if name not in record:
                raise ConfigError(
                    f"missing field {name!r}; task type {task.name!r} needs the fields "
                    f"id, image (or images, or document), {', '.join(required[1:])}",
                    file=path,
                    line=line_no,
                )
        try:
            fields = task.line_model.model_validate(record)
        except ValidationError as exc:
            raise _invalid_line(exc, path, line_no) from None
        if fields.id in seen:
            raise ConfigError(
                f"duplicate sample id {fields.id!r} (first on line {seen[fields.id]})",
                file=path,
                line=line_no,
                column="id",
            )
        seen[fields.id] = line_no
        try:
            variables = task.prompt_variables(record)
            values = {**record, **variables}
            missing = [name for name in names if name not in values]
            if missing:
                raise ConfigError(
                    f"the prompt template {prompt_template!r} names the field "
                    f"{missing[0]!r}, which this line lacks",
                    file=path,
                    line=line_no,
                    column=missing[0],
                    allowed={*record, *variables},
                )
            prompt = render_template(prompt_template, values)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"prompt template {prompt_template!r} cannot be filled: {exc!r}",
                file=path,
                line=line_no,
                allowed=sorted(record),
            ) from None
        files: list[Path] = []
        error = fields.image_error
        for name, value in fields.files():
            member = resolve_member(path, line_no, value, name, folder=folder)
            if isinstance(member, str):
                error = error or member
            # an unusable file keeps its name as given (NUL shown, not kept)
            files.append(
                member if isinstance(member, Path) else path.parent / value.replace("\0", "\\x00")
            )
        samples.append(
            Sample(
                id=fields.id,
                image=files[0],
                prompt=prompt,
                reference=task.reference(record),
                manifest=path,
                line=line_no,
                category=fields.category,
                error=error,
                images=() if fields.document is not None else tuple(files),
                document=files[0] if fields.document is not None else None,
                pages=fields.pages,
            )
        )
    if not samples:
        raise ConfigError("manifest has no samples", file=path)
    return samples
