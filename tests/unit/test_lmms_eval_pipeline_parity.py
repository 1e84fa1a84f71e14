"""Generated text -> per-sample score, per preset, equals lmms-eval's pipeline.

lmms-eval (commit 75571cfe) scores a ``generate_until`` answer as: its
evaluator's reasoning removal (``--reasoning_tags``; ``none`` turns it off),
then ``ConfigurableTask.process_results``, which strips the whole answer and
hands it to the task's ``process_results`` (or its metric functions). Both
sides run here on the same raw answers: ours through ``make_record`` (what the
runner scores), theirs through the verbatim code in ``reference_impls``.
"""

# ruff: noqa: RUF001  (full-width text is the point)

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_vlmhb.client import Completion
from pytest_vlmhb.config import Case
from pytest_vlmhb.metrics.relaxed_accuracy import RelaxedAccuracy
from pytest_vlmhb.reasoning import DEFAULT_REASONING_TAGS, answer_to_score
from pytest_vlmhb.records import Record, make_record, metric
from pytest_vlmhb.tasks.manifest import Sample
from pytest_vlmhb.tasks.presets import load_preset, preset_names
from pytest_vlmhb.tasks.templates import render_template
from tests.helpers import make_case
from tests.unit.reference_impls import (
    MULTIDOCVQA_KWARGS,
    SLIDEVQA_KWARGS,
    ConfigurableTaskScoring,
    cc_ocr_process_results,
    chartqa_process_results,
    lmms_eval_docvqa_task,
    lmms_eval_generated_answer_scores,
    lmms_eval_kie_f1,
    lmms_eval_multidocvqa_scores,
    multidocvqa_doc_to_text,
    multidocvqa_process_results,
    ocrbench_process_results,
    slidevqa_doc_to_text,
    slidevqa_process_results,
)

Tags = tuple[tuple[str, str], ...]
#: Reasoning-tag settings: ours (a case's ``reasoning_tags``) and lmms-eval's.
TAG_SETTINGS: dict[str, tuple[Tags, list[list[str]] | None]] = {
    "default": (DEFAULT_REASONING_TAGS, [["<think>", "</think>"], ["<analysis>", "</analysis>"]]),
    "none": ((), None),
    "custom": ((("[r]", "[/r]"),), [["[r]", "[/r]"]]),
}
#: Whitespace ``str.strip`` removes (JSON and jiwer see some of it differently).
SPACE = st.sampled_from([" ", "\n", "\t", "\r\n", "\u00a0", "\u2028", "\u3000", "\x0b", "\x1c"])
PADDING = st.lists(SPACE, max_size=3).map("".join)
#: How reasoning surrounds the answer: blocks, pre-filled opening tags, unclosed ones.
WRAPS = [
    "{}",
    "<think>x</think>{}",
    "<think>\nlong\nthought\n</think>\n\n{}",
    "pre-filled by the template</think> {}",
    "a</think>b</think>{}",
    "<think>unclosed {}",
    "{}</think>",
    "<analysis>a</analysis><think>b</think>{}",
    "<THINK>x</THINK>{}",
    "[r]custom[/r]{}",
    "[r]unclosed {}",
    "<think>a</think>{}<think>b</think>",
]


def ours(name: str, reference: dict[str, Any], raw: str, tags: Tags) -> Record:
    """The record our runner makes for ``raw`` on a case of preset ``name``."""
    preset = load_preset(name)
    case: Case = make_case(preset.metrics, preset.task_type).model_copy(
        update={"reasoning_tags": tags}
    )
    sample = Sample(
        id="s", image=Path("x.png"), prompt="p", reference=reference, manifest=Path("m.jsonl")
    )
    return make_record(case, sample, Completion(text=raw, completion_tokens=1), None)


def theirs(task: ConfigurableTaskScoring, doc: dict[str, Any], raw: str, setting: str) -> Any:
    return lmms_eval_generated_answer_scores(task, doc, raw, TAG_SETTINGS[setting][1])


@st.composite
def raw_answers(draw: st.DrawFn, core: st.SearchStrategy[str]) -> str:
    """A generated answer: ``core`` padded with whitespace inside a reasoning wrap."""
    body = draw(PADDING) + draw(core) + draw(PADDING)
    return draw(PADDING) + draw(st.sampled_from(WRAPS)).format(body) + draw(PADDING)


