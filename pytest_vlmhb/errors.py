"""Errors the plugin raises for bad input; each names where the problem is."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class VlmhbError(Exception):
    """Base class of the plugin's own errors."""


class ConfigError(VlmhbError):
    """Bad configuration: names the file, line, column and the allowed values."""

    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        line: int | None = None,
        column: str | None = None,
        allowed: Iterable[str] | None = None,
    ) -> None:
        self.file = Path(file) if file is not None else None
        self.line = line
        self.column = column
        self.allowed = sorted(allowed) if allowed is not None else None
        self.message = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.file is not None:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        column = f"column '{self.column}': " if self.column else ""
        allowed = ""
        if self.allowed is not None:
            allowed = f" (allowed: {', '.join(self.allowed) if self.allowed else 'none'})"
        return f"{where}{column}{self.message}{allowed}"


class SampleError(VlmhbError):
    """One sample cannot be run (unreadable image...); other samples go on."""


class ServerError(VlmhbError):
    """A backend server failed to start, died, or answered with an error."""
