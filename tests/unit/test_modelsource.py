"""Model sources: hub id parsing, resolution through huggingface_hub's own cache
lookup (offline, against a cache laid out by tests/hubcache.py), folder
fingerprints, config.json reading and the remote-code rule."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import constants

from pytest_vlmhb import modelsource
from pytest_vlmhb.errors import ConfigError
from pytest_vlmhb.modelsource import (
    HubId,
    folder_revision,
    hub_cache_dir,
    hub_offline,
    needs_remote_code,
    parse_hub_id,
    read_model_config,
    repo_cache_folder,
    resolve_folder,
    resolve_hub_model,
)
from tests.hubcache import DEFAULT_COMMIT, blob_name, make_hub_cache

COMMIT = DEFAULT_COMMIT
OTHER = "fedcba9876543210fedcba9876543210fedcba98"
CONFIG = {"model_type": "idefics3", "architectures": ["Idefics3ForConditionalGeneration"]}
WEIGHTS = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(range(48))
MODELS_CSV = Path("/cfg/models.csv")
#: An exception class name (FooError, LocalEntryNotFoundError...) in a message.
CLASS_NAME = re.compile(r"[A-Z][A-Za-z]*(Error|Exception)")


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """No test here reaches past 127.0.0.1, whatever huggingface_hub tries; the
    host names looked up and the addresses connected to, blocked or not."""
    seen: list[Any] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(host)
        if host not in ("127.0.0.1", "localhost", "::1", None):
            raise OSError(f"test blocked a lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> None:
        seen.append(address)
        inet = self.family in (socket.AF_INET, socket.AF_INET6)
        if inet and address[0] not in ("127.0.0.1", "::1"):
            raise OSError(f"test blocked a connection to {address!r}")
        real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache named by the environment only, offline, no token.

    huggingface_hub is imported before this runs, so its import-time constants
    point elsewhere: resolution must read the variables at call time."""
    home = tmp_path / "hf-home"
    cache = home / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("HUGGINGFACE_HUB_CACHE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert Path(constants.HF_HUB_CACHE) != cache
    return cache


def make_model(folder: Path, config: dict[str, Any] | None = None) -> Path:
    """config.json, a tiny model.safetensors, tokenizer.json and a nested file."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(CONFIG if config is None else config))
    (folder / "model.safetensors").write_bytes(WEIGHTS)
    (folder / "tokenizer.json").write_text('{"version": "1.0"}')
    (folder / "processor" / "deep").mkdir(parents=True)
    (folder / "processor" / "deep" / "notes.txt").write_text("deep file")
    return folder


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(tmp_path / "src")


def resolve(source: str) -> modelsource.ResolvedModel:
    hub = parse_hub_id(source)
    assert hub is not None
    return resolve_hub_model(hub, file=MODELS_CSV, line=3)


def config_error(source: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        resolve(source)
    return info.value


# --- parse_hub_id ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("org/name", HubId("org/name", None)),
        ("org/name@main", HubId("org/name", "main")),
        ("org/name@v1.0", HubId("org/name", "v1.0")),
        (f"org/name@{COMMIT}", HubId("org/name", COMMIT)),
        ("HuggingFaceTB/SmolVLM-256M-Instruct", HubId("HuggingFaceTB/SmolVLM-256M-Instruct", None)),
        ("Org_1/na.me-2@release/2024-01", HubId("Org_1/na.me-2", "release/2024-01")),
        ("org/name@refs/pr/1", HubId("org/name", "refs/pr/1")),
    ],
)
def test_hub_ids_parse(source: str, expected: HubId) -> None:
    assert parse_hub_id(source) == expected
    assert str(expected) == source


@pytest.mark.parametrize(
    "source",
    ["./model", "../models/x", "/abs/model", "~/model", ".", "..", "builtin:tiny-idefics3"],
)
def test_folders_and_builtins_are_not_hub_ids(source: str) -> None:
    assert parse_hub_id(source) is None


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("org/name@", "empty revision after '@'"),
        ("gpt2", "is not of the form org/name"),
        ("a/b/c", "is not of the form org/name"),
        ("", "empty model source"),
        ("org/na me", "is not a valid org/name"),
        ("org/-name", "is not a valid org/name"),
        ("org/name-", "is not a valid org/name"),
        ("org--x/name", "is not a valid org/name"),
        ("org/na..me", "is not a valid org/name"),
        ("org/caf\u00e9", "is not a valid org/name"),
        ("org/" + "n" * 97, "is not a valid org/name"),
        ("org/name@bad rev", "is not a branch, tag or commit"),
        ("org/name@../../etc", "is not a branch, tag or commit"),
        ("org/name@/abs", "is not a branch, tag or commit"),
        ("org/name@a@b", "is not a branch, tag or commit"),
        ("org/name@branch/", "is not a branch, tag or commit"),
    ],
)
def test_bad_hub_ids_are_refused_by_name(source: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        parse_hub_id(source)
    if source:
        assert repr(source) in str(info.value)
    assert not CLASS_NAME.search(str(info.value))


# --- hub resolution (offline) ---------------------------------------------------------------


def test_main_resolves_to_the_cached_snapshot(
    hf_cache: Path, model: Path, connections: list[Any]
) -> None:
    make_hub_cache(model, hf_cache, "org/tiny")
    resolved = resolve("org/tiny")
    root = hf_cache.resolve() / "models--org--tiny"
    assert resolved.mount_root == root == repo_cache_folder("org/tiny")
    assert resolved.path == root / "snapshots" / COMMIT
    assert resolved.in_mount == f"snapshots/{COMMIT}"
    assert resolved.mount_root / resolved.in_mount == resolved.path
    assert resolved.revision == COMMIT
    assert resolved.config == CONFIG
    assert connections == []  # offline: not even loopback


def test_snapshot_files_are_relative_links_into_the_blobs(hf_cache: Path, model: Path) -> None:
    make_hub_cache(model, hf_cache, "org/tiny")
    resolved = resolve("org/tiny")
    weights = resolved.path / "model.safetensors"
    deep = resolved.path / "processor" / "deep" / "notes.txt"
    assert weights.read_bytes() == WEIGHTS
    assert deep.read_text() == "deep file"
    assert os.readlink(weights) == "../../blobs/" + blob_name("model.safetensors", WEIGHTS)
    assert os.readlink(deep).startswith("../../../../blobs/")
    # what a container sees: only mount_root, moved elsewhere, links still resolve
    moved = resolved.mount_root.parent / "elsewhere"
    shutil.copytree(resolved.mount_root, moved, symlinks=True)
    assert (moved / resolved.in_mount / "model.safetensors").read_bytes() == WEIGHTS


def test_blobs_are_named_as_the_hub_names_them(hf_cache: Path, model: Path) -> None:
    make_hub_cache(model, hf_cache, "org/tiny")
    blobs = {p.name for p in (hf_cache / "models--org--tiny" / "blobs").iterdir()}
    assert hashlib.sha256(WEIGHTS).hexdigest() in blobs  # LFS: sha256
    tokenizer = (model / "tokenizer.json").read_bytes()
    git_sha1 = hashlib.sha1(b"blob %d\0" % len(tokenizer) + tokenizer).hexdigest()
    assert git_sha1 in blobs  # git blob sha1 otherwise
    assert (hf_cache / "models--org--tiny" / "refs" / "main").read_text() == COMMIT


def test_a_commit_and_a_tag_resolve_to_their_snapshots(
    hf_cache: Path, tmp_path: Path, model: Path
) -> None:
    make_hub_cache(model, hf_cache, "org/tiny", refs=("v1.0",))
    newer = make_model(tmp_path / "newer", {**CONFIG, "vocab_size": 7})
    make_hub_cache(newer, hf_cache, "org/tiny", commit=OTHER, refs=("main",))
    assert resolve("org/tiny").revision == OTHER
    assert resolve("org/tiny@main").config["vocab_size"] == 7
    old = resolve(f"org/tiny@{COMMIT}")
    assert old.revision == COMMIT and old.config == CONFIG
    assert old.in_mount == f"snapshots/{COMMIT}"
    tagged = resolve("org/tiny@v1.0")
    assert tagged.revision == COMMIT and tagged.path == old.path


def test_a_missing_hub_id_names_id_revision_and_cache(hf_cache: Path) -> None:
    error = config_error("org/missing")
    assert (error.file, error.line, error.column) == (MODELS_CSV, 3, "source")
    assert "org/missing" in error.message
    assert "revision main" in error.message
    assert str(hf_cache) in error.message
    assert "not in the cache and the hub is offline" in error.message
    assert not CLASS_NAME.search(str(error))


@pytest.mark.parametrize("revision", ["v9.9", OTHER])
def test_a_missing_revision_names_id_revision_and_cache(
    hf_cache: Path, model: Path, revision: str
) -> None:
    make_hub_cache(model, hf_cache, "org/tiny")
    error = config_error(f"org/tiny@{revision}")
    assert "org/tiny" in error.message
    assert f"revision {revision}" in error.message
    assert str(hf_cache) in error.message
    assert "this revision is not in the cache" in error.message
    assert not CLASS_NAME.search(str(error))


def test_a_bad_config_in_a_snapshot_names_the_file(hf_cache: Path, model: Path) -> None:
    (model / "config.json").write_text('{"model_type": }')
    snapshot = make_hub_cache(model, hf_cache, "org/tiny")
    error = config_error("org/tiny")
    assert error.file == snapshot.resolve() / "config.json"
    assert "is not valid JSON" in error.message


def test_unreachable_hub_falls_back_to_the_cache(
    hf_cache: Path, model: Path, monkeypatch: pytest.MonkeyPatch, connections: list[Any]
) -> None:
    """Online mode against a closed loopback port: huggingface_hub's own fallback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    assert not hub_offline()
    make_hub_cache(model, hf_cache, "org/tiny")
    assert resolve("org/tiny").revision == COMMIT
    assert ("127.0.0.1", port) in connections  # it did try the hub first
    error = config_error("org/missing")
    assert "org/missing" in error.message and str(hf_cache) in error.message
    assert "the hub cannot be reached" in error.message
    assert not CLASS_NAME.search(str(error))


# --- environment read at call time ----------------------------------------------------------


def test_the_cache_dir_follows_the_environment_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    assert hub_cache_dir() == Path(constants.HF_HUB_CACHE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HUGGINGFACE_HUB_CACHE", str(tmp_path / "legacy"))
    assert hub_cache_dir() == tmp_path / "legacy"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert hub_cache_dir() == tmp_path / "hub"


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, False), ({"HF_HUB_OFFLINE": "1"}, True), ({"HF_HUB_OFFLINE": "0"}, False),
     ({"HF_HUB_OFFLINE": "yes"}, True), ({"TRANSFORMERS_OFFLINE": "1"}, True)],
)  # fmt: skip
def test_offline_follows_the_environment_now(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: bool
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert hub_offline() is expected


def test_offline_at_import_stays_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert hub_offline()


# --- folders --------------------------------------------------------------------------------


def test_folder_revision_is_stable_and_ignores_location(tmp_path: Path, model: Path) -> None:
    first = folder_revision(model)
    assert re.fullmatch(r"sha256:[0-9a-f]{16}", first)
    assert folder_revision(model) == first
    assert folder_revision(shutil.copytree(model, tmp_path / "copy")) == first


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.mark.parametrize(
    ("change", "changes"),
    [
        (lambda m: (m / "config.json").write_text(json.dumps({**CONFIG, "x": 1})), True),
        (lambda m: (m / "model.safetensors").write_bytes(WEIGHTS + b"\0"), True),
        (lambda m: (m / "model-00002.safetensors").write_bytes(b"w"), True),
        (lambda m: (m / "model.safetensors").rename(m / "weights.safetensors"), True),
        (lambda m: (m / "processor" / "pytorch_model.bin").write_bytes(b"w"), True),
        (lambda m: (m / "model.safetensors.index.json").write_text("{}"), True),
        (lambda m: (m / "model.safetensors").write_bytes(bytes(len(WEIGHTS))), False),
        (lambda m: (m / "tokenizer.json").write_text('{"version": "2.0"}'), False),
        (lambda m: (m / "README.md").write_text("new"), False),
        (lambda m: (m / "processor" / "deep" / "notes.txt").write_text("changed"), False),
        (lambda m: write(m / ".cache" / "x.safetensors", b"w"), False),
    ],
)
def test_folder_revision_counts_config_and_weight_names_and_sizes(
    model: Path, change: Any, changes: bool
) -> None:
    before = folder_revision(model)
    change(model)
    assert (folder_revision(model) != before) is changes


def test_a_folder_resolves_to_itself(model: Path) -> None:
    resolved = resolve_folder(model)
    assert resolved.path == resolved.mount_root == model.resolve()
    assert resolved.in_mount == ""
    assert resolved.revision == folder_revision(model)
    assert resolved.config == CONFIG


def test_a_folder_without_config_has_an_empty_config(model: Path) -> None:
    (model / "config.json").unlink()
    assert resolve_folder(model).config == {}
    assert folder_revision(model).startswith("sha256:")


def test_a_snapshot_folder_is_mounted_from_its_repo(hf_cache: Path, model: Path) -> None:
    snapshot = make_hub_cache(model, hf_cache, "org/tiny")
    resolved = resolve_folder(snapshot)
    assert resolved.mount_root == (hf_cache / "models--org--tiny").resolve()
    assert resolved.in_mount == f"snapshots/{COMMIT}"
    assert resolved.revision == folder_revision(model)  # links followed: same sizes


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_folder_that_is_not_one_is_a_config_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "model"
    if kind == "file":
        path.write_text("x")
    message = "is not a folder" if kind == "file" else "does not exist"
    with pytest.raises(ConfigError, match=message) as info:
        resolve_folder(path, file=MODELS_CSV, line=2)
    assert (info.value.file, info.value.line, info.value.column) == (MODELS_CSV, 2, "source")
    assert str(path) in info.value.message


# --- config.json ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        (b'{\n  "a": 1,\n  "b": }', "is not valid JSON: Expecting value (column 8)", 3),
        (b"[1, 2]", "holds a JSON list, not an object", None),
        (b'"text"', "holds a JSON str, not an object", None),
        (b'{"a": "\xff"}', "is not UTF-8 text", None),
        (b"", "is not valid JSON", 1),
    ],
)
def test_a_bad_config_names_the_file(
    tmp_path: Path, content: bytes, message: str, line: int | None
) -> None:
    (tmp_path / "config.json").write_bytes(content)
    with pytest.raises(ConfigError) as info:
        read_model_config(tmp_path)
    assert info.value.file == tmp_path / "config.json"
    assert info.value.line == line
    assert message in info.value.message
    assert str(tmp_path / "config.json") in str(info.value)


def test_an_oversized_config_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modelsource, "MAX_CONFIG_BYTES", 1024 * 1024)
    (tmp_path / "config.json").write_text(json.dumps({"pad": "x" * (1024 * 1024)}))
    with pytest.raises(ConfigError, match="is larger than 1 MiB"):
        read_model_config(tmp_path)


def test_a_broken_config_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").symlink_to(tmp_path / "gone.json")
    with pytest.raises(ConfigError, match="is a broken link"):
        read_model_config(tmp_path)


def test_a_missing_config_reads_empty(tmp_path: Path) -> None:
    assert read_model_config(tmp_path) == {}


# --- remote code ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"auto_map": {"AutoConfig": "configuration_x.XConfig"}}, True),
        ({"auto_map": {"AutoModel": "other/repo--modeling_x.XModel"}}, True),
        ({"auto_map": {}}, False),
        ({"model_type": "idefics3"}, False),
        ({}, False),
    ],
)
def test_remote_code_is_an_auto_map(config: dict[str, Any], expected: bool) -> None:
    assert needs_remote_code(config) is expected
