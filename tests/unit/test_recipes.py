"""Model recipes: matching, sources, the registry's checks, the table and README."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from pytest_vlmhb import recipes, registry
from pytest_vlmhb.errors import ConfigError
from pytest_vlmhb.recipes import (
    Recipe,
    RecipeError,
    families,
    get_recipe,
    load_recipes,
    match_recipe,
    recipe_names,
    recipe_table,
)
from pytest_vlmhb.recipes.__main__ import main
from tests.helpers import REPO

EXAMPLE = families.EXAMPLE

#: A model's config.json, top level, for each family a real checkpoint of it.
REAL_CONFIGS = {
    "Qwen/Qwen2-VL-7B-Instruct": ("Qwen2VLForConditionalGeneration", "qwen2_vl", "qwen2-vl"),
    "Qwen/Qwen2.5-VL-3B-Instruct": (
        "Qwen2_5_VLForConditionalGeneration",
        "qwen2_5_vl",
        "qwen2.5-vl",
    ),
    "Qwen/Qwen3-VL-4B-Instruct": ("Qwen3VLForConditionalGeneration", "qwen3_vl", "qwen3-vl"),
    "Qwen/Qwen3-VL-30B-A3B-Instruct": (
        "Qwen3VLMoeForConditionalGeneration",
        "qwen3_vl_moe",
        "qwen3-vl",
    ),
    "OpenGVLab/InternVL3-2B": ("InternVLChatModel", "internvl_chat", "internvl"),
    "OpenGVLab/InternVL3-2B-hf": ("InternVLForConditionalGeneration", "internvl", "internvl-hf"),
    "HuggingFaceM4/Idefics3-8B-Llama3": (
        "Idefics3ForConditionalGeneration",
        "idefics3",
        "idefics3",
    ),
    "HuggingFaceTB/SmolVLM-Instruct": ("Idefics3ForConditionalGeneration", "idefics3", "idefics3"),
    "HuggingFaceTB/SmolVLM2-2.2B-Instruct": (
        "SmolVLMForConditionalGeneration",
        "smolvlm",
        "smolvlm",
    ),
    "llava-hf/llava-1.5-7b-hf": ("LlavaForConditionalGeneration", "llava", "llava"),
    "llava-hf/llava-v1.6-mistral-7b-hf": (
        "LlavaNextForConditionalGeneration",
        "llava_next",
        "llava-next",
    ),
    "llava-hf/llava-onevision-qwen2-7b-ov-hf": (
        "LlavaOnevisionForConditionalGeneration",
        "llava_onevision",
        "llava-onevision",
    ),
    "microsoft/Phi-3.5-vision-instruct": ("Phi3VForCausalLM", "phi3_v", "phi-3.5-vision"),
    "microsoft/Phi-4-multimodal-instruct": ("Phi4MMForCausalLM", "phi4mm", "phi-4-multimodal"),
    "openbmb/MiniCPM-V-2_6": ("MiniCPMV", "minicpmv", "minicpm-v"),
    "google/gemma-3-4b-it": ("Gemma3ForConditionalGeneration", "gemma3", "gemma-3"),
    "meta-llama/Llama-3.2-11B-Vision-Instruct": (
        "MllamaForConditionalGeneration",
        "mllama",
        "mllama",
    ),
    "zai-org/GLM-4.1V-9B-Thinking": ("Glm4vForConditionalGeneration", "glm4v", "glm-4.1v"),
    "allenai/Molmo-7B-D-0924": ("MolmoForCausalLM", "molmo", "molmo"),
    "google/paligemma2-3b-ft-docci-448": (
        "PaliGemmaForConditionalGeneration",
        "paligemma",
        "paligemma",
    ),
    "rhymes-ai/Aria": ("AriaForConditionalGeneration", "aria", "aria"),
}

#: Entry-point targets for the bad-registration tests.
NOT_A_RECIPE = {"name": "dict-recipe"}
MISNAMED = Recipe(name="other-name", family="x", architectures=("XForCausalLM",))
CLAIMS_QWEN = Recipe(
    name="my-qwen", family="mine", architectures=("Qwen2VLForConditionalGeneration",)
)


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Swap the vlmhb.recipes entry points for ``name=target`` pairs."""

    def install(**targets: str) -> None:
        eps = {
            name: EntryPoint(name=name, value=value, group=registry.RECIPES)
            for name, value in targets.items()
        }
        monkeypatch.setattr(
            registry, "_entries", lambda group: eps if group == registry.RECIPES else {}
        )
        recipes.clear()

    yield install
    recipes.clear()


