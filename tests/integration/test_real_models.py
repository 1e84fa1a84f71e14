"""Real models' settings on the real servers, offline: one run, one server per
backend for the hub-id model (hf and vLLM's CPU build, local venvs), plus the
remote-code model on hf.

The hub-id model is the tiny model's think variant (``<think>``/``</think>``
single tokens, a template that opens a think block, or with
``enable_thinking`` false writes an empty one) in an offline hub cache with real blobs and
relative links. On the same samples both servers must see the same prompts:
the system prompt, ``chat_template_kwargs`` and per-request
``mm_processor_kwargs`` (Idefics3 image splitting) change ``prompt_tokens``
identically on hf and vLLM. vLLM runs with ``--reasoning-parser deepseek_r1``,
so what it streams as reasoning never reaches the scored answer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_vlmhb.tasks.sources import synthetic_docs_dir
from pytest_vlmhb.tinyvariants import make_remote_code_variant, make_think_variant
from tests.helpers import make_pdf, read_csv, run, setup_suite, stored_records
from tests.hubcache import DEFAULT_COMMIT, built_tiny_model, make_hub_cache

pytestmark = pytest.mark.vllm

THINK_REPO = "vlmhb-test/tiny-think"
#: vLLM streams reasoning apart; per-request mm_processor_kwargs need its consent.
VLLM_ARGS = "--reasoning-parser deepseek_r1 --trust-request-mm-kwargs"
SAMPLES = 2
NO_SPLIT = '"{""mm_processor_kwargs"": {""do_image_splitting"": false}}"'


@pytest.fixture
def offline_models(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The think variant as a hub id in an offline hub cache; the remote-code
    variant as a folder beside models.csv."""
    tiny = built_tiny_model()
    variants = pytester.path / "variants"
    think = make_think_variant(tiny, variants / "think")
    make_hub_cache(think, pytester.path / "hub", THINK_REPO)
    make_remote_code_variant(tiny, pytester.path / "custom")
    monkeypatch.setenv("HF_HUB_CACHE", str(pytester.path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _manifest(pytester: pytest.Pytester) -> None:
    data = pytester.mkdir("data")
    make_pdf(data / "four.pdf", 4)
    (data / "pages.jsonl").write_text(
        json.dumps(
            {
                "id": "p2",
                "document": "four.pdf",
                "pages": "1-2",
                "question": "Total?",
                "answers": ["x"],
            }
        )
        + "\n"
        + json.dumps({"id": "p4", "document": "four.pdf", "question": "Total?", "answers": ["x"]})
        + "\n"
    )
    synth = synthetic_docs_dir(Path(os.environ["VLMHB_CACHE"]))
    page = sorted((synth / "images").glob("invoice-*.png"))[0]
    (data / "page.png").write_bytes(page.read_bytes())
    (data / "m.jsonl").write_text(
        "".join(
            json.dumps(
                {"id": f"s{i}", "image": "page.png", "question": f"Total {i}?", "answers": ["x"]}
            )
            + "\n"
            for i in range(SAMPLES)
        )
    )


@pytest.mark.usefixtures("offline_models")
def test_hub_model_settings_reach_both_servers(pytester: pytest.Pytester) -> None:
    _manifest(pytester)
    cases = ["id,model,task,backend,max_tokens,request_params"]
    for backend in ("hf", "vllm"):
        model = f"think-{backend}"
        cases += [
            f"plain-{backend},{model},plain,{backend},8,",
            f"sys-{backend},{model},sys,{backend},8,",
            f"nothink-{backend},{model},nothink,{backend},8,",
            f"nosplit-{backend},{model},plain,{backend},8,{NO_SPLIT}",
            f"pages-{backend},{model},pages,{backend},8,",
        ]
    cases.append("custom-hf,custom,plain,hf,8,")
    cases.append("builtin-hf,tiny,plain,hf,8,")
    setup_suite(
        pytester,
        "\n".join(cases) + "\n",
        models=(
            "name,source,recipe,trust_remote_code,server_args\n"
            f"think-hf,{THINK_REPO}@main,none,,\n"
            f"think-vllm,{THINK_REPO},none,,{VLLM_ARGS}\n"
            "custom,./custom,tiny-idefics3,true,\n"
            "tiny,builtin:tiny-idefics3,auto,,\n"
        ),
        tasks=(
            "name,type,data,system_prompt,chat_template_kwargs\n"
            "plain,docvqa,data/m.jsonl,,\n"
            "sys,docvqa,data/m.jsonl,You are a careful reader of invoices.,\n"
            'nothink,docvqa,data/m.jsonl,,"{""enable_thinking"": false}"\n'
            "pages,docvqa,data/pages.jsonl,,\n"
        ),
    )
    result = run(pytester, "--vlmhb-launcher=local")
    result.assert_outcomes(passed=10 * SAMPLES + 2 * 2)
    out = pytester.path / "vlmhb-results"
    answers = read_csv(out / "answers.csv")
    assert all(row["error"] == "" for row in answers), answers
    tokens = {(r["case_id"], r["sample_id"]): int(r["prompt_tokens"]) for r in answers}
    for i in range(SAMPLES):
        sample = f"s{i}"
        for task in ("plain", "sys", "nothink", "nosplit"):
            # the same prompt on both servers
            assert tokens[(f"{task}-hf", sample)] == tokens[(f"{task}-vllm", sample)], task
        for backend in ("hf", "vllm"):
            plain = tokens[(f"plain-{backend}", sample)]
            assert tokens[(f"sys-{backend}", sample)] > plain  # the system turn
            # thinking off: the template closes an empty think block (Qwen3's way)
            assert tokens[(f"nothink-{backend}", sample)] > plain
            assert tokens[(f"nosplit-{backend}", sample)] < plain  # one image tile, not 5
    # remote code: the custom-code model answers exactly as the plain tiny model
    by_case = {(r["case_id"], r["sample_id"]): r for r in answers}
    stored = stored_records(out)
    for i in range(SAMPLES):
        custom, builtin = by_case[("custom-hf", f"s{i}")], by_case[("builtin-hf", f"s{i}")]
        assert custom["answer"] == builtin["answer"]
        assert (
            stored[("custom-hf", f"s{i}")]["token_ids"]
            == stored[("builtin-hf", f"s{i}")]["token_ids"]
        )
    # provenance: the hub commit, no recipe, no fixed context length on vLLM
    metrics = {m["case_id"]: m for m in read_csv(out / "metrics.csv")}
    assert metrics["plain-vllm"]["model_revision"] == DEFAULT_COMMIT
    assert metrics["custom-hf"]["model_revision"].startswith("sha256:")
    report = (out / "report.md").read_text()
    vllm_argv = next(
        line
        for line in report.splitlines()
        if line.startswith("| plain-vllm |") and "--port" in line
    )
    assert f"snapshots/{DEFAULT_COMMIT}" in vllm_argv
    assert "--max-model-len" not in vllm_argv  # the model's own: 2048 from its config
    assert '{"image":4}' in vllm_argv  # the most pages one sample sends
    # a 4-page document: 4 images in one request, on both servers alike
    for backend in ("hf", "vllm"):
        two, four = by_case[(f"pages-{backend}", "p2")], by_case[(f"pages-{backend}", "p4")]
        assert (two["n_images"], four["n_images"]) == ("2", "4")
        assert int(four["prompt_tokens"]) > int(two["prompt_tokens"])
    for sample in ("p2", "p4"):
        hf, vllm = by_case[("pages-hf", sample)], by_case[("pages-vllm", sample)]
        assert hf["prompt_tokens"] == vllm["prompt_tokens"]
        assert (
            stored[("pages-hf", sample)]["token_ids"] == stored[("pages-vllm", sample)]["token_ids"]
        )
    vllm_log = (out / "logs" / "think-vllm@vllm@local.log").read_text()
    assert "max_seq_len=2048" in vllm_log
    # the system turn reached the HF wrapper's template (it logs each prompt)
    hf_log = (out / "logs" / "think-hf@hf@local.log").read_text()
    assert "You are a careful reader of invoices." in hf_log
    # vLLM's parser streams the opened think block apart: kept, never scored
    reasoning = [stored[("plain-vllm", f"s{i}")].get("reasoning") for i in range(SAMPLES)]
    assert all(reasoning), reasoning
    for i in range(SAMPLES):
        assert reasoning[i] not in stored[("plain-vllm", f"s{i}")]["raw_answer"]
    # reasoning streamed apart by vLLM's parser never reaches the scored answer
    for row in answers:
        if row["case_id"].endswith("-vllm"):
            assert row["answer"] == row["raw_answer"].strip()
            assert "<think>" not in row["answer"]
