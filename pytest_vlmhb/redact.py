"""Redaction of known secret values from everything the harness writes.

Keys reach the harness only through environment variables (``api_key_env``
in models.csv, plus the usual token variables). Their values are collected
once per process and masked in every report, store line, progress line,
error message and saved server log, because a server may echo a key back
(e.g. in a 401 body) or print its environment.

Mask before you cut: a key straddling a truncation point would leak its
prefix if the text were cut first, so every shortened server text goes
through :func:`redact_then_truncate`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal
from urllib.parse import quote, quote_plus

MASK = "***"
#: Marks where :func:`redact_then_truncate` cut the text.
CUT = "…"
#: Variables masked even when no model names them.
COMMON_SECRET_ENV = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "OPENAI_API_KEY",
    "VLLM_API_KEY",
    "VLMHB_API_KEY",
)
#: A key named by ``api_key_env`` must be at least this long; ambient ones get a warning.
MIN_KEY_LENGTH = 8
_MIN_MASKED = 4  # shorter values are not masked: they would erase letters from every answer

_secrets: list[str] = []  # every masked form, longest first


def _forms(value: str) -> set[str]:
    """The value as it may appear in text: raw, JSON-escaped, repr-escaped, URL-encoded."""
    return {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        quote(value, safe=""),
        quote_plus(value, safe=""),
    }


def register_env(names: Iterable[str]) -> list[str]:
    """Mask the values of these variables and of ``COMMON_SECRET_ENV`` from now on.

    Returns warnings (naming the variable, never its value) for the caller to
    print. A value of ``MIN_KEY_LENGTH`` characters or more is masked silently.
    A shorter one of 4+ characters is still masked, since leaking a weak key is
    worse than over-masking, but with a warning: it is likely to match ordinary
    text, which then reads ``***`` in answers and reports. A value under 4
    characters is not masked at all (masking it would garble every answer) and
    is warned about. Besides the raw value, its JSON-escaped, repr-escaped and
    URL-encoded forms are masked (how a key shows up in an echoed JSON body, a
    store line or a URL).
    """
    warnings: list[str] = []
    for name in dict.fromkeys((*COMMON_SECRET_ENV, *names)):
        value = os.environ.get(name)
        if not value:
            continue
        if len(value) < _MIN_MASKED:
            warnings.append(
                f"{name} is only {len(value)} characters long: too short to be "
                f"masked (it would mask ordinary text), so it is NOT masked"
            )
            continue
        if len(value) < MIN_KEY_LENGTH:
            warnings.append(
                f"{name} is only {len(value)} characters long: too short to be "
                f"masked reliably; it is masked anyway, which may also mask "
                f"ordinary text in answers and reports"
            )
        register_value(value)
    return warnings


def register_value(value: str) -> None:
    """Mask a secret the harness made itself (e.g. a per-run server key) from now on,
    with its escaped and encoded forms; values under 4 characters are not masked."""
    _secrets.extend(
        form for form in _forms(value) if len(form) >= _MIN_MASKED and form not in _secrets
    )
    _secrets.sort(key=len, reverse=True)  # a key containing another is masked whole


def check_api_key_env(name: str) -> str | None:
    """An error message when the ``api_key_env`` variable ``name`` holds a too short key.

    None when it is unset or empty (nothing to leak; whether a key is required
    is the config's call) or at least ``MIN_KEY_LENGTH`` characters long.
    """
    value = os.environ.get(name)
    if not value or len(value) >= MIN_KEY_LENGTH:
        return None
    return (
        f"api_key_env {name}: the key is {len(value)} characters long; at least "
        f"{MIN_KEY_LENGTH} are required so that it can be masked reliably in logs and reports"
    )


def max_secret_bytes() -> int:
    """UTF-8 length of the longest masked form (0 if none).

    Reading a window of a file, read this many bytes more before the cut,
    redact, then cut: a key straddling the cut is then masked whole.
    """
    return max((len(s.encode()) for s in _secrets), default=0)


def redact(text: str) -> str:
    """``text`` with every known secret value replaced by ``***``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_then_truncate(text: str, limit: int, *, keep: Literal["head", "tail"]) -> str:
    """``text`` redacted, then cut to its first (``head``) or last (``tail``) ``limit`` characters.

    A cut text gets ``…`` at the cut (so it is at most ``limit + 1`` long). A
    secret straddling the cut is masked whole, since masking comes first.
    """
    text = redact(text)
    if len(text) <= limit:
        return text
    return text[:limit] + CUT if keep == "head" else CUT + text[len(text) - limit :]


def redact_file(path: Path) -> None:
    """Rewrite a saved file (e.g. a server log) in place if it holds a secret."""
    if not _secrets or not path.is_file():
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    cleaned = redact(text)
    if cleaned != text:
        path.write_text(cleaned, encoding="utf-8")
