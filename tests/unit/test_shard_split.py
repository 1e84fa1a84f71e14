"""Sharding: the option, the work estimate, the greedy split, the config hash, the
run record in the store, and the checks a merge makes before it writes anything."""

from __future__ import annotations

import inspect
import json
import random
import shutil
from pathlib import Path

import pytest

from pytest_vlmhb.cases import Draft, load_draft, load_plan
from pytest_vlmhb.config import Settings
from pytest_vlmhb.errors import ConfigError
from pytest_vlmhb.merge import ShardStore, check_shards
from pytest_vlmhb.options import parse_shard
from pytest_vlmhb.shard import (
    DEFAULT_SAMPLES,
    PROMPT_COST,
    SYNTHETIC_SAMPLES,
    assign,
    case_work,
    estimated_samples,
    split_cases,
    split_key,
)
from pytest_vlmhb.store import ResultStore, StoreContents, load_store
from pytest_vlmhb.tasks.sources import synthetic_docs_dir
from tests.helpers import SUITE, make_case, make_settings

# ------------------------------------------------------------------ the option


@pytest.mark.parametrize(("text", "shard"), [("2/3", (2, 3)), (" 1/1 ", (1, 1)), ("4/4", (4, 4))])
def test_shard_option_parses(text: str, shard: tuple[int, int]) -> None:
    assert parse_shard(text) == shard


@pytest.mark.parametrize("text", ["0/4", "5/4", "a/b", "3", "1/0", "-1/2", "2/3/4", "", "/"])
def test_malformed_shard_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="expected I/N"):
        parse_shard(text)


