"""Incremental detokenization the way vLLM does it (pure Python, no torch).

A byte-level tokenizer can split one UTF-8 character across several tokens;
decoding a prefix then ends in U+FFFD. Like vLLM's ``detokenize_incrementally``
the text of a token is held back until its byte sequence completes, so no
U+FFFD is ever emitted for an incomplete sequence, and whatever is still held
back when generation ends is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

REPLACEMENT_CHAR = "\ufffd"


class Decoder(Protocol):
    """The one tokenizer method needed: ``decode(ids, skip_special_tokens=...)``."""

    def decode(self, token_ids: list[int], skip_special_tokens: bool = ...) -> str: ...


class IncrementalDetokenizer:
    """Turn token ids, fed one or a few at a time, into text deltas."""

    def __init__(self, tokenizer: Decoder, *, skip_special_tokens: bool = True) -> None:
        self._tokenizer = tokenizer
        self._skip_special = skip_special_tokens
        self.token_ids: list[int] = []
        self.text = ""
        self._prefix_offset = 0
        self._read_offset = 0

    def _decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=self._skip_special)

    def add(self, token_id: int) -> str:
        """Append one id; return the newly completed text (maybe empty)."""
        self.token_ids.append(token_id)
        ids = self.token_ids
        prefix_text = self._decode(ids[self._prefix_offset : self._read_offset])
        new_text = self._decode(ids[self._prefix_offset :])
        if len(new_text) <= len(prefix_text) or new_text.endswith(REPLACEMENT_CHAR):
            return ""  # nothing new yet, or an incomplete byte sequence: hold back
        delta = new_text[len(prefix_text) :]
        self._prefix_offset = self._read_offset
        self._read_offset = len(ids)
        self.text += delta
        return delta

    def add_many(self, token_ids: Iterable[int]) -> str:
        """Append several ids; return the concatenated deltas."""
        return "".join(self.add(t) for t in token_ids)


class StopStringChecker:
    """Find stop strings in streamed text, holding back a possible partial match.

    As in vLLM, the stop string itself is not part of the output, and while
    streaming the last ``max(len(stop)) - 1`` characters wait until they
    cannot be the start of a stop string.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._hold = max((len(s) for s in self._stops), default=1) - 1
        self._text = ""
        self._emitted = 0
        self.stopped = False

    def feed(self, delta: str) -> str:
        """Add a text delta; return what may be emitted now."""
        if self.stopped or not delta:
            return ""
        if not self._stops:
            return delta
        start = max(0, len(self._text) - self._hold)
        self._text += delta
        cut = min(
            (i for i in (self._text.find(s, start) for s in self._stops) if i >= 0), default=-1
        )
        if cut >= 0:
            self.stopped = True
            self._text = self._text[:cut]
            end = cut
        else:
            end = max(self._emitted, len(self._text) - self._hold)
        out = self._text[self._emitted : end]
        self._emitted = max(self._emitted, end)
        return out

    def flush(self) -> str:
        """Release the held-back tail at the end of generation."""
        out = self._text[self._emitted :]
        self._emitted = len(self._text)
        return out
