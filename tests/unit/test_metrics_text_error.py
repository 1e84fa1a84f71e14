"""CER / WER against jiwer 4 (test-only dependency), per sample and corpus-pooled."""

from __future__ import annotations

import jiwer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_vlmhb.metrics.text_error import CER, WER, chars, words

# Spaces (single and runs), tabs, newlines, NBSP, case and accents: the whitespace
# handling is where a re-implementation would drift from jiwer's transforms.
ALPHABET = [*"abcAé ", " ", "  ", "\t", "\n", "\u00a0", "ab", "ß"]
text = st.lists(st.sampled_from(ALPHABET), max_size=25).map("".join)
reference = text.filter(lambda t: t.strip() != "")  # jiwer rejects empty references


@settings(max_examples=800)
@given(reference, text)
def test_per_sample_equals_jiwer(ref: str, hyp: str) -> None:
    cer, wer = CER(), WER()
    assert cer.value(cer.stats(hyp, {"text": ref})) == pytest.approx(jiwer.cer(ref, hyp), rel=1e-12)
    assert wer.value(wer.stats(hyp, {"text": ref})) == pytest.approx(jiwer.wer(ref, hyp), rel=1e-12)


@settings(max_examples=400)
@given(st.lists(st.tuples(reference, text), min_size=1, max_size=6))
def test_corpus_pooled_equals_jiwer_on_lists(pairs: list[tuple[str, str]]) -> None:
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    cer, wer = CER(), WER()
    cer_stats = [cer.stats(h, {"text": r}) for r, h in pairs]
    wer_stats = [wer.stats(h, {"text": r}) for r, h in pairs]
    assert cer.aggregate(cer_stats) == pytest.approx(jiwer.cer(refs, hyps), rel=1e-12)
    assert wer.aggregate(wer_stats) == pytest.approx(jiwer.wer(refs, hyps), rel=1e-12)


@settings(max_examples=300)
@given(text)
def test_transforms_equal_jiwer_defaults(sentence: str) -> None:
    assert words(sentence) == jiwer.wer_default(sentence)[0]
    assert list(chars(sentence)) == jiwer.cer_default(sentence)[0]


@pytest.mark.parametrize(
    ("ref", "hyp", "cer", "wer"),
    [
        ("hello world", "hello world", 0.0, 0.0),
        ("hello world", "  hello   world \n", 2 / 11, 0.0),  # CER keeps inner space runs
        ("hello world", "hello", 6 / 11, 1 / 2),
        ("hello world", "", 1.0, 1.0),
        ("ab", "abcdef", 2.0, 1.0),  # insertions can push rates above 1
        ("a\tb c", "a b c", 1 / 5, 2 / 2),  # a lone tab is not a word boundary in jiwer
        ("Hello", "hello", 1 / 5, 1.0),  # case-sensitive
    ],
)
def test_hand_picked_cases(ref: str, hyp: str, cer: float, wer: float) -> None:
    assert CER().value(CER().stats(hyp, {"text": ref})) == pytest.approx(cer)
    assert WER().value(WER().stats(hyp, {"text": ref})) == pytest.approx(wer)
    assert jiwer.cer(ref, hyp) == pytest.approx(cer)
    assert jiwer.wer(ref, hyp) == pytest.approx(wer)


def test_stats_and_pooling() -> None:
    wer = WER()
    a = wer.stats("the cat sat", {"text": "the cat sat down"})  # 1 edit / 4
    b = wer.stats("x", {"text": "y"})  # 1 edit / 1
    assert a == {"edits": 1.0, "ref_len": 4.0} and b == {"edits": 1.0, "ref_len": 1.0}
    assert wer.aggregate([a, b]) == pytest.approx(2 / 5)  # pooled, not the mean 0.625


def test_empty_reference() -> None:
    for metric in (CER(), WER()):
        stats = metric.stats("something", {"text": "  "})
        assert stats["ref_len"] == 0.0
        assert metric.value(stats) is None
        assert metric.aggregate([stats]) is None
        assert metric.aggregate([]) is None


def test_errored_samples_score_the_worst_rate() -> None:
    for metric in (CER(), WER()):
        assert not metric.higher_is_better
        worst = metric.worst_stats({"text": "two words"})
        assert worst["edits"] == worst["ref_len"] > 0
        assert metric.value(worst) == 1.0
        assert metric.worst_stats({"text": ""}) == {"edits": 1.0, "ref_len": 1.0}
    assert CER().worst_stats({"text": "two words"}) == {"edits": 9.0, "ref_len": 9.0}
    assert WER().worst_stats({"text": "two words"}) == {"edits": 2.0, "ref_len": 2.0}