WORDS = st.sampled_from(
    ["Paris", "paris", "PARIS", "Straße", "STRASSE", "İstanbul", "12.50", "$12.50", "é", "a b"]
)
TEXT = st.text(alphabet="ab .,%-éß\n", max_size=6)
NUMBERS = st.sampled_from(["42", "42%", "0.42", "41", "43.5", "0", "-3", "1e2", "12.5%", "Yes"])


# ---- the presets: every registered one has its reference pipeline below -----------------
LMMS_EVAL_PRESETS = {
    "docvqa_val",
    "infovqa_val",
    "chartqa_test",
    "ocrbench",
    "multidocvqa_val",
    "slidevqa_val",
}
CCOCR_PRESETS = {"cord_kie", "sroie_kie"}


def test_every_preset_has_a_parity_check() -> None:
    assert set(preset_names()) == LMMS_EVAL_PRESETS | CCOCR_PRESETS


@pytest.mark.parametrize("name", ["docvqa_val", "infovqa_val"])
@settings(max_examples=400, deadline=None)
@given(
    answers=st.lists(st.one_of(WORDS, TEXT), min_size=1, max_size=3),
    core=st.one_of(WORDS, TEXT),
    setting=st.sampled_from(list(TAG_SETTINGS)),
    data=st.data(),
)
def test_docvqa_presets_score_as_lmms_eval(
    name: str, answers: list[str], core: str, setting: str, data: st.DataObject
) -> None:
    raw = data.draw(raw_answers(st.sampled_from([core, *answers])))
    mine = ours(name, {"answers": answers}, raw, TAG_SETTINGS[setting][0])
    ref = theirs(lmms_eval_docvqa_task(answers), {"answers": answers}, raw, setting)
    assert mine["scores"]["anls"] == pytest.approx(ref["anls"], abs=1e-12)


@settings(max_examples=600, deadline=None)
@given(
    answer=NUMBERS,
    core=st.one_of(NUMBERS, WORDS, TEXT),
    split=st.sampled_from(["human_test", "augmented_test"]),
    setting=st.sampled_from(list(TAG_SETTINGS)),
    data=st.data(),
)
def test_chartqa_scores_as_lmms_eval(
    answer: str, core: str, split: str, setting: str, data: st.DataObject
) -> None:
    variants = [core, answer, answer.lower(), answer.upper(), answer.rstrip("%")]
    raw = data.draw(raw_answers(st.sampled_from(variants)))
    mine = ours("chartqa_test", {"answers": [answer]}, raw, TAG_SETTINGS[setting][0])
    task = ConfigurableTaskScoring(process_results=chartqa_process_results)
    ref = theirs(task, {"answer": answer, "type": split}, raw, setting)
    assert mine["scores"]["relaxed_accuracy"] == ref["relaxed_overall"]


OCR_ANSWERS = st.sampled_from(["Hello", "hello world", "x^2 + 1", "ＡＢＣ", "a\nb", " 42 "])


@settings(max_examples=600, deadline=None)
@given(
    answers=st.lists(OCR_ANSWERS, min_size=1, max_size=2),
    dataset=st.sampled_from(["HME100k", "IIIT5K", "docVQA"]),
    core=st.one_of(OCR_ANSWERS, WORDS, TEXT),
    setting=st.sampled_from(list(TAG_SETTINGS)),
    data=st.data(),
)
def test_ocrbench_scores_as_lmms_eval(
    answers: list[str], dataset: str, core: str, setting: str, data: st.DataObject
) -> None:
    noisy = [core, *answers, *(f"it reads {a.upper()}." for a in answers)]
    raw = data.draw(raw_answers(st.sampled_from(noisy)))
    reference = {"answers": answers, "dataset": dataset}
    mine = ours("ocrbench", reference, raw, TAG_SETTINGS[setting][0])
    task = ConfigurableTaskScoring(process_results=ocrbench_process_results)
    doc = {"answer": answers, "dataset": dataset, "question_type": "Doc-oriented VQA"}
    ref = theirs(task, doc, raw, setting)
    assert mine["scores"]["ocrbench"] == ref["ocrbench_accuracy"]["score"]


#: Answers the multi-page rules treat specially: "none", empty, outer/inner whitespace.
SPECIAL = st.sampled_from(["none", "None", " NONE ", "", "new  york", "New\nYork", "x x"])


