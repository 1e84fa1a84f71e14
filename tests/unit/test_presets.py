"""Presets and hf:/parquet: sources: small parquet copies in the published layouts,
read through ``datasets.load_dataset`` like the hub, materialised into the cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# numpy refuses a second import in one process: load it before any pytester run can
# unload it
import datasets
import pytest

from pytest_vlmhb import registry
from pytest_vlmhb.errors import ConfigError
from pytest_vlmhb.tasks.hub import DataSource, HubUnreachable, parse_source
from pytest_vlmhb.tasks.manifest import Sample, load_manifest
from pytest_vlmhb.tasks.presets import load_preset
from pytest_vlmhb.tasks.sources import resolve_manifest
from tests import preset_parquet as pq

DOCVQA_ROWS = [
    ("49153", "What is the date?", ["1/8/93", "January 8, 1993"]),
    ("24580", "Who signed it?", ["J. Smith"]),
    ("57349", " What is the total? ", ["$1,000"]),
]


@pytest.fixture(autouse=True)
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own datasets cache (nothing leaks between tests)."""

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")


def load(
    data: str,
    task_type: str,
    base: Path,
    cache: Path,
    preset: str | None = None,
    prompt: str | None = None,
) -> list[Sample]:
    manifest = resolve_manifest(data, task_type, base, cache, preset=preset)
    task = registry.load(registry.TASKS, task_type)()
    template = prompt or (load_preset(preset).prompt if preset else task.default_prompt)
    return load_manifest(manifest, task, template)


def test_docvqa_val_from_a_local_copy_in_the_hub_layout(tmp_path: Path) -> None:
    pq.docvqa(tmp_path / "DocVQA-copy", DOCVQA_ROWS)
    samples = load(
        "parquet:DocVQA-copy", "docvqa", tmp_path, tmp_path / "cache", preset="docvqa_val"
    )
    assert [s.id for s in samples] == ["49153", "24580", "57349"]
    assert samples[0].prompt == (
        "What is the date?\nAnswer the question using a single word or phrase."
    )
    assert samples[2].prompt.startswith(" What is the total? \n")  # DocVQA keeps the raw question
    assert samples[0].reference == {"answers": ["1/8/93", "January 8, 1993"]}
    assert samples[0].image.read_bytes() == pq.png("What is the date?")
    assert samples[0].category is None
    assert str(samples[0].image).startswith(str(tmp_path / "cache" / "data" / "hub"))


def test_materialised_split_is_reused_and_rebuilt_when_the_copy_changes(tmp_path: Path) -> None:
    pq.docvqa(tmp_path / "copy", DOCVQA_ROWS)
    first = resolve_manifest(
        "parquet:copy", "docvqa", tmp_path, tmp_path / "c", preset="docvqa_val"
    )
    stamp = first.stat().st_mtime_ns
    again = resolve_manifest(
        "parquet:copy", "docvqa", tmp_path, tmp_path / "c", preset="docvqa_val"
    )
    assert again == first and again.stat().st_mtime_ns == stamp
    pq.docvqa(tmp_path / "copy", DOCVQA_ROWS[:2])
    changed = resolve_manifest(
        "parquet:copy", "docvqa", tmp_path, tmp_path / "c", preset="docvqa_val"
    )
    assert changed != first and len(changed.read_text().splitlines()) == 2


def test_infovqa_reads_its_own_config_folder(tmp_path: Path) -> None:
    pq.docvqa(tmp_path / "snap", DOCVQA_ROWS[:1], config="DocVQA")
    pq.docvqa(tmp_path / "snap", [("7", "How many?", ["3"])], config="InfographicVQA")
    samples = load("parquet:snap", "docvqa", tmp_path, tmp_path / "c", preset="infovqa_val")
    assert [(s.id, s.reference["answers"]) for s in samples] == [("7", ["3"])]


def test_chartqa_type_becomes_the_category(tmp_path: Path) -> None:
    pq.chartqa(
        tmp_path / "chart",
        [("human_test", "How many bars?", "5"), ("augmented_test", "Max value?", "45%")],
    )
    samples = load("parquet:chart", "chartqa", tmp_path, tmp_path / "c", preset="chartqa_test")
    assert [s.id for s in samples] == ["0", "1"]  # row index
    assert [s.category for s in samples] == ["human_test", "augmented_test"]
    assert samples[1].reference == {"answers": ["45%"]}
    assert samples[0].prompt == "How many bars?\nAnswer the question with a single word."


