"""A run's outputs as pandas DataFrames: ``load(output_dir)``.

Reads answers.csv, metrics.csv and (when present) gates.csv with the project's
own CSV reader, so formula-escaped cells come back as the raw text. Columns
that hold only numbers (or nothing) become float columns; the text columns
(ids, prompts, answers, errors, gate names) always stay text, so a sample id
such as ``007`` is never read as the number 7. An empty cell is missing
(``NaN`` in a number column, ``None`` in a text column).

Importing this module imports pandas: the plugin does so only when it writes
the outputs, never while inactive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .columns import (
    ANSWER_ID_COLUMNS,
    ANSWER_TEXT_COLUMNS,
    CASE_TEXT_COLUMNS,
)
from .csvsafe import read_csv_dicts
from .gates import GATE_COLUMNS

ANSWERS_FILE = "answers.csv"
METRICS_FILE = "metrics.csv"
GATES_FILE = "gates.csv"

#: Columns kept as text whatever they hold (the rest become numbers where they can).
ANSWER_TEXT = frozenset((*ANSWER_ID_COLUMNS, *ANSWER_TEXT_COLUMNS, "finish_reason", "error"))
METRIC_TEXT = frozenset(CASE_TEXT_COLUMNS)
GATE_TEXT = frozenset(("case_id", "gate", "result", "detail"))


@dataclass(frozen=True)
class Results:
    """One output dir's answers (a row per sample), metrics (a row per case) and
    gates (a row per checked threshold; empty when the run wrote no gates.csv)."""

    answers: pd.DataFrame
    metrics: pd.DataFrame
    gates: pd.DataFrame


def frame(
    rows: Sequence[Mapping[str, str]], text: Iterable[str], columns: Sequence[str] = ()
) -> pd.DataFrame:
    """CSV rows (all cells text) as a DataFrame: ``text`` columns as text, every
    other column as float when each of its non-empty cells is a number. The
    columns are the rows' keys in order of appearance (``columns`` when no row)."""
    names = list(dict.fromkeys(name for row in rows for name in row)) if rows else list(columns)
    keep = set(text)
    data: dict[str, pd.Series] = {}
    for name in names:
        cells = [row.get(name, "") for row in rows]
        series = pd.Series([cell if cell != "" else None for cell in cells], dtype=object)
        if name not in keep:
            numbers = pd.to_numeric(series, errors="coerce")
            if numbers.notna().sum() == series.notna().sum():
                data[name] = numbers.astype(float)
                continue
        data[name] = series
    return pd.DataFrame(data, columns=names)


def _read(path: Path, text: Iterable[str], columns: Sequence[str] = ()) -> pd.DataFrame:
    return frame(read_csv_dicts(path), text, columns)


def load(output_dir: Path | str) -> Results:
    """The answers, metrics and gates of a run's output dir.

    Raises ``OSError`` (``FileNotFoundError``) when answers.csv or metrics.csv
    cannot be read; a missing gates.csv is an empty frame with its columns.
    """
    output = Path(output_dir)
    gates_path = output / GATES_FILE
    gates = (
        _read(gates_path, GATE_TEXT, GATE_COLUMNS)
        if gates_path.is_file()
        else frame([], GATE_TEXT, GATE_COLUMNS)
    )
    return Results(
        answers=_read(output / ANSWERS_FILE, ANSWER_TEXT),
        metrics=_read(output / METRICS_FILE, METRIC_TEXT),
        gates=gates,
    )