@pytest.mark.parametrize("text", ["0/4", "5/4", "a/b"])
def test_malformed_shard_is_a_usage_error_naming_the_option(
    pytester: pytest.Pytester, text: str
) -> None:
    result = pytester.runpytest(f"--vlmhb-shard={text}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--vlmhb-shard: expected I/N*got '{text}'*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vlmhb-shard=1/2"], "*--vlmhb-shard needs --vlmhb-config*"),
        (
            ["--vlmhb-config=c.csv", "--vlmhb-merge=d", "--vlmhb-shard=1/2"],
            "*--vlmhb-merge cannot go with --vlmhb-shard*",
        ),
        (
            ["--vlmhb-config=c.csv", "--vlmhb-merge=d", "--vlmhb-resume"],
            "*--vlmhb-merge cannot go with --vlmhb-resume*",
        ),
        (
            ["--vlmhb-config=c.csv", "--vlmhb-merge=d", "--vlmhb-output=d"],
            "*--vlmhb-output * is one of the --vlmhb-merge dirs*",
        ),
    ],
)
def test_option_combinations_a_merge_refuses(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    (pytester.path / "c.csv").write_text("model,task,backend\n")
    (pytester.path / "d").mkdir()
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


# ------------------------------------------------------------------ the split


def test_longest_processing_time_first_with_deterministic_ties() -> None:
    works = {"a": 10, "b": 7, "c": 5, "d": 4, "e": 1}
    assert assign(works, 2) == {"a": 1, "b": 2, "c": 2, "d": 1, "e": 2}
    # Input order does not matter; equal work goes by key, equal load to the lower shard.
    assert assign(dict(reversed(works.items())), 2) == assign(works, 2)
    assert assign({"y": 3, "x": 3, "z": 3}, 2) == {"x": 1, "y": 2, "z": 1}
    assert assign({"a": 1}, 3) == {"a": 1}  # shards 2 and 3 are empty


def test_greedy_split_is_within_the_list_scheduling_bound() -> None:
    rng = random.Random(7)
    for _ in range(50):
        works = {f"g{i}": rng.randrange(0, 5000) for i in range(rng.randrange(1, 30))}
        shards = rng.randrange(1, 8)
        got = assign(works, shards)
        loads = [sum(w for k, w in works.items() if got[k] == s) for s in range(1, shards + 1)]
        assert sorted(got) == sorted(works)
        assert max(loads) <= sum(works.values()) / shards + max(works.values())


def _case(case_id: str, model: str, backend: str, launcher: str, max_tokens: int = 8) -> object:
    base = make_case(("anls",), "docvqa")
    return base.model_copy(
        update={
            "id": case_id,
            "backend": backend,
            "launcher": launcher,
            "max_tokens": max_tokens,
            "model": base.model.model_copy(update={"name": model}),
            "task": base.task.model_copy(update={"data": "builtin:synthetic-docs"}),
        }
    )


def test_groups_move_whole_and_auto_docker_local_are_one_launcher() -> None:
    cases = [
        _case("a", "m1", "hf", "auto"),
        _case("b", "m1", "hf", "docker"),
        _case("c", "m1", "vllm", "local"),
        _case("d", "m2", "hf", "slurm"),
        _case("e", "m2", "hf", "external", max_tokens=100),
    ]
    split = split_cases(cases, 1, 3)  # type: ignore[arg-type]
    groups = {g.key: set(g.cases) for g in split.groups}
    assert groups == {
        "m1@hf@auto": {"a", "b"},
        "m1@vllm@auto": {"c"},
        "m2@hf@slurm": {"d"},
        "m2@hf@external": {"e"},
    }
    assert split.groups[0].key == "m2@hf@external"  # the most work first
    assert split.groups[0].work == SYNTHETIC_SAMPLES * (100 + PROMPT_COST)
    # 1584 -> 1, 960 -> 2, then two of 480 (by key) to the least loaded: 3, 3.
    assert split.assignment == {
        "m2@hf@external": 1,
        "m1@hf@auto": 2,
        "m1@vllm@auto": 3,
        "m2@hf@slurm": 3,
    }
    assert [g.key for g in split.own] == ["m2@hf@external"] and split.load(3) == 960
    assert split_key("m", "hf", "local") == split_key("m", "hf", "docker") == "m@hf@auto"
    assert 1 <= split.shard_of("user@hf@external") <= 3
    assert split.shard_of("user@hf@external") == split.shard_of("user@hf@external")


def test_work_estimate_counts_samples_without_fetching(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"id": 1}\n\n{"id": 2}\n   \n{"id": 3}')
    case = make_case(("anls",), "docvqa")

    def task(data: str, preset: str | None = None) -> object:
        return case.task.model_copy(update={"data": data, "preset": preset, "base_dir": tmp_path})

    assert estimated_samples(task("m.jsonl")) == 3  # type: ignore[arg-type]
    assert estimated_samples(task("missing.jsonl")) == DEFAULT_SAMPLES  # type: ignore[arg-type]
    assert estimated_samples(task("builtin:synthetic-docs")) == SYNTHETIC_SAMPLES  # type: ignore
    assert estimated_samples(task("preset:docvqa_val")) == 5349  # type: ignore[arg-type]
    assert estimated_samples(task("hf:a/b@test")) == DEFAULT_SAMPLES  # type: ignore[arg-type]
    assert estimated_samples(task("hf:a/b@test", "ocrbench")) == 1000  # type: ignore[arg-type]
    assert estimated_samples(task("parquet:x", "cord_kie")) == 100  # type: ignore[arg-type]
    limited = case.model_copy(update={"task": task("m.jsonl"), "limit": 2, "max_tokens": 10})
    assert case_work(limited) == 2 * (10 + PROMPT_COST)
    default = inspect.signature(synthetic_docs_dir).parameters["n_per_type"].default
    assert default == SYNTHETIC_SAMPLES


# ------------------------------------------------------------------ plans and hashes

MODELS = "name,source,endpoint\nm1,x,http://127.0.0.1:9/v1\nm2,x,http://127.0.0.1:9/v1\n"


def _suite(root: Path, *, tasks: str | None = None, lines: int = 3) -> Settings:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data" / "m.jsonl").write_text(
        "".join(
            json.dumps({"id": f"s{i}", "image": "p.png", "question": "Q?", "answers": ["a"]}) + "\n"
            for i in range(lines)
        )
    )
    (root / "models.csv").write_text(MODELS)
    (root / "tasks.csv").write_text(
        tasks or "name,type,data\nown,docvqa,data/m.jsonl\nother,docvqa,builtin:synthetic-docs\n"
    )
    (root / "user_config.csv").write_text("model,task,backend\nm1,own,openai\nm2,other,openai\n")
    return make_settings(root)


