"""A served model's options on each backend's command line, and where they come
from: models.csv's columns over the model's recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_vlmhb.backends.base import ModelOptions, ServeRequest
from pytest_vlmhb.backends.hf import HFBackend
from pytest_vlmhb.backends.sglang import SGLangBackend
from pytest_vlmhb.backends.vllm import VLLMBackend
from pytest_vlmhb.config import ModelSpec
from pytest_vlmhb.launchers.base import (
    CHAT_TEMPLATE_MOUNT,
    MODEL_MOUNT,
    container_mounts,
    serve_request,
)
from pytest_vlmhb.modeloptions import model_options
from pytest_vlmhb.modelsource import ResolvedModel


def _request(
    options: ModelOptions, gpu: bool = False, server_args: tuple[str, ...] = ()
) -> ServeRequest:
    return ServeRequest(
        python="py",
        model="/m",
        served_name="m",
        host="127.0.0.1",
        port=1,
        server_args=server_args,
        gpu=gpu,
        options=options,
    )


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_vllm_defaults_leave_the_context_length_to_the_model() -> None:
    argv = VLLMBackend().command(_request(ModelOptions()))
    assert "--max-model-len" not in argv
    assert json.loads(_value(argv, "--limit-mm-per-prompt")) == {"image": 1}
    assert _value(argv, "--dtype") == "float32"  # the CPU build
    for flag in ("--mm-processor-kwargs", "--trust-remote-code", "--chat-template"):
        assert flag not in argv


def test_vllm_carries_every_option() -> None:
    options = ModelOptions(
        dtype="bfloat16",
        max_model_len=8192,
        mm_processor_kwargs={"max_pixels": 1003520, "min_pixels": 3136},
        trust_remote_code=True,
        chat_template="/t.jinja",
        limit_mm_per_prompt=5,
        recipe_args=("--max-num-seqs", "5"),
    )
    argv = VLLMBackend().command(_request(options, gpu=True, server_args=("--max-num-seqs", "2")))
    assert _value(argv, "--dtype") == "bfloat16"
    assert _value(argv, "--max-model-len") == "8192"
    assert _value(argv, "--limit-mm-per-prompt") == '{"image":5}'
    assert json.loads(_value(argv, "--mm-processor-kwargs")) == {
        "max_pixels": 1003520,
        "min_pixels": 3136,
    }
    assert "--trust-remote-code" in argv
    assert _value(argv, "--chat-template") == "/t.jinja"
    # the user's server_args come after the recipe's words: argparse keeps the last
    assert argv[-4:] == ["--max-num-seqs", "5", "--max-num-seqs", "2"]


def test_vllm_auto_dtype_on_gpu_is_vllms_choice() -> None:
    argv = VLLMBackend().command(_request(ModelOptions(), gpu=True))
    assert _value(argv, "--dtype") == "auto"


def test_hf_wrapper_carries_every_option() -> None:
    options = ModelOptions(
        dtype="float16",
        max_model_len=4096,
        mm_processor_kwargs={"do_image_splitting": True},
        trust_remote_code=True,
        chat_template="/t.jinja",
        limit_mm_per_prompt=3,
        hf_model_class="AutoModelForCausalLM",
    )
    argv = HFBackend().command(_request(options))
    assert _value(argv, "--dtype") == "float16"
    assert _value(argv, "--max-model-len") == "4096"
    assert _value(argv, "--max-images-per-prompt") == "3"
    assert json.loads(_value(argv, "--mm-processor-kwargs")) == {"do_image_splitting": True}
    assert "--trust-remote-code" in argv
    assert _value(argv, "--chat-template") == "/t.jinja"
    assert _value(argv, "--model-class") == "AutoModelForCausalLM"


def test_sglang_carries_what_it_has() -> None:
    options = ModelOptions(max_model_len=4096, trust_remote_code=True, chat_template="/t")
    argv = SGLangBackend().command(_request(options))
    assert _value(argv, "--context-length") == "4096"
    assert "--trust-remote-code" in argv
    assert _value(argv, "--chat-template") == "/t"


def _spec(tmp_path: Path, **columns: object) -> ModelSpec:
    return ModelSpec(name="m", source="./m", served_name="m", base_dir=tmp_path, **columns)  # type: ignore[arg-type]


def test_columns_override_the_recipe(tmp_path: Path) -> None:
    from pytest_vlmhb.recipes import get_recipe

    recipe = get_recipe("qwen2.5-vl")
    plain = model_options(_spec(tmp_path), recipe, "vllm", chat_template=None)
    assert plain.mm_processor_kwargs == dict(recipe.mm_processor_kwargs or {}) or (
        plain.mm_processor_kwargs is None and not recipe.mm_processor_kwargs
    )
    assert plain.recipe_args == tuple(recipe.vllm_args)
    assert plain.max_model_len == recipe.max_model_len
    assert not plain.trust_remote_code
    own = model_options(
        _spec(tmp_path, max_model_len=1234, mm_processor_kwargs={"max_pixels": 7}),
        recipe,
        "vllm",
        chat_template=None,
    )
    assert own.max_model_len == 1234
    assert own.mm_processor_kwargs is not None
    assert own.mm_processor_kwargs["max_pixels"] == 7  # merged key by key, the column wins
    for key, value in (recipe.mm_processor_kwargs or {}).items():
        if key != "max_pixels":
            assert own.mm_processor_kwargs[key] == value
    hf = model_options(_spec(tmp_path), recipe, "hf", chat_template=None)
    assert hf.recipe_args == ()
    assert hf.hf_model_class is None  # the wrapper's default class, not repeated
    phi = model_options(_spec(tmp_path), get_recipe("phi-3.5-vision"), "hf", chat_template=None)
    assert (
        phi.hf_model_class
        == get_recipe("phi-3.5-vision").hf_model_class
        != "AutoModelForImageTextToText"
    )


def test_a_recipe_never_turns_remote_code_on(tmp_path: Path) -> None:
    from pytest_vlmhb.recipes import load_recipes

    for recipe in load_recipes().values():
        assert not model_options(
            _spec(tmp_path), recipe, "vllm", chat_template=None
        ).trust_remote_code
        assert "--trust-remote-code" not in recipe.vllm_args


@pytest.mark.parametrize("in_container", [False, True])
def test_hub_snapshots_are_served_from_their_repo_folder(
    tmp_path: Path, in_container: bool
) -> None:
    """A container mounts the whole repo cache folder (snapshot files link into
    ../../blobs) and is given the snapshot inside it; the chat template too."""
    repo = tmp_path / "models--org--name"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    template = tmp_path / "t.jinja"
    template.write_text("x")
    located = ResolvedModel(snapshot, repo, f"snapshots/{'a' * 40}", "a" * 40, {})
    spec = _spec(tmp_path, chat_template=template, recipe="none")
    request = serve_request(
        "vllm", spec, located, python="p", host="h", port=1, in_container=in_container
    )
    if in_container:
        assert request.model == f"{MODEL_MOUNT}/snapshots/{'a' * 40}"
        assert request.options.chat_template == CHAT_TEMPLATE_MOUNT
    else:
        assert request.model == str(snapshot)
        assert request.options.chat_template == str(template)
    assert container_mounts(spec, located) == [
        (str(repo), MODEL_MOUNT),
        (str(template), CHAT_TEMPLATE_MOUNT),
    ]
