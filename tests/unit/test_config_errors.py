"""Bad configuration is a ConfigError naming file, line, column and allowed values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_vlmhb.cases import load_plan
from pytest_vlmhb.config import Settings
from pytest_vlmhb.errors import ConfigError
from tests.helpers import make_settings

MODELS = "name,source,endpoint\nm1,builtin:tiny-idefics3,\next,remote-model,http://127.0.0.1:1/v1\n"
TASKS = "name,type,data\nvqa,docvqa,data/vqa.jsonl\n"
CONFIG = "model,task,backend\nm1,vqa,hf\n"


def write_suite(
    root: Path,
    config: str = CONFIG,
    models: str = MODELS,
    tasks: str = TASKS,
    manifest: list[dict[str, object]] | None = None,
) -> Settings:
    (root / "data").mkdir(exist_ok=True)
    lines = (
        manifest
        if manifest is not None
        else [
            {"id": "a", "image": "a.png", "question": "Q?", "answers": ["x"]},
            {"id": "b", "image": "b.png", "question": "Q2?", "answers": ["y"]},
        ]
    )
    (root / "data" / "vqa.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (root / "user_config.csv").write_text(config)
    (root / "models.csv").write_text(models)
    (root / "tasks.csv").write_text(tasks)
    return make_settings(root)


def error_of(settings: Settings) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_plan(settings)
    return info.value


def test_valid_suite_resolves_defaults(tmp_path: Path) -> None:
    plan = load_plan(write_suite(tmp_path))
    (case,) = plan.cases
    assert case.id == "m1:vqa:hf"
    from pytest_vlmhb.launchers.auto import resolve

    assert case.launcher == resolve().launcher  # auto: docker when a daemon answers
    assert case.concurrency == 8 and case.temperature == 0.0
    assert case.task.metrics == ("anls", "exact_match")
    assert case.max_tokens == 32
    assert [s.id for s in plan.samples[case.id]] == ["a", "b"]
    assert plan.samples[case.id][0].prompt.startswith("Q?\n")


def test_endpoint_means_external_launcher(tmp_path: Path) -> None:
    plan = load_plan(write_suite(tmp_path, config="model,task,backend\next,vqa,openai\n"))
    assert plan.cases[0].launcher == "external"


def test_max_tokens_is_a_setting_not_a_threshold(tmp_path: Path) -> None:
    plan = load_plan(
        write_suite(tmp_path, config="model,task,backend,max_tokens,max_anls\nm1,vqa,hf,7,1\n")
    )
    (case,) = plan.cases
    assert case.max_tokens == 7
    assert [t.name for t in case.thresholds] == ["max_anls"]


def test_limit_takes_the_smaller(tmp_path: Path) -> None:
    settings = write_suite(tmp_path, config="model,task,backend,limit\nm1,vqa,hf,5\n")
    plan = load_plan(settings.model_copy(update={"limit": 1}))
    assert len(plan.samples["m1:vqa:hf"]) == 1


@pytest.mark.parametrize(
    ("config", "line", "column", "needle"),
    [
        ("model,task,backend\nm1,vqa,nope\n", 2, "backend", "allowed: hf, openai, sglang, vllm"),
        ("model,task,backend\nm1,vqa,hf\nzz,vqa,hf\n", 3, "model", "allowed: ext, m1"),
        (
            "model,task,backend\nm1,nope,hf\n",
            2,
            "task",
            "docvqa_val, infovqa_val, multidocvqa_val, ocrbench, slidevqa_val, sroie_kie, vqa)",
        ),
        ("model,task,backend,colour\nm1,vqa,hf,red\n", 1, "colour", "allowed:"),
        ("model,task,backend\nm1,vqa,hf\nm1,vqa,hf\n", 3, "id", "set the 'id' column"),
        ("model,task,backend,min_anls\nm1,vqa,hf,high\n", 2, "min_anls", "must be a finite number"),
        ("model,task,backend,min_cer\nm1,vqa,hf,0.1\n", 2, "min_cer", "does not produce"),
        ("model,task,backend,concurrency\nm1,vqa,hf,0\n", 2, "concurrency", "greater than"),
        ("model,task,backend,launcher\nm1,vqa,hf,ssh\n", 2, "launcher", "allowed: auto"),
        ("model,task,backend,request_params\nm1,vqa,hf,[1]\n", 2, "request_params", "JSON object"),
        ("model,task\nm1,vqa\n", 1, "backend", "required column"),
    ],
)
def test_bad_config_names_file_line_column(
    tmp_path: Path, config: str, line: int, column: str, needle: str
) -> None:
    err = error_of(write_suite(tmp_path, config=config))
    assert err.file == tmp_path / "user_config.csv"
    assert (err.line, err.column) == (line, column)
    assert needle in str(err)
    assert f"user_config.csv:{line}: column '{column}'" in str(err)


def test_empty_config(tmp_path: Path) -> None:
    err = error_of(write_suite(tmp_path, config="model,task,backend\n"))
    assert "no cases" in str(err)
    err = error_of(write_suite(tmp_path, config=""))
    assert "empty file" in str(err)


def test_unknown_metric_and_task_type_name_tasks_csv(tmp_path: Path) -> None:
    err = error_of(write_suite(tmp_path, tasks="name,type,data,metrics\nvqa,docvqa,x,anls;bleu\n"))
    assert (err.file, err.line, err.column) == (tmp_path / "tasks.csv", 2, "metrics")
    assert "bleu" in str(err) and "anls" in (err.allowed or [])
    err = error_of(write_suite(tmp_path, tasks="name,type,data\nvqa,vqa2,x\n"))
    assert err.column == "type" and "docvqa" in (err.allowed or [])


def test_missing_manifest_and_bad_lines(tmp_path: Path) -> None:
    err = error_of(write_suite(tmp_path, tasks="name,type,data\nvqa,docvqa,data/none.jsonl\n"))
    assert "not found" in str(err) and "none.jsonl" in str(err)
    err = error_of(write_suite(tmp_path, manifest=[{"id": "a", "image": "a.png"}]))
    assert err.line == 1 and "question" in str(err)
    dup = {"id": "a", "image": "a.png", "question": "q", "answers": ["x"]}
    err = error_of(write_suite(tmp_path, manifest=[dup, dup]))
    assert err.line == 2 and "duplicate sample id" in str(err)


def test_external_launcher_needs_endpoint(tmp_path: Path) -> None:
    config = "model,task,backend,launcher\nm1,vqa,hf,external\n"
    err = error_of(write_suite(tmp_path, config=config))
    assert "endpoint" in str(err)


def test_model_requirements_override_the_backend_venv_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_vlmhb.backends.vllm import VLLMBackend
    from pytest_vlmhb.launchers import local

    models = "name,source,requirements,server_args\nm1,./m,vllm==0.11.0; torch==2.8.0,--seed 3\n"
    (tmp_path / "m").mkdir()
    settings = write_suite(tmp_path, models=models, config="model,task,backend\nm1,vqa,vllm\n")
    (case,) = load_plan(settings).cases
    assert case.model.requirements == ("vllm==0.11.0", "torch==2.8.0")
    assert case.model.server_args == ("--seed", "3")
    seen = {}

    def fake_env(cache: Path, name: str, requirements: list[str], *rest: object) -> Path:
        seen["requirements"] = requirements
        raise RuntimeError("stop here")

    monkeypatch.setattr(local, "ensure_env", fake_env)
    with pytest.raises(RuntimeError, match="stop here"):
        local.LocalLauncher().start(VLLMBackend(), case.model, settings, print)
    assert seen["requirements"] == ["vllm==0.11.0", "torch==2.8.0"]


def test_bom_prefixed_csv_loads_and_non_utf8_is_named(tmp_path: Path) -> None:
    settings = write_suite(tmp_path)
    (tmp_path / "user_config.csv").write_bytes(b"\xef\xbb\xbf" + CONFIG.encode())
    assert [c.id for c in load_plan(settings).cases] == ["m1:vqa:hf"]
    latin1 = "model,task,backend\nm\xe9,vqa,hf\n".encode("latin-1")
    (tmp_path / "user_config.csv").write_bytes(latin1)
    err = error_of(settings)
    assert err.file == tmp_path / "user_config.csv" and "not UTF-8" in str(err)


def test_empty_manifest_is_named(tmp_path: Path) -> None:
    err = error_of(write_suite(tmp_path, manifest=[]))
    assert "vqa.jsonl" in str(err) and "no samples" in str(err)
