"""Removing reasoning blocks from an answer before it is scored.

:func:`answer_to_score` is the text every metric scores, made as lmms-eval's
pipeline makes it from a generated answer: reasoning removal with the case's
``reasoning_tags`` (its evaluator's scoring loop, ``lmms_eval/evaluator.py``
lines 1225-1233), then the
whole-answer strip its ``ConfigurableTask.process_results`` applies to every
``generate_until`` answer before any scoring (``lmms_eval/api/task.py`` at
commit 75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3, lines 1586-1590:
``results = [res.strip() if res is not None else "" for res in results]``).
With ``reasoning_tags=()`` (the cell ``none``) only the strip applies.
Reasoning a server streams apart (``delta.reasoning``) never reaches it: the
client keeps it out of the answer text.

:func:`remove_reasoning` behaves as lmms-eval's evaluator does with its command
line's defaults (``lmms_eval/api/reasoning.py``; tests/unit/reference_impls.py
holds it verbatim and a property test compares the two): for each ``(open, close)``
pair in turn, every ``open ... close`` block is removed (the first ``close``
after each ``open``); then, if a ``close`` remains and no ``open`` does (a
chat template that pre-fills the opening tag), only the text after the last
``close`` is kept. An ``open`` with no ``close`` after it is left in place.
Tags are case-sensitive. The result is stripped of surrounding whitespace.
"""

from __future__ import annotations

from collections.abc import Sequence

#: lmms-eval's default pairs (its ``--reasoning_tags``).
DEFAULT_REASONING_TAGS: tuple[tuple[str, str], ...] = (
    ("<think>", "</think>"),
    ("<analysis>", "</analysis>"),
)


def _drop_blocks(text: str, opening: str, closing: str) -> str:
    while True:
        start = text.find(opening)
        end = text.find(closing, start) if start >= 0 else -1
        if end < 0:
            return text
        text = text[:start] + text[end + len(closing) :]


def remove_reasoning(text: str, pairs: Sequence[tuple[str, str]] = DEFAULT_REASONING_TAGS) -> str:
    """``text`` without its reasoning blocks, stripped (pairs with an empty tag are
    ignored: they would match everywhere)."""
    for opening, closing in pairs:
        if not opening or not closing:
            continue
        text = _drop_blocks(text, opening, closing)
        if closing in text and opening not in text:
            text = text.rpartition(closing)[2]
    return text.strip()


def answer_to_score(raw: str, pairs: Sequence[tuple[str, str]]) -> str:
    """The text the metrics score: ``raw`` with the ``pairs``' reasoning blocks removed,
    then stripped as a whole (lmms-eval's ``process_results`` strip; see the module)."""
    return remove_reasoning(raw, pairs).strip()
