"""report.html in a real browser: Debian's chromium, headless, driven over the
DevTools protocol (an aiohttp websocket; no selenium), opened from disk (file://)
with every network route closed. A stub-based run of two cases on the same
samples (some answered wrong, some errored, a corrupt image, a multi-image
sample and a PDF) makes the report; the page must render every row, load every
thumbnail, filter and compare exactly as answers.csv says.

Under CI=true a missing chromium is a failure (``.ci/chromium-setup`` installs
it); elsewhere the test is skipped with the reason. The pytest-html extras are
checked where pytest-html is installed (it is not a dependency).
"""

from __future__ import annotations

import asyncio
import base64
import html as html_text
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import DOCVQA_SUFFIX, make_pdf, read_csv, run, setup_suite
from tests.stub_openai import StubScript, running_stub

N = 30  # plain samples per case: 2 cases x 34 rows, 25 rows a page -> 3 pages
PAGE = 25


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        why = "chromium is not installed (apt-get install chromium: .ci/chromium-setup)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs chromium: {why}")
        pytest.skip(why)
    return found


@contextmanager
def headless_chromium(binary: str) -> Iterator[str]:
    """A headless chromium with no network route; yields its browser websocket URL."""
    profile = Path(tempfile.mkdtemp(prefix="vlmhb-chromium-"))
    proc = subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",  # we run as root
            "--disable-gpu",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves
            "--proxy-server=127.0.0.1:9",  # and no address is reachable
            "--window-size=1400,1000",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            lines = port_file.read_text().splitlines() if port_file.exists() else []
            if len(lines) >= 2:
                yield f"ws://127.0.0.1:{lines[0]}{lines[1]}"
                break
            time.sleep(0.1)
        else:
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
            pytest.fail(f"chromium did not start (exit {proc.poll()}): {err}")
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """One tab over the DevTools protocol (flattened session on the browser socket)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.session: str | None = None
        self.events: list[dict[str, Any]] = []
        self._id = 0

    async def _next(self) -> dict[str, Any]:
        msg = await asyncio.wait_for(self.ws.receive(), 60)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data: dict[str, Any] = json.loads(msg.data)
        return data

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if self.session is not None:
            message["sessionId"] = self.session
        await self.ws.send_str(json.dumps(message))
        while True:
            data = await self._next()
            if data.get("id") == self._id:
                assert "error" not in data, (method, data["error"])
                result: dict[str, Any] = data.get("result", {})
                return result
            self.events.append(data)

    async def wait_event(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                self.events.remove(event)
                return event
        while True:
            data = await self._next()
            if data.get("method") == method:
                return data
            self.events.append(data)

    async def js(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries so far."""
        out = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(json.dumps(params["exceptionDetails"])[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                out.append(json.dumps(params.get("args"))[:500])
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                out.append(f"{params['entry'].get('text')} {params['entry'].get('url', '')}")
        return out

    def requested(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]


def _manifest(root: Path) -> None:
    """N docvqa samples (two categories) plus a two-image sample, a 3-page PDF, a
    corrupt PNG and a missing image."""
    from PIL import Image, ImageDraw

    data = root / "data"
    data.mkdir()
    lines = []
    for i in range(N):
        image = Image.new("RGB", (90, 120), (255, 255, 255))
        ImageDraw.Draw(image).text((10, 50), f"s{i}", fill=(0, 0, 0))
        image.save(data / f"p{i}.png")
        category = "even" if i % 2 == 0 else "odd"
        lines.append(
            {"id": f"s{i}", "image": f"p{i}.png", "question": f"Q{i}?", "answers": [f"a{i}"]}
            | {"category": category}
        )
    lines.append(
        {"id": "multi", "images": ["p0.png", "p1.png"], "question": "Qm?", "answers": ["am"]}
    )
    make_pdf(data / "d.pdf", 3)
    lines.append({"id": "doc", "document": "d.pdf", "question": "Qd?", "answers": ["ad"]})
    (data / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
    lines.append({"id": "corrupt", "image": "bad.png", "question": "Qc?", "answers": ["ac"]})
    lines.append({"id": "missing", "image": "gone.png", "question": "Qx?", "answers": ["ax"]})
    (data / "m.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def _scripts() -> tuple[StubScript, StubScript]:
    """A: right on odd samples; B: right unless i % 3 == 0, and its first request fails."""
    first = StubScript(
        answers={f"Q{i}?{DOCVQA_SUFFIX}": f"a{i}" if i % 2 else "wrong" for i in range(N)}
        | {f"Qm?{DOCVQA_SUFFIX}": "am"}
    )
    second = StubScript(
        answers={f"Q{i}?{DOCVQA_SUFFIX}": "nope" if i % 3 == 0 else f"a{i}" for i in range(N)}
        | {f"Qm?{DOCVQA_SUFFIX}": "am"},
        fail_first=[400],  # not retried: s0 errors in case B only
    )
    return first, second


def _expected(rows: list[dict[str, str]], a: str, b: str) -> tuple[set[Any], set[str]]:
    """(bad rows as (case, sample), sample ids where cases a and b disagree)."""
    bad = {
        (r["case_id"], r["sample_id"]) for r in rows if not r["error"] and float(r["anls"]) < 0.5
    }
    first = {r["sample_id"]: r for r in rows if r["case_id"] == a}
    second = {r["sample_id"]: r for r in rows if r["case_id"] == b}
    differ = set()
    for sid, x in first.items():
        y = second.get(sid)
        if y is None:
            continue
        if bool(x["error"]) != bool(y["error"]) or (
            not x["error"] and not y["error"] and x["answer"] != y["answer"]
        ):
            differ.add(sid)
    return bad, differ


_ROWS = (
    "Array.from(document.querySelectorAll('#samples-body tr')).map("
    "tr => [tr.dataset.caseId, tr.dataset.sampleId, tr.dataset.outcome])"
)


def _set(control: str, value: str) -> str:
    return (
        f"(() => {{ const c = document.getElementById({json.dumps(control)});"
        f" c.value = {json.dumps(value)}; c.dispatchEvent(new Event('change')); }})()"
    )


_THUMBS_LOADED = """new Promise(resolve => {
  const done = () => Array.from(document.querySelectorAll(SEL)).every(i => i.complete);
  const tick = () => done() ? resolve(Array.from(document.querySelectorAll(SEL))
      .map(i => [i.alt, i.naturalWidth])) : setTimeout(tick, 50);
  tick();
})"""


async def _check_page(ws_url: str, html: Path, rows: list[dict[str, str]]) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(ws_url, max_msg_size=0) as ws,
    ):
        page = Page(ws)
        target = await page.send("Target.createTarget", url="about:blank")
        attached = await page.send(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        page.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            await page.send(f"{domain}.enable")
        await page.send("Page.navigate", url=html.as_uri())
        await page.wait_event("Page.loadEventFired")
        found: dict[str, Any] = {"errors_at_load": page.errors()}
        found["island"] = await page.js(
            "JSON.parse(document.getElementById('vlmhb-data').textContent).rows.length"
        )
        found["default_rows"] = await page.js(_ROWS)
        found["leaderboard"] = await page.js(
            "Array.from(document.querySelectorAll('#leaderboard-table tbody tr'))"
            ".map(tr => Array.from(tr.cells).map(c => c.textContent))"
        )
        found["cases"] = await page.js(
            "Array.from(document.getElementById('sbs-a').options).map(o => o.textContent)"
        )
        # every page at 25 rows a page, then all rows at once
        await page.js(_set("f-page-size", str(PAGE)))
        paged = []
        for _ in range(10):
            paged += await page.js(_ROWS)
            if await page.js("document.querySelector('#samples-pager .next').disabled"):
                break
            await page.js("document.querySelector('#samples-pager .next').click()")
        found["paged_rows"] = paged
        await page.js(_set("f-page-size", "0"))
        found["all_rows"] = await page.js(_ROWS)
        found["thumbs"] = await page.js(_THUMBS_LOADED.replace("SEL", "'#samples-body img.thumb'"))
        found["placeholders"] = await page.js(
            "Array.from(document.querySelectorAll('#samples-body .ph'))"
            ".map(p => p.closest('tr').dataset.sampleId)"
        )
        # every page of the PDF sample in the lightbox
        await page.js(
            "document.querySelector('#samples-body tr[data-sample-id=\"doc\"] a').click()"
        )
        found["lightbox"] = await page.js(_THUMBS_LOADED.replace("SEL", "'#lightbox img'"))
        await page.js("document.getElementById('lightbox').click()")
        found["lightbox_closed"] = await page.js("document.getElementById('lightbox').hidden")
        # only the badly scored samples
        await page.js(_set("f-outcome", "bad"))
        found["bad_rows"] = await page.js(_ROWS)
        await page.js(_set("f-outcome", ""))
        # side by side: case 0 vs case 1, disagreements only, all rows
        await page.js(_set("sbs-a", "0"))
        await page.js(_set("sbs-b", "1"))
        await page.js(_set("sbs-page-size", "0"))
        found["disagreements"] = await page.js(
            "Array.from(document.querySelectorAll('#sbs-body tr'))"
            ".map(tr => [tr.dataset.sampleId, tr.dataset.disagree])"
        )
        await page.js(_set("f-page-size", "100"))
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            width=1400,
            height=1000,
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = await page.send("Page.captureScreenshot", format="png")
        found["screenshot"] = base64.b64decode(shot["data"])
        found["errors"] = page.errors()
        found["requested"] = page.requested()
        await page.send("Target.closeTarget", targetId=target["targetId"])
        return found


@pytest.mark.timeout(600)
def test_report_html_in_headless_chromium(pytester: pytest.Pytester) -> None:
    binary = _chromium()
    _manifest(pytester.path)
    first, second = _scripts()
    with running_stub(first) as url_a, running_stub(second) as url_b:
        setup_suite(
            pytester,
            "model,task,backend,concurrency,max_retries\nma,vqa,openai,1,0\nmb,vqa,openai,1,0\n",
            models=f"name,source,endpoint\nma,x,{url_a}\nmb,x,{url_b}\n",
            tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
        )
        result = run(pytester)
    out = pytester.path / "vlmhb-results"
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()[-3000:]
    rows = read_csv(out / "answers.csv")
    html = out / "report.html"
    assert html.is_file() and (out / "thumbs").is_dir() and (out / "plots").is_dir()
    case_a, case_b = "ma:vqa:openai", "mb:vqa:openai"
    bad, differ = _expected(rows, case_a, case_b)
    assert bad and differ  # the run has both, or the checks below prove nothing
    assert "s0" in differ and "missing" not in differ  # B alone errored on s0; both on missing

    with headless_chromium(binary) as ws_url:
        found = asyncio.run(_check_page(ws_url, html, rows))
    (out / "report-screenshot.png").write_bytes(found["screenshot"])

    assert found["errors"] == [], found["errors"]
    local = [u for u in found["requested"] if not u.startswith(("file://", "data:"))]
    assert local == [], local  # nothing but the report's own files
    expected = [[r["case_id"], r["sample_id"]] for r in rows]
    assert found["island"] == len(rows) == 2 * (N + 4)
    assert found["cases"] == [case_a, case_b]
    metrics = {r["case_id"]: r for r in read_csv(out / "metrics.csv")}
    assert [row[0] for row in found["leaderboard"]] == ["ma@openai", "mb@openai"]
    for (_, cell), case_id in zip(found["leaderboard"], (case_a, case_b), strict=True):
        assert f"anls {float(metrics[case_id]['anls']):.4g}" in cell
        assert f"{float(metrics[case_id]['requests_per_s']):.4g} req/s" in cell
        if metrics[case_id].get("anls_ci_low"):  # metrics.csv's 95% interval, where it has one
            low, high = (float(metrics[case_id][f"anls_ci_{end}"]) for end in ("low", "high"))
            assert f"[{low:.4g}, {high:.4g}] 95%" in cell
    assert [r[:2] for r in found["default_rows"]] == expected  # 68 rows fit one page of 100
    assert [r[:2] for r in found["paged_rows"]] == expected  # 3 pages of 25
    assert [r[:2] for r in found["all_rows"]] == expected
    outcomes = {(c, s): o for c, s, o in found["all_rows"]}
    assert {k for k, o in outcomes.items() if o == "error"} == {
        (r["case_id"], r["sample_id"]) for r in rows if r["error"]
    }
    # thumbnails: every sample with a readable page shows one that loaded
    assert sorted(found["placeholders"]) == sorted(["corrupt", "missing"] * 2)
    assert len(found["thumbs"]) == len(rows) - 4
    assert all(width > 0 for _, width in found["thumbs"]), found["thumbs"]
    assert len(found["lightbox"]) == 3 and all(w > 0 for _, w in found["lightbox"])
    assert found["lightbox_closed"] is True
    assert {(c, s) for c, s, _ in found["bad_rows"]} == bad
    assert all(o == "bad" for *_, o in found["bad_rows"])
    assert {sid for sid, flag in found["disagreements"]} == differ
    assert all(flag == "1" for _, flag in found["disagreements"])
    assert found["screenshot"].startswith(b"\x89PNG")


def test_pytest_html_extras_of_sample_items(pytester: pytest.Pytester) -> None:
    """With pytest-html and --html, each sample item carries its page thumbnail, its
    answer and its references; other items carry none of ours."""
    if importlib.util.find_spec("pytest_html") is None:
        pytest.skip("pytest-html is not installed (it is optional: pip install pytest-html)")
    data = pytester.mkdir("data")
    from PIL import Image

    Image.new("RGB", (300, 400), (250, 250, 250)).save(data / "p.png")
    lines = [
        {"id": "s0", "image": "p.png", "question": "Q0?", "answers": ["a0"]},
        {"id": "s1", "image": "gone.png", "question": "Q1?", "answers": ["a1"]},
    ]
    (data / "m.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    with running_stub(StubScript(answers={f"Q0?{DOCVQA_SUFFIX}": "<b>a0</b>"})) as url:
        setup_suite(
            pytester,
            "model,task,backend,concurrency\nma,vqa,openai,1\n",
            models=f"name,source,endpoint\nma,x,{url}\n",
            tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
        )
        run(pytester, "--html=ph.html", "--self-contained-html")
    page = (pytester.path / "ph.html").read_text()
    start = page.index('data-jsonblob="') + len('data-jsonblob="')
    blob = json.loads(html_text.unescape(page[start : page.index('"', start)]))
    extras = {
        test_id.rpartition("/")[2].rstrip("]"): [e for r in runs for e in r.get("extras", [])]
        for test_id, runs in blob["tests"].items()
    }
    assert set(extras) == {"s0", "s1"}
    kinds = {sid: [e["format_type"] for e in found] for sid, found in extras.items()}
    assert kinds == {"s0": ["image", "html"], "s1": ["html"]}  # s1's image is missing
    summary = extras["s0"][1]["content"]
    assert "&lt;b&gt;a0&lt;/b&gt;" in summary and "a0" in summary and "references" in summary
    assert "error" in extras["s1"][0]["content"]


def _visual_files(out: Path) -> set[Path]:
    return {p.relative_to(out) for p in out.rglob("*") if p.parent.name in ("plots", "thumbs")}


def test_rebuild_writes_report_html_plots_and_thumbs_again(pytester: pytest.Pytester) -> None:
    """--vlmhb-rebuild-reports (and so --vlmhb-merge, through the same writer) makes
    report.html, plots/ and thumbs/ from the store alone."""
    _manifest(pytester.path)
    first, _ = _scripts()
    with running_stub(first) as url:
        setup_suite(
            pytester,
            "model,task,backend,concurrency\nma,vqa,openai,1\n",
            models=f"name,source,endpoint\nma,x,{url}\n",
            tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
        )
        run(pytester)
    out = pytester.path / "vlmhb-results"
    made = _visual_files(out)
    assert made and (out / "report.html").is_file()
    for path in (out / "report.html", out / "plots", out / "thumbs"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    result = run(pytester, "--vlmhb-rebuild-reports")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-2000:]
    assert {
        p.relative_to(out) for p in out.rglob("*") if p.parts[-2] in ("plots", "thumbs")
    } == made
    page = (out / "report.html").read_text()
    start = page.index('id="vlmhb-data">') + len('id="vlmhb-data">')
    rows = json.loads(page[start : page.index("</script>", start)])["rows"]
    assert len(rows) == len(read_csv(out / "answers.csv")) == N + 4
