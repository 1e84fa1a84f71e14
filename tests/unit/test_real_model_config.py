"""Real models' settings in the config: models.csv's columns, the prompt columns of
tasks.csv and user_config.csv, and the checks made before any server starts.

Bad values are usage errors (exit 4) naming file, line and column; nothing is
started or sent (models are folders checked at config time, or endpoints on a
closed loopback port).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_vlmhb.cases import load_plan
from pytest_vlmhb.errors import ConfigError
from pytest_vlmhb.settings import Settings

TASKS = "name,type,data\nvqa,docvqa,data/m.jsonl\n"
MANIFEST = json.dumps({"id": "s0", "image": "a.png", "question": "Q?", "answers": ["x"]}) + "\n"
ENDPOINT_HEADERS = "name,source,endpoint,endpoint_headers\nm,x,http://127.0.0.1:9/v1,"
IDEFICS3 = {"architectures": ["Idefics3ForConditionalGeneration"], "model_type": "idefics3"}


def _model_folder(root: Path, name: str, config: dict[str, object]) -> None:
    folder = root / name
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(b"w" * 10)


def _suite(root: Path, models: str, config: str, tasks: str = TASKS) -> None:
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "m.jsonl").write_text(MANIFEST)
    (root / "data" / "a.png").write_bytes(b"png")
    (root / "models.csv").write_text(models)
    (root / "tasks.csv").write_text(tasks)
    (root / "user_config.csv").write_text(config)
    _model_folder(root, "idefics3", IDEFICS3)
    _model_folder(root, "custom", {**IDEFICS3, "auto_map": {"AutoConfig": "c.Config"}})


def _settings(root: Path) -> Settings:
    return Settings(
        config=root / "user_config.csv",
        output=root / "out",
        limit=None,
        cache=root / "cache",
        models=None,
        tasks=None,
        startup_timeout=1,
        request_timeout=1,
        launcher="local",
    )


@pytest.fixture(autouse=True)
def _offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache, offline: no test here reaches huggingface.co."""
    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


