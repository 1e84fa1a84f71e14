"""Secret masking: mask before cutting, escaped and encoded forms, length rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal
from urllib.parse import quote, quote_plus

import pytest

from pytest_vlmhb import redact as redact_module
from pytest_vlmhb.redact import (
    COMMON_SECRET_ENV,
    MASK,
    check_api_key_env,
    max_secret_bytes,
    redact,
    redact_file,
    redact_then_truncate,
    register_env,
)

KEY = "sk-ABCDEFGHIJKLMNOP"  # no "." and no "*": what is left of it is easy to spot


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh secret list and no ambient tokens, for every test."""
    monkeypatch.setattr(redact_module, "_secrets", [])
    for name in COMMON_SECRET_ENV:
        monkeypatch.delenv(name, raising=False)


def _register(monkeypatch: pytest.MonkeyPatch, value: str, name: str = "HF_TOKEN") -> list[str]:
    monkeypatch.setenv(name, value)
    return register_env([name])


@pytest.mark.parametrize("limit", [20, 500])
@pytest.mark.parametrize("keep", ["head", "tail"])
def test_a_key_straddling_the_cut_is_masked_whole(
    monkeypatch: pytest.MonkeyPatch, limit: int, keep: Literal["head", "tail"]
) -> None:
    _register(monkeypatch, KEY)
    for offset in range(limit - len(KEY) - 2, limit + 2):  # every cut through the key, and around
        before, after = ("." * offset, "." * 600) if keep == "head" else ("." * 600, "." * offset)
        text = before + KEY + after
        result = redact_then_truncate(text, limit, keep=keep)
        assert set(result) <= set(".*…"), (offset, result)
        assert len(result) <= limit + 1


def test_truncation_marks_the_cut_and_leaves_short_text_alone() -> None:
    assert redact_then_truncate("abc", 3, keep="head") == "abc"
    assert redact_then_truncate("abcdef", 3, keep="head") == "abc…"
    assert redact_then_truncate("abcdef", 3, keep="tail") == "…def"
    assert redact_then_truncate("abcdef", 0, keep="tail") == "…"


ODD_KEY = 'ab"cd\\ef/gh+ij=k l&m'  # quote, backslash, slash, plus, equals, space, ampersand


@pytest.mark.parametrize(
    "form",
    [
        ODD_KEY,
        json.dumps(ODD_KEY)[1:-1],
        repr(ODD_KEY)[1:-1],
        quote(ODD_KEY, safe=""),
        quote_plus(ODD_KEY, safe=""),
    ],
    ids=["raw", "json", "repr", "url", "url-plus"],
)
def test_escaped_and_encoded_forms_are_masked(monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    _register(monkeypatch, ODD_KEY)
    result = redact(f"before {form} after")
    assert result == f"before {MASK} after"


def test_a_key_in_a_json_store_line_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    _register(monkeypatch, ODD_KEY)
    for line in (
        json.dumps({"error": f"bad key {ODD_KEY}"}),
        json.dumps({"error": f"bad key {ODD_KEY}"}, ensure_ascii=False),
    ):
        cleaned = redact(line)
        assert (
            MASK in cleaned and ODD_KEY not in cleaned and json.dumps(ODD_KEY)[1:-1] not in cleaned
        )


def test_a_non_ascii_key_is_masked_in_its_ascii_json_form(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "clé-secrète-123"
    _register(monkeypatch, key)
    assert redact(json.dumps({"k": key})) == json.dumps({"k": MASK})
    assert redact(json.dumps({"k": key}, ensure_ascii=False)) == json.dumps({"k": MASK})


@pytest.mark.parametrize(
    ("length", "masked", "warned"),
    [
        (1, False, True),
        (3, False, True),
        (4, True, True),
        (7, True, True),
        (8, True, False),
        (40, True, False),
    ],
)
def test_length_rules_for_ambient_tokens(
    monkeypatch: pytest.MonkeyPatch, length: int, masked: bool, warned: bool
) -> None:
    value = "Q" * length
    warnings = _register(monkeypatch, value, "OPENAI_API_KEY")
    assert (redact(f"x {value} y") == f"x {MASK} y") is masked
    assert bool(warnings) is warned
    for warning in warnings:
        assert "OPENAI_API_KEY" in warning and value not in warning
        assert ("NOT masked" in warning) is not masked


def test_unset_and_empty_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "")
    assert register_env(["NOT_SET_ANYWHERE_VLMHB"]) == []
    assert redact("text") == "text" and max_secret_bytes() == 0


def test_a_model_key_variable_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVER_KEY", "abcdefgh12345")
    assert register_env(["MY_SERVER_KEY"]) == []
    assert redact("key=abcdefgh12345.") == f"key={MASK}."


def test_a_key_containing_another_is_masked_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "abcdefgh")
    monkeypatch.setenv("VLLM_API_KEY", "abcdefgh-and-more")
    register_env([])
    assert redact("abcdefgh-and-more / abcdefgh") == f"{MASK} / {MASK}"


def test_registering_twice_adds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    _register(monkeypatch, KEY)
    before = list(redact_module._secrets)
    _register(monkeypatch, KEY)
    assert redact_module._secrets == before


def test_max_secret_bytes_covers_the_longest_form(monkeypatch: pytest.MonkeyPatch) -> None:
    _register(monkeypatch, ODD_KEY)
    assert max_secret_bytes() == max(len(quote(ODD_KEY, safe="")), len(quote_plus(ODD_KEY)))


@pytest.mark.parametrize(
    ("value", "error"),
    [(None, False), ("", False), ("1234567", True), ("12345678", False), ("x" * 64, False)],
)
def test_check_api_key_env(monkeypatch: pytest.MonkeyPatch, value: str | None, error: bool) -> None:
    if value is None:
        monkeypatch.delenv("MODEL_KEY_VLMHB", raising=False)
    else:
        monkeypatch.setenv("MODEL_KEY_VLMHB", value)
    message = check_api_key_env("MODEL_KEY_VLMHB")
    assert (message is not None) is error
    if message is not None:
        assert "MODEL_KEY_VLMHB" in message and "8" in message and "1234567" not in message


def test_redact_file_rewrites_only_files_with_a_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _register(monkeypatch, KEY)
    dirty, clean = tmp_path / "dirty.log", tmp_path / "clean.log"
    dirty.write_text(f"token {KEY}\n")
    clean.write_text("nothing\n")
    redact_file(dirty)
    redact_file(clean)
    redact_file(tmp_path / "missing.log")
    assert dirty.read_text() == f"token {MASK}\n" and clean.read_text() == "nothing\n"
