"""The HF wrapper's options for real models, on variants of the built-in tiny model.

Two servers: the remote-code variant (``--trust-remote-code``, ``--max-model-len``)
and the think variant (``--mm-processor-kwargs``, ``--chat-template``); what they
must agree with is computed once by plain transformers in the HF venv.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_vlmhb.envs import ensure_env, plugin_extra_requirements, venv_python
from pytest_vlmhb.models import builtin_model_dir
from pytest_vlmhb.tinyvariants import (
    THINK_END,
    THINK_START,
    make_remote_code_variant,
    make_think_variant,
)
from tests import hf_server_checks as checks

pytestmark = pytest.mark.server

MAX_MODEL_LEN = 128
ANSWER_TOKENS = 24
SYSTEM = "You are VLMHB-SYSTEM-7."
#: The think variant's template, served with the generation prompt renamed.
CUSTOM_GENERATION = "Answer:"


@dataclass
class Setup:
    """The HF venv's python, the tiny model and its variants, a custom template."""

    python: str
    tiny: Path
    remote: Path
    think: Path
    template: Path
    modules: Path  # HF_MODULES_CACHE: where transformers copies remote code


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    cache = Path(os.environ["VLMHB_CACHE"])
    python = str(venv_python(ensure_env(cache, "hf", plugin_extra_requirements("server"), print)))
    tiny = builtin_model_dir(cache, "tiny-idefics3")
    if not (tiny / ".complete").exists():
        checks.build_model(python, tiny)
    root = tmp_path_factory.mktemp("variants")
    think = make_think_variant(tiny, root / "tiny-think")
    template = root / "custom.jinja"
    own = (think / "chat_template.jinja").read_text()
    template.write_text(own.replace("'Assistant:'", f"'{CUSTOM_GENERATION}'"))
    return Setup(
        python,
        tiny,
        make_remote_code_variant(tiny, root / "tiny-remote"),
        think,
        template,
        root / "hf-modules",
    )


@pytest.fixture(scope="module")
def png() -> bytes:
    return checks.make_image()


