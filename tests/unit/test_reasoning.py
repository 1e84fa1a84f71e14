"""Reasoning removal equals lmms-eval's, on chosen and generated answers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_vlmhb.reasoning import remove_reasoning
from tests.unit.reference_impls import reference_strip_reasoning

PIECES = [
    "<think>",
    "</think>",
    "<analysis>",
    "</analysis>",
    "<THINK>",
    "Paris",
    " ",
    "\n",
    "\t",
    "42%",
    "é",
    "<think",
    "think>",
    "\u2028",
    "\u00a0",
]


@pytest.mark.parametrize(
    ("raw", "scored"),
    [
        ("<think>x</think>Paris", "Paris"),
        ("  <think>\nlong\nthought\n</think>\n\nParis \n", "Paris"),
        ("reasoning pre-filled by the template</think> Paris", "Paris"),
        ("a</think>b</think>Paris", "Paris"),
        ("<think>unclosed Paris", "<think>unclosed Paris"),
        ("<THINK>x</THINK>Paris", "<THINK>x</THINK>Paris"),
        ("<think>a</think>Par<think>b</think>is", "Paris"),
        ("<analysis>a</analysis><think>b</think>Paris", "Paris"),
        ("Paris", "Paris"),
        ("", ""),
    ],
)
def test_chosen_answers(raw: str, scored: str) -> None:
    assert remove_reasoning(raw) == scored == reference_strip_reasoning(raw)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=3)), max_size=12))
def test_equals_lmms_eval_on_generated_answers(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert remove_reasoning(text) == reference_strip_reasoning(text)


def test_custom_pairs_and_empty_tags() -> None:
    assert remove_reasoning("[r]x[/r]ok", [("[r]", "[/r]")]) == "ok"
    assert remove_reasoning("<think>x</think>ok", []) == "<think>x</think>ok"
    assert remove_reasoning(" a ", [("", "</think>")]) == "a"  # ignored, not a hang