@settings(max_examples=600, deadline=None)
@given(
    answers=st.lists(st.one_of(WORDS, TEXT, SPECIAL), min_size=1, max_size=3),
    core=st.one_of(WORDS, TEXT, SPECIAL),
    setting=st.sampled_from(list(TAG_SETTINGS)),
    data=st.data(),
)
def test_multidocvqa_scores_as_lmms_eval(
    answers: list[str], core: str, setting: str, data: st.DataObject
) -> None:
    raw = data.draw(raw_answers(st.sampled_from([core, *answers, *map(str.upper, answers)])))
    row = {"questionId": "7", "question": "q", "answers": str(answers)}  # the hub's text
    reference = load_preset("multidocvqa_val").fields(row)
    mine = ours("multidocvqa_val", reference, raw, TAG_SETTINGS[setting][0])
    task = ConfigurableTaskScoring(process_results=multidocvqa_process_results)
    anls, accuracy = lmms_eval_multidocvqa_scores([theirs(task, row, raw, setting)])
    assert mine["scores"]["mpdocvqa_anls"] == anls
    assert mine["scores"]["mpdocvqa_accuracy"] == accuracy


@settings(max_examples=600, deadline=None)
@given(
    answer=st.one_of(WORDS, TEXT, SPECIAL, st.none(), st.just(math.nan)),
    core=st.one_of(WORDS, TEXT, SPECIAL),
    setting=st.sampled_from(list(TAG_SETTINGS)),
    data=st.data(),
)
def test_slidevqa_scores_as_lmms_eval(
    answer: str | float | None, core: str, setting: str, data: st.DataObject
) -> None:
    reference = load_preset("slidevqa_val").fields({"question": "q", "answer": answer})
    text = reference["answers"][0]
    raw = data.draw(raw_answers(st.sampled_from([core, text, text.upper(), f"{text} {core}"])))
    mine = ours("slidevqa_val", reference, raw, TAG_SETTINGS[setting][0])
    task = ConfigurableTaskScoring(process_results=slidevqa_process_results)
    ref = theirs(task, {"answer": answer}, raw, setting)
    assert mine["scores"]["slidevqa_anls"] == ref["anls"]
    assert mine["scores"]["slidevqa_em"] == ref["em"]
    assert mine["scores"]["slidevqa_f1"] == ref["f1"]


@settings(max_examples=300, deadline=None)
@given(question=st.text(max_size=40))
def test_multipage_prompts_are_lmms_evals(question: str) -> None:
    """The preset's template over the materialised fields = the task's ``doc_to_text``
    with its yaml's default ``lmms_eval_specific_kwargs`` (braces and all)."""
    mp = load_preset("multidocvqa_val")
    row = {"questionId": "1", "question": question, "answers": "['a']"}
    assert render_template(mp.prompt, mp.fields(row)) == multidocvqa_doc_to_text(
        row, MULTIDOCVQA_KWARGS
    )
    slides = load_preset("slidevqa_val")
    row = {"question": question, "answer": "a"}
    assert render_template(slides.prompt, slides.fields(row)) == slidevqa_doc_to_text(
        row, SLIDEVQA_KWARGS
    )


GOLD = st.fixed_dictionaries(
    {"company": st.sampled_from(["ACME", "ＡＣＭＥ Ltd.", "b"]), "total": NUMBERS},
    optional={"date": st.sampled_from(["2024-01-02", "02/01/2024"])},
)


def _kie_answer(gold: dict[str, str], fence: bool, newline: bool) -> str:
    text = json.dumps(gold, ensure_ascii=False, indent=1 if newline else None)
    return f"```json\n{text}\n```" if fence else text