BAD: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    # name: (models.csv, user_config.csv, tasks.csv, expected stderr lines)
    "remote-code-without-column": (
        "name,source\nm,./custom\n",
        "model,task,backend\nm,vqa,hf\n",
        TASKS,
        ("*models.csv:2: column 'trust_remote_code':*auto_map*trust_remote_code=true*",),
    ),
    "unknown-recipe": (
        "name,source,recipe\nm,./idefics3,no-such-recipe\n",
        "model,task,backend\nm,vqa,hf\n",
        TASKS,
        ("*models.csv:2: column 'recipe':*no-such-recipe*qwen2.5-vl*",),
    ),
    "hub-id-not-cached": (
        "name,source\nm,vlmhb-test/nowhere@v2\n",
        "model,task,backend\nm,vqa,hf\n",
        TASKS,
        ("*models.csv:2: column 'source':*vlmhb-test/nowhere*v2*hub-cache*",),
    ),
    "bad-hub-id": (
        "name,source\nm,org/name@\n",
        "model,task,backend\nm,vqa,hf\n",
        TASKS,
        ("*models.csv:2: column 'source':*",),
    ),
    "mm-kwargs-bad-json": (
        'name,source,mm_processor_kwargs\nm,./idefics3,"{""a"": 1"\n',
        "model,task,backend\nm,vqa,hf\n",
        TASKS,
        ("*models.csv:2: column 'mm_processor_kwargs':*not valid JSON*",),
    ),
    "mm-kwargs-not-object": (
        "name,source,mm_processor_kwargs\nm,./idefics3,[1]\n",
        "model,task,backend\nm,vqa,hf\n",
        TASKS,
        ("*models.csv:2: column 'mm_processor_kwargs':*JSON object*",),
    ),
    "mm-kwargs-nan": (
        'name,source,mm_processor_kwargs\nm,./idefics3,"{""a"": NaN}"\n',
        "model,task,backend\nm,vqa,hf\n",
        TASKS,
        ("*models.csv:2: column 'mm_processor_kwargs':*finite*",),
    ),
    "endpoint-headers-bad-json": (
        "name,source,endpoint,endpoint_headers\nm,x,http://127.0.0.1:9/v1,{\n",
        "model,task,backend\nm,vqa,openai\n",
        TASKS,
        ("*models.csv:2: column 'endpoint_headers':*not valid JSON*",),
    ),
    "endpoint-headers-crlf": (
        ENDPOINT_HEADERS + '"{""a"": ""x\\r\\nb: y""}"\n',
        "model,task,backend\nm,vqa,openai\n",
        TASKS,
        ("*models.csv:2: column 'endpoint_headers':*CR, LF*",),
    ),
    "endpoint-headers-bad-name": (
        ENDPOINT_HEADERS + '"{""a b"": ""x""}"\n',
        "model,task,backend\nm,vqa,openai\n",
        TASKS,
        ("*models.csv:2: column 'endpoint_headers':*header name*",),
    ),
    "endpoint-headers-short-secret": (
        ENDPOINT_HEADERS + '"{""api-key"": ""${VLMHB_TEST_SHORT_KEY}""}"\n',
        "model,task,backend\nm,vqa,openai\n",
        TASKS,
        ("*models.csv:2: column 'endpoint_headers':*VLMHB_TEST_SHORT_KEY*",),
    ),
    "dtype-unknown": (
        "name,source,dtype\nm,./idefics3,float8\n",
        "model,task,backend\nm,vqa,hf\n",
        TASKS,
        ("*models.csv:2: column 'dtype':*",),
    ),
    "max-model-len-zero": (
        "name,source,max_model_len\nm,./idefics3,0\n",
        "model,task,backend\nm,vqa,hf\n",
        TASKS,
        ("*models.csv:2: column 'max_model_len':*",),
    ),
    "limit-mm-nan": (
        "name,source,limit_mm_per_prompt\nm,./idefics3,nan\n",
        "model,task,backend\nm,vqa,hf\n",
        TASKS,
        ("*models.csv:2: column 'limit_mm_per_prompt':*",),
    ),
    "chat-template-missing": (
        "name,source,chat_template\nm,./idefics3,nope.jinja\n",
        "model,task,backend\nm,vqa,hf\n",
        TASKS,
        ("*models.csv:2: column 'chat_template':*nope.jinja*",),
    ),
    "trust-remote-code-not-bool": (
        "name,source,trust_remote_code\nm,./idefics3,maybe\n",
        "model,task,backend\nm,vqa,hf\n",
        TASKS,
        ("*models.csv:2: column 'trust_remote_code':*",),
    ),
    "reasoning-tags-bad-json": (
        "name,source\nm,./idefics3\n",
        "model,task,backend,reasoning_tags\nm,vqa,hf,[[\n",
        TASKS,
        ("*user_config.csv:2: column 'reasoning_tags':*not valid JSON*",),
    ),
    "reasoning-tags-not-pairs": (
        "name,source\nm,./idefics3\n",
        'model,task,backend,reasoning_tags\nm,vqa,hf,"[[""<t>""]]"\n',
        TASKS,
        ("*user_config.csv:2: column 'reasoning_tags':*pair*",),
    ),
    "reasoning-tags-in-tasks": (
        "name,source\nm,./idefics3\n",
        "model,task,backend\nm,vqa,hf\n",
        'name,type,data,reasoning_tags\nvqa,docvqa,data/m.jsonl,"[""<t>"", """"]"\n',
        ("*tasks.csv:2: column 'reasoning_tags':*",),
    ),
    "chat-template-kwargs-bad-json": (
        "name,source\nm,./idefics3\n",
        "model,task,backend,chat_template_kwargs\nm,vqa,hf,{x}\n",
        TASKS,
        ("*user_config.csv:2: column 'chat_template_kwargs':*not valid JSON*",),
    ),
    "chat-template-kwargs-twice": (
        "name,source\nm,./idefics3\n",
        "model,task,backend,chat_template_kwargs,request_params\n"
        'm,vqa,hf,"{""a"": 1}","{""chat_template_kwargs"": {}}"\n',
        TASKS,
        ("*user_config.csv:2: column 'request_params':*chat_template_kwargs*",),
    ),
    "parity-with-unknown": (
        "name,source\nm,./idefics3\n",
        "id,model,task,backend,parity_with\na,m,vqa,hf,\nb,m,vqa,hf,nope\n",
        TASKS,
        ("*user_config.csv:3: column 'parity_with':*'nope' names no case*allowed: a*",),
    ),
    "parity-with-itself": (
        "name,source\nm,./idefics3\n",
        "id,model,task,backend,parity_with\na,m,vqa,hf,a\n",
        TASKS,
        ("*user_config.csv:2: column 'parity_with':*names itself*",),
    ),
    "gpu-hour-cost-negative": (
        "name,source,gpu_hour_cost\nm,./idefics3,-1\n",
        "model,task,backend\nm,vqa,hf\n",
        TASKS,
        ("*models.csv:2: column 'gpu_hour_cost':*",),
    ),
    "dpi-zero": (
        "name,source\nm,./idefics3\n",
        "model,task,backend,dpi\nm,vqa,hf,0\n",
        TASKS,
        ("*user_config.csv:2: column 'dpi':*",),
    ),
    "image-format-gif": (
        "name,source\nm,./idefics3\n",
        "model,task,backend,image_format\nm,vqa,hf,gif\n",
        TASKS,
        ("*user_config.csv:2: column 'image_format':*png, jpeg*",),
    ),
    "max-pages-in-tasks-nan": (
        "name,source\nm,./idefics3\n",
        "model,task,backend\nm,vqa,hf\n",
        "name,type,data,max_pages\nvqa,docvqa,data/m.jsonl,nan\n",
        ("*tasks.csv:2: column 'max_pages':*",),
    ),
    "chat-template-kwargs-twice-via-task": (
        "name,source\nm,./idefics3\n",
        'model,task,backend,request_params\nm,vqa,hf,"{""chat_template_kwargs"": {}}"\n',
        'name,type,data,chat_template_kwargs\nvqa,docvqa,data/m.jsonl,"{""a"": 1}"\n',
        ("*user_config.csv:2: column 'request_params':*chat_template_kwargs*",),
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_model_settings_are_usage_errors(
    name: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLMHB_TEST_SHORT_KEY", "abc1234")
    models, config, tasks, expect = BAD[name]
    _suite(pytester.path, models, config, tasks)
    result = pytester.runpytest(
        "--vlmhb-config=user_config.csv", "--vlmhb-launcher=local", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines(list(expect))
    assert "Traceback" not in result.stderr.str()
    assert not (pytester.path / "vlmhb-results").exists()  # nothing started or written


def test_columns_reach_the_case(tmp_path: Path) -> None:
    """Every new column is read; the case's prompt columns win over the task's."""
    (tmp_path / "t.jinja").write_text("{{ messages }}")
    _suite(
        tmp_path,
        "name,source,trust_remote_code,dtype,max_model_len,mm_processor_kwargs,"
        "chat_template,limit_mm_per_prompt,recipe\n"
        'm,./custom,true,bfloat16,4096,"{""do_image_splitting"": false}",t.jinja,3,none\n',
        "id,model,task,backend,system_prompt,reasoning_tags\n"
        "a,m,vqa,hf,,\n"
        'b,m,vqa,hf,Be brief.,"[[""<r>"", ""</r>""]]"\n'
        "c,m,vqa,hf,,none\n",
        "name,type,data,system_prompt,chat_template_kwargs\n"
        'vqa,docvqa,data/m.jsonl,You read documents.,"{""enable_thinking"": false}"\n',
    )
    plan = load_plan(_settings(tmp_path))
    a, b, c = plan.cases
    model = a.model
    assert model.trust_remote_code is True
    assert model.dtype == "bfloat16"
    assert model.max_model_len == 4096
    assert model.mm_processor_kwargs == {"do_image_splitting": False}
    assert model.chat_template == (tmp_path / "t.jinja").resolve()
    assert model.limit_mm_per_prompt == 3
    assert model.recipe == "none"
    assert a.system_prompt == "You read documents."
    assert b.system_prompt == "Be brief."
    assert a.chat_template_kwargs == {"enable_thinking": False}
    assert a.reasoning_tags == (("<think>", "</think>"), ("<analysis>", "</analysis>"))
    assert b.reasoning_tags == (("<r>", "</r>"),)
    assert c.reasoning_tags == ()


def test_image_limit_defaults_to_the_most_images_a_sample_sends(tmp_path: Path) -> None:
    _suite(tmp_path, "name,source\nm,./idefics3\n", "model,task,backend\nm,vqa,hf\n")
    (case,) = load_plan(_settings(tmp_path)).cases
    assert case.model.limit_mm_per_prompt == 1


def test_remote_code_allowed_by_the_column(tmp_path: Path) -> None:
    _suite(
        tmp_path,
        "name,source,trust_remote_code\nm,./custom,true\n",
        "model,task,backend\nm,vqa,hf\n",
    )
    (case,) = load_plan(_settings(tmp_path)).cases
    assert case.model.trust_remote_code


def test_missing_folder_names_the_row(tmp_path: Path) -> None:
    _suite(tmp_path, "name,source\nm,./gone\n", "model,task,backend\nm,vqa,hf\n")
    with pytest.raises(ConfigError, match="gone") as caught:
        load_plan(_settings(tmp_path))
    assert "models.csv:2: column 'source'" in str(caught.value)
