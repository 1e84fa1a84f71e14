"""Users' own tests against a served model: ``vlmhb_model`` + ``vlmhb_chat``.

Plumbing and usage errors against the scripted stub on loopback; sharing a
real HF server with CSV cases (once, under xdist too) against the tiny model.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from pytest_vlmhb.csvsafe import read_csv_dicts
from tests.helpers import page_manifest, run, setup_suite
from tests.stub_openai import StubScript, running_stub

USER_TESTS = """
import pytest

@pytest.mark.vlmhb_model("{model}", backend="{backend}")
def test_two_questions(vlmhb_chat):
    first = vlmhb_chat("Q1?", image="data/p.png")
    second = vlmhb_chat("Q2?", images=["data/p.png", "data/p.png"], max_tokens=4)
    assert first.completion_tokens >= 1 and first.ttft_ms > 0
    assert first.e2e_ms >= first.ttft_ms
    assert second.raw_text.startswith(second.text) or second.text in second.raw_text
    print("REPLY", repr(first.text), repr(first.raw_text), first.prompt_tokens)

@pytest.mark.vlmhb_model("{model}", backend="{backend}")
def test_one_question(vlmhb_chat):
    assert vlmhb_chat("Q3?").raw_text
"""


def test_user_tests_with_only_a_models_csv(pytester: pytest.Pytester) -> None:
    page_manifest(pytester, 1)
    script = StubScript(default_answer="<think>hmm</think> Paris ")
    with running_stub(script) as url:
        (pytester.path / "models.csv").write_text(f"name,source,endpoint\nremote,x,{url}\n")
        pytester.makepyfile(test_mine=USER_TESTS.format(model="remote", backend="openai"))
        result = pytester.runpytest_subprocess(
            "--vlmhb-models=models.csv", "-s", "-p", "no:cacheprovider", "--junitxml=j.xml"
        )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["REPLY 'Paris' '<think>hmm</think> Paris ' 7"])
    assert [len(r["messages"][0]["content"]) for r in script.received] == [2, 3, 1]
    assert script.received[1]["max_tokens"] == 4
    out = pytester.path / "vlmhb-results"
    rows = read_csv_dicts(out / "answers.csv")
    assert [(r["case_id"], r["task"], r["sample_id"]) for r in rows] == [
        ("remote:test_mine.py:openai", "pytest", "test_two_questions"),
        ("remote:test_mine.py:openai", "pytest", "test_two_questions#2"),
        ("remote:test_mine.py:openai", "pytest", "test_one_question"),
    ]
    assert [r["prompt"] for r in rows] == ["Q1?", "Q2?", "Q3?"]
    (metrics,) = read_csv_dicts(out / "metrics.csv")
    assert (metrics["case_id"], metrics["n"], metrics["errors"]) == (
        "remote:test_mine.py:openai",
        "3",
        "0",
    )
    assert "## pytest" in (out / "report.md").read_text()
    stored = [
        json.loads(line)
        for line in (out / "results" / "samples-main.jsonl").read_text().splitlines()
        if '"key"' in line
    ]
    assert len(stored) == 3
    props = {
        p.get("name"): p.get("value")
        for p in ET.parse(pytester.path / "j.xml").getroot().iter("property")
    }
    assert float(props["test_two_questions#2 ttft_ms"]) > 0


@pytest.mark.parametrize(
    ("models", "body", "args", "message"),
    [
        (None, 'vlmhb_model("m")', (), "*vlmhb_model need a models.csv*"),
        (
            "name,source,endpoint\nm,x,http://127.0.0.1:9/v1\n",
            'vlmhb_model("nope")',
            ("--vlmhb-models=models.csv",),
            "*unknown model 'nope' in *models.csv (allowed: m)*",
        ),
        (
            "name,source,endpoint\nm,x,http://127.0.0.1:9/v1\n",
            'vlmhb_model("m", backend="x")',
            ("--vlmhb-models=models.csv",),
            "*column 'backend'*",
        ),
        (
            "name,source,endpoint\nm,x,http://127.0.0.1:9/v1\n",
            'vlmhb_model("m", port=1)',
            ("--vlmhb-models=models.csv",),
            "*unknown arguments port*",
        ),
        (
            "name,source\nm,./missing-dir\n",
            'vlmhb_model("m", launcher="local")',
            ("--vlmhb-models=models.csv",),
            "*models.csv:2: column 'source':*does not exist*",
        ),
    ],
)
def test_user_test_usage_errors(
    pytester: pytest.Pytester, models: str | None, body: str, args: tuple[str, ...], message: str
) -> None:
    if models is not None:
        (pytester.path / "models.csv").write_text(models)
    pytester.makepyfile(
        test_mine=f"import pytest\n@pytest.mark.{body}\n"
        "def test_x(vlmhb_chat):\n    vlmhb_chat('q')\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_vlmhb_chat_without_the_marker_is_an_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "models.csv").write_text("name,source,endpoint\nm,x,http://127.0.0.1:9/v1\n")
    pytester.makepyfile(test_mine="def test_x(vlmhb_chat):\n    vlmhb_chat('q')\n")
    result = pytester.runpytest_subprocess("--vlmhb-models=models.csv", "-p", "no:cacheprovider")
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*vlmhb_chat needs @pytest.mark.vlmhb_model*"])


@pytest.mark.server
def test_user_tests_share_the_real_hf_server_with_csv_cases_under_xdist(
    pytester: pytest.Pytester,
) -> None:
    page_manifest(pytester, 2)
    setup_suite(
        pytester,
        "model,task,backend,launcher\ntiny,vqa,hf,local\n",
        models="name,source\ntiny,builtin:tiny-idefics3\n",
        tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
    )
    # launcher=local as the CSV case has it: one server for both.
    pytester.makepyfile(
        test_mine=USER_TESTS.format(model="tiny", backend="hf").replace(
            'backend="hf")', 'backend="hf", launcher="local")'
        )
    )
    result = run(pytester, "-n", "2")
    result.assert_outcomes(passed=2 + 2)
    log = (pytester.path / "vlmhb-results" / "logs" / "tiny@hf@local.log").read_text()
    assert log.count("Application startup complete") == 1, log[-3000:]  # one server start
    rows = read_csv_dicts(pytester.path / "vlmhb-results" / "answers.csv")
    user = [r for r in rows if r["task"] == "pytest"]
    assert [r["sample_id"] for r in user] == [
        "test_two_questions",
        "test_two_questions#2",
        "test_one_question",
    ]
    assert all(int(r["completion_tokens"]) >= 1 and not r["error"] for r in user)
    assert {r["launcher"] for r in rows} == {"local"}
    stores = list((pytester.path / "vlmhb-results" / "results").glob("samples-gw*.jsonl"))
    holding = [p for p in stores if '"key"' in p.read_text()]
    assert len(holding) == 1  # one worker ran the CSV case and the user tests