def test_a_shard_resolves_only_its_own_manifests(tmp_path: Path) -> None:
    settings = _suite(
        tmp_path, tasks="name,type,data\nown,docvqa,data/m.jsonl\nother,docvqa,data/missing.jsonl\n"
    )
    # m2's missing manifest counts DEFAULT_SAMPLES: the most work, so shard 1; m1 is shard 2.
    plan = load_plan(settings.model_copy(update={"shard": (2, 2)}))
    assert [c.id for c in plan.cases] == ["m1:own:openai"] and plan.shard is not None
    assert plan.shard.describe() == (
        f"shard 2/2: groups m1@openai@external (estimated work {3 * (32 + PROMPT_COST)} of "
        f"{(3 + DEFAULT_SAMPLES) * (32 + PROMPT_COST)})"
    )
    with pytest.raises(ConfigError, match="manifest not found"):
        load_plan(settings.model_copy(update={"shard": (1, 2)}))
    # Built-in documents of another shard are not generated either.
    plan = load_plan(_suite(tmp_path / "b", lines=50).model_copy(update={"shard": (1, 2)}))
    assert [c.id for c in plan.cases] == ["m1:own:openai"]
    assert not (tmp_path / "b" / "cache").exists()
    empty = load_plan(settings.model_copy(update={"shard": (3, 3)}))
    assert empty.cases == () and empty.shard is not None and empty.shard.own == []
    assert (
        empty.shard.describe() == "shard 3/3: empty (2 server groups over 3 shards): nothing to run"
    )


def test_config_hash_ignores_paths_and_follows_what_changes_answers(tmp_path: Path) -> None:
    first = _suite(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "elsewhere" / "b")
    moved = first.model_copy(update={"config": tmp_path / "elsewhere" / "b" / "user_config.csv"})
    digest = load_draft(first).config_hash
    assert load_draft(moved).config_hash == digest
    assert load_draft(first.model_copy(update={"request_timeout": 9.0})).config_hash == digest
    assert load_draft(first.model_copy(update={"shard": (1, 2)})).config_hash == digest
    changed = {
        load_draft(first.model_copy(update={"limit": 2})).config_hash,
        load_draft(first.model_copy(update={"launcher": "external"})).config_hash,
    }
    (tmp_path / "a" / "data" / "m.jsonl").write_text("{}\n")
    changed.add(load_draft(first).config_hash)
    assert digest not in changed and len(changed) == 3


def test_launcher_override(tmp_path: Path) -> None:
    settings = _suite(tmp_path)
    (tmp_path / "models.csv").write_text(MODELS + "m3,builtin:tiny-idefics3,\n")
    (tmp_path / "user_config.csv").write_text(
        "model,task,backend,launcher\nm1,own,openai,external\nm3,own,hf,docker\n"
    )
    draft = load_draft(settings.model_copy(update={"launcher": "local"}))
    assert [c.launcher for c in draft.cases] == ["local", "local"]
    with pytest.raises(ConfigError) as bad:
        load_draft(settings.model_copy(update={"launcher": "ssh"}))
    assert "--vlmhb-launcher: unknown launcher 'ssh' (allowed: auto, " in str(bad.value)
    with pytest.raises(ConfigError) as no_endpoint:
        load_draft(settings.model_copy(update={"launcher": "external"}))
    assert str(no_endpoint.value) == (
        f"{tmp_path / 'user_config.csv'}:3: column 'launcher': launcher 'external' needs an "
        "endpoint for model 'm3' in models.csv (--vlmhb-launcher=external)"
    )


# ------------------------------------------------------------------ the store's run record


