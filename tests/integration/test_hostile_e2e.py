"""Hostile input end to end: one run, one misbehaviour per sample, nothing else lost.

A scripted server on loopback answers each sample in its own hostile way
(chosen by the sample's question); the manifest also names files that must
never be read (a symlink out of the folder, a FIFO, an oversized file). The
run must exit 1 (failed items, not a crash), every sample must be in
answers.csv and the store, each bad one with an error naming what was wrong
and each good one scored, and spreadsheet formulas must be escaped in the CSV
but kept raw in the store.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from pytest_vlmhb.csvsafe import read_csv_dicts
from tests.helpers import run, setup_suite
from tests.stub_openai import serve_app

SECRET = "sk-hostile-0123456789abcdef"
Send = Callable[[bytes], Awaitable[None]]


def _chunk(content: str | None = None, **extra: Any) -> bytes:
    delta = {} if content is None else {"content": content}
    return (
        b"data: "
        + json.dumps({"choices": [{"index": 0, "delta": delta, **extra}]}).encode()
        + b"\n\n"
    )


def _usage(completion: Any = 2, prompt: Any = 5) -> bytes:
    return (
        b"data: "
        + json.dumps(
            {"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}
        ).encode()
        + b"\n\n"
    )


DONE = b"data: [DONE]\n\n"


def _good(answer: str) -> list[bytes]:
    return [_chunk(answer[:1]), _chunk(answer[1:]), _chunk(finish_reason="stop"), _usage(), DONE]


#: question -> (SSE body lines, or a JSON reply), expected error fragment (None: scored).
BEHAVIOURS: dict[str, tuple[list[bytes] | dict[str, Any], str | None]] = {
    "good": (_good("ok"), None),
    "formula": (_good('=HYPERLINK("http://127.0.0.1/x","y")'), None),
    "plus": (_good("+1 555"), None),
    "at": (_good("@SUM(A1)"), None),
    "tab": (_good("\tindent"), None),
    "usage-string": ([_chunk("a"), _usage(completion="12"), DONE], "completion_tokens"),
    "usage-bool": ([_chunk("a"), _usage(completion=True), DONE], "completion_tokens"),
    "usage-list": ([_chunk("a"), _usage(completion=[1]), DONE], "completion_tokens"),
    "usage-negative": ([_chunk("a"), _usage(completion=-4), DONE], "completion_tokens"),
    "usage-missing": ([_chunk("a"), DONE], "usage"),
    "two-choices": (
        [
            _chunk("a"),
            b'data: {"choices": [{"index": 1, "delta": {"content": "b"}}]}\n\n',
            _usage(),
            DONE,
        ],
        "choice",
    ),
    "not-json": ([_chunk("a"), b"data: {not json\n\n", _usage(), DONE], "malformed"),
    "json-array": ([b"data: [1, 2]\n\n", _usage(), DONE], "malformed"),
    "delta-string": (
        [b'data: {"choices": [{"index": 0, "delta": "x"}]}\n\n', _usage(), DONE],
        "malformed",
    ),
    "content-number": (
        [b'data: {"choices": [{"index": 0, "delta": {"content": 5}}]}\n\n', _usage(), DONE],
        "malformed",
    ),
    "error-midstream": (
        [_chunk("partial"), b'data: {"error": {"message": "engine died"}}\n\n'],
        "engine died",
    ),
    "empty-data-after": (
        [_chunk("o"), _chunk("k"), _usage(), b"data:\n\n", b"data: \n\n", DONE],
        None,
    ),
    "nonstream": (
        {
            "id": "x",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        },
        None,
    ),
    "secret-echo": ([_chunk("key " + SECRET), _usage(), DONE], None),
}
#: manifest rows naming files that must not be read: image -> expected error fragment.
BAD_FILES = {"link-out": "escapes", "fifo": "FIFO", "big": "64 MiB"}


def _app() -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        text = "".join(
            p.get("text", "") for p in body["messages"][-1]["content"] if p.get("type") == "text"
        )
        script, _ = BEHAVIOURS[text.split("\n")[0]]
        if isinstance(script, dict):
            return web.json_response(script)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for line in script:
            await resp.write(line)
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def hostile_server() -> AbstractContextManager[str]:
    return serve_app(_app())


def _manifest(root: Path) -> None:
    from PIL import Image

    data = root / "data"
    data.mkdir()
    Image.new("L", (40, 30), 255).save(data / "p.png")
    outside = root / "outside.png"
    Image.new("L", (40, 30), 0).save(outside)
    os.symlink(outside, data / "link-out.png")
    os.mkfifo(data / "fifo.png")
    with (data / "big.png").open("wb") as f:
        f.truncate(64 * 2**20 + 1)  # sparse: no real disk use
    lines = [
        {
            "id": f"=id-{q}" if q == "formula" else q,
            "image": "p.png",
            "question": q,
            "answers": ["ok"],
        }
        for q in BEHAVIOURS
    ]
    lines += [
        {"id": name, "image": f"{name}.png", "question": "good", "answers": ["ok"]}
        for name in BAD_FILES
    ]
    (data / "m.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


@pytest.mark.timeout(300)
def test_hostile_server_and_files_fail_only_their_samples(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLMHB_HOSTILE_KEY", SECRET)
    _manifest(pytester.path)
    with hostile_server() as url:
        setup_suite(
            pytester,
            "model,task,backend,concurrency,max_retries\nm,vqa,openai,4,0\n",
            models=f"name,source,endpoint,api_key_env\nm,x,{url},VLMHB_HOSTILE_KEY\n",
            tasks="name,type,data,prompt\nvqa,docvqa,data/m.jsonl,{question}\n",
        )
        result = run(pytester, "--junitxml=junit.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()[-3000:]
    assert "Traceback" not in result.stdout.str() and "INTERNALERROR" not in result.stdout.str()
    out = pytester.path / "vlmhb-results"
    rows = {r["sample_id"]: r for r in read_csv_dicts(out / "answers.csv")}
    expected_ids = {("=id-formula" if q == "formula" else q) for q in BEHAVIOURS} | set(BAD_FILES)
    assert set(rows) == expected_ids  # nothing lost
    for question, (_, error) in BEHAVIOURS.items():
        row = rows["=id-formula" if question == "formula" else question]
        if error is None:
            assert row["error"] == "", (question, row["error"])
        else:
            assert error in row["error"], (question, row["error"])
            assert "object has no attribute" not in row["error"]
            assert "Traceback" not in row["error"]
    for name, error in BAD_FILES.items():
        assert error in rows[name]["error"], (name, rows[name]["error"])
    assert rows["=id-formula"]["answer"].startswith("=HYPERLINK")
    assert rows["nonstream"]["answer"] == "ok" and rows["nonstream"]["anls"] == "1.0"
    assert rows["empty-data-after"]["answer"] == "ok"
    assert rows["error-midstream"]["answer"] == "partial"  # what arrived is kept
    # The raw CSV escapes formulas; the store keeps the raw values.
    raw = (out / "answers.csv").read_text()
    for formula in ("'=HYPERLINK(", "'+1 555", "'@SUM(A1)", "'\tindent", "'=id-formula"):
        assert formula in raw
    stored = [
        json.loads(line)
        for line in (out / "results" / "samples-main.jsonl").read_text().splitlines()
        if '"key"' in line
    ]
    assert len(stored) == len(expected_ids)
    assert any(r["answer"] == '=HYPERLINK("http://127.0.0.1/x","y")' for r in stored)
    # The key the server echoed is masked everywhere.
    for path in [
        out / "answers.csv",
        out / "report.md",
        out / "metrics.csv",
        out / "results" / "samples-main.jsonl",
        pytester.path / "junit.xml",
    ]:
        assert SECRET not in path.read_text(), path
    assert rows["secret-echo"]["answer"] == "key ***"
    (metrics,) = read_csv_dicts(out / "metrics.csv")
    errors = sum(e is not None for _, e in BEHAVIOURS.values()) + len(BAD_FILES)
    assert (int(metrics["n"]), int(metrics["errors"])) == (len(expected_ids), errors)
    assert float(metrics["requests_per_s"]) > 0 and float(metrics["output_tokens_per_s"]) >= 0
