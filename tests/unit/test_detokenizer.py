"""The HF server's incremental detokenizer and stop-string check (pure Python)."""

from __future__ import annotations

import itertools
import random

import pytest

from pytest_vlmhb.server.detokenizer import (
    REPLACEMENT_CHAR,
    IncrementalDetokenizer,
    StopStringChecker,
)

EOS = 0


class FakeByteTokenizer:
    """Byte-level: id 0 is a special token, id b+1 is the single byte b, then merges."""

    def __init__(self, merges: tuple[bytes, ...] = ()) -> None:
        self.pieces: dict[int, bytes] = {b + 1: bytes([b]) for b in range(256)}
        for merge in merges:
            self.pieces[len(self.pieces) + 1] = merge
        self.ids = {v: k for k, v in self.pieces.items()}

    def decode(self, token_ids: list[int], skip_special_tokens: bool = False) -> str:
        raw = b"".join(
            self.pieces[t] if t != EOS else (b"" if skip_special_tokens else b"</s>")
            for t in token_ids
        )
        return raw.decode("utf-8", errors="replace")

    def encode_bytes(self, data: bytes, cut_points: list[int]) -> list[int]:
        """Ids of ``data`` split at ``cut_points`` (each piece becomes one token)."""
        bounds = [0, *sorted(set(cut_points)), len(data)]
        return [self._piece(data[a:b]) for a, b in itertools.pairwise(bounds) if b > a]

    def _piece(self, piece: bytes) -> int:
        if piece not in self.ids:
            self.pieces[len(self.pieces) + 1] = piece
            self.ids[piece] = len(self.pieces)
        return self.ids[piece]


def _stream(tok: FakeByteTokenizer, ids: list[int]) -> tuple[list[str], str]:
    detok = IncrementalDetokenizer(tok)
    deltas = [detok.add(t) for t in ids]
    return deltas, detok.text


def test_multibyte_char_split_across_tokens_is_held_back() -> None:
    tok = FakeByteTokenizer()
    data = "aé€😀b".encode()
    ids = [tok.ids[bytes([b])] for b in data]  # one byte per token
    deltas, text = _stream(tok, ids)
    assert deltas == ["a", "", "é", "", "", "€", "", "", "", "😀", "b"]
    assert text == "aé€😀b"
    assert all(REPLACEMENT_CHAR not in d for d in deltas)


def test_trailing_incomplete_sequence_is_dropped() -> None:
    """Measured: tokenizer.decode renders a trailing partial sequence as U+FFFD; vLLM drops it."""
    tok = FakeByteTokenizer()
    data = "ok €".encode()[:-1]  # generation stopped inside the euro sign
    ids = [tok.ids[bytes([b])] for b in data]
    full = tok.decode(ids, skip_special_tokens=True)
    assert full.endswith(REPLACEMENT_CHAR)  # what tokenizer.decode renders
    deltas, text = _stream(tok, ids)
    assert text == "ok " == full.rstrip(REPLACEMENT_CHAR)
    assert all(REPLACEMENT_CHAR not in d for d in deltas)


def test_special_tokens_are_skipped() -> None:
    tok = FakeByteTokenizer()
    ids = [tok.ids[b"h"], EOS, tok.ids[b"i"], EOS]
    deltas, text = _stream(tok, ids)
    assert text == "hi"
    assert deltas == ["h", "", "i", ""]


def test_add_many_concatenates_deltas() -> None:
    tok = FakeByteTokenizer()
    ids = tok.encode_bytes("naïve café".encode(), [3, 7])
    detok = IncrementalDetokenizer(tok)
    assert detok.add_many(ids) == "naïve café"
    assert detok.token_ids == ids


@pytest.mark.parametrize("seed", range(20))
def test_random_splits_match_full_decode(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = "ab ,.é€😀東京ñ"
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
    data = text.encode()
    truncate = rng.randint(0, 3)
    data = data[: len(data) - truncate] if truncate < len(data) else data
    tok = FakeByteTokenizer()
    cuts = [rng.randint(1, max(1, len(data) - 1)) for _ in range(rng.randint(0, len(data)))]
    ids = tok.encode_bytes(data, cuts)
    deltas, streamed = _stream(tok, ids)
    assert all(REPLACEMENT_CHAR not in d for d in deltas)
    assert "".join(deltas) == streamed
    # As vLLM: the text of the longest prefix of ids that decodes completely; the
    # trailing tokens that end in an incomplete sequence are dropped whole.
    complete = max(k for k in range(len(ids) + 1) if not _decode(tok, ids[:k]).endswith("\ufffd"))
    assert streamed == _decode(tok, ids[:complete])
    assert data.decode("utf-8", errors="ignore").startswith(streamed)
    if not truncate:
        assert streamed == text


def _decode(tok: FakeByteTokenizer, ids: list[int]) -> str:
    return tok.decode(ids, skip_special_tokens=True)


def test_stop_string_truncates_and_holds_back_partial_match() -> None:
    checker = StopStringChecker(["STOP"])
    out = [checker.feed(d) for d in ["ab", "cS", "T", "x", "yST", "OPz"]]
    assert "".join(out) == "abcSTxy"
    assert checker.stopped
    assert checker.feed("more") == ""
    assert checker.flush() == ""


def test_stop_checker_flushes_tail_without_match() -> None:
    checker = StopStringChecker(["</end>"])
    emitted = checker.feed("hello <") + checker.feed("/en")
    assert emitted == "hello"  # " </en" (len("</end>") - 1 chars) may still start a stop
    assert not checker.stopped
    assert emitted + checker.flush() == "hello </en"


def test_no_stop_strings_passes_through() -> None:
    checker = StopStringChecker([])
    assert checker.feed("abc") == "abc"
    assert checker.flush() == ""