def test_ocrbench_strips_the_question_and_keeps_dataset_and_type(tmp_path: Path) -> None:
    pq.ocrbench(
        tmp_path / "ocr",
        [
            ("IIIT5K", "  what is written in the image?\n", "Regular Text Recognition", ["hello"]),
            (
                "HME100k",
                "Please write out the expression.",
                "Handwritten Mathematical Expression Recognition",
                ["x ^ { 2 }"],
            ),
        ],
    )
    samples = load("parquet:ocr", "ocrbench", tmp_path, tmp_path / "c", preset="ocrbench")
    assert samples[0].prompt == "what is written in the image?"
    assert samples[0].reference == {"answers": ["hello"], "dataset": "IIIT5K"}
    assert samples[1].category == "Handwritten Mathematical Expression Recognition"


def test_cord_fields_come_from_gt_parse_and_prompt_is_ccocr(tmp_path: Path) -> None:
    single = {
        "menu": {"nm": "LATTE", "cnt": "1", "price": "4,500"},
        "total": {"total_price": "4,500"},
    }
    several = {"menu": [{"nm": "TEA", "price": "2,000"}, {"nm": "CAKE", "price": "3,000"}]}
    pq.cord(tmp_path / "cord", [single, several])
    samples = load("parquet:cord", "kie", tmp_path, tmp_path / "c", preset="cord_kie")
    assert [s.reference["fields"] for s in samples] == [single, several]
    assert samples[0].prompt.startswith("Suppose you are an information extraction expert.")
    schema = json.loads(samples[0].prompt.split("as follows: ", 1)[1])
    assert set(schema) == {"menu", "void_menu", "sub_total", "total"}
    assert samples[0].image.read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG kept as it is


def test_sroie_takes_only_its_ccocr_subset(tmp_path: Path) -> None:
    gold = {"company": "ABC SDN BHD", "date": "01/01/2019", "address": "KL", "total": "9.00"}
    pq.ccocr_kie(
        tmp_path / "ccocr",
        [
            ("sroie2019_word_347", "X51.jpg", gold),
            ("CORD", "cord_1.png", {"menu": []}),
            ("sroie2019_word_347", "X52.jpg", gold),
        ],
    )
    samples = load("parquet:ccocr", "kie", tmp_path, tmp_path / "c", preset="sroie_kie")
    assert [s.id for s in samples] == ["X51.jpg", "X52.jpg"]
    assert samples[0].reference == {"fields": gold}
    assert samples[0].prompt.startswith('Extract: {"company"')  # the row's own prompt


def test_plain_parquet_source_uses_the_task_type_field_names(tmp_path: Path) -> None:

    pq.write(
        tmp_path / "mine" / "train-00000-of-00001.parquet",
        {
            "id": ["a", "b"],
            "question": ["q1", "q2"],
            "answers": [["x"], ["y"]],
            "image": [{"bytes": pq.png(), "path": None}] * 2,
        },
        {
            "id": datasets.Value("string"),
            "question": datasets.Value("string"),
            "answers": datasets.Sequence(datasets.Value("string")),
            "image": datasets.Image(),
        },
    )
    samples = load("parquet:mine@train", "docvqa", tmp_path, tmp_path / "c")
    assert [(s.id, s.reference) for s in samples] == [
        ("a", {"answers": ["x"]}),
        ("b", {"answers": ["y"]}),
    ]


def test_missing_required_column_names_dataset_split_and_column(tmp_path: Path) -> None:

    pq.write(
        tmp_path / "bad" / "data" / "test-00000-of-00001.parquet",
        {"type": ["human_test"], "question": ["q"], "image": [{"bytes": pq.png(), "path": None}]},
        {
            "type": datasets.Value("string"),
            "question": datasets.Value("string"),
            "image": datasets.Image(),
        },
    )
    with pytest.raises(ConfigError) as info:
        load("parquet:bad", "chartqa", tmp_path, tmp_path / "c", preset="chartqa_test")
    err = info.value
    assert err.column == "answer" and err.allowed == ["image", "question", "type"]
    assert str(tmp_path / "bad") in err.message and "split 'test'" in err.message


def test_split_that_does_not_exist_lists_the_splits(tmp_path: Path) -> None:
    pq.docvqa(tmp_path / "copy", DOCVQA_ROWS, split="test")
    with pytest.raises(ConfigError) as info:
        load("parquet:copy", "docvqa", tmp_path, tmp_path / "c", preset="docvqa_val")
    assert "split 'validation'" in info.value.message and "no such split" in info.value.message
    assert info.value.allowed == ["test"]