def test_run_record_is_kept_and_a_bad_one_skipped(tmp_path: Path) -> None:
    from pytest_vlmhb.shard import run_info_entry

    store = ResultStore(tmp_path, "main")
    case = make_case(("anls",), "docvqa")
    good = run_info_entry([case], split_cases([case], 1, 2), "h1")
    store.append(good)
    store.append({"run_info": {**good["run_info"], "shard_index": 3}})
    store.append({"run_info": {**good["run_info"], "cases": ["c"]}})  # type: ignore[typeddict-item]
    store.close()
    contents = load_store(tmp_path)
    assert contents.run_info == good["run_info"]
    assert good["run_info"]["cases"] == {"c": "local"}
    assert (good["run_info"]["shard_index"], good["run_info"]["shard_total"]) == (1, 2)
    assert [s.split(" (", 1)[1][:22] for s in contents.skipped] == [
        "run_info: shard 3/2 ou",
        "wrong shape: run_info.",
    ]


# ------------------------------------------------------------------ merge checks


def _shard(
    name: str, index: int, total: int, cases: dict[str, str], digest: str = "h"
) -> ShardStore:
    info = {
        "shard_index": index,
        "shard_total": total,
        "config_hash": digest,
        "cases": cases,
        "mode": "run",
        "version": "0",
        "started": "now",
    }
    return ShardStore(Path(name), StoreContents(), info)  # type: ignore[arg-type]


def _draft(*ids: str) -> Draft:
    return Draft([make_case(("anls",)).model_copy(update={"id": i}) for i in ids], {}, "h")


def test_merge_checks() -> None:
    ok = [
        _shard("a", 1, 3, {"x": "local"}),
        _shard("b", 2, 3, {"y": "docker"}),
        _shard("c", 3, 3, {}),
    ]  # an empty shard is a shard too
    assert {k: v.path.name for k, v in check_shards(ok, _draft("x", "y")).items()} == {
        "x": "a",
        "y": "b",
    }
    refusals = [
        ([*ok[:2], _shard("c", 3, 3, {}, digest="other")], "c (shard 3/3) ran another config"),
        ([*ok[:2], _shard("c", 3, 4, {})], "shards of different splits (a ran 1/3, b ran 2/3, "),
        ([*ok, _shard("d", 1, 3, {})], "shard 1/3 given twice (a and d)"),
        (
            [ok[0], _shard("b", 2, 3, {"x": "local"}), ok[2]],
            "case 'x' is in two shards: a (shard 1/3) and b (shard 2/3)",
        ),
        ([ok[0], ok[2]], "shard 2/3 missing (given: 1/3 from a, 3/3 from c)"),
        (ok, "no shard ran the case 'z'"),
    ]
    for shards, message in refusals:
        with pytest.raises(ConfigError) as info:
            check_shards(shards, _draft("x", "y", "z") if "'z'" in message else _draft("x", "y"))
        assert message in str(info.value)


USER_TESTS = """
import pytest

@pytest.mark.vlmhb_model("m1", backend="openai")
def test_m1(vlmhb_chat):
    pass

@pytest.mark.vlmhb_model("m2", backend="openai")
def test_m2(vlmhb_chat):
    pass

@pytest.mark.vlmhb_model("m3", backend="openai")
def test_m3(vlmhb_chat):
    pass
"""


def test_users_own_tests_run_in_the_shard_of_their_group(pytester: pytest.Pytester) -> None:
    _suite(pytester.path, lines=3)
    (pytester.path / "models.csv").write_text(MODELS + "m3,x,http://127.0.0.1:9/v1\n")
    pytester.makepyfile(test_vlmhb=SUITE, test_user=USER_TESTS)
    collected = {}
    for shard in ("1/2", "2/2"):
        result = pytester.runpytest(
            "--vlmhb-config=user_config.csv", f"--vlmhb-shard={shard}", "--collect-only", "-q"
        )
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()
        collected[shard] = {line for line in result.stdout.lines if "::" in line}
    # m2's synthetic documents (12 samples) outweigh m1's 3: m2 -> shard 1, m1 -> shard 2.
    assert "test_user.py::test_m2" in collected["1/2"] - collected["2/2"]
    assert "test_user.py::test_m1" in collected["2/2"] - collected["1/2"]
    assert any("m2:other:openai" in line for line in collected["1/2"])
    assert not any("m1:own:openai" in line for line in collected["1/2"])
    # m3 has no CSV case: a stable hash picks exactly one shard.
    assert sum("test_user.py::test_m3" in collected[s] for s in collected) == 1
