"""Read a CSV file into pydantic rows, reporting errors by file, line and column."""

from __future__ import annotations

import csv
import io
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from .errors import ConfigError

RowT = TypeVar("RowT", bound=BaseModel)


#: The largest configuration file read (CSV, baseline): far above any real one.
MAX_CONFIG_BYTES = 64 * 2**20


def read_config_text(path: Path) -> str:
    """A configuration file's text: a regular UTF-8 file of bounded size.

    Opened non-blocking and checked after opening, so a FIFO or device never
    blocks the run, whatever the path turns out to be.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ConfigError("file not found", file=path) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, expected a file", file=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror}", file=path) from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise ConfigError(f"is {kind}, expected a file", file=path)
        raw = f.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"is larger than {MAX_CONFIG_BYTES // 2**20} MiB", file=path)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=path) from None


def read_csv_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV file as (line number, {column: value}); header on line 1.

    Empty cells become absent keys, so pydantic applies the defaults.
    """
    text = read_config_text(path)
    # newline="": line breaks inside a quoted cell (and U+2028) stay in the cell.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ConfigError("empty file: expected a header line", file=path, line=1) from None
    except csv.Error as exc:
        raise ConfigError(f"malformed CSV: {exc}", file=path, line=1) from None
    header = [name.strip() for name in header]
    rows: list[tuple[int, dict[str, str]]] = []
    line = reader.line_num + 1
    try:
        for fields in reader:
            # A row's line is where it starts (a quoted cell may span lines).
            next_line = reader.line_num + 1
            if not any(f.strip() for f in fields):
                line = next_line
                continue
            if len(fields) > len(header):
                raise ConfigError(
                    f"{len(fields)} fields but the header has {len(header)}", file=path, line=line
                )
            row = {name: value.strip() for name, value in zip(header, fields, strict=False)}
            rows.append((line, {k: v for k, v in row.items() if v != ""}))
            line = next_line
    except csv.Error as exc:
        raise ConfigError(f"malformed CSV: {exc}", file=path, line=reader.line_num) from None
    return rows


def check_columns(
    path: Path,
    columns: Iterable[str],
    *,
    required: Iterable[str],
    allowed: Iterable[str],
    allowed_pattern: Callable[[str], bool] = lambda _: False,
) -> None:
    """Raise on a missing required column or an unknown one (line 1)."""
    present = list(columns)
    allowed_set = set(allowed)
    for name in present:
        if name not in allowed_set and not allowed_pattern(name):
            raise ConfigError("unknown column", file=path, line=1, column=name, allowed=allowed_set)
    for name in required:
        if name not in present:
            raise ConfigError(
                "required column is missing", file=path, line=1, column=name, allowed=allowed_set
            )


def header_of(path: Path) -> list[str]:
    """The header names of a CSV file."""
    text = read_config_text(path)
    first = next(csv.reader(io.StringIO(text, newline="")), [])
    return [name.strip() for name in first]


def validate_row(model: type[RowT], path: Path, line: int, row: Mapping[str, object]) -> RowT:
    """Validate one row; a pydantic error becomes a ConfigError at file:line, column."""
    try:
        return model.model_validate(row)
    except ValidationError as exc:
        first = exc.errors()[0]
        column = ".".join(str(p) for p in first["loc"]) or None
        value = row.get(column) if column else None
        shown = f" (got {value!r})" if value is not None else ""
        raise ConfigError(f"{first['msg']}{shown}", file=path, line=line, column=column) from None
