"""KIE micro precision / recall / F1 over flattened (key, value) pairs."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_vlmhb.metrics.base import Stats
from pytest_vlmhb.metrics.kie import KieF1, KiePrecision, KieRecall, flatten, parse_answer

GOLD: dict[str, Any] = {"company": "ACME Ltd", "total": "12.50", "vendor": {"name": "Bob"}}
F1, P, R = KieF1(), KiePrecision(), KieRecall()


def stats(answer: str, gold: dict[str, Any] = GOLD) -> Stats:
    return F1.stats(answer, {"fields": gold})


def test_names_and_shared_stats() -> None:
    assert (F1.name, P.name, R.name) == ("f1", "kie_precision", "kie_recall")
    answer = '{"company": "ACME Ltd"}'
    assert F1.stats(answer, {"fields": GOLD}) == P.stats(answer, {"fields": GOLD})
    assert F1.stats(answer, {"fields": GOLD}) == R.stats(answer, {"fields": GOLD})


def test_perfect_answer() -> None:
    s = stats('{"company": "ACME Ltd", "total": "12.50", "vendor": {"name": "Bob"}}')
    assert s == {"tp": 3.0, "fp": 0.0, "fn": 0.0}
    assert F1.value(s) == P.value(s) == R.value(s) == 1.0


def test_fenced_nested_and_normalised() -> None:
    answer = (
        "Sure, here are the fields:\n```json\n"
        '{"company": "  acme   LTD ", "total": 12.5, "vendor": {"name": "BOB"}}\n```\nDone.'
    )
    s = stats(answer)
    assert s == {"tp": 2.0, "fp": 1.0, "fn": 1.0}  # 12.5 != "12.50"
    assert F1.value(s) == pytest.approx(2 / (2 + (1 + 1) / 2))
    assert P.value(s) == pytest.approx(2 / 3)
    assert R.value(s) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "answer",
    [
        '```\n{"a": "1"}\n```',
        '```JSON\n{"a": "1"}\n```',
        '```json {"a": "1"}```',
        'prose ```json\n{"a": "1"}',  # unclosed fence (truncated generation)
        '```text\nnot json\n```\n```json\n{"a": "1"}\n```',  # first fence that parses
        '  {"a": "1"}  ',  # no fence: the whole answer
    ],
)
def test_parse_answer_finds_the_object(answer: str) -> None:
    assert parse_answer(answer) == {"a": "1"}


@pytest.mark.parametrize(
    "answer",
    ["the company is ACME", "[1, 2]", '"text"', "42", "", "```json\n{bad}\n```", "[" * 5000],
)
def test_parse_answer_rejects_non_objects(answer: str) -> None:
    assert parse_answer(answer) == {}


def test_unparsable_answer_is_all_false_negatives() -> None:
    s = stats("The company is ACME Ltd and the total is 12.50.")
    assert s == {"tp": 0.0, "fp": 0.0, "fn": 3.0}
    assert F1.value(s) == 0.0 and P.value(s) == 0.0 and R.value(s) == 0.0


def test_flatten_nested_dicts_and_lists() -> None:
    gold = {
        "store": {"name": "Shop", "address": {"city": " Paris "}},
        "items": [{"name": "Tea", "price": 2}, {"name": "Cake", "price": "3.5"}],
        "tags": ["a", "B"],
        "paid": True,
        "empty": {},
        "none": None,
        "blank": "  ",
    }
    assert flatten(gold) == {
        ("store.name", "shop"),
        ("store.address.city", "paris"),
        ("items.0.name", "tea"),
        ("items.0.price", "2"),
        ("items.1.name", "cake"),
        ("items.1.price", "3.5"),
        ("tags.0", "a"),
        ("tags.1", "b"),
        ("paid", "true"),
    }


def test_list_items_are_matched_by_position() -> None:
    gold = {"items": [{"name": "Tea"}, {"name": "Cake"}]}
    s = stats('{"items": [{"name": "Cake"}, {"name": "Tea"}]}', gold)
    assert s == {"tp": 0.0, "fp": 2.0, "fn": 2.0}


def test_null_and_empty_values_are_no_pair() -> None:
    s = stats(
        '{"company": "ACME Ltd", "total": "12.50", "vendor": {"name": "Bob"}, '
        '"tax": null, "note": ""}'
    )
    assert s == {"tp": 3.0, "fp": 0.0, "fn": 0.0}


def test_extra_and_wrong_fields() -> None:
    s = stats('{"company": "ACME", "total": "12.50", "date": "2024-01-01"}')
    assert s == {"tp": 1.0, "fp": 2.0, "fn": 2.0}
    assert F1.value(s) == pytest.approx(1 / (1 + 4 / 2))
    assert P.value(s) == pytest.approx(1 / 3)
    assert R.value(s) == pytest.approx(1 / 3)


def test_micro_pooling_across_samples() -> None:
    a = stats('{"company": "ACME Ltd"}')  # tp 1, fn 2
    b = stats('{"a": "1", "b": "2"}', {"a": "1"})  # tp 1, fp 1
    assert a == {"tp": 1.0, "fp": 0.0, "fn": 2.0}
    assert b == {"tp": 1.0, "fp": 1.0, "fn": 0.0}
    assert F1.aggregate([a, b]) == pytest.approx(2 / (2 + (1 + 2) / 2))
    assert P.aggregate([a, b]) == pytest.approx(2 / 3)
    assert R.aggregate([a, b]) == pytest.approx(2 / 4)
    mean_of_f1 = (1 / (1 + 1) + 1 / (1 + 0.5)) / 2
    assert F1.aggregate([a, b]) != pytest.approx(mean_of_f1)


def test_zero_over_zero_conventions() -> None:
    nothing = stats("{}", {})
    assert nothing == {"tp": 0.0, "fp": 0.0, "fn": 0.0}
    assert F1.value(nothing) == P.value(nothing) == R.value(nothing) == 1.0
    only_pred = stats('{"a": "1"}', {})
    assert (F1.value(only_pred), P.value(only_pred), R.value(only_pred)) == (0.0, 0.0, 1.0)
    only_gold = stats("{}", {"a": "1"})
    assert (F1.value(only_gold), P.value(only_gold), R.value(only_gold)) == (0.0, 0.0, 0.0)
    for metric in (F1, P, R):
        assert metric.aggregate([]) is None


def test_errored_samples_score_zero() -> None:
    worst = F1.worst_stats({"fields": GOLD})
    assert worst == {"tp": 0.0, "fp": 0.0, "fn": 3.0}
    for metric in (F1, P, R):
        assert metric.value(worst) == 0.0
    empty_gold = F1.worst_stats({"fields": {}})
    assert empty_gold == {"tp": 0.0, "fp": 0.0, "fn": 1.0}
    assert F1.value(empty_gold) == 0.0