def _config(architectures: object = None, model_type: object = None) -> dict[str, object]:
    out: dict[str, object] = {}
    if architectures is not None:
        out["architectures"] = architectures
    if model_type is not None:
        out["model_type"] = model_type
    return out


# -- matching ----------------------------------------------------------------


@pytest.mark.parametrize(("repo", "expected"), sorted(REAL_CONFIGS.items()))
def test_a_real_checkpoints_config_matches_its_family(
    repo: str, expected: tuple[str, str, str]
) -> None:
    architecture, model_type, name = expected
    recipe = match_recipe(_config([architecture], model_type))
    assert recipe is not None and recipe.name == name, repo


def test_architectures_come_before_model_type() -> None:
    config = _config(["Qwen2_5_VLForConditionalGeneration"], "llava")
    assert match_recipe(config) == get_recipe("qwen2.5-vl")


def test_any_architectures_entry_matches_in_the_configs_order() -> None:
    config = _config(["MyWrapper", "LlavaNextForConditionalGeneration", "MiniCPMV"], "x")
    assert match_recipe(config) == get_recipe("llava-next")


def test_model_type_is_the_fallback() -> None:
    assert match_recipe(_config(["SomethingUnknown"], "qwen2_vl")) == get_recipe("qwen2-vl")
    assert match_recipe(_config(None, "gemma3")) == get_recipe("gemma-3")


@pytest.mark.parametrize(
    "config",
    [
        {},
        _config(["LlamaForCausalLM"], "llama"),
        _config(["ChatGLMModel"], "chatglm"),  # glm-4v-9b's own config: named, not guessed
        _config("", ""),
        _config(None, 7),
        _config([None, 3], None),
        {"text_config": {"model_type": "qwen2_vl"}},  # the top level only
        {"vision_config": {"architectures": ["Qwen2VLForConditionalGeneration"]}},
    ],
)
def test_an_unknown_or_odd_config_matches_nothing(config: dict[str, object]) -> None:
    assert match_recipe(config) is None


def test_a_single_architecture_string_is_read_as_a_list() -> None:
    assert match_recipe({"architectures": "AriaForConditionalGeneration"}) == get_recipe("aria")


def test_the_tiny_model_is_named_never_auto_matched() -> None:
    tiny = get_recipe("tiny-idefics3")
    assert not tiny.auto_match
    assert tiny.architectures == ("Idefics3ForConditionalGeneration",)
    assert tiny.model_types == ("idefics3",)
    assert tiny.max_model_len == 2048
    assert tiny.settings() == ["max_model_len"]  # and nothing else
    # its own config (tinymodel.py) gets the Idefics3 / SmolVLM family recipe
    config = _config(["Idefics3ForConditionalGeneration"], "idefics3")
    assert match_recipe(config) == get_recipe("idefics3")
    for recipe in load_recipes().values():
        for arch in recipe.architectures:
            assert match_recipe(_config([arch])) != tiny
        for model_type in recipe.model_types:
            assert match_recipe(_config(None, model_type)) != tiny


def test_named_only_recipes_are_never_matched() -> None:
    named = [r for r in load_recipes().values() if not r.auto_match]
    assert {r.name for r in named} == {"tiny-idefics3", "pixtral"}
    for recipe in load_recipes().values():
        for arch in recipe.architectures:
            matched = match_recipe(_config([arch]))
            assert matched is not None and matched.auto_match


