"""``pytest --collect-only`` with the plugin active prints the plan and builds nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _suite(root: Path) -> None:
    (root / "data").mkdir()
    (root / "data" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "data" / "m.jsonl").write_text(
        "".join(
            json.dumps({"id": f"s{i}", "image": "a.png", "question": "Q?", "answers": ["x"]}) + "\n"
            for i in range(3)
        )
    )
    (root / "models.csv").write_text(
        "name,source,endpoint,server_args\n"
        "tiny,builtin:tiny-idefics3,,--max-new 4\n"
        "remote,x,http://127.0.0.1:9/v1,\n"
    )
    (root / "tasks.csv").write_text("name,type,data\nvqa,docvqa,data/m.jsonl\n")
    (root / "user_config.csv").write_text(
        "id,model,task,backend,launcher,concurrency,min_anls\n"
        "a,tiny,vqa,hf,local,2,0.1\nb,tiny,vqa,hf,local,,\nc,remote,vqa,openai,,,\n"
    )
    (root / "test_suite.py").write_text(
        "def test_sample(vlmhb_sample):\n    vlmhb_sample.check()\n"
    )


def test_collect_only_prints_the_plan_and_builds_nothing(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    _suite(pytester.path)
    cache = tmp_path / "cache"
    result = pytester.runpytest(
        "--vlmhb-config=user_config.csv",
        f"--vlmhb-cache={cache}",
        "--collect-only",
        "-q",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "vlmhb plan: 3 cases, 9 samples, 2 server groups*",
            "server tiny@hf@local",
            "  argv: '<local python>' -m pytest_vlmhb.server --model "
            f"{cache}/models/tiny-idefics3-* --served-model-name tiny --host 127.0.0.1 "
            "--port <port> --dtype auto --max-images-per-prompt 1 "
            "--max-model-len 2048 --max-new 4",  # the tiny model's recipe, server_args last
            "  case a: task vqa (docvqa), 3 samples, concurrency 2, max_tokens 32, gates: min_anls",
            "  case b: task vqa (docvqa), 3 samples, concurrency 8, max_tokens 32, gates: none",
            "server remote@openai@external",
            "  argv: (external endpoint http://127.0.0.1:9/v1)",
            "  case c: *",
        ]
    )
    assert not (pytester.path / "vlmhb-results").exists()  # no lock, nothing set aside
    assert not cache.exists() or not any(
        (cache / name).exists() for name in ("envs", "models", "venvs")
    )