@pytest.mark.parametrize("name", sorted(CCOCR_PRESETS))
@settings(max_examples=150, deadline=None)
@given(
    samples=st.lists(
        st.tuples(GOLD, GOLD, st.booleans(), st.booleans(), TEXT), min_size=1, max_size=4
    ),
    setting=st.sampled_from(list(TAG_SETTINGS)),
    data=st.data(),
)
def test_kie_presets_score_as_lmms_eval(
    name: str,
    samples: list[tuple[dict[str, str], dict[str, str], bool, bool, str]],
    setting: str,
    data: st.DataObject,
) -> None:
    task = ConfigurableTaskScoring(process_results=cc_ocr_process_results)
    stats, payloads = [], []
    for i, (gold, said, fence, newline, junk) in enumerate(samples):
        answer = _kie_answer(said, fence, newline)
        raw = data.draw(raw_answers(st.sampled_from([answer, junk, answer + junk])))
        mine = ours(name, {"fields": gold}, raw, TAG_SETTINGS[setting][0])
        doc = {
            "answer": json.dumps(gold, ensure_ascii=False),
            "image_name": f"img{i}",
            "split": "sroie2019_word",
            "l2-category": "constrained_category",
        }
        payload = theirs(task, doc, raw, setting)["f1_score"]
        # Per sample, and over the case (lmms-eval divides by 1 + 1e-9 subsets).
        assert mine["scores"]["ccocr_kie_f1"] == pytest.approx(lmms_eval_kie_f1([payload]))
        stats.append(mine["stats"]["ccocr_kie_f1"])
        payloads.append(payload)
    aggregate = metric("ccocr_kie_f1").aggregate(stats)
    assert aggregate == pytest.approx(lmms_eval_kie_f1(payloads), abs=1e-8)


# ---- the acceptance examples -----------------------------------------------------------
def test_a_reasoning_block_is_removed_and_the_raw_text_kept() -> None:
    record = ours(
        "docvqa_val", {"answers": ["Paris"]}, "<think>x</think>Paris", DEFAULT_REASONING_TAGS
    )
    assert record["scores"]["anls"] == 1.0
    assert record["answer"] == "Paris"
    assert record.get("raw_answer") == "<think>x</think>Paris"
    ref = theirs(
        lmms_eval_docvqa_task(["Paris"]), {"answers": ["Paris"]}, "<think>x</think>Paris", "default"
    )
    assert ref["anls"] == 1.0


@pytest.mark.parametrize("setting", list(TAG_SETTINGS))
@pytest.mark.parametrize(
    ("raw", "rule_alone"),
    [
        ("\n 42% \n", 0.0),  # "42% \n" does not end in "%": compared as text
        ("42%\n", 0.0),
        ("\t\t42%", 1.0),  # float() itself skips the leading whitespace
        ("<think>\n</think>\n\n42%\n", 0.0),
    ],
)
def test_chartqa_whitespace_around_the_answer_scores_as_lmms_eval(
    raw: str, rule_alone: float, setting: str
) -> None:
    mine = ours("chartqa_test", {"answers": ["42%"]}, raw, TAG_SETTINGS[setting][0])
    task = ConfigurableTaskScoring(process_results=chartqa_process_results)
    ref = theirs(task, {"answer": "42%", "type": "human_test"}, raw, setting)
    assert mine["scores"]["relaxed_accuracy"] == ref["relaxed_overall"]
    assert ref["relaxed_overall"] == (0.0 if setting != "default" and "<think>" in raw else 1.0)
    # The rule alone does not strip; the pipeline's strip is what makes these count.
    assert RelaxedAccuracy().score(raw, {"answers": ["42%"]}) == rule_alone


def test_whitespace_changes_anls_length_as_in_lmms_eval() -> None:
    record = ours("docvqa_val", {"answers": ["Paris"]}, " Pari \n", ())
    assert record["scores"]["anls"] == pytest.approx(0.8)  # 1 - 1/5, not 1 - 1/7
    assert record["answer"] == "Pari" and record.get("raw_answer") == " Pari \n"


# ---- the built-in task types: the strip where their rules strip already -------------------
@pytest.mark.parametrize(
    ("metrics", "reference"),
    [
        (("cer", "wer"), {"text": "hello  world"}),
        (("accuracy",), {"label": "Invoice", "labels": ["Invoice", "Letter"]}),
        (("exact_match",), {"answers": ["a b"]}),
    ],
)
@settings(max_examples=300, deadline=None)
@given(
    core=st.one_of(WORDS, TEXT, st.sampled_from(["hello world", "Invoice.", "a  b"])),
    data=st.data(),
)
def test_the_strip_changes_no_score_where_the_rule_strips_already(
    metrics: tuple[str, ...], reference: dict[str, Any], core: str, data: st.DataObject
) -> None:
    raw = data.draw(PADDING) + core + data.draw(PADDING)
    for name in metrics:
        m = metric(name)
        assert m.stats(answer_to_score(raw, ()), reference) == m.stats(raw, reference)