def test_every_example_family_the_brief_names_has_a_recipe() -> None:
    families_ = {r.family for r in load_recipes().values()}
    for needle in (
        "Qwen2-VL",
        "Qwen2.5-VL",
        "Qwen3-VL",
        "InternVL",
        "Idefics3",
        "SmolVLM",
        "LLaVA-1.5",
        "NeXT",
        "OneVision",
        "Phi-3.5-Vision",
        "Phi-4-multimodal",
        "MiniCPM-V",
        "Pixtral",
        "Gemma 3",
        "Mllama",
        "GLM-4V",
        "Molmo",
        "PaliGemma",
        "Aria",
    ):
        assert any(needle in family for family in families_), needle


# -- the registry -------------------------------------------------------------


def test_names_are_unique_and_equal_their_entry_points() -> None:
    names = recipe_names()
    assert len(names) == len(set(names))
    assert names == sorted(load_recipes())
    for name, recipe in load_recipes().items():
        assert recipe.name == name


def test_pyproject_registers_every_built_in_recipe() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    registered = pyproject["project"]["entry-points"]["vlmhb.recipes"]
    defined = {
        value.name: f"pytest_vlmhb.recipes.families:{attr}"
        for attr, value in vars(families).items()
        if isinstance(value, Recipe)
    }
    assert registered == defined
    assert "pytest_vlmhb.recipes" in pyproject["tool"]["setuptools"]["packages"]


def test_an_unknown_name_lists_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="unknown recipe 'qwen9'") as info:
        get_recipe("qwen9")
    assert isinstance(info.value, ConfigError)  # a usage error (exit 4) too
    assert "qwen2.5-vl" in str(info.value) and "tiny-idefics3" in str(info.value)


def test_load_recipes_returns_a_fresh_dict() -> None:
    first = load_recipes()
    first.clear()
    assert load_recipes()


def test_an_entry_point_that_is_not_a_recipe_is_a_clear_error(
    installed: Callable[..., None],
) -> None:
    installed(**{"dict-recipe": "tests.unit.test_recipes:NOT_A_RECIPE"})
    with pytest.raises(RecipeError) as info:
        load_recipes()
    message = str(info.value)
    assert "vlmhb.recipes entry point 'dict-recipe'" in message
    assert "tests.unit.test_recipes:NOT_A_RECIPE" in message
    assert "is a dict, not a pytest_vlmhb.recipes.Recipe" in message


def test_an_entry_point_named_unlike_its_recipe_is_a_clear_error(
    installed: Callable[..., None],
) -> None:
    installed(**{"some-name": "tests.unit.test_recipes:MISNAMED"})
    with pytest.raises(RecipeError, match=r"'some-name'.*named 'other-name'"):
        get_recipe("some-name")


def test_an_entry_point_that_fails_to_import_is_a_config_error(
    installed: Callable[..., None],
) -> None:
    installed(broken="tests.unit.no_such_module:X")
    with pytest.raises(ConfigError, match=r"'broken'.*failed to load"):
        recipe_names()


def test_two_recipes_auto_matching_one_architecture_is_an_error(
    installed: Callable[..., None],
) -> None:
    installed(
        **{
            "qwen2-vl": "pytest_vlmhb.recipes.families:QWEN2_VL",
            "my-qwen": "tests.unit.test_recipes:CLAIMS_QWEN",
        }
    )
    with pytest.raises(RecipeError, match="both auto-match architecture"):
        match_recipe({})


def test_a_third_party_recipe_is_found_by_its_entry_point(
    installed: Callable[..., None],
) -> None:
    installed(**{"my-qwen": "tests.unit.test_recipes:CLAIMS_QWEN"})
    assert recipe_names() == ["my-qwen"]
    assert match_recipe(_config(["Qwen2VLForConditionalGeneration"])) == CLAIMS_QWEN


# -- each recipe's data ------------------------------------------------------


