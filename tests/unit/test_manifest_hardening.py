"""Hostile manifests: image paths and files, field types, prompt templates.

Per-sample problems (an image outside the folder, not a regular file, too big)
set ``Sample.error`` on that sample only; bad field types and bad templates are
ConfigErrors naming manifest, line and field.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_vlmhb.errors import ConfigError, SampleError
from pytest_vlmhb.images import MAX_IMAGE_BYTES, image_data_url, read_image
from pytest_vlmhb.tasks.base import TaskType
from pytest_vlmhb.tasks.benchmark_types import OCRBenchTask
from pytest_vlmhb.tasks.manifest import Sample, load_manifest, resolve_member
from pytest_vlmhb.tasks.templates import check_template, render_template, template_fields
from pytest_vlmhb.tasks.types import KIE, OCR, ChartQA, DocClassification, DocVQA

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
MIB = 1024 * 1024


def qa(sample_id: Any, image: Any = "good.png", **extra: Any) -> dict[str, Any]:
    return {"id": sample_id, "image": image, "question": "Q?", "answers": ["a"], **extra}


def write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """``tmp/data`` with good.png inside, ``tmp/outside/secret.png`` next to it."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "good.png").write_bytes(PNG)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.png").write_bytes(b"SECRET")
    return tmp_path / "data"


def load_middle(
    data: Path, image: str, task: TaskType | None = None, template: str = "{question}"
) -> tuple[Path, list[Sample]]:
    """A manifest whose line 2 names ``image`` between two good lines."""
    manifest = write(data / "m.jsonl", [qa("a"), qa("b", image), qa("c")])
    samples = load_manifest(manifest, task or DocVQA(), template)
    assert [s.id for s in samples] == ["a", "b", "c"]
    assert samples[0].error is None and samples[2].error is None  # the others load fine
    assert samples[0].image == Path(os.path.realpath(data / "good.png"))
    return manifest, samples


# -- 1. paths and files, checked at load ------------------------------------------------------


def link(target: str) -> Callable[[Path], str]:
    def make(data: Path) -> str:
        (data / "l.png").symlink_to(target)
        return "l.png"

    return make


def chain(data: Path) -> str:
    (data / "b.png").symlink_to(data.parent / "outside" / "secret.png")
    (data / "a.png").symlink_to("b.png")
    return "a.png"


def folder_link(data: Path) -> str:
    (data / "sub").symlink_to(data.parent / "outside", target_is_directory=True)
    return "sub/secret.png"


def nested_folder_link(data: Path) -> str:
    (data / "real").mkdir()
    (data / "real" / "up").symlink_to("../..", target_is_directory=True)
    return "real/up/outside/secret.png"


def absolute_outside(data: Path) -> str:
    return str(data.parent / "outside" / "secret.png")


ESCAPES: dict[str, Callable[[Path], str]] = {
    "symlink-to-outside-file": link("../outside/secret.png"),
    "absolute-symlink-to-outside-file": lambda d: link(str(d.parent / "outside" / "secret.png"))(d),
    "symlinked-folder": folder_link,
    "symlink-on-nested-folder": nested_folder_link,
    "chain-inside-to-outside": chain,
    "dangling-symlink-outside": link("../outside/nothing.png"),
    "symlink-to-dev-zero": link("/dev/zero"),
    "dotdot": lambda d: "../outside/secret.png",
    "dotdot-after-subfolder": lambda d: "x/../../outside/secret.png",
    "absolute-path-outside": absolute_outside,
    "absolute-etc-passwd": lambda d: "/etc/passwd",
}


@pytest.mark.parametrize("make", ESCAPES.values(), ids=ESCAPES.keys())
def test_a_path_leaving_the_folder_fails_its_sample_only(
    data: Path, make: Callable[[Path], str]
) -> None:
    value = make(data)
    manifest, samples = load_middle(data, value)
    error = samples[1].error or ""
    assert error.startswith(
        f"{manifest}:2: image path {value} escapes the dataset folder {os.path.realpath(data)} "
    ), error


def folder_alias(data: Path) -> str:
    (data / "pics").symlink_to(".", target_is_directory=True)
    return "pics/good.png"


INSIDE: dict[str, Callable[[Path], str]] = {
    "plain": lambda d: "good.png",
    "symlink-inside-to-inside": link("good.png"),
    "symlink-up-and-back-in": link("../data/good.png"),
    "absolute-path-inside": lambda d: str(d / "good.png"),
    "dotdot-back-in": lambda d: "../data/good.png",
    "symlinked-subfolder-inside": folder_alias,
}


