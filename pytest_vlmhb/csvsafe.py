"""CSV cells safe to open in a spreadsheet (no formula injection), reversibly.

Model answers, prompts and sample ids are untrusted text. Following OWASP's
CSV-injection advice, a string cell that begins with a formula trigger
(``=``, ``+``, ``-``, ``@``, tab, CR, LF, or their full-width forms U+FF1D,
U+FF0B, U+FF0D, U+FF20) is written with a leading ``'``, so Excel and
LibreOffice show it as text. Two exceptions keep the escape exact and reversible:

- a cell that is a plain number (``-1.5``, ``+3``, ``.5e-3``; ASCII digits
  only, regex :data:`NUMBER`) is left as it is; ``-inf`` or ``-nan`` are not
  plain numbers and are escaped;
- a cell that already begins with ``'`` gets one more ``'``, so a real answer
  ``'=x`` reads back as ``'=x``, not ``=x``.

:func:`unescape_cell` removes exactly one leading ``'``, so
``unescape_cell(escape_cell(s)) == s`` for every string. Only the CSV files
are escaped: the results store keeps the raw text.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

#: First characters that make a spreadsheet evaluate a cell.
TRIGGERS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
#: The quote that marks an escaped cell.
QUOTE = "'"
#: A plain decimal or scientific number: left unescaped although it may start with + or -.
NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def escape_cell(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet could read it as a formula."""
    if text.startswith(QUOTE) or (text[:1] in TRIGGERS and not NUMBER.fullmatch(text)):
        return QUOTE + text
    return text


def unescape_cell(text: str) -> str:
    """The original text of a cell written by :func:`escape_cell`."""
    return text[1:] if text.startswith(QUOTE) else text


def read_csv_dicts(path: Path) -> list[dict[str, str]]:
    """Rows of one of our own CSV files (answers.csv, metrics.csv), escapes undone.

    Header names are unescaped too; blank lines are skipped, a missing cell
    reads as ``""`` and cells beyond the header are dropped. Raises ``OSError``
    when the file cannot be read.
    """
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [unescape_cell(name) for name in next(reader, [])]
        return [
            {
                name: unescape_cell(cells[i]) if i < len(cells) else ""
                for i, name in enumerate(header)
            }
            for cells in reader
            if cells
        ]
