"""Hostile input against the outputs: CSV formula injection, atomic writes, the
output-dir probe and lock, the results store's integrity, and rates after resume.

We run as root in CI containers, where ``chmod 0o555`` stops nothing: a
read-only directory is made with a read-only bind mount or ``chattr +i`` where
the machine allows it (else skipped), and always also by monkeypatching the
probe's file creation to fail with EROFS. A real full disk is a 64 KiB tmpfs
(skipped where ``mount`` is not allowed); ENOSPC is also simulated.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_vlmhb import outputdir
from pytest_vlmhb.client import Completion
from pytest_vlmhb.csvsafe import NUMBER, TRIGGERS, escape_cell, read_csv_dicts, unescape_cell
from pytest_vlmhb.errors import ConfigError, VlmhbError
from pytest_vlmhb.outputdir import (
    LOCK_NAME,
    OutputError,
    OutputLock,
    OutputLockedError,
    atomic_write_bytes,
    atomic_write_text,
    check_writable,
)
from pytest_vlmhb.rebuild import results_from_store
from pytest_vlmhb.records import busy_seconds, make_record
from pytest_vlmhb.report import csv_text, write_csv, write_outputs
from pytest_vlmhb.store import ResultStore, case_info_entry, load_records, load_store, record_key
from tests.helpers import make_case, make_plan, make_results, make_sample

# ---------------------------------------------------------------- formula injection


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        (
            '=HYPERLINK("http://evil.example","click")',
            '\'=HYPERLINK("http://evil.example","click")',
        ),
        ("=1+1", "'=1+1"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("\n=1+1", "'\n=1+1"),
        ("=", "'="),
        ("-", "'-"),
        ("+", "'+"),
        ("@", "'@"),
        ("\t", "'\t"),
        ("\uff1d1+1", "'\uff1d1+1"),  # full-width equals sign
        ("-inf", "'-inf"),
        ("+nan", "'+nan"),
        ("-1,5", "'-1,5"),
        ("-1.5\n", "'-1.5\n"),
        ("-\u0661", "'-\u0661"),  # a non-ASCII digit is no plain number
        ("'=x", "''=x"),
        ("'plain", "''plain"),
        ("'", "''"),
        ("''", "'''"),
        # unchanged: plain numbers, ordinary text, a trigger not at the start
        ("-1.5", "-1.5"),
        ("+3", "+3"),
        ("-.5e-3", "-.5e-3"),
        ("1e5", "1e5"),
        ("42", "42"),
        ("-0", "-0"),
        ("+7.", "+7."),
        ("", ""),
        ("plain answer", "plain answer"),
        ("1=1", "1=1"),
        (" =1", " =1"),
        ("\u22121", "\u22121"),
        ('{"answers": ["=x"]}', '{"answers": ["=x"]}'),
    ],
)
def test_escape_cell(raw: str, escaped: str) -> None:
    assert escape_cell(raw) == escaped
    assert unescape_cell(escaped) == raw


@given(st.text())
def test_escape_round_trips_and_disarms_every_text(text: str) -> None:
    escaped = escape_cell(text)
    assert unescape_cell(escaped) == text
    assert escaped[:1] not in TRIGGERS or NUMBER.fullmatch(escaped)


@given(st.lists(st.tuples(st.text(), st.text()), max_size=5))
def test_csv_round_trip_of_hostile_cells(cells: list[tuple[str, str]]) -> None:
    rows = [{"sample_id": sid, "answer": answer, "anls": 0.5} for sid, answer in cells]
    text = csv_text(["sample_id", "answer", "anls"], rows)
    for raw in csv.reader(io.StringIO(text, newline="")):
        assert all(c[:1] not in TRIGGERS or NUMBER.fullmatch(c) for c in raw)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "answers.csv"
        path.write_text(text, encoding="utf-8", newline="")
        assert [(r["sample_id"], r["answer"]) for r in read_csv_dicts(path)] == cells


def test_write_csv_escapes_strings_not_numbers_and_json(tmp_path: Path) -> None:
    path = tmp_path / "answers.csv"
    write_csv(
        path,
        ["sample_id", "answer", "reference", "score", "n"],
        [
            {
                "sample_id": "=id",
                "answer": "@x",
                "reference": {"answers": ["=a"]},
                "score": -0.5,
                "n": -3,
            },
            {"sample_id": "-1.5", "answer": None, "reference": ["=b"], "score": None, "n": 0},
        ],
    )
    raw = list(csv.reader(path.open(newline="", encoding="utf-8")))
    assert raw[1] == ["'=id", "'@x", '{"answers": ["=a"]}', "-0.5", "-3"]
    assert raw[2] == ["-1.5", "", '["=b"]', "", "0"]
    rows = read_csv_dicts(path)
    assert rows[0]["sample_id"] == "=id" and rows[0]["answer"] == "@x"


def test_read_csv_dicts_tolerates_bom_blank_and_short_rows(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes("\ufeffcase_id,'=col\r\n'=c,1\r\n\r\nshort\r\n".encode())
    assert read_csv_dicts(path) == [
        {"case_id": "=c", "=col": "1"},
        {"case_id": "short", "=col": ""},
    ]


# ---------------------------------------------------------------- atomic writes


def _no_temps(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("failing", ["os.replace", "os.fsync", "os.fdopen"])
def test_atomic_write_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "answers.csv"
    path.write_text("old,content\n")

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(f"pytest_vlmhb.outputdir.{failing}", full)
    with pytest.raises(OutputError, match="No space left on device") as info:
        atomic_write_text(path, "new\n")
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert str(path) in str(info.value)
    monkeypatch.undo()
    assert path.read_text() == "old,content\n" and _no_temps(tmp_path)


def test_atomic_write_onto_a_directory_leaves_no_temp(tmp_path: Path) -> None:
    (tmp_path / "report.md").mkdir()
    with pytest.raises(OutputError, match=r"report\.md"):
        atomic_write_bytes(tmp_path / "report.md", b"x")
    assert _no_temps(tmp_path)


def test_atomic_write_modes_and_unencodable_text(tmp_path: Path) -> None:
    old = tmp_path / "old.md"
    old.write_text("x")
    old.chmod(0o640)
    atomic_write_text(old, "answer \ud800 end")  # a lone surrogate a server could send
    assert old.stat().st_mode & 0o777 == 0o640
    assert old.read_text(encoding="utf-8") == "answer \ufffd end"
    mask = os.umask(0o022)
    os.umask(mask)
    atomic_write_text(tmp_path / "new.md", "y")
    assert (tmp_path / "new.md").stat().st_mode & 0o777 == 0o666 & ~mask


# ---------------------------------------------------------------- plans for reports


HOSTILE = {"=id": '=HYPERLINK("http://x","y")', "+1": "@SUM(1)", "-x": "'=quoted", "ok": "-1.5"}


def test_write_outputs_disarms_and_round_trips_answers(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, list(HOSTILE))
    out = tmp_path / "out"
    write_outputs(out, plan, make_results(plan, HOSTILE))
    got = {r["sample_id"]: r["answer"] for r in read_csv_dicts(out / "answers.csv")}
    assert got == HOSTILE
    for name in ("answers.csv", "metrics.csv"):
        for row in csv.reader((out / name).open(newline="", encoding="utf-8")):
            assert all(c[:1] not in TRIGGERS or NUMBER.fullmatch(c) for c in row)
    json.loads((out / "benchmark.json").read_text())
    assert _no_temps(out)


def test_write_outputs_failure_keeps_every_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = make_plan(tmp_path, ["a", "b"])
    out = tmp_path / "out"
    write_outputs(out, plan, make_results(plan, {}))
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real = outputdir._write_temp

    def full_at_benchmark(path: Path, data: bytes) -> str:
        if path.name == "benchmark.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data)

    monkeypatch.setattr(outputdir, "_write_temp", full_at_benchmark)
    with pytest.raises(OutputError, match=r"benchmark\.json"):
        write_outputs(out, plan, make_results(plan, {"a": "changed"}))
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


# ---------------------------------------------------------------- check_writable


def _run(*cmd: str) -> bool:
    return subprocess.run(cmd, capture_output=True).returncode == 0


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (root with mount rights only)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if (
        os.geteuid() != 0
        or not shutil.which("mount")
        or not _run("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt))
    ):
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    _run("umount", "-l", str(mnt))


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC  # noqa: PT017 (filling the disk is the point)
    return filler


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory even root cannot write: a read-only bind mount, else ``chattr +i``."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    if os.geteuid() == 0 and shutil.which("mount") and _run("mount", "--bind", str(src), str(ro)):
        if _run("mount", "-o", "remount,bind,ro", str(ro)):
            yield ro
            _run("umount", "-l", str(ro))
            return
        _run("umount", "-l", str(ro))
    if shutil.which("chattr") and _run("chattr", "+i", str(ro)):
        yield ro
        _run("chattr", "-i", str(ro))
        return
    pytest.skip("neither a read-only bind mount nor chattr +i is possible here")


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("under_file", "cannot be created"),
        ("is_file", "is not a directory"),
        ("store_is_file", "results store cannot be written"),
        ("deep_under_file", "cannot be created"),
    ],
)
def test_check_writable_rejects(tmp_path: Path, layout: str, message: str) -> None:
    (tmp_path / "file").write_text("x")
    output = {
        "under_file": tmp_path / "file" / "out",
        "is_file": tmp_path / "file",
        "deep_under_file": tmp_path / "file" / "a" / "b",
        "store_is_file": tmp_path / "out",
    }[layout]
    if layout == "store_is_file":
        output.mkdir()
        (output / "results").write_text("x")
    with pytest.raises(ConfigError, match=message) as info:
        check_writable(output)
    assert str(output) in str(info.value) and "--vlmhb-output" in str(info.value)


def test_check_writable_on_read_only_dir(read_only_dir: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"not writable: (Read-only file system|Operation "
        r"not permitted)",
    ):
        check_writable(read_only_dir)


def test_check_writable_simulated_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def erofs(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr("pytest_vlmhb.outputdir.tempfile.mkstemp", erofs)
    with pytest.raises(ConfigError, match=r"not writable: Read-only file system \[EROFS\]"):
        check_writable(tmp_path)


def test_check_writable_on_full_disk(tiny_fs: Path) -> None:
    _fill(tiny_fs)
    with pytest.raises(ConfigError, match="No space left on device"):
        check_writable(tiny_fs)


def test_check_writable_creates_and_leaves_nothing(tmp_path: Path) -> None:
    output = tmp_path / "a" / "b"
    check_writable(output)
    assert output.is_dir() and list(output.iterdir()) == []


# ---------------------------------------------------------------- the output lock


def _holder(output: Path) -> subprocess.Popen[str]:
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from pytest_vlmhb.outputdir import OutputLock
        lock = OutputLock.acquire(Path({str(output)!r}))
        print("ready", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(output: Path, **info: Any) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / LOCK_NAME).write_text(
        json.dumps({"host": socket.gethostname(), "started": "2026-01-01T00:00:00+00:00", **info})
    )


def test_lock_held_by_a_live_process_is_refused_then_taken_over(tmp_path: Path) -> None:
    proc = _holder(tmp_path)
    try:
        with pytest.raises(OutputLockedError) as info:
            OutputLock.acquire(tmp_path)
        message = str(info.value)
        assert f"in use by pid {proc.pid} on host {socket.gethostname()} since" in message
        assert "wait for it or use another --vlmhb-output" in message
    finally:
        proc.kill()
        proc.wait()
    lock = OutputLock.acquire(tmp_path)  # its holder died without releasing it
    assert lock.took_over is not None and f"pid {proc.pid}" in lock.took_over
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with OutputLock.acquire(tmp_path / "out") as lock:
        assert lock.held and lock.took_over is None
        info = json.loads((tmp_path / "out" / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        with pytest.raises(ConfigError, match="is in use by pid"):
            OutputLock.acquire(tmp_path / "out")
    assert not lock.held
    lock.release()  # idempotent
    OutputLock.acquire(tmp_path / "out").release()


@pytest.mark.parametrize(
    ("info", "taken"),
    [
        ({"pid": "dead"}, "no longer runs"),
        ({"pid": "self"}, "no longer runs"),  # our own forgotten lock
        ({"pid": "live", "pid_start": "1"}, "no longer runs"),  # a reused pid
        ({"pid": -5}, "no longer runs"),
        ({}, "no longer runs"),
    ],
)
def test_stale_lock_on_this_host_is_taken_over(
    tmp_path: Path, info: dict[str, Any], taken: str
) -> None:
    pids = {"dead": _dead_pid(), "self": os.getpid(), "live": os.getppid()}
    if "pid" in info and isinstance(info["pid"], str):
        info = {**info, "pid": pids[info["pid"]]}
    _write_lock(tmp_path, **info)
    lock = OutputLock.acquire(tmp_path)
    assert lock.took_over is not None and taken in lock.took_over
    lock.release()


@pytest.mark.parametrize("content", ["", "garbage{", "[1, 2]"])
def test_empty_or_unreadable_lock_file_is_replaced(tmp_path: Path, content: str) -> None:
    (tmp_path / LOCK_NAME).write_text(content)
    lock = OutputLock.acquire(tmp_path)
    assert (lock.took_over is None) == (content == "")
    lock.release()


def test_lock_of_a_live_pid_without_flock_is_refused(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_lock(tmp_path, pid=sleeper.pid)
        with pytest.raises(OutputLockedError, match=f"pid {sleeper.pid}"):
            OutputLock.acquire(tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_lock_from_another_host_is_not_taken_over(tmp_path: Path) -> None:
    _write_lock(tmp_path, pid=_dead_pid(), host="other-node-7")
    with pytest.raises(OutputLockedError) as info:
        OutputLock.acquire(tmp_path)
    assert "on host other-node-7" in str(info.value)
    assert f"delete {tmp_path / LOCK_NAME}" in str(info.value)
    assert (tmp_path / LOCK_NAME).exists()


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path: Path) -> None:
    lock = OutputLock.acquire(tmp_path)
    (tmp_path / LOCK_NAME).unlink()
    _write_lock(tmp_path, pid=1234, token="theirs")
    lock.release()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["token"] == "theirs"


def test_lock_on_unusable_output_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot lock output dir"):
        OutputLock.acquire(tmp_path / "file" / "out")
    (tmp_path / "out" / LOCK_NAME).mkdir(parents=True)
    with pytest.raises(ConfigError, match="cannot lock output dir"):
        OutputLock.acquire(tmp_path / "out")


# ---------------------------------------------------------------- the results store


def _record(name: str, **changes: Any) -> dict[str, Any]:
    record = make_record(
        make_case(("cer",)),
        make_sample(name, "abc"),
        Completion(
            text="abc", ttft_s=0.1, e2e_s=0.2, completion_tokens=3, sent_at=1.0, finished_at=2.0
        ),
        None,
    )
    record["key"] = name
    record.update(changes)
    return record


def _store_file(output: Path) -> Path:
    return output / "results" / "samples-main.jsonl"


def test_torn_last_line_then_append_starts_a_fresh_line(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, "main")
    store.append(_record("a"))
    store.close()
    path = _store_file(tmp_path)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(_record("torn"))[:40])  # a killed process
    resumed = ResultStore(tmp_path, "main")
    resumed.append(_record("b"))
    resumed.close()
    contents = load_store(tmp_path)
    assert sorted(contents.records) == ["a", "b"]
    assert len(contents.skipped) == 1 and contents.skipped[0].startswith(f"{path}:2 (not JSON")
    # a still-torn last line is named as such
    with path.open("a", encoding="utf-8") as f:
        f.write('{"key": "c"')
    assert "torn last line" in load_store(tmp_path).skipped[-1]


WRONG_SHAPES: list[tuple[str, Any]] = [
    ("scores", [1.0]),
    ("scores", None),
    ("scores", {"cer": "high"}),
    ("scores", {"cer": True}),
    ("stats", "x"),
    ("stats", {"cer": [1]}),
    ("stats", {"cer": {"edits": None}}),
    ("answer", 42),
    ("answer", ["a"]),
    ("error", 1),
    ("ttft_ms", "12"),
    ("e2e_ms", float("nan")),
    ("completion_tokens", -1),
    ("completion_tokens", True),
    ("completion_tokens", 2.5),
    ("token_ids", ["a"]),
    ("sent_at", "yesterday"),
    ("finished_at", {}),
    ("itl_ms", 3),
    ("retries", "2"),
    ("reference", [1]),
    ("case_id", None),
    ("sample_id", 7),
    ("key", 5),
    ("key", ""),
    ("category", 3),
]


@pytest.mark.parametrize(("field", "value"), WRONG_SHAPES)
def test_wrong_shape_record_is_skipped_with_its_line(
    tmp_path: Path, field: str, value: Any
) -> None:
    path = _store_file(tmp_path)
    path.parent.mkdir(parents=True)
    lines = [_record("good1"), _record("bad", **{field: value}), _record("good2")]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    contents = load_store(tmp_path)
    assert sorted(contents.records) == ["good1", "good2"]
    assert len(contents.skipped) == 1
    assert contents.skipped[0].startswith(f"{path}:2 (wrong shape: {field}")


@pytest.mark.parametrize(
    "field",
    [
        "scores",
        "stats",
        "answer",
        "error",
        "ttft_ms",
        "sent_at",
        "case_id",
        "sample_id",
        "token_ids",
        "completion_tokens",
    ],
)
def test_missing_required_field_is_skipped(tmp_path: Path, field: str) -> None:
    path = _store_file(tmp_path)
    path.parent.mkdir(parents=True)
    record = _record("bad")
    del record[field]
    path.write_text(json.dumps(record) + "\n")
    assert load_store(tmp_path).skipped == [f"{path}:1 (wrong shape: {field}: Field required)"]


BAD_LINES = [
    (b"not json at all", "not JSON"),
    (b"[1, 2, 3]", "not a JSON object but list"),
    (b'"a string"', "not a JSON object but str"),
    (b"null", "not a JSON object but NoneType"),
    (b"1" * 5000, "not JSON"),  # over int's digit limit
    (b"[" * 100_000 + b"]" * 100_000, "not"),  # too deep for the parser
    (b'{"answer": "\xff\xfe"}', "not UTF-8"),
    (b'{"answer": "x"}', "neither a sample record"),
    (b'{"case_id": "c", "case_info": [1]}', "wrong shape: case_info"),
    (
        b'{"case_id": "c", "case_info": {"server": {"packages": ["torch"]}}}',
        "wrong shape: case_info.server.packages",
    ),
    (
        b'{"case_id": "c", "case_info": {"peak_memory_bytes": "lots"}}',
        "wrong shape: case_info.peak_memory_bytes",
    ),
    (
        b'{"case_id": "c", "case_info": {"server_generation_tokens": true}}',
        "wrong shape: case_info.server_generation_tokens",
    ),
    (b'{"case_info": {}}', "wrong shape: case_id"),
    (b'{"case_id": "", "case_info": {}}', "wrong shape: case_id"),
]


@pytest.mark.parametrize(("line", "why"), BAD_LINES)
def test_bad_store_lines_are_reported_never_raised(tmp_path: Path, line: bytes, why: str) -> None:
    path = _store_file(tmp_path)
    path.parent.mkdir(parents=True)
    good = json.dumps(_record("good")).encode()
    info = json.dumps(case_info_entry("c", {"server": {"packages": {"torch": "2"}}})).encode()
    path.write_bytes(good + b"\n\n" + line + b"\n" + info + b"\n")
    contents = load_store(tmp_path)
    assert list(contents.records) == ["good"] and list(contents.case_info) == ["c"]
    assert len(contents.skipped) == 1 and contents.skipped[0].startswith(f"{path}:3 ({why}")
    assert load_records(tmp_path).keys() == {"good"}


def test_store_keeps_line_separators_and_surrogates(tmp_path: Path) -> None:
    answer = "a\u2028b\x85c\u2029d\re\ud800f"
    store = ResultStore(tmp_path, "main")
    store.append(_record("k", answer=answer))
    store.close()
    contents = load_store(tmp_path)
    assert contents.skipped == [] and contents.records["k"]["answer"] == answer


def test_enospc_append_names_the_file_and_resume_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ResultStore(tmp_path, "main")
    store.append(_record("a"))
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:
        monkeypatch.setattr(os, "write", full)
        return real_write(fd, bytes(data[: len(data) // 2]))  # a partial write first

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OutputError) as info:
        store.append(_record("b"))
    message = str(info.value)
    assert isinstance(info.value, VlmhbError)
    assert str(_store_file(tmp_path)) in message and "no space left on device" in message.lower()
    assert "--vlmhb-resume" in message
    copied = pickle.loads(pickle.dumps(info.value))  # travels like any exception
    assert str(copied) == message and copied.errno == errno.ENOSPC
    monkeypatch.undo()  # space freed
    store.append(_record("c"))
    store.close()
    contents = load_store(tmp_path)
    assert sorted(contents.records) == ["a", "c"]
    assert len(contents.skipped) == 1 and f"{_store_file(tmp_path)}:2 (" in contents.skipped[0]


def test_store_append_fails_cleanly_when_results_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "results").write_text("x")
    with pytest.raises(OutputError, match="cannot append to the results store"):
        ResultStore(tmp_path, "main").append(_record("a"))


def test_real_full_disk_then_resume(tiny_fs: Path) -> None:
    store = ResultStore(tiny_fs, "main")
    store.append(_record("first"))
    filler = _fill(tiny_fs)
    with pytest.raises(OutputError, match="No space left on device"):  # noqa: PT012
        for i in range(200):
            store.append(_record(f"r{i}", answer="x" * 3000))
    filler.unlink()  # space freed; the next run resumes
    resumed = ResultStore(tiny_fs, "main")
    resumed.append(_record("after"))
    resumed.close()
    store.close()
    contents = load_store(tiny_fs)
    assert {"first", "after"} <= set(contents.records)
    assert len(contents.skipped) <= 1


def test_rebuild_notes_skipped_lines_and_rescores_missing_metrics(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["a", "b", "c"])
    case = plan.cases[0]
    out = tmp_path / "out"
    store = ResultStore(out, "main")
    for sample in plan.samples[case.id]:
        record = make_record(
            case,
            sample,
            Completion(text="abd", completion_tokens=3, sent_at=1.0, finished_at=2.0),
            None,
        )
        record["key"] = record_key(case, sample)
        if sample.id == "a":
            record["stats"], record["scores"] = {}, {}  # stored before cer was a metric
        if sample.id == "b":
            record["scores"] = "broken"
        store.append(record)
    store.close()
    results, skipped = results_from_store(plan, out)
    assert [r["sample_id"] for r in results.records[case.id]] == ["a", "c"]
    assert results.records[case.id][0]["scores"]["cer"] == pytest.approx(1 / 3)
    assert len(skipped) == 1 and ":2 (wrong shape: scores" in skipped[0]
    write_outputs(out, plan, results)
    report = (out / "report.md").read_text()
    assert "1 store line skipped" in report and skipped[0] in report


# ---------------------------------------------------------------- busy time


@pytest.mark.parametrize(
    ("intervals", "busy"),
    [
        ([], 0.0),
        ([(5.0, 6.5)], 1.5),
        ([(5.0, 5.0)], 0.0),
        ([(1.0, 2.0)] * 3, 1.0),
        ([(0.0, 10.0), (2.0, 3.0), (4.0, 5.0)], 10.0),
        ([(0.0, 2.0), (1.0, 3.0)], 3.0),
        ([(0.0, 1.0), (1.0, 2.0)], 2.0),
        ([(0.0, 1.0), (3600.0, 3601.0)], 2.0),
        ([(3600.0, 3601.0), (0.0, 1.0), (0.5, 0.75)], 2.0),
        ([(2.0, 1.0), (0.0, 1.0)], 1.0),  # an end before its start is ignored
    ],
)
def test_busy_seconds_is_the_union_length(
    intervals: list[tuple[float, float]], busy: float
) -> None:
    assert busy_seconds(intervals) == pytest.approx(busy)


@given(st.lists(st.tuples(st.floats(0, 1e4), st.floats(0, 100)), max_size=30))
def test_busy_seconds_bounds(pairs: list[tuple[float, float]]) -> None:
    intervals = [(a, a + d) for a, d in pairs]
    busy = busy_seconds(intervals)
    assert busy <= sum(d for _, d in pairs) + 1e-6
    if intervals:
        assert busy <= max(b for _, b in intervals) - min(a for a, _ in intervals) + 1e-6
        assert busy >= max(d for _, d in pairs) - 1e-6