def test_row_with_a_bad_reference_names_dataset_split_row_and_column(tmp_path: Path) -> None:

    pq.write(
        tmp_path / "cord" / "data" / "test-00000-of-00001.parquet",
        {
            "image": [{"bytes": pq.png(), "path": None}] * 2,
            "ground_truth": [json.dumps({"gt_parse": {"menu": []}}), "{not json"],
        },
        {"image": datasets.Image(), "ground_truth": datasets.Value("string")},
    )
    with pytest.raises(ConfigError) as info:
        load("parquet:cord", "kie", tmp_path, tmp_path / "c", preset="cord_kie")
    assert info.value.column == "ground_truth"
    assert "split 'test', row 1" in info.value.message and "not JSON" in info.value.message


def test_image_that_fails_to_decode_fails_only_its_sample(tmp_path: Path) -> None:
    images = [pq.png("a"), pq.png("b")[:40], pq.png("c")]  # the second is truncated
    pq.docvqa(tmp_path / "copy", DOCVQA_ROWS, images=images)
    samples = load("parquet:copy", "docvqa", tmp_path, tmp_path / "c", preset="docvqa_val")
    assert len(samples) == 3
    assert samples[0].image.read_bytes() == images[0]
    assert samples[2].image.read_bytes() == images[2]
    assert samples[0].error is None and samples[2].error is None
    message = samples[1].error or ""
    assert str(tmp_path / "copy") in message and "split 'validation', row 1" in message
    assert "does not decode" in message


def test_image_error_reaches_the_runner_as_a_sample_error(tmp_path: Path) -> None:
    """The request builder raises a SampleError that keeps the row."""
    from pytest_vlmhb.chat_request import request_body
    from pytest_vlmhb.errors import SampleError

    pq.docvqa(tmp_path / "copy", DOCVQA_ROWS[:1], images=[b"\x89PNG\r\n\x1a\nbroken"])
    (sample,) = load("parquet:copy", "docvqa", tmp_path, tmp_path / "c", preset="docvqa_val")
    with pytest.raises(SampleError, match=r"split 'validation', row 0: image does not decode"):
        request_body(None, sample, "m", None, tmp_path)  # type: ignore[arg-type]  # fails first


def test_offline_hub_dataset_not_in_cache_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    with pytest.raises(HubUnreachable) as info:
        resolve_manifest("preset:docvqa_val", "docvqa", tmp_path, tmp_path / "c")
    message = info.value.message
    # both the lmms-lab repository and lmms-eval's current mirror were tried
    assert "lmms-lab/DocVQA (config DocVQA), split 'validation'" in message
    assert "lmms-lab-encoder/DocVQA" in message
    assert "offline" in message and "parquet:DIR/DocVQA" in message


def test_hub_source_spec_parsing(tmp_path: Path) -> None:
    assert parse_source("hf:lmms-lab/DocVQA:DocVQA@validation#abc123", tmp_path) == DataSource(
        "hf", "lmms-lab/DocVQA", "DocVQA", "validation", "abc123"
    )
    assert parse_source("hf:echo840/OCRBench@test", tmp_path) == DataSource(
        "hf", "echo840/OCRBench", None, "test", None
    )
    assert parse_source("parquet:copy@validation", tmp_path) == DataSource(
        "parquet", str(tmp_path / "copy"), None, "validation"
    )
    with pytest.raises(ConfigError, match="hf:<repo>"):
        parse_source("hf:lmms-lab/DocVQA", tmp_path)  # no split


def test_missing_datasets_library_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails
    with pytest.raises(ConfigError, match=r"pytest-vlmhb\[datasets\]"):
        resolve_manifest("parquet:x", "docvqa", tmp_path, tmp_path / "c", preset="docvqa_val")


def test_every_registered_preset_is_consistent() -> None:
    for name in registry.names(registry.PRESETS):
        preset = load_preset(name)
        task: Any = registry.load(registry.TASKS, preset.task_type)()
        assert preset.name == name and preset.size > 0 and preset.max_tokens > 0
        for metric in preset.metrics:
            registry.load(registry.METRICS, metric)
        assert preset.hub_sources()[0].startswith(f"hf:{preset.repo}")
        assert set(task.input_fields) <= {"question"}