@pytest.mark.parametrize("name", recipe_names())
def test_every_non_default_setting_has_a_source(name: str) -> None:
    recipe = get_recipe(name)
    assert set(recipe.settings()) <= set(recipe.sources)
    for setting, source in recipe.sources.items():
        assert setting in recipes.SETTINGS
        if not source.startswith("https://"):
            assert (REPO / source).is_file(), (name, setting, source)


@pytest.mark.parametrize("name", recipe_names())
def test_no_recipe_turns_on_remote_code_or_holds_a_dedicated_flag(name: str) -> None:
    recipe = get_recipe(name)
    argv = recipe.vllm_argv()
    assert "--trust-remote-code" not in argv
    free = [w.split("=")[0] for w in recipe.vllm_args if w.startswith("--")]
    assert not set(free) & recipes.RESERVED_VLLM_FLAGS


def test_remote_code_families_name_an_auto_class() -> None:
    for recipe in load_recipes().values():
        if recipe.needs_remote_code:
            assert recipe.hf_model_class in ("AutoModel", "AutoModelForCausalLM"), recipe.name


def test_recipes_are_immutable_and_hashable() -> None:
    recipe = get_recipe("qwen2.5-vl")
    with pytest.raises(AttributeError):
        recipe.max_model_len = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        recipe.mm_processor_kwargs["max_pixels"] = 1  # type: ignore[index]
    smol = get_recipe("smolvlm").mm_processor_kwargs["max_image_size"]
    with pytest.raises(TypeError):
        smol["longest_edge"] = 1  # type: ignore[index]
    assert len({recipe, get_recipe("qwen2.5-vl"), get_recipe("qwen2-vl")}) == 2


def test_the_qwen_resolution_and_the_example_values() -> None:
    qwen = get_recipe("qwen2.5-vl")
    assert dict(qwen.mm_processor_kwargs) == {"min_pixels": 784, "max_pixels": 1003520}
    assert qwen.max_model_len == 4096
    assert qwen.sources["mm_processor_kwargs"] == EXAMPLE
    assert get_recipe("phi-3.5-vision").mm_processor_kwargs["num_crops"] == 16
    assert get_recipe("gemma-3").mm_processor_kwargs["do_pan_and_scan"] is True
    assert get_recipe("glm-4v").stop_token_ids == (151329, 151336, 151338)


# -- the Recipe class ---------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("--max-model-len", "8"),
        ("--max_model_len=8",),
        ("--trust-remote-code",),
        ("--limit-mm-per-prompt", '{"image":2}'),
        ("--mm-processor-kwargs", "{}"),
        ("--dtype", "bfloat16"),
        ("--chat-template", "x.jinja"),
        ("--port=8000",),
    ],
)
def test_a_dedicated_flag_in_free_vllm_args_is_refused(args: tuple[str, ...]) -> None:
    with pytest.raises(RecipeError, match="vllm_args may not hold"):
        Recipe(
            name="x",
            family="x",
            architectures=("A",),
            vllm_args=args,
            sources={"vllm_args": EXAMPLE},
        )


def test_a_setting_without_a_source_is_refused() -> None:
    with pytest.raises(
        RecipeError, match=r"no source for the non-default settings \['max_model_len'\]"
    ):
        Recipe(name="x", family="x", architectures=("A",), max_model_len=8)
    with pytest.raises(RecipeError, match="unknown settings"):
        Recipe(name="x", family="x", architectures=("A",), sources={"max_len": EXAMPLE})
    with pytest.raises(RecipeError, match="not https URLs"):
        Recipe(
            name="x",
            family="x",
            architectures=("A",),
            max_model_len=8,
            sources={"max_model_len": "http://x"},
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": ""}, "name must be"),
        ({"architectures": "A"}, "architectures must be"),
        ({"architectures": (), "model_types": ()}, "auto_match needs"),
        ({"max_model_len": 0}, "max_model_len"),
        ({"max_model_len": True}, "max_model_len"),
        ({"stop_token_ids": (-1,)}, "stop_token_ids"),
        ({"mm_processor_kwargs": {"x": float("nan")}}, "not a JSON number"),
        ({"mm_processor_kwargs": {1: 2}}, "not a string"),
        ({"mm_processor_kwargs": {"x": {1, 2}}}, "not a JSON value"),
    ],
)
def test_bad_recipe_data_is_refused(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"name": "x", "family": "x", "architectures": ("A",)}
    args.update(kwargs)
    args["sources"] = {key: EXAMPLE for key in recipes.SETTINGS}
    with pytest.raises(RecipeError, match=match):
        Recipe(**args)  # type: ignore[arg-type]


