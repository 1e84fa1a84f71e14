"""Redaction of known secret values from everything the harness writes.

Keys reach the harness only through environment variables (``api_key_env``
in models.csv, plus the usual token variables). Their values are collected
once per process and masked in every report, store line, progress line,
error message and saved server log, because a server may echo a key back
(e.g. in a 401 body) or print its environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

MASK = "***"
#: Variables masked even when no model names them.
COMMON_SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API_KEY", "VLLM_API_KEY",
                     "VLMHB_API_KEY")
_MIN_LENGTH = 6  # shorter values would mask ordinary words

_secrets: list[str] = []


def register_env(names: Iterable[str]) -> None:
    """Mask the values of these environment variables (and the common ones) from now on."""
    for name in (*COMMON_SECRET_ENV, *names):
        value = os.environ.get(name)
        if value and len(value) >= _MIN_LENGTH and value not in _secrets:
            _secrets.append(value)
    _secrets.sort(key=len, reverse=True)  # a key containing another is masked whole


def redact(text: str) -> str:
    """``text`` with every known secret value replaced by ``***``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_file(path: Path) -> None:
    """Rewrite a saved file (e.g. a server log) in place if it holds a secret."""
    if not _secrets or not path.is_file():
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    cleaned = redact(text)
    if cleaned != text:
        path.write_text(cleaned, encoding="utf-8")
