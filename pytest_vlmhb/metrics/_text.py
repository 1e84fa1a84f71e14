"""Text normalisation shared by the string-matching metrics."""

from __future__ import annotations


def squash(text: str) -> str:
    """Lower-case, strip, and collapse runs of whitespace to one space."""
    return " ".join(text.strip().lower().split())
