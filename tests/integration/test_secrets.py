"""API keys: from the environment only, into servers' environment, masked everywhere.

One run holds a real HF server that requires a key (given through its
environment) and a remote endpoint that rejects the key and echoes it back
in its 401 body; the key must appear in no file the run writes and not in
the terminal output.
"""

from __future__ import annotations

import pytest

from tests.helpers import page_manifest, read_csv, run, setup_suite
from tests.stub_openai import StubScript, running_stub

SECRET = "sk-vlmhb-test-9f3Kq2LmZx"
PROBE = (
    "import json, urllib.error, urllib.request\n"
    "from pytest_vlmhb.plugin import RUNTIME\n"
    "def pytest_runtest_teardown(item):\n"
    "    server = item.config.stash[RUNTIME].pool.current\n"
    "    if not item.name.endswith('local/s0]') or server is None:\n"
    "        return\n"
    "    try:\n"
    "        urllib.request.urlopen(server.base_url + '/models', timeout=10)\n"
    "        status = 200\n"
    "    except urllib.error.HTTPError as exc:\n"
    "        status = exc.code\n"
    "    open('probe.json', 'w').write(json.dumps({'status': status, "
    "'argv_has_key': any('" + SECRET + "' in a for a in "
    "json.dumps(server.provenance.get('command', [])).split())}))\n"
)


@pytest.mark.server
def test_key_reaches_servers_by_environment_and_is_masked_everywhere(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    page_manifest(pytester, 2)
    rejecting = StubScript(default_answer="a", required_key="a-different-key")
    with running_stub(rejecting) as url:
        setup_suite(
            pytester,
            "id,model,task,backend,launcher\n"
            "hf-local,tiny,vqa,hf,local\nremote,remote,vqa,openai,external\n",
            models="name,source,endpoint,api_key_env\n"
            "tiny,builtin:tiny-idefics3,,VLMHB_TEST_KEY\n"
            f"remote,x,{url},VLMHB_TEST_KEY\n",
            tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
        )
        pytester.makeconftest(PROBE)
        monkeypatch.setenv("VLMHB_TEST_KEY", SECRET)
        result = run(pytester, "--junitxml=junit.xml", "-v")
    result.assert_outcomes(passed=2, failed=2)
    probe = (pytester.path / "probe.json").read_text()
    assert '"status": 401' in probe  # the harness-started server really requires the key
    assert '"argv_has_key": false' in probe
    # The remote got the key, rejected it, and echoed it back in its error body.
    assert {h.get("Authorization") for h in rejecting.headers} == {f"Bearer {SECRET}"}
    errors = [r["error"] for r in read_csv(pytester.path / "vlmhb-results" / "answers.csv")]
    assert errors[:2] == ["", ""]
    assert all("HTTP 401: invalid key 'Bearer ***'" in e for e in errors[2:])
    out = pytester.path / "vlmhb-results"
    written = [p for p in out.rglob("*") if p.is_file()] + [pytester.path / "junit.xml"]
    kinds = {p.suffix for p in written}
    assert {".md", ".csv", ".jsonl", ".log", ".xml"} <= kinds
    for path in written:
        assert SECRET not in path.read_text(errors="replace"), path
    assert SECRET not in result.stdout.str() + result.stderr.str()
