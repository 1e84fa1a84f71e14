"""Reasoning models end to end, against the scripted stub on loopback.

One run of the benchmark suite (a real pytest subprocess) over a stub that
streams reasoning apart (``delta.reasoning``) before answers that carry
reasoning blocks of their own, plus a user test through ``vlmhb_chat``:
what is scored, what is kept (answers.csv ``raw_answer``), the timings
(``ttfa_ms``, ``ttfa_p50_ms``), ``reasoning_tokens``, the request body
(system turn, ``chat_template_kwargs``) and a bad ``reasoning_tokens`` count.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers import DOCVQA_SUFFIX, read_csv, run, setup_suite
from tests.stub_openai import StubScript, running_stub

CHART_SUFFIX = "\nAnswer the question with a single word."
STREAMED_REASONING = "Lyon? No: the capital."
ANSWERS = {
    "Q0?" + DOCVQA_SUFFIX: "<think>x</think>Paris",
    "Q1?" + DOCVQA_SUFFIX: "[r]y[/r] Paris \n",
    "Q2?" + CHART_SUFFIX: "\n 42% \n",
    "user?": "<think>hm</think> Paris",
}
CONFIG = (
    "id,model,task,backend,system_prompt,chat_template_kwargs,reasoning_tags\n"
    'think-default,remote,vqa,openai,Be brief.,"{""enable_thinking"": false}",\n'
    "think-none,remote,vqa,openai,,,none\n"
    'think-custom,remote,vqa,openai,,,"[[""[r]"", ""[/r]""]]"\n'
    "chart,remote,chart,openai,,,\n"
    "bad-count,remote-bad,vqa,openai,,,\n"
)
USER_TEST = """
import pytest

@pytest.mark.vlmhb_model("remote", backend="openai")
def test_reply(vlmhb_chat):
    reply = vlmhb_chat("user?")
    assert (reply.text, reply.raw_text) == ("Paris", "<think>hm</think> Paris")
    assert reply.reasoning == "Lyon? No: the capital."
    assert reply.reasoning_tokens == 4
    assert reply.ttfa_ms > reply.ttft_ms + 200
"""


def _manifests(pytester: pytest.Pytester) -> None:
    data = pytester.mkdir("data")
    from PIL import Image

    Image.new("L", (30, 30), 255).save(data / "p.png")
    vqa = [
        {"id": f"s{i}", "image": "p.png", "question": f"Q{i}?", "answers": ["Paris"]}
        for i in (0, 1)
    ]
    chart = [{"id": "c0", "image": "p.png", "question": "Q2?", "answers": ["42%"]}]
    (data / "vqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in vqa))
    (data / "chart.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chart))


def test_reasoning_is_kept_apart_timed_and_never_scored(pytester: pytest.Pytester) -> None:
    _manifests(pytester)
    good = StubScript(
        answers=ANSWERS,
        reasoning=STREAMED_REASONING,
        chunk_chars=6,
        answer_delay_s=0.3,
        completion_tokens_details={"reasoning_tokens": 4},
    )
    bad = StubScript(default_answer="Paris", completion_tokens_details={"reasoning_tokens": "4"})
    with running_stub(good) as url, running_stub(bad) as bad_url:
        setup_suite(
            pytester,
            CONFIG,
            models=f"name,source,endpoint\nremote,x,{url}\nremote-bad,x,{bad_url}\n",
            tasks="name,type,data\nvqa,docvqa,data/vqa.jsonl\nchart,chartqa,data/chart.jsonl\n",
        )
        pytester.makepyfile(test_user=USER_TEST)
        result = run(pytester)
    result.assert_outcomes(passed=8, failed=2)  # the bad count fails its two samples only
    out = pytester.path / "vlmhb-results"
    header = (out / "answers.csv").read_text().splitlines()[0].split(",")
    assert header.index("raw_answer") == header.index("answer") + 1
    rows = {(r["case_id"], r["sample_id"]): r for r in read_csv(out / "answers.csv")}

    def scored(case: str, sample: str, metric: str = "anls") -> tuple[str, str, float]:
        row = rows[(case, sample)]
        return row["answer"], row["raw_answer"], float(row[metric])

    # Defaults (<think>, <analysis>): the block is removed, the raw text kept.
    assert scored("think-default", "s0") == ("Paris", "<think>x</think>Paris", 1.0)
    assert scored("think-default", "s1")[0] == "[r]y[/r] Paris"
    # none: only the whole-answer strip; custom pairs replace the defaults.
    assert scored("think-none", "s0") == ("<think>x</think>Paris", "<think>x</think>Paris", 0.0)
    assert scored("think-custom", "s0")[:2] == ("<think>x</think>Paris", "<think>x</think>Paris")
    assert scored("think-custom", "s1") == ("Paris", "[r]y[/r] Paris \n", 1.0)
    # ChartQA: whitespace around the answer scores as lmms-eval (stripped first).
    assert scored("chart", "c0", "relaxed_accuracy") == ("42%", "\n 42% \n", 1.0)
    # Streamed-apart reasoning is in no answer column; it was never scored.
    assert not any(STREAMED_REASONING in json.dumps(r) for r in rows.values())
    for key, row in rows.items():
        if key[0] == "bad-count":
            assert "usage.completion_tokens_details.reasoning_tokens" in row["error"]
            continue
        assert row["reasoning_tokens"] == "4" and not row["error"], key
        assert float(row["ttfa_ms"]) >= float(row["ttft_ms"]) + 200, key  # 300 ms scripted
    metrics = {r["case_id"]: r for r in read_csv(out / "metrics.csv")}
    ttfa, ttft = float(metrics["chart"]["ttfa_p50_ms"]), float(metrics["chart"]["ttft_p50_ms"])
    assert ttfa >= ttft + 200
    assert metrics["bad-count"]["errors"] == "2"
    # The stored record keeps the reasoning, masked like answers.
    stored = [json.loads(line) for line in (out / "results" / "samples-main.jsonl").open()]
    assert {r.get("reasoning") for r in stored if r.get("case_id") == "chart" and "key" in r} == {
        STREAMED_REASONING
    }
    # The request bodies: the system turn and chat_template_kwargs of think-default only.
    with_system = [b for b in good.received if b["messages"][0]["role"] == "system"]
    assert len(with_system) == 2 and all(
        b["messages"][0]["content"] == "Be brief."
        and b["chat_template_kwargs"] == {"enable_thinking": False}
        for b in with_system
    )
    assert len(good.received) == 8  # 7 CSV samples and the user test's call
    assert sum("chat_template_kwargs" in b for b in good.received) == 2
