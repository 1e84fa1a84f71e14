"""Bad-input matrix: configuration, options and baseline files.

Every case runs the plugin (in-process pytester) on an otherwise valid suite
with one bad value, and asserts exit 4, a message naming where the problem
is, and that the previous run's results in the output dir are untouched.
Nothing is sent: every model is an endpoint on a closed loopback port.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

GOOD_MODELS = "name,source,endpoint\nm,remote,http://127.0.0.1:9/v1\n"
GOOD_TASKS = "name,type,data\nvqa,docvqa,data/m.jsonl\n"
GOOD_CONFIG = "model,task,backend\nm,vqa,openai\n"
PREVIOUS = '{"key": "k", "case_id": "old"}\n'


@dataclass
class Bad:
    """One bad input: files to overwrite, extra args, and the expected message lines."""

    files: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    expect: tuple[str, ...] = ()
    setup: Callable[[Path], None] | None = None


def _cfg(header: str, row: str) -> dict[str, str]:
    return {"user_config.csv": f"model,task,backend,{header}\nm,vqa,openai,{row}\n"}


def _quoted(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"'


def _fifo(name: str) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        (root / name).unlink(missing_ok=True)
        os.mkfifo(root / name)

    return make


CASES: dict[str, Bad] = {
    # 1. names a spreadsheet reads as formulas
    "case-id-plus": Bad(_cfg("id", "+cmd"), expect=("*user_config.csv:2: column 'id':*",)),
    "case-id-minus": Bad(_cfg("id", "-2+3"), expect=("*user_config.csv:2: column 'id':*",)),
    "case-id-at": Bad(_cfg("id", "@SUM(A1)"), expect=("*user_config.csv:2: column 'id':*",)),
    "case-id-equals": Bad(_cfg("id", "=1+1"), expect=("*user_config.csv:2: column 'id':*",)),
    "model-name-minus": Bad(
        {"models.csv": "name,source,endpoint\n-m,x,http://127.0.0.1:9/v1\n"},
        expect=("*models.csv:2: column 'name':*",),
    ),
    "task-name-at": Bad(
        {"tasks.csv": "name,type,data\n@t,docvqa,data/m.jsonl\n"},
        expect=("*tasks.csv:2: column 'name':*",),
    ),
    **{
        f"sample-id-{name}": Bad(
            {
                "data/m.jsonl": json.dumps(
                    {"id": sid, "image": "a.png", "question": "Q?", "answers": ["x"]}
                )
                + "\n"
            },
            expect=("*m.jsonl:1: column 'id':*may not start with*",),
        )
        for name, sid in [("plus", "+1"), ("minus", "-a"), ("at", "@x")]
    },
    # 2. a key too short to mask
    "api-key-short": Bad(
        {
            "models.csv": "name,source,endpoint,api_key_env\n"
            "m,x,http://127.0.0.1:9/v1,VLMHB_TEST_SHORT_KEY\n"
        },
        expect=("*models.csv:2: column 'api_key_env':*VLMHB_TEST_SHORT_KEY*8*",),
    ),
    # 4. non-finite and out-of-range numbers in CSV cells
    **{
        f"threshold-{name}": Bad(
            _cfg("min_anls", value), expect=("*user_config.csv:2: column 'min_anls':*",)
        )
        for name, value in [
            ("nan", "nan"),
            ("inf", "inf"),
            ("minus-inf", "-inf"),
            ("negative", "-0.5"),
            ("overflow", "1e999"),
            ("text", "high"),
            ("NaN-caps", "NaN"),
        ]
    },
    "max-threshold-nan": Bad(
        _cfg("max_ttft_p95_ms", "nan"), expect=("*column 'max_ttft_p95_ms':*",)
    ),
    **{
        f"timeout-{name}": Bad(
            _cfg("request_timeout", value),
            expect=("*user_config.csv:2: column 'request_timeout':*",),
        )
        for name, value in [
            ("zero", "0"),
            ("nan", "nan"),
            ("inf", "inf"),
            ("negative", "-1"),
            ("huge", "1e12"),
        ]
    },
    "temperature-nan": Bad(_cfg("temperature", "nan"), expect=("*column 'temperature':*",)),
    "temperature-inf": Bad(_cfg("temperature", "inf"), expect=("*column 'temperature':*",)),
    "concurrency-zero": Bad(_cfg("concurrency", "0"), expect=("*column 'concurrency':*",)),
    "concurrency-float": Bad(_cfg("concurrency", "2.5"), expect=("*column 'concurrency':*",)),
    "max-retries-negative": Bad(_cfg("max_retries", "-1"), expect=("*column 'max_retries':*",)),
    "gauge-poll-nan": Bad(_cfg("gauge_poll_s", "nan"), expect=("*column 'gauge_poll_s':*",)),
    "limit-negative": Bad(_cfg("limit", "-3"), expect=("*column 'limit':*",)),
    "max-tokens-zero": Bad(_cfg("max_tokens", "0"), expect=("*column 'max_tokens':*",)),
    # 8. reserved request fields
    **{
        f"request-params-{key}": Bad(
            _cfg("request_params", _quoted(json.dumps({key: 1}))),
            expect=(f"*column 'request_params':*may not set {key}*",),
        )
        for key in (
            "model",
            "messages",
            "stream",
            "stream_options",
            "n",
            "return_token_ids",
            "max_tokens",
            "max_completion_tokens",
            "temperature",
        )
    },
    "request-params-nan": Bad(
        _cfg("request_params", '"{""top_p"": NaN}"'), expect=("*column 'request_params':*finite*",)
    ),
    # 9. prompt templates
    "template-attribute": Bad(
        {"tasks.csv": "name,type,data,prompt\nvqa,docvqa,data/m.jsonl,{question.__class__}\n"},
        expect=("*tasks.csv:2: column 'prompt':*",),
    ),
    "template-index": Bad(
        {"tasks.csv": "name,type,data,prompt\nvqa,docvqa,data/m.jsonl,{question[0]}\n"},
        expect=("*tasks.csv:2: column 'prompt':*",),
    ),
    # 14. found late before: endpoint without host, missing model dir, bad baseline
    "endpoint-no-host": Bad(
        {"models.csv": "name,source,endpoint\nm,x,http://\n"},
        expect=("*models.csv:2: column 'endpoint':*host*",),
    ),
    "endpoint-port-only": Bad(
        {"models.csv": "name,source,endpoint\nm,x,http://:8000/v1\n"},
        expect=("*models.csv:2: column 'endpoint':*host*",),
    ),
    "endpoint-bad-port": Bad(
        {"models.csv": "name,source,endpoint\nm,x,http://h:70000/v1\n"},
        expect=("*models.csv:2: column 'endpoint':*port*",),
    ),
    "model-dir-missing": Bad(
        {
            "models.csv": "name,source\nm,./no-such-model\n",
            "user_config.csv": "model,task,backend,launcher\nm,vqa,hf,local\n",
        },
        expect=("*models.csv:2: column 'source':*does not exist*",),
    ),
    "builtin-unknown": Bad(
        {
            "models.csv": "name,source\nm,builtin:huge\n",
            "user_config.csv": "model,task,backend,launcher\nm,vqa,hf,local\n",
        },
        expect=("*models.csv:2: column 'source':*unknown built-in*",),
    ),
    **{
        f"baseline-{name}": Bad(
            {"base.csv": text}, args=("--vlmhb-baseline=base.csv",), expect=(f"*base.csv{where}*",)
        )
        for name, text, where in [
            ("empty", "", ":1: empty file*"),
            ("header-only", "case_id,anls\n", ":2: no case rows*"),
            ("no-case-id", "model,anls\nm,0.5\n", ":1: column 'case_id'*"),
            ("nan-cell", "case_id,anls\nm:vqa:openai,nan\n", ":2: column 'anls': *finite*"),
            (
                "inf-cell",
                "case_id,ttft_p50_ms\nm:vqa:openai,inf\n",
                ":2: column 'ttft_p50_ms': *finite*",
            ),
            ("text-cell", "case_id,anls\nm:vqa:openai,good\n", ":2: column 'anls': *number*"),
            ("garbled", "\x00\x01\x02binary\n", ":1: column 'case_id'*"),
            ("ragged", "case_id,anls\nm:vqa:openai,0.5,7\n", ":2: 3 fields*"),
            ("duplicate", "case_id,anls\nc,0.5\nc,0.6\n", ":3: column 'case_id': duplicate*"),
            ("not-utf8", "case_id,anls\n\xff\xfe,1\n", "*"),
        ]
    },
    "baseline-directory": Bad(
        args=("--vlmhb-baseline=data",), expect=("*data: not the output dir of an earlier run*",)
    ),
    "baseline-answers-reference": Bad(
        {"base-answers.csv": "case_id,sample_id,reference\nm:vqa:openai,a,{oops\n"},
        args=("--vlmhb-baseline=base-answers.csv",),
        expect=("*base-answers.csv: column 'reference': *sample 'a': not a JSON object*",),
    ),
    "baseline-answers-nan-latency": Bad(
        {"base-answers.csv": "case_id,sample_id,ttft_ms\nm:vqa:openai,a,nan\n"},
        args=("--vlmhb-baseline=base-answers.csv",),
        expect=("*base-answers.csv: column 'ttft_ms': *finite*",),
    ),
    "baseline-fifo": Bad(
        args=("--vlmhb-baseline=fifo.csv",),
        setup=_fifo("fifo.csv"),
        expect=("*fifo.csv: is not a regular file*",),
    ),
    # 18. every option given a bad value
    **{
        f"option-{name}": Bad(args=(arg,), expect=(f"*{arg.split('=')[0]}*",))
        for name, arg in [
            ("limit-zero", "--vlmhb-limit=0"),
            ("limit-text", "--vlmhb-limit=many"),
            ("limit-float", "--vlmhb-limit=1.5"),
            ("request-timeout-zero", "--vlmhb-request-timeout=0"),
            ("request-timeout-nan", "--vlmhb-request-timeout=nan"),
            ("request-timeout-inf", "--vlmhb-request-timeout=inf"),
            ("startup-timeout-negative", "--vlmhb-startup-timeout=-5"),
            ("startup-timeout-text", "--vlmhb-startup-timeout=soon"),
            ("gpus-per-worker-zero", "--vlmhb-gpus-per-worker=0"),
            ("max-score-drop-nan", "--vlmhb-max-score-drop=nan"),
            ("max-score-drop-negative", "--vlmhb-max-score-drop=-0.1"),
            ("max-latency-increase-nan", "--vlmhb-max-latency-increase=nan%"),
            ("max-latency-increase-negative", "--vlmhb-max-latency-increase=-5%"),
            ("max-latency-increase-text", "--vlmhb-max-latency-increase=lots"),
            ("significance-zero", "--vlmhb-significance=0"),
            ("significance-one", "--vlmhb-significance=1"),
            ("significance-nan", "--vlmhb-significance=nan"),
            ("significance-negative", "--vlmhb-significance=-1"),
            ("significance-text", "--vlmhb-significance=x"),
            ("config-directory", "--vlmhb-config=data"),
            ("models-directory", "--vlmhb-models=data"),
            ("tasks-directory", "--vlmhb-tasks=data"),
            ("output-is-a-file", "--vlmhb-output=models.csv"),
            ("output-under-a-file", "--vlmhb-output=models.csv/out"),
            ("cache-is-a-file", "--vlmhb-cache=models.csv"),
            ("config-empty", "--vlmhb-config="),
            ("shard-zero", "--vlmhb-shard=0/4"),
            ("shard-past-n", "--vlmhb-shard=5/4"),
            ("shard-text", "--vlmhb-shard=a/b"),
            ("launcher-unknown", "--vlmhb-launcher=bogus"),
            ("merge-no-store", "--vlmhb-merge=data"),
        ]
    },
}


def _suite(root: Path) -> None:
    (root / "data").mkdir()
    (root / "data" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "data" / "m.jsonl").write_text(
        json.dumps({"id": "a", "image": "a.png", "question": "Q?", "answers": ["x"]}) + "\n"
    )
    (root / "models.csv").write_text(GOOD_MODELS)
    (root / "tasks.csv").write_text(GOOD_TASKS)
    (root / "user_config.csv").write_text(GOOD_CONFIG)
    (root / "test_suite.py").write_text(
        "def test_sample(vlmhb_sample):\n    vlmhb_sample.check()\n"
    )
    (root / "vlmhb-results" / "results").mkdir(parents=True)
    (root / "vlmhb-results" / "results" / "samples-main.jsonl").write_text(PREVIOUS)
    (root / "vlmhb-results" / "answers.csv").write_text("previous answers\n")


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_a_usage_error_that_keeps_earlier_results(
    name: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = CASES[name]
    monkeypatch.setenv("VLMHB_TEST_SHORT_KEY", "abc1234")
    _suite(pytester.path)
    for file, text in bad.files.items():
        (pytester.path / file).write_bytes(
            text.encode("utf-8", "surrogateescape")
            if "\xff" not in text
            else text.encode("latin-1")
        )
    if bad.setup is not None:
        bad.setup(pytester.path)
    result = pytester.runpytest(
        "--vlmhb-config=user_config.csv", "-p", "no:cacheprovider", *bad.args
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines(["ERROR: *"])
    result.stderr.fnmatch_lines(list(bad.expect))
    assert "Traceback" not in result.stderr.str()
    out = pytester.path / "vlmhb-results"
    assert (out / "results" / "samples-main.jsonl").read_text() == PREVIOUS
    assert (out / "answers.csv").read_text() == "previous answers\n"
    assert sorted(p.name for p in out.iterdir()) == ["answers.csv", "results"]


def test_quoted_line_breaks_in_csv_cells_are_kept(pytester: pytest.Pytester) -> None:
    """A prompt template spanning lines (and U+2028) keeps its line breaks."""
    from pytest_vlmhb.cases import load_plan
    from pytest_vlmhb.settings import Settings

    _suite(pytester.path)
    (pytester.path / "tasks.csv").write_text(
        'name,type,data,prompt\nvqa,docvqa,data/m.jsonl,"Look.\nQ: {question}\u2028\r\nA:"\n\n',
        encoding="utf-8",
        newline="",
    )
    (pytester.path / "user_config.csv").write_text(
        'model,task,backend,request_params\nm,vqa,openai,"{""stop"": [""\\n""]}"\n'
    )
    root = pytester.path
    plan = load_plan(
        Settings(
            config=root / "user_config.csv",
            output=root / "o",
            limit=None,
            cache=root / "c",
            models=None,
            tasks=None,
            startup_timeout=1,
            request_timeout=1,
        )
    )
    (case,) = plan.cases
    assert plan.samples[case.id][0].prompt == "Look.\nQ: Q?\u2028\r\nA:"
    assert case.request_params == {"stop": ["\n"]}


def test_error_line_of_a_multiline_row_is_where_it_starts(pytester: pytest.Pytester) -> None:
    _suite(pytester.path)
    (pytester.path / "user_config.csv").write_text(
        'model,task,backend,request_params\nm,vqa,openai,"{""a"":\n1}"\nm,vqa,openai,"x\n"\n'
    )
    result = pytester.runpytest("--vlmhb-config=user_config.csv")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*user_config.csv:4: column 'request_params':*"])


def test_pytest_help_works_with_the_plugin_installed(tmp_path: Path) -> None:
    """argparse reads '%' in help texts as a format code: help must still render."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--vlmhb-max-latency-increase" in proc.stdout
    assert "10%" in proc.stdout


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    """Inactive, the plugin costs pytest only its own small modules (timed in
    benchmarks/perf/import_cost.py); it changes no environment variable."""
    code = (
        "import os, sys; before = dict(os.environ); import pytest; mods = set(sys.modules);"
        "import pytest_vlmhb.plugin; new = set(sys.modules) - mods;"
        "print(sorted(m for m in new if not m.startswith('pytest_vlmhb')));"
        "print(sorted(new)); print(dict(os.environ) == before)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    foreign, ours, same_env = proc.stdout.splitlines()
    assert foreign == "[]", foreign
    heavy = {
        "pytest_vlmhb.config",
        "pytest_vlmhb.cases",
        "pytest_vlmhb.runner",
        "pytest_vlmhb.client",
        "pytest_vlmhb.report",
        "pytest_vlmhb.results",
        "pytest_vlmhb.plots",
        "pytest_vlmhb.thumbs",
        "pytest_vlmhb.htmlreport",
        "pandas",
        "matplotlib",
    }
    assert not heavy & set(json.loads(ours.replace("'", '"')))
    assert same_env == "True"
