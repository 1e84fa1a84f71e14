"""Property: the CSV and manifest parsers load any text or raise ConfigError, nothing else."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_vlmhb.cases import load_cases
from pytest_vlmhb.config import Settings
from pytest_vlmhb.errors import ConfigError
from pytest_vlmhb.tasks.manifest import load_manifest
from pytest_vlmhb.tasks.types import DocVQA

MODELS = "name,source\nm1,builtin:tiny-idefics3\n"
TASKS = "name,type,data\nvqa,docvqa,data.jsonl\n"
csv_like = st.one_of(
    st.text(max_size=300),
    st.lists(
        st.lists(
            st.sampled_from(
                [
                    "model",
                    "task",
                    "backend",
                    "m1",
                    "vqa",
                    "hf",
                    "id",
                    "min_anls",
                    "0.5",
                    "x",
                    '"',
                    "concurrency",
                    "-1",
                    "{",
                    "request_params",
                    '{"a": 1}',
                    "",
                    "\ufeff",
                    "max_tokens",
                    "limit",
                    "nan",
                    "launcher",
                    "auto",
                    "external",
                ]
            ),
            max_size=6,
        ).map(",".join),
        max_size=5,
    ).map("\n".join),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(config=csv_like, raw=st.binary(max_size=40))
def test_user_config_loads_or_raises_config_error(config: str, raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "models.csv").write_text(MODELS)
        (root / "tasks.csv").write_text(TASKS)
        path = root / "user_config.csv"
        path.write_bytes(config.encode("utf-8", "surrogatepass") + raw)
        settings_ = Settings(
            config=path,
            output=root / "o",
            limit=None,
            cache=root / "c",
            models=None,
            tasks=None,
            startup_timeout=1,
            request_timeout=1,
        )
        with contextlib.suppress(ConfigError):
            load_cases(settings_)


json_like = st.lists(
    st.one_of(
        st.text(max_size=80),
        st.sampled_from(
            [
                '{"id": 1, "image": "a.png", "question": "q", "answers": ["a"]}',
                '{"id": "x", "image": "a.png", "question": "{q}", "answers": []}',
                '{"id": "x"}',
                "[]",
                "null",
                '{"id": "x", "image": 3, "question": "q", "answers": "a"}',
            ]
        ),
    ),
    max_size=6,
).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(text=json_like, prompt=st.sampled_from(["{question}", "{nope}", "{0}", "{", "plain"]))
def test_manifest_loads_or_raises_config_error(text: str, prompt: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.jsonl"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        with contextlib.suppress(ConfigError):
            load_manifest(path, DocVQA(), prompt)
