"""Options: CLI -> ini -> env -> default, bad values are usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_bad_limit_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--vlmhb-limit=many")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--vlmhb-limit: expected int, got 'many'*"])


def test_ini_and_env_resolution(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VLMHB_CACHE", str(tmp_path / "envcache"))
    pytester.makeini("[pytest]\nvlmhb_output = out-from-ini\nvlmhb_limit = 3\n")
    pytester.makeconftest(
        "from pytest_vlmhb.plugin import SETTINGS\n"
        "def pytest_sessionstart(session):\n"
        "    s = session.config.stash[SETTINGS]\n"
        "    print('SETTINGS', s.output.name, s.limit, s.cache, s.config)\n"
    )
    result = pytester.runpytest_subprocess("-s", "--vlmhb-limit=2")
    result.stdout.fnmatch_lines([f"SETTINGS out-from-ini 2 {tmp_path / 'envcache'} None"])


def test_missing_config_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--vlmhb-config=nope.csv")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*nope.csv: file not found*"])


def test_explicit_incompatible_dist_mode_is_refused(pytester: pytest.Pytester) -> None:
    (pytester.path / "models.csv").write_text("name,source\nm,builtin:tiny-idefics3\n")
    (pytester.path / "tasks.csv").write_text("name,type,data\nt,docvqa,builtin:synthetic-docs\n")
    (pytester.path / "user_config.csv").write_text("model,task,backend\nm,t,hf\n")
    result = pytester.runpytest_subprocess(
        "--vlmhb-config=user_config.csv", "-n", "2", "--dist=load"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--dist=load would split a server's samples across workers; use --dist=loadgroup*"]
    )
