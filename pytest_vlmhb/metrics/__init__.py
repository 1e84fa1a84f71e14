"""Built-in metrics, one module each.

No metric module is imported here: the metrics are found through the ``vlmhb.metrics``
entry point group (see ``ENTRY_POINTS.txt`` next to this file), so importing
this package stays cheap and third-party metrics register the same way.
"""

from __future__ import annotations

import re
from importlib.resources import files

_LINE = re.compile(r'^(\w+) = "([\w.]+):(\w+)"$')


def builtin_entry_points() -> dict[str, str]:
    """``ENTRY_POINTS.txt``: each built-in metric's name -> ``module:Class``.

    Read as package data, so an installed wheel can check that its own
    ``vlmhb.metrics`` registrations name every built-in metric.
    """
    text = files(__name__).joinpath("ENTRY_POINTS.txt").read_text("utf-8")
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"ENTRY_POINTS.txt:{number}: not 'name = \"module:Class\"': {line!r}")
        found[match[1]] = f"{match[2]}:{match[3]}"
    return found
