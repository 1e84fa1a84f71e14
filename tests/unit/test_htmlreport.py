"""report.html's builder: the data island's escaping, masking, outcomes, thumbnails
and placeholders, the leaderboard, report.md's tables, the size at 10,000 rows,
and the pytest-html extras."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image

from pytest_vlmhb import redact as redact_module
from pytest_vlmhb.htmlreport import extras as extras_module
from pytest_vlmhb.htmlreport.build import build_html
from pytest_vlmhb.htmlreport.data import CaseMeta, island
from pytest_vlmhb.htmlreport.leaderboard import leaderboard
from pytest_vlmhb.htmlreport.markdown import to_html
from pytest_vlmhb.htmlreport.outcome import BAD_THRESHOLD, classify, lower_is_better
from pytest_vlmhb.results import ANSWER_TEXT, GATE_COLUMNS, GATE_TEXT, METRIC_TEXT, Results, frame
from pytest_vlmhb.tasks.manifest import Sample
from pytest_vlmhb.thumbs import THUMB_SIDE, Page, SampleThumbs, write_thumbs
from tests.helpers import make_case, make_pdf

CASE = CaseMeta("m:vqa:hf", "m", "hf", "local", "vqa", "docvqa", ("anls", "exact_match"))
OTHER = CaseMeta("m:vqa:vllm", "m", "vllm", "local", "vqa", "docvqa", ("anls", "exact_match"))
_ISLAND = re.compile(r'<script type="application/json" id="vlmhb-data">(.*?)</script>', re.S)


@pytest.fixture(autouse=True)
def _no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redact_module, "_secrets", [])


def _row(case: CaseMeta, sid: str, **cells: Any) -> dict[str, str]:
    row = {
        "case_id": case.id,
        "model": case.model,
        "task": case.task,
        "backend": case.backend,
        "launcher": case.launcher,
        "sample_id": sid,
        "category": "",
        "prompt": f"What is {sid}?",
        "answer": "a",
        "raw_answer": "a",
        "reference": json.dumps({"answers": ["a"]}),
        "anls": "1",
        "exact_match": "1",
        "ttft_ms": "10.5",
        "e2e_ms": "20.25",
        "error": "",
    }
    row.update({k: str(v) for k, v in cells.items()})
    return row


def _results(answers: list[dict[str, str]], metrics: list[dict[str, str]] = ()) -> Results:  # type: ignore[assignment]
    return Results(
        answers=frame(answers, ANSWER_TEXT),
        metrics=frame(list(metrics), METRIC_TEXT, ["case_id", "model", "backend", "launcher"]),
        gates=frame([], GATE_TEXT, GATE_COLUMNS),
    )


def _island(page: str) -> dict[str, Any]:
    found = _ISLAND.search(page)
    assert found is not None
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def test_answer_text_cannot_close_the_data_island() -> None:
    hostile = "</script><script>window.pwned = 1</script><!-- </SCRIPT >"
    page = build_html(
        _results([_row(CASE, "s1", answer=hostile, raw_answer=hostile, prompt="<b>" + hostile)]),
        [CASE],
        {},
        "",
    )
    # only the island's and the page script's own end tags
    assert len(re.findall(r"</script", page, re.I)) == 2
    assert "<!--" not in page
    data = _island(page)
    assert data["rows"][0][2] == hostile
    assert data["samples"][0][2] == "<b>" + hostile


def test_secrets_are_masked_everywhere_in_the_page() -> None:
    secret = "sk-vlmhb-test-0123456789"
    redact_module.register_value(secret)
    case = CaseMeta(f"m:{secret}", "m", "hf", "local", "vqa", "docvqa", ("anls",))
    row = _row(
        case,
        "s1",
        answer=f"key {secret}",
        raw_answer=f"<think>{secret}</think>key",
        prompt=f"use {secret}",
        reference=json.dumps({"answers": [secret]}),
        error=f"401 invalid key {secret!r}",
    )
    metrics = [_metrics_row(case, anls=0.5)]
    gates = f"## Gates\n\n| x |\n|---|\n| {secret} |\n"
    page = build_html(_results([row], metrics), [case], {}, gates)
    assert secret not in page
    assert json.dumps(secret)[1:-1] not in page
    assert page.count("***") >= 6


@pytest.mark.parametrize(
    ("metrics", "scores", "error", "expected"),
    [
        (("anls",), {"anls": 0.4999}, None, "bad"),
        (("anls",), {"anls": BAD_THRESHOLD}, None, "good"),
        (("anls", "exact_match"), {"anls": 0.9, "exact_match": 0.0}, None, "good"),  # primary
        (("exact_match", "anls"), {"anls": 0.9, "exact_match": 0.0}, None, "bad"),
        (("cer",), {"cer": 0.51}, None, "bad"),  # lower is better
        (("cer",), {"cer": 0.2}, None, "good"),
        (("wer",), {"wer": 0.5}, None, "good"),
        (("anls",), {"anls": None}, None, "bad"),
        (("anls",), {"anls": 1.0}, "HTTP 500", "error"),
        ((), {}, None, "good"),  # a user's own test: no metric
        ((), {}, "boom", "error"),
    ],
)
def test_outcome_classification(
    metrics: tuple[str, ...], scores: dict[str, float | None], error: str | None, expected: str
) -> None:
    assert classify(scores, error, metrics) == expected


def test_lower_is_better_comes_from_the_metric_class() -> None:
    assert lower_is_better("cer") and lower_is_better("wer")
    assert not lower_is_better("anls") and not lower_is_better("no-such-metric")


def test_island_rows_share_samples_and_carry_outcomes() -> None:
    answers = [
        _row(CASE, "s1"),
        _row(CASE, "s2", answer="b", raw_answer="<think>x</think> b", anls="0.2", exact_match="0"),
        _row(CASE, "s3", answer="", raw_answer="", anls="0", error="HTTP 500: -boom"),
        _row(OTHER, "s1", anls="1"),
    ]
    pages = (Page("thumbs/x.t.jpg", "thumbs/x.v.png"),)
    thumbs = {(CASE.id, "s1"): SampleThumbs(pages), (OTHER.id, "s1"): SampleThumbs(pages)}
    data = island(frame(answers, ANSWER_TEXT), [CASE, OTHER], thumbs)
    assert [c["id"] for c in data["cases"]] == [CASE.id, OTHER.id]
    assert data["cases"][0]["primary"] == "anls" and data["cases"][0]["lower"] is False
    rows = data["rows"]
    assert [r[-1] for r in rows] == ["g", "b", "e", "g"]
    assert rows[0][1] == rows[3][1]  # the two cases' s1 is one sample entry
    assert len(data["samples"]) == 3
    assert rows[0][3] is None and rows[1][3] == "<think>x</think> b"  # raw only when it differs
    assert rows[1][4] == [0.2, 0.0] and rows[0][5:7] == [10.5, 20.2]
    assert rows[2][7] == "HTTP 500: -boom"
    assert data["samples"][0][4] == [["thumbs/x.t.jpg", "thumbs/x.v.png"]]
    assert isinstance(data["samples"][1][4], str)  # no thumbnail known: a reason


def _sample(tmp_path: Path, sid: str, **fields: Any) -> Sample:
    manifest = tmp_path / "m.jsonl"
    manifest.touch()
    image = fields.pop("image", tmp_path / "missing.png")
    return Sample(
        id=sid, image=image, prompt="p", reference={"answers": ["a"]}, manifest=manifest, **fields
    )


def test_thumbnails_and_placeholders_for_broken_files(tmp_path: Path) -> None:
    Image.new("RGB", (600, 900), (10, 200, 30)).save(tmp_path / "page.png")
    Image.new("RGB", (40, 30), (0, 0, 255)).save(tmp_path / "second.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    (tmp_path / "empty.png").write_bytes(b"")
    # a PNG whose header reads (it is sent as it is) but whose pixels do not decode
    noise = Image.frombytes("RGB", (60, 60), bytes(range(256)) * 42 + bytes(48))
    buf = io.BytesIO()
    noise.save(buf, "PNG")
    pixels = bytearray(buf.getvalue())
    start = pixels.index(b"IDAT") + 20
    pixels[start : start + 100] = bytes(b ^ 0x5A for b in pixels[start : start + 100])
    (tmp_path / "pixels.png").write_bytes(bytes(pixels))
    pdf = make_pdf(tmp_path / "doc.pdf", 3)
    case = make_case(("anls",), task_type="docvqa")
    samples = {
        "ok": _sample(tmp_path, "ok", image=tmp_path / "page.png"),
        "two": _sample(
            tmp_path,
            "two",
            image=tmp_path / "page.png",
            images=(tmp_path / "page.png", tmp_path / "second.png"),
        ),
        "pdf": _sample(tmp_path, "pdf", image=pdf, document=pdf, pages=(1, 3)),
        "corrupt": _sample(tmp_path, "corrupt", image=tmp_path / "corrupt.png"),
        "empty": _sample(tmp_path, "empty", image=tmp_path / "empty.png"),
        "pixels": _sample(tmp_path, "pixels", image=tmp_path / "pixels.png"),
        "missing": _sample(tmp_path, "missing"),
        "refused": _sample(tmp_path, "refused", error="m.jsonl:7: image path escapes"),
    }
    out = tmp_path / "out"
    thumbs = write_thumbs(out, [(case, s) for s in samples.values()], tmp_path / "cache")
    got = {sid: thumbs[case.id, sid] for sid in samples}
    assert [len(got[s].pages) for s in ("ok", "two", "pdf")] == [1, 2, 2]
    assert got["ok"].pages[0] == got["two"].pages[0]  # one page, one pair of files
    for page in (p for s in ("ok", "two", "pdf") for p in got[s].pages):
        with Image.open(out / page.thumb) as small:
            assert max(small.size) <= THUMB_SIDE and small.format == "JPEG"
        with Image.open(out / page.view) as view:
            assert view.size[0] > 0
    with Image.open(out / got["ok"].pages[0].view) as view:
        assert view.size == (600, 900)  # the page as the model got it
    assert "corrupt.png" in str(got["corrupt"].problem)
    assert "page 1 does not decode" in str(got["pixels"].problem)
    assert got["empty"].problem and got["missing"].problem
    assert got["refused"].problem == "m.jsonl:7: image path escapes"
    # the page shows a reason, never an exception
    answers = [_row(CASE, sid) for sid in samples]
    page = build_html(
        _results(answers), [CASE], {(CASE.id, s): t for (_, s), t in thumbs.items()}, ""
    )
    shown = {entry[0]: entry[4] for entry in _island(page)["samples"]}
    assert "corrupt.png" in shown["corrupt"] and isinstance(shown["pdf"], list)
    # stale files of pages no sample shows go; a second write writes nothing new
    stale = out / "thumbs" / f"{'0' * 20}.t.jpg"
    stale.write_bytes(b"x")
    before = {p.name: p.stat().st_mtime_ns for p in (out / "thumbs").iterdir() if p != stale}
    write_thumbs(out, [(case, s) for s in samples.values()], tmp_path / "cache")
    assert not stale.exists()
    assert {p.name: p.stat().st_mtime_ns for p in (out / "thumbs").iterdir()} == before


def test_report_md_tables_become_escaped_html() -> None:
    md = (
        "# VLMHyperBench report\n\nGenerated by `x` <now>.\n\n## Gates\n\n"
        "| case_id | detail |\n|---|---|\n| a\\|b | <img src=x onerror=alert(1)> |\n\n"
        "- one\n- two\n\n![score](plots/score-x.png)\n\n![bad](../etc/passwd)\n"
    )
    html = to_html(md)
    assert "VLMHyperBench report" not in html  # the page has its own title
    assert "<h2>Gates</h2>" in html and "<code>x</code> &lt;now&gt;" in html
    assert "<td>a|b</td>" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<ul><li>one</li><li>two</li></ul>" in html
    assert '<img class="plot" src="plots/score-x.png" alt="score">' in html
    assert 'src="../etc/passwd"' not in html


def _metrics_row(case: CaseMeta, **cells: Any) -> dict[str, str]:
    row = {
        "case_id": case.id,
        "model": case.model,
        "task": case.task,
        "backend": case.backend,
        "launcher": case.launcher,
    }
    return row | {k: str(v) for k, v in cells.items()}


def test_leaderboard_cells_intervals_and_backend_ratios() -> None:
    docker = CaseMeta("m:vqa:vllm-docker", "m", "vllm", "docker", "vqa", "docvqa", ("anls",))
    rows = [
        _metrics_row(CASE, anls=0.5, ttft_p50_ms=100, requests_per_s=4),
        _metrics_row(
            OTHER, anls=0.6, anls_ci_low=0.55, anls_ci_high=0.65, ttft_p50_ms=50, requests_per_s=10
        ),
        _metrics_row(docker, anls=0.61, ttft_p50_ms=40, requests_per_s=12),
    ]
    board = leaderboard(frame(rows, METRIC_TEXT), [CASE, OTHER, docker])
    assert board.tasks == ["vqa"]
    labels = [label for label, _ in board.rows]
    assert labels == ["m@hf@local", "m@vllm@local", "m@vllm@docker"]  # two launchers ran
    cell = board.rows[1][1]["vqa"]
    assert (cell.metric, cell.score, cell.ci_low, cell.ci_high) == ("anls", 0.6, 0.55, 0.65)
    assert board.rows[0][1]["vqa"].ci_low is None
    pairs = {(r.first, r.second): r for r in board.ratios}
    assert len(pairs) == 2  # hf vs each vllm case; vllm vs vllm is no backend comparison
    ratio = pairs["hf (m:vqa:hf)", "vllm (m:vqa:vllm)"]
    assert (ratio.rps_first, ratio.rps_second, ratio.rps_ratio) == (4, 10, 0.4)
    assert (ratio.ttft_first, ratio.ttft_second, ratio.ttft_ratio) == (100, 50, 2.0)
    page = build_html(_results([_row(CASE, "s1")], rows), [CASE, OTHER, docker], {}, "")
    assert "[0.55, 0.65] 95%" in page and "Backends compared" in page
    # one launcher, and two cases that would share a cell: told apart by case id
    again = CaseMeta("m:vqa:hf#2", "m", "hf", "local", "vqa", "docvqa", ("anls",))
    same = leaderboard(
        frame([_metrics_row(CASE, anls=1), _metrics_row(again, anls=0)], METRIC_TEXT),
        [CASE, again],
    )
    assert [label for label, _ in same.rows] == ["m@hf [m:vqa:hf]", "m@hf [m:vqa:hf#2]"]


#: The documented bound of report.html at 10,000 sample rows (README, "Outputs").
MAX_BYTES_10K = 5_000_000


def test_ten_thousand_rows_stay_under_the_documented_size() -> None:
    """Prompts of ~100 characters, short answers, one page each: about 3.2 MB."""
    words = ["$1,234.56", "March 3, 2021", "ACME Corporation Ltd.", "42", "not stated"]
    answers, thumbs = [], {}
    for j in range(10_000):
        sid = f"docvqa-{j:06d}"
        answer = words[j % len(words)]
        answers.append(
            _row(
                CASE,
                sid,
                prompt=f"What is the total amount due on invoice {j}?\n"
                "Answer the question using a single word or phrase.",
                answer=answer,
                raw_answer=answer,
                reference=json.dumps({"answers": [answer, answer.upper()]}),
                category=["table", "form", "text"][j % 3],
                anls=round((j % 97) / 97, 4),
                ttft_ms=round(20 + j % 900 + 0.123, 3),
                e2e_ms=round(100 + j % 2900 + 0.456, 3),
            )
        )
        digest = hashlib.sha256(sid.encode()).hexdigest()[:20]
        page = Page(f"thumbs/{digest}.t.jpg", f"thumbs/{digest}.v.png")
        thumbs[CASE.id, sid] = SampleThumbs((page,))
    page = build_html(_results(answers), [CASE], thumbs, "")
    size = len(page.encode())
    assert len(_island(page)["rows"]) == 10_000
    assert size < MAX_BYTES_10K, size
    text = sum(len(a["prompt"]) + len(a["answer"]) + len(a["reference"]) for a in answers)
    assert (size - text) / 10_000 < 200  # fixed cost of a row, beyond its own text


def test_pytest_html_extras_carry_thumbnail_answer_and_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.new("RGB", (500, 700), (200, 200, 200)).save(tmp_path / "p.png")
    case = make_case(("anls",), task_type="docvqa")
    sample = _sample(tmp_path, "s1", image=tmp_path / "p.png")
    plan = SimpleNamespace(
        sample=lambda c, s: sample if (c, s) == (case.id, "s1") else {}[s],
        case=lambda c: case,
    )
    record: Any = {
        "case_id": case.id,
        "sample_id": "s1",
        "answer": "<b>a</b>",
        "raw_answer": "<think>t</think><b>a</b>",
        "reference": {"answers": ["a"]},
        "scores": {"anls": 0.0},
        "error": None,
    }
    fake = SimpleNamespace(
        jpg=lambda content, name: {"format_type": "image", "content": content, "name": name},
        html=lambda content: {"format_type": "html", "content": content},
    )
    monkeypatch.setattr(extras_module, "pytest_html_extras", lambda: fake)
    report = SimpleNamespace(extras=[{"format_type": "text", "content": "theirs"}])
    extras_module.add_html_extras(report, record, plan, tmp_path / "cache")  # type: ignore[arg-type]
    theirs, image, summary = report.extras
    assert theirs["content"] == "theirs"
    with Image.open(io.BytesIO(base64.b64decode(image["content"]))) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) == THUMB_SIDE
    assert "&lt;b&gt;a&lt;/b&gt;" in summary["content"] and "<b>a</b>" not in summary["content"]
    assert "raw answer" in summary["content"] and "answers" in summary["content"]
    # a sample the plan does not know (a user test's call): no image, still the text
    record["sample_id"] = "elsewhere"
    report = SimpleNamespace()
    extras_module.add_html_extras(report, record, plan, tmp_path / "cache")  # type: ignore[arg-type]
    assert [e["format_type"] for e in report.extras] == ["html"]
    # without pytest-html: nothing
    monkeypatch.setattr(extras_module, "pytest_html_extras", lambda: None)
    report = SimpleNamespace()
    extras_module.add_html_extras(report, record, plan, tmp_path / "cache")  # type: ignore[arg-type]
    assert not hasattr(report, "extras")