def test_vllm_argv_and_describe() -> None:
    glm = get_recipe("glm-4v")
    argv = glm.vllm_argv()
    assert argv[:2] == ["--max-model-len", "2048"]
    assert json.loads(argv[argv.index("--hf-overrides") + 1]) == {
        "architectures": ["GLM4VForCausalLM"]
    }
    line = glm.describe()
    assert line.startswith("recipe glm-4v (GLM-4V")
    assert "stop_token_ids=[151329, 151336, 151338]" in line
    assert "needs remote code (not turned on by the recipe)" in line
    assert "\n" not in line
    qwen = get_recipe("qwen2-vl").vllm_argv()
    assert json.loads(qwen[qwen.index("--mm-processor-kwargs") + 1]) == {
        "min_pixels": 784,
        "max_pixels": 1003520,
    }
    assert get_recipe("paligemma").vllm_argv() == []
    assert get_recipe("paligemma").describe() == (
        "recipe paligemma (PaliGemma / PaliGemma 2): no settings"
    )


def test_max_model_len_is_capped_at_the_checkpoints_own_context() -> None:
    llava_next = get_recipe("llava-next")
    assert llava_next.max_model_len_for({"text_config": {"max_position_embeddings": 4096}}) == 4096
    assert llava_next.max_model_len_for({"max_position_embeddings": 32768}) == 8192
    assert llava_next.max_model_len_for({}) == 8192
    assert get_recipe("paligemma").max_model_len_for({"max_position_embeddings": 8}) is None


# -- the table and README ------------------------------------------------------


def test_the_table_has_one_row_per_recipe() -> None:
    table = recipe_table()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) == len(recipe_names())
    assert table.splitlines()[0] == (
        "| recipe | family | matched on | vLLM args | mm_processor_kwargs | stop token ids "
        "| HF class | remote code | sources |"
    )
    by_name = {row.split("`")[1]: row for row in rows}
    assert "named only" in by_name["tiny-idefics3"]
    assert "--max-model-len 2048" in by_name["tiny-idefics3"]
    assert '`{"max_pixels":1003520,"min_pixels":784}`' in by_name["qwen2.5-vl"]
    assert "`AutoModel` | needed |" in by_name["internvl"]
    assert (
        "`Qwen2_5_VLForConditionalGeneration`<br>model_type `qwen2_5_vl`" in by_name["qwen2.5-vl"]
    )
    assert f"[max_model_len, mm_processor_kwargs]({EXAMPLE})" in by_name["qwen2.5-vl"]
    for row in rows:  # every row has the header's nine cells (no stray pipes)
        assert row.replace("\\|", "").count("|") == 10


def test_readme_shows_the_current_table() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "## Model recipes" in readme
    assert recipes.table_in(readme) == recipe_table(), (
        "README's recipes table is stale: run python -m pytest_vlmhb.recipes --readme README.md"
    )


def test_the_script_prints_and_writes_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([]) == 0
    assert capsys.readouterr().out == recipe_table()
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{recipes.README_START}\nold\n{recipes.README_END}\n\ntail\n")
    assert main(["--readme", str(readme)]) == 0
    text = readme.read_text()
    assert recipes.table_in(text) == recipe_table()
    assert text.startswith("# x\n\n") and text.endswith(f"{recipes.README_END}\n\ntail\n")
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="markers"):
        main(["--readme", str(readme)])