_REFERENCE = """
import json, sys, torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
tiny, think, template, image_path, prompt, n = sys.argv[1:7]
image = Image.open(image_path).convert("RGB")
user = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
out = {}
proc = AutoProcessor.from_pretrained(tiny)
model = AutoModelForImageTextToText.from_pretrained(tiny, dtype=torch.float32).eval()
text = proc.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
inputs = proc(text=text, images=[image], return_tensors="pt")
with torch.inference_mode():
    ids = model.generate(**inputs, max_new_tokens=int(n), do_sample=False)
out["ids"] = ids[0, inputs["input_ids"].shape[1]:].tolist()
proc = AutoProcessor.from_pretrained(think)
out["tags"] = {t: proc.tokenizer.encode(t, add_special_tokens=False) for t in sys.argv[7:9]}
out["vocab"] = len(proc.tokenizer)
hi = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
out["think_prompts"] = [
    proc.apply_chat_template(hi, add_generation_prompt=True, tokenize=False, **kw)
    for kw in ({}, {"enable_thinking": True}, {"enable_thinking": False})
]
out["think_model"] = type(AutoModelForImageTextToText.from_pretrained(think)).__name__
proc.chat_template = open(template).read()
text = proc.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
out["split"] = {
    str(flag).lower(): proc(
        text=text, images=[image], return_tensors="pt", do_image_splitting=flag
    )["input_ids"].shape[1]
    for flag in (True, False)
}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def reference(setup: Setup, png: bytes, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Plain transformers in the HF venv: the tiny model's greedy ids, the think
    variant's tokens and templates, and its prompt lengths with and without splitting."""
    image = tmp_path_factory.mktemp("ref") / "image.png"
    image.write_bytes(png)
    args = [setup.tiny, setup.think, setup.template, image, checks.PROMPT, ANSWER_TOKENS]
    out = subprocess.run(
        [setup.python, "-c", _REFERENCE, *map(str, args), THINK_START, THINK_END],
        env=checks.backend_env(),
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def remote(setup: Setup) -> Iterator[checks.Server]:
    with checks.serving(
        setup.python,
        setup.remote,
        "--trust-remote-code",
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--log-level",
        "info",
        log_path=setup.remote.parent / "remote.log",
        env={"HF_MODULES_CACHE": str(setup.modules)},
    ) as server:
        yield server


@pytest.fixture(scope="module")
def think(setup: Setup) -> Iterator[checks.Server]:
    with checks.serving(
        setup.python,
        setup.think,
        "--mm-processor-kwargs",
        '{"do_image_splitting": false}',
        "--chat-template",
        str(setup.template),
        "--log-level",
        "info",
        log_path=setup.think.parent / "think.log",
    ) as server:
        yield server


def prompt_lines(server: checks.Server) -> list[str]:
    """The server's INFO lines with a rendered prompt, in order."""
    return [line for line in server.log_path.read_text().splitlines() if " prompt (" in line]


def text_request(text: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": 2, **extra}


# -- the variants themselves ----------------------------------------------------------------
def test_think_variant_has_single_tags_and_a_thinking_template(reference: Any) -> None:
    assert reference["vocab"] == 512
    assert [len(ids) for ids in reference["tags"].values()] == [1, 1], reference["tags"]
    default, thinking, plain = reference["think_prompts"]
    assert default == thinking and default.endswith(f"Assistant:{THINK_START}\n")
    assert plain.endswith(f"Assistant:{THINK_START}\n\n{THINK_END}\n\n"), plain
    assert reference["think_model"] == "Idefics3ForConditionalGeneration"


def test_remote_code_variant_needs_the_flag(setup: Setup) -> None:
    status, output = checks.failed_start(
        setup.python, setup.remote, env={"HF_MODULES_CACHE": str(setup.modules)}
    )
    assert status == 1, output
    assert "contains custom code" in output and "trust_remote_code=True" in output, output


def test_remote_code_variant_answers_like_the_tiny_model(
    remote: checks.Server, reference: Any, png: bytes
) -> None:
    body = checks.chat_body(png, max_tokens=ANSWER_TOKENS, temperature=0, return_token_ids=True)
    served = checks.chat(remote, body)
    assert served["choices"][0]["token_ids"] == reference["ids"]


# -- per-request: system prompt, chat_template_kwargs ------------------------------------------
def test_system_prompt_reaches_the_template(remote: checks.Server) -> None:
    user = {"role": "user", "content": "What is the total?"}
    bare = checks.chat(remote, {"messages": [user], "max_tokens": 2})
    as_text = {"role": "system", "content": SYSTEM}
    as_parts = {"role": "system", "content": [{"type": "text", "text": SYSTEM}]}
    with_text = checks.chat(remote, {"messages": [as_text, user], "max_tokens": 2})
    with_parts = checks.chat(remote, {"messages": [as_parts, user], "max_tokens": 2})
    tokens = [r["usage"]["prompt_tokens"] for r in (bare, with_text, with_parts)]
    assert tokens[0] < tokens[1] == tokens[2], tokens
    logged = [line for line in prompt_lines(remote) if f"System: {SYSTEM}" in line]
    assert len(logged) == 2 and "INFO" in logged[0], prompt_lines(remote)


def test_chat_template_kwargs_reach_the_template(think: checks.Server, reference: Any) -> None:
    think_id = reference["tags"][THINK_START][0]
    default = checks.chat(think, text_request("hi", return_token_ids=True))
    off = checks.chat(think, text_request("hi", chat_template_kwargs={"enable_thinking": False}))
    assert think_id in default["prompt_token_ids"]  # the variant's tokenizer: one id
    assert off["usage"]["prompt_tokens"] > default["usage"]["prompt_tokens"]
    last_two = prompt_lines(think)[-2:]
    assert last_two[0].endswith(f"{CUSTOM_GENERATION}{THINK_START}\\n'"), last_two
    assert last_two[1].endswith(f"{THINK_END}\\n\\n'"), last_two


def test_bad_chat_template_kwargs_are_a_400(remote: checks.Server) -> None:
    for kwargs in (["enable_thinking"], "x", {"tokenize": True}):
        status, body = checks.post_chat(remote, text_request("hi", chat_template_kwargs=kwargs))
        assert status == 400, (kwargs, body)
        assert body["error"]["param"] == "chat_template_kwargs", body


# -- server options -----------------------------------------------------------------------------
def test_max_model_len_cuts_the_budget_as_vllm_does(remote: checks.Server, png: bytes) -> None:
    """As vLLM 0.32: a budget over the room left is cut to it; a prompt that fills
    the context is a 400."""
    fits = checks.chat(remote, checks.chat_body(png, max_tokens=8))
    room = MAX_MODEL_LEN - fits["usage"]["prompt_tokens"]
    over = checks.chat(remote, checks.chat_body(png, max_tokens=room + 5, ignore_eos=True))
    assert over["usage"]["completion_tokens"] == room, over["usage"]
    assert over["choices"][0]["finish_reason"] == "length"
    full = checks.chat(remote, checks.chat_body(png, max_tokens=room, ignore_eos=True))
    assert full["usage"]["total_tokens"] == MAX_MODEL_LEN, full["usage"]
    long_prompt = text_request("total " * MAX_MODEL_LEN)
    status, body = checks.post_chat(remote, long_prompt)
    assert status == 400 and body["error"]["param"] == "messages", body


def test_mm_processor_kwargs_reach_the_processor(
    think: checks.Server, reference: Any, png: bytes
) -> None:
    split = reference["split"]
    assert split["false"] < split["true"], split
    served = checks.chat(think, checks.chat_body(png, max_tokens=2))
    assert served["usage"]["prompt_tokens"] == split["false"], (served["usage"], split)
    # per request (vLLM's field), over the server's own
    on = {"mm_processor_kwargs": {"do_image_splitting": True}}
    per_request = checks.chat(think, checks.chat_body(png, max_tokens=2, **on))
    assert per_request["usage"]["prompt_tokens"] == split["true"], per_request["usage"]


def test_chat_template_file_replaces_the_models(think: checks.Server) -> None:
    checks.chat(think, text_request("hi"))
    assert f"{CUSTOM_GENERATION}{THINK_START}" in prompt_lines(think)[-1]
    assert "Assistant:" not in prompt_lines(think)[-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mm-processor-kwargs", '{"do_image_splitting": tru'], "not valid JSON"),
        (["--mm-processor-kwargs", "[1, 2]"], "must be a JSON object, got list"),
        (["--model-class", "NoSuchModelClass"], "NoSuchModelClass: transformers 5."),
        (["--chat-template", "missing.jinja"], "missing.jinja: no such file"),
    ],
)
def test_bad_options_exit_2(setup: Setup, args: list[str], message: str) -> None:
    status, output = checks.failed_start(setup.python, setup.tiny, *args)
    assert status == 2 and message in output, output
