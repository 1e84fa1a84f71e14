"""Multi-page documents and image lists through the whole run, against the
scripted stub: what the server receives (images in page order, at the dpi and
caps asked for), what answers.csv and metrics.csv record, and bad documents
failing only their own samples."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import make_pdf, read_csv, run, setup_suite
from tests.stub_openai import StubScript, running_stub

#: The pages' size in points: at 144 dpi 600x800 px, at 72 dpi 300x400.
PAGE_PT = (300.0, 400.0)


def _images(body: dict[str, object]) -> list[Image.Image]:
    """The images of a request, decoded, in order."""
    (turn,) = body["messages"]  # type: ignore[misc]
    out = []
    for part in turn["content"]:
        if part["type"] == "image_url":
            data = part["image_url"]["url"].split(",", 1)[1]
            out.append(Image.open(io.BytesIO(base64.b64decode(data))))
    return out


def _text_positions(body: dict[str, object]) -> list[str]:
    (turn,) = body["messages"]  # type: ignore[misc]
    return [part["type"] for part in turn["content"]]


def _red(image: Image.Image) -> int:
    """The page's mark: the red of its top band (page * 20)."""
    return int(image.convert("RGB").getpixel((image.width // 2, 2))[0])


def _lines(data: Path) -> None:
    make_pdf(data / "four.pdf", 4, PAGE_PT)
    make_pdf(data / "two.pdf", 2, PAGE_PT)
    (data / "broken.pdf").write_bytes(b"%PDF-1.7\nthis is not a pdf")
    (data / "empty.pdf").write_bytes(b"")
    Image.new("RGB", (120, 60), "white").save(data / "a.png")
    Image.new("RGB", (60, 120), "white").save(data / "b.png")
    lines = [
        {"id": "doc4", "document": "four.pdf"},
        {"id": "doc2", "document": "two.pdf"},
        {"id": "pick", "document": "four.pdf", "pages": "4,2"},
        {"id": "imgs", "images": ["a.png", "b.png"]},
        {"id": "broken", "document": "broken.pdf"},
        {"id": "empty", "document": "empty.pdf"},
        {"id": "outside", "document": "two.pdf", "pages": [3]},
    ]
    (data / "m.jsonl").write_text(
        "".join(json.dumps({**line, "question": "Q?", "answers": ["a"]}) + "\n" for line in lines)
    )


def test_pages_reach_the_server_in_order_at_the_dpi_and_caps(pytester: pytest.Pytester) -> None:
    data = pytester.mkdir("data")
    _lines(data)
    script = StubScript(default_answer="a")
    with running_stub(script) as url:
        setup_suite(
            pytester,
            "id,model,task,backend,concurrency,dpi,max_pages,max_image_side,image_format\n"
            "full,remote,vqa,openai,4,,,,\n"
            "capped,remote,vqa,openai,4,72,3,200,jpeg:80\n",
            models=f"name,source,endpoint\nremote,x,{url}\n",
            tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
        )
        result = run(pytester, "-p", "no:randomly")
    # the three bad documents fail alone, in both cases
    result.assert_outcomes(passed=8, failed=6)
    answers = {
        (r["case_id"], r["sample_id"]): r
        for r in read_csv(pytester.path / "vlmhb-results" / "answers.csv")
    }
    for case in ("full", "capped"):
        assert (
            "cannot" in answers[(case, "broken")]["error"]
            or "PDF" in answers[(case, "broken")]["error"]
        )
        assert "m.jsonl:7" in answers[(case, "outside")]["error"]
        assert "outside the document" in answers[(case, "outside")]["error"]
    full = [b for b in script.received if len(_images(b)) and _images(b)[0].format == "PNG"]
    by_count = {len(_images(b)): b for b in full}
    four = _images(by_count[4])
    assert [_red(page) for page in four] == [20, 40, 60, 80]  # page order
    assert {page.size for page in four} == {(600, 800)}  # 144 dpi
    assert _text_positions(by_count[4]) == ["image_url"] * 4 + ["text"]  # images first
    capped = [b for b in script.received if b not in full]
    sizes = {len(_images(b)) for b in capped}
    assert 4 not in sizes and 3 in sizes  # max_pages 3
    for body in capped:
        for page in _images(body):
            assert page.format == "JPEG" and max(page.size) <= 200  # caps, jpeg
    row = answers[("full", "doc4")]
    assert (row["n_images"], row["pages_dropped"]) == ("4", "0")
    assert int(row["image_bytes"]) > 0 and float(row["prep_ms"]) >= 0
    capped_row = answers[("capped", "doc4")]
    assert (capped_row["n_images"], capped_row["pages_dropped"]) == ("3", "1")
    assert int(capped_row["image_bytes"]) < int(row["image_bytes"])
    assert answers[("full", "pick")]["n_images"] == "2"
    metrics = {m["case_id"]: m for m in read_csv(pytester.path / "vlmhb-results" / "metrics.csv")}
    assert float(metrics["full"]["pages_per_s"]) > 0
    assert metrics["full"]["errors"] == "3"


def test_image_placeholders_place_the_images(pytester: pytest.Pytester) -> None:
    data = pytester.mkdir("data")
    _lines(data)
    (data / "m.jsonl").write_text(
        json.dumps({"id": "d", "document": "two.pdf", "question": "Q?", "answers": ["a"]}) + "\n"
    )
    script = StubScript(default_answer="a")
    with running_stub(script) as url:
        setup_suite(
            pytester,
            "model,task,backend\nremote,vqa,openai\n",
            models=f"name,source,endpoint\nremote,x,{url}\n",
            tasks="name,type,data,prompt\n"
            'vqa,docvqa,data/m.jsonl,"First <image> then <image> {question}"\n',
        )
        result = run(pytester)
    result.assert_outcomes(passed=1)
    (body,) = script.received
    assert _text_positions(body) == ["text", "image_url", "text", "image_url", "text"]


def test_placeholders_that_do_not_match_the_pages_are_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    data = pytester.mkdir("data")
    _lines(data)
    (data / "m.jsonl").write_text(
        json.dumps({"id": "d", "document": "four.pdf", "question": "Q?", "answers": ["a"]}) + "\n"
    )
    setup_suite(
        pytester,
        "model,task,backend\nremote,vqa,openai\n",
        models="name,source,endpoint\nremote,x,http://127.0.0.1:9/v1\n",
        tasks='name,type,data,prompt\nvqa,docvqa,data/m.jsonl,"<image> {question}"\n',
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*m.jsonl:1: column 'prompt':*1 image(s)*sends 4*"])


@pytest.mark.parametrize(
    ("line", "expect"),
    [
        ({"document": "four.pdf", "pages": "3-1"}, "*m.jsonl:1: column 'pages':*backwards*"),
        ({"document": "four.pdf", "pages": [0]}, "*m.jsonl:1: column 'pages':*"),
        ({"image": "a.png", "pages": "1"}, "*m.jsonl:1:*pages selects pages of a document*"),
        ({"image": "a.png", "document": "four.pdf"}, "*m.jsonl:1:*exactly one of image*"),
        ({"images": []}, "*m.jsonl:1: column 'images':*"),
    ],
)
def test_a_page_selection_that_can_never_be_valid_is_a_usage_error(
    pytester: pytest.Pytester, line: dict[str, object], expect: str
) -> None:
    data = pytester.mkdir("data")
    _lines(data)
    (data / "m.jsonl").write_text(
        json.dumps({"id": "d", **line, "question": "Q?", "answers": ["a"]}) + "\n"
    )
    setup_suite(
        pytester,
        "model,task,backend\nremote,vqa,openai\n",
        models="name,source,endpoint\nremote,x,http://127.0.0.1:9/v1\n",
        tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expect])


def test_resume_never_reuses_an_answer_made_from_other_pixels(pytester: pytest.Pytester) -> None:
    data = pytester.mkdir("data")
    make_pdf(data / "four.pdf", 4, PAGE_PT)
    (data / "m.jsonl").write_text(
        json.dumps({"id": "d", "document": "four.pdf", "question": "Q?", "answers": ["a"]}) + "\n"
    )
    script = StubScript(default_answer="a")
    with running_stub(script) as url:

        def suite(dpi: str) -> None:
            setup_suite(
                pytester,
                f"model,task,backend,dpi\nremote,vqa,openai,{dpi}\n",
                models=f"name,source,endpoint\nremote,x,{url}\n",
                tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
            )

        suite("144")
        run(pytester).assert_outcomes(passed=1)
        run(pytester, "--vlmhb-resume").assert_outcomes(passed=1)
        assert len(script.received) == 1  # reused: same pixels
        suite("100")
        run(pytester, "--vlmhb-resume").assert_outcomes(passed=1)
        assert len(script.received) == 2  # another dpi: asked again
        make_pdf(data / "four.pdf", 3, PAGE_PT)  # the document changed
        run(pytester, "--vlmhb-resume").assert_outcomes(passed=1)
        assert len(script.received) == 3