@pytest.mark.parametrize("make", INSIDE.values(), ids=INSIDE.keys())
def test_a_path_staying_inside_is_read_through_its_real_path(
    data: Path, make: Callable[[Path], str]
) -> None:
    _, samples = load_middle(data, make(data))
    assert samples[1].error is None
    assert samples[1].image == Path(os.path.realpath(data / "good.png"))
    assert image_data_url(samples[1].image).startswith("data:image/png;base64,")


def test_a_manifest_reached_through_a_symlinked_folder_loads(data: Path) -> None:
    write(data / "m.jsonl", [qa("a"), qa("b")])
    (data.parent / "alias").symlink_to(data, target_is_directory=True)
    samples = load_manifest(data.parent / "alias" / "m.jsonl", DocVQA(), "{question}")
    assert [s.error for s in samples] == [None, None]


def fifo(data: Path) -> None:
    os.mkfifo(data / "x.png")


def directory(data: Path) -> None:
    (data / "x.png").mkdir()


def char_device(data: Path) -> None:
    try:
        os.mknod(data / "x.png", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero
    except PermissionError:
        pytest.skip("mknod needs root")


def unix_socket(data: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(data / "x.png"))
    except OSError as exc:  # path too long for sun_path
        pytest.skip(f"cannot bind a unix socket here: {exc}")
    finally:
        sock.close()


def sparse(size: int) -> Callable[[Path], None]:
    def make(data: Path) -> None:
        with open(data / "x.png", "wb") as out:
            out.truncate(size)

    return make


NOT_READABLE: dict[str, tuple[Callable[[Path], None], str]] = {
    "fifo": (fifo, "is a FIFO, not a regular file"),
    "directory": (directory, "is a directory, not a regular file"),
    "char-device": (char_device, "is a character device, not a regular file"),
    "socket": (unix_socket, "is a socket, not a regular file"),
    "over-64-mib-by-one": (
        sparse(MAX_IMAGE_BYTES + 1),
        f"is {MAX_IMAGE_BYTES + 1} bytes, over the 64 MiB limit",
    ),
    "70-mib": (sparse(70 * MIB), "is 70.0 MiB, over the 64 MiB limit"),
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("make", "problem"), NOT_READABLE.values(), ids=NOT_READABLE.keys())
def test_a_file_that_is_not_a_small_regular_file_fails_its_sample(
    data: Path, make: Callable[[Path], None], problem: str
) -> None:
    make(data)
    manifest, samples = load_middle(data, "x.png")
    assert samples[1].error == f"{manifest}:2: image x.png {problem}"
    with pytest.raises(SampleError, match=re.escape(problem)):  # and if read anyway
        read_image(data / "x.png")


@pytest.mark.timeout(10)
def test_a_symlink_inside_to_a_fifo_inside_is_named_as_a_fifo(data: Path) -> None:
    os.mkfifo(data / "pipe")
    (data / "x.png").symlink_to("pipe")
    manifest, samples = load_middle(data, "x.png")
    assert samples[1].error == f"{manifest}:2: image x.png is a FIFO, not a regular file"


def test_exactly_64_mib_is_allowed(data: Path) -> None:
    sparse(MAX_IMAGE_BYTES)(data)
    _, samples = load_middle(data, "x.png")
    assert samples[1].error is None
    assert len(read_image(samples[1].image)) == MAX_IMAGE_BYTES


def test_a_missing_image_fails_its_item_when_read(data: Path) -> None:
    _, samples = load_middle(data, "nope.png")
    assert (
        samples[1].error is None and samples[1].image == Path(os.path.realpath(data)) / "nope.png"
    )
    with pytest.raises(SampleError, match=r"^image not found: .*nope\.png$"):
        image_data_url(samples[1].image)


def test_a_symlink_loop_and_a_nul_byte_fail_their_samples(data: Path) -> None:
    (data / "loop1").symlink_to("loop2")
    (data / "loop2").symlink_to("loop1")
    manifest, samples = load_middle(data, "loop1")
    assert samples[1].error == (
        f"{manifest}:2: image loop1 cannot be read: Too many levels of symbolic links"
    )
    manifest, samples = load_middle(data, "a\x00.png")
    assert samples[1].error == f"{manifest}:2: image path 'a\\x00.png' contains a NUL character"


def test_image_error_of_a_materialised_row_wins(data: Path) -> None:
    manifest = write(data / "m.jsonl", [qa("a", "gone.png", image_error="row 0: bad")])
    (sample,) = load_manifest(manifest, DocVQA(), "{question}")
    assert sample.error == "row 0: bad"


def test_resolve_member_names_any_field(data: Path) -> None:
    manifest = data / "m.jsonl"
    assert resolve_member(manifest, 7, "good.png", "document") == data / "good.png"
    assert resolve_member(manifest, 7, "../outside/secret.png", "images[1]") == (
        f"{manifest}:7: images[1] path ../outside/secret.png escapes the dataset folder "
        f"{data} (it is {data.parent / 'outside' / 'secret.png'})"
    )


# -- 1b. the bounded read at request time ----------------------------------------------------


@pytest.mark.timeout(10)
def test_a_file_swapped_for_a_fifo_after_load_does_not_block(data: Path) -> None:
    (data / "x.png").write_bytes(PNG)
    _, samples = load_middle(data, "x.png")
    assert samples[1].error is None
    (data / "x.png").unlink()
    os.mkfifo(data / "x.png")
    with pytest.raises(SampleError, match=r"x\.png is a FIFO, not a regular file"):
        image_data_url(samples[1].image)


def test_a_file_grown_after_load_is_refused_when_read(data: Path) -> None:
    (data / "x.png").write_bytes(PNG)
    _, samples = load_middle(data, "x.png")
    sparse(MAX_IMAGE_BYTES + 1)(data)
    with pytest.raises(SampleError, match="over the 64 MiB limit"):
        image_data_url(samples[1].image)


@pytest.mark.timeout(10)
def test_read_image_bound_and_devices(data: Path) -> None:
    (data / "x.png").write_bytes(b"x" * 11)
    assert read_image(data / "x.png", limit=11) == b"x" * 11
    with pytest.raises(SampleError, match="over the"):
        read_image(data / "x.png", limit=10)
    with pytest.raises(SampleError, match="is a character device, not a regular file"):
        read_image(Path("/dev/zero"))


# -- 2. field types ---------------------------------------------------------------------------

BAD_FIELDS: dict[str, tuple[TaskType, dict[str, Any], str | None, str]] = {
    "answers-string": (
        DocVQA(),
        qa("b", answers="Paris"),
        "answers",
        "Input should be a valid list (got 'Paris')",
    ),
    "answers-number": (
        DocVQA(),
        qa("b", answers=5),
        "answers",
        "Input should be a valid list (got 5)",
    ),
    "answers-null": (
        DocVQA(),
        qa("b", answers=None),
        "answers",
        "Input should be a valid list (got None)",
    ),
    "answers-numbers": (
        ChartQA(),
        qa("b", answers=[1, "x"]),
        "answers[0]",
        "Input should be a valid string (got 1)",
    ),
    "answers-empty": (
        DocVQA(),
        qa("b", answers=[]),
        "answers",
        "List should have at least 1 item after validation, not 0 (got [])",
    ),
    "answers-dict": (
        DocVQA(),
        qa("b", answers={"a": "b"}),
        "answers",
        "Input should be a valid list (got {'a': 'b'})",
    ),
    "question-number": (
        DocVQA(),
        qa("b", question=7),
        "question",
        "Input should be a valid string (got 7)",
    ),
    "question-list": (
        DocVQA(),
        qa("b", question=["q"]),
        "question",
        "Input should be a valid string (got ['q'])",
    ),
    "question-empty": (
        DocVQA(),
        qa("b", question=""),
        "question",
        "String should have at least 1 character (got '')",
    ),
    "id-null": (
        DocVQA(),
        qa(None),
        "id",
        "Input should be a non-empty string or an integer (got None)",
    ),
    "id-bool": (
        DocVQA(),
        qa(True),
        "id",
        "Input should be a non-empty string or an integer (got True)",
    ),
    "id-float": (
        DocVQA(),
        qa(1.0),
        "id",
        "Input should be a non-empty string or an integer (got 1.0)",
    ),
    "id-list": (
        DocVQA(),
        qa(["b"]),
        "id",
        "Input should be a non-empty string or an integer (got ['b'])",
    ),
    "id-empty": (
        DocVQA(),
        qa(""),
        "id",
        "Input should be a non-empty string or an integer (got '')",
    ),
    "image-number": (DocVQA(), qa("b", 3), "image", "Input should be a valid string (got 3)"),
    "image-empty": (
        DocVQA(),
        qa("b", ""),
        "image",
        "String should have at least 1 character (got '')",
    ),
    "category-dict": (
        DocVQA(),
        qa("b", category={"a": 1}),
        "category",
        "Input should be a string or an integer (got {'a': 1})",
    ),
    "category-bool": (
        DocVQA(),
        qa("b", category=False),
        "category",
        "Input should be a string or an integer (got False)",
    ),
    "ocr-text-list": (
        OCR(),
        {"id": "b", "image": "good.png", "text": ["a"]},
        "text",
        "Input should be a valid string (got ['a'])",
    ),
    "ocr-text-null": (
        OCR(),
        {"id": "b", "image": "good.png", "text": None},
        "text",
        "Input should be a valid string (got None)",
    ),
    "kie-fields-string": (
        KIE(),
        {"id": "b", "image": "good.png", "fields": "total: 5"},
        "fields",
        "Input should be a valid dictionary (got 'total: 5')",
    ),
    "kie-fields-list": (
        KIE(),
        {"id": "b", "image": "good.png", "fields": [["a", 1]]},
        "fields",
        "Input should be a valid dictionary (got [['a', 1]])",
    ),
    "label-not-in-labels": (
        DocClassification(),
        {"id": "b", "image": "good.png", "label": "memo", "labels": ["invoice", "letter"]},
        "labels",
        "Input should contain the label 'memo' (got ['invoice', 'letter'])",
    ),
    "labels-string": (
        DocClassification(),
        {"id": "b", "image": "good.png", "label": "memo", "labels": "memo"},
        "labels",
        "Input should be a valid list (got 'memo')",
    ),
    "label-number": (
        DocClassification(),
        {"id": "b", "image": "good.png", "label": 1, "labels": ["1"]},
        "label",
        "Input should be a valid string (got 1)",
    ),
    "ocrbench-dataset-number": (
        OCRBenchTask(),
        qa("b", dataset=3),
        "dataset",
        "Input should be a valid string (got 3)",
    ),
    "question-missing": (
        DocVQA(),
        {"id": "b", "image": "good.png", "answers": ["a"]},
        None,
        "missing field 'question'; task type 'docvqa' needs the fields id, "
        "image (or images, or document), question, answers",
    ),
    "answers-missing": (
        DocVQA(),
        {"id": "b", "image": "good.png", "question": "q"},
        None,
        "missing field 'answers'; task type 'docvqa' needs the fields id, image "
        "(or images, or document), question, answers",
    ),
}


@pytest.mark.parametrize(
    ("task", "line", "column", "message"), BAD_FIELDS.values(), ids=BAD_FIELDS.keys()
)
def test_a_field_of_the_wrong_type_is_a_config_error_naming_line_and_field(
    data: Path, task: TaskType, line: dict[str, Any], column: str | None, message: str
) -> None:
    good = {
        "id": "a",
        "image": "good.png",
        "question": "Q?",
        "answers": ["a"],
        "text": "t",
        "fields": {"k": "v"},
        "label": "x",
        "labels": ["x"],
        "dataset": "d",
    }
    manifest = write(data / "m.jsonl", [good, line])
    with pytest.raises(ConfigError) as info:
        load_manifest(manifest, task, task.default_prompt)
    where = f"{manifest}:2: " + (f"column '{column}': " if column else "")
    assert str(info.value) == where + message
    assert (info.value.line, info.value.column) == (2, column)


def test_several_problems_on_a_line_are_counted(data: Path) -> None:
    manifest = write(data / "m.jsonl", [qa(None, answers="x", question=1)])
    with pytest.raises(ConfigError, match=r":1: column 'id': .*; 2 more problems on this line$"):
        load_manifest(manifest, DocVQA(), "{question}")


def test_duplicate_ids_across_string_and_integer(data: Path) -> None:
    manifest = write(data / "m.jsonl", [qa("1"), qa(1)])
    with pytest.raises(ConfigError) as info:
        load_manifest(manifest, DocVQA(), "{question}")
    assert (
        str(info.value) == f"{manifest}:2: column 'id': duplicate sample id '1' (first on line 1)"
    )


def test_well_typed_lines_load_with_extras_and_int_ids(data: Path) -> None:
    manifest = write(
        data / "m.jsonl",
        [
            qa(7, category=3, hint="look left"),
            qa("x", answers=["", "b"], category=None, hint=""),
        ],
    )
    samples = load_manifest(manifest, DocVQA(), "{question} ({hint})")
    assert [(s.id, s.category) for s in samples] == [("7", "3"), ("x", None)]
    assert samples[0].prompt == "Q? (look left)"
    assert samples[1].reference == {"answers": ["", "b"]}


def test_kie_accepts_nested_fields_and_lists(data: Path) -> None:
    fields = {
        "vendor": {"name": "A"},
        "items": [{"price": 1.5}],
        "paid": True,
        "tax": None,
        "empty": {},
    }
    manifest = write(data / "m.jsonl", [{"id": 1, "image": "good.png", "fields": fields}])
    (sample,) = load_manifest(manifest, KIE(), KIE.default_prompt)
    assert sample.reference == {"fields": fields}
    assert "vendor.name" in sample.prompt


# -- 3. prompt templates ----------------------------------------------------------------------

BAD_TEMPLATES = {
    "attribute": ("{question.__class__}", "field {question.__class__} is not a plain field name"),
    "mro": ("{question.__class__.__mro__}", "is not a plain field name"),
    "index": ("{question[0]}", "field {question[0]} is not a plain field name"),
    "conversion": ("{question!r}", "field {question!r} has a conversion (!r)"),
    "format-spec": ("{question:>5}", "field {question:>5} has a format spec (:>5)"),
    "nested-spec": ("{question:{answers}}", "has a format spec"),
    "positional-empty": ("Q: {}", "positional field {} is not allowed"),
    "positional-index": ("{0}", "positional field {0} is not allowed"),
    "json-braces": ('Answer as {"a": 1}', 'field {"a": 1} is not a plain field name'),
    "lone-open": ("{question", "expected '}' before end of string"),
    "lone-close": ("x } y", "Single '}' encountered"),
    "space-in-name": ("{ question }", "is not a plain field name"),
}


@pytest.mark.parametrize(("template", "problem"), BAD_TEMPLATES.values(), ids=BAD_TEMPLATES.keys())
def test_a_template_with_more_than_plain_names_is_refused(
    data: Path, template: str, problem: str
) -> None:
    message = check_template(template)
    assert message is not None and problem in message
    assert "write {{ and }} for literal braces" in message
    manifest = write(data / "m.jsonl", [qa("a")])
    with pytest.raises(ConfigError) as info:
        load_manifest(manifest, DocVQA(), template)
    assert str(info.value) == f"{manifest}: prompt template {template!r}: {message}"


def test_a_field_the_line_lacks_names_line_field_and_allowed(data: Path) -> None:
    manifest = write(data / "m.jsonl", [qa("a", hint="h"), qa("b")])
    with pytest.raises(ConfigError) as info:
        load_manifest(manifest, DocVQA(), "{question} {hint}")
    err = info.value
    assert (err.line, err.column) == (2, "hint")
    assert str(err) == (
        f"{manifest}:2: column 'hint': the prompt template '{{question}} "
        "{hint}' names the field 'hint', which this line lacks (allowed: "
        "answers, id, image, question)"
    )


def test_prompt_variables_count_as_fields(data: Path) -> None:
    manifest = write(
        data / "m.jsonl", [{"id": 1, "image": "good.png", "label": "a", "labels": ["a", "b"]}]
    )
    with pytest.raises(ConfigError) as info:
        load_manifest(manifest, DocClassification(), "Pick {label_list} {missing}")
    assert info.value.allowed == ["id", "image", "label", "label_list", "labels"]
    (ok,) = load_manifest(manifest, DocClassification(), "Pick {label_list}.")
    assert ok.prompt == "Pick a, b."


def test_literal_braces_and_braces_in_values_stay_literal(data: Path) -> None:
    manifest = write(data / "m.jsonl", [qa("a", question="{answers} {0.__class__}")])
    (sample,) = load_manifest(manifest, DocVQA(), "{{literal}} {question} {{")
    assert sample.prompt == "{literal} {answers} {0.__class__} {"


def test_template_helpers() -> None:
    assert check_template("{question}\nAnswer {{in}} one word.") is None
    assert check_template("no fields at all") is None
    assert template_fields("{a} {b} {a}") == ["a", "b"]
    assert render_template("{a}-{b}", {"a": 1, "b": [2]}) == "1-[2]"
    with pytest.raises(ValueError, match="positional"):
        render_template("{0}", {"0": 1})


def test_hostile_extra_keys_are_plain_data(data: Path) -> None:
    extras = {"__class__": 1, "model_config": 2, "__pydantic_extra__": 3, "copy": 4}
    manifest = write(data / "m.jsonl", [qa("a", **extras)])
    (sample,) = load_manifest(manifest, DocVQA(), "{id}: {question} {copy}")
    assert sample.prompt == "a: Q? 4"


def test_an_integer_too_long_to_convert_is_a_config_error(data: Path) -> None:
    manifest = data / "m.jsonl"
    manifest.write_text('{"id": 1' + "0" * 5000 + ', "image": "good.png"}\n')
    with pytest.raises(ConfigError, match=r"m\.jsonl:1: invalid JSON: Exceeds the limit"):
        load_manifest(manifest, DocVQA(), "{question}")
