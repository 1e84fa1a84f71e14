"""Bad-image matrix against the real HF server: odd colour modes are converted,
unreadable images fail their own item only."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from tests.helpers import read_csv, run, setup_suite

GOOD = ("gray", "palette", "rgba", "cmyk", "gray16")
BAD = ("missing", "empty", "corrupt", "bomb")


@pytest.mark.server
def test_bad_image_matrix(pytester: pytest.Pytester) -> None:
    data = pytester.mkdir("data")
    base = Image.new("RGB", (64, 48), (250, 250, 250))
    base.convert("L").save(data / "gray.png")
    base.convert("P").save(data / "palette.png")
    base.convert("RGBA").save(data / "rgba.png")
    base.convert("CMYK").save(data / "cmyk.jpg")
    Image.new("I;16", (64, 48), 300).save(data / "gray16.png")
    (data / "empty.png").write_bytes(b"")
    (data / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    # Tiny on disk, 40000 x 40000 pixels once decoded: past Pillow's bomb limit.
    Image.new("1", (40000, 40000)).save(data / "bomb.png")
    files = {
        "gray": "gray.png",
        "palette": "palette.png",
        "rgba": "rgba.png",
        "cmyk": "cmyk.jpg",
        "gray16": "gray16.png",
        "missing": "nope.png",
        "empty": "empty.png",
        "corrupt": "corrupt.png",
        "bomb": "bomb.png",
    }
    (data / "m.jsonl").write_text(
        "".join(
            json.dumps({"id": name, "image": path, "question": "What is it?", "answers": ["x"]})
            + "\n"
            for name, path in files.items()
        )
    )
    setup_suite(
        pytester,
        "model,task,backend,launcher,max_tokens\ntiny,vqa,hf,local,4\n",
        tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
    )
    result = run(pytester)
    result.assert_outcomes(passed=len(GOOD), failed=len(BAD))
    rows = {r["sample_id"]: r for r in read_csv(pytester.path / "vlmhb-results" / "answers.csv")}
    for name in GOOD:
        assert rows[name]["error"] == "" and int(rows[name]["completion_tokens"]) >= 1, name
    for name in BAD:
        assert rows[name]["error"] and rows[name]["anls"] == "0.0", name
    assert "image not found" in rows["missing"]["error"]
    assert "empty" in rows["empty"]["error"]
    # checked before anything is sent (the client reads each image's header)
    assert "unreadable image" in rows["corrupt"]["error"]
    assert "decompression-bomb limit" in rows["bomb"]["error"]
