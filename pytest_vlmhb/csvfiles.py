"""Read a CSV file into pydantic rows, reporting errors by file, line and column."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from .errors import ConfigError

RowT = TypeVar("RowT", bound=BaseModel)


def read_csv_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV file as (line number, {column: value}); header on line 1.

    Empty cells become absent keys, so pydantic applies the defaults.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError("file not found", file=path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=path) from None
    reader = csv.reader(text.splitlines())
    try:
        header = next(reader)
    except StopIteration:
        raise ConfigError("empty file: expected a header line", file=path, line=1) from None
    except csv.Error as exc:
        raise ConfigError(f"malformed CSV: {exc}", file=path, line=1) from None
    header = [name.strip() for name in header]
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if len(fields) > len(header):
                raise ConfigError(
                    f"{len(fields)} fields but the header has {len(header)}", file=path, line=line
                )
            row = {name: value.strip() for name, value in zip(header, fields, strict=False)}
            rows.append((line, {k: v for k, v in row.items() if v != ""}))
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
            raise ConfigError(
                "unknown column", file=path, line=1, column=name, allowed=allowed_set
            )
    for name in required:
        if name not in present:
            raise ConfigError(
                "required column is missing", file=path, line=1, column=name, allowed=allowed_set
            )


def header_of(path: Path) -> list[str]:
    """The header names of a CSV file."""
    text = path.read_bytes().decode("utf-8-sig")
    first = next(csv.reader(text.splitlines()), [])
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
