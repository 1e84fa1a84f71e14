"""Dataset adapters: a published layout mapped onto a task type's manifest fields.

A preset names where a public benchmark lives on the Hugging Face hub, which
columns hold the sample id, image, question and references, which column
gives the sub-score category, and the prompt, ``max_tokens`` and metrics of
the reference harness (lmms-eval v0.7.2+, commit 75571cfe, for the VQA sets
and the multi-page ones; CC-OCR for KIE). Presets register under the
``vlmhb.presets`` entry point group, like task types; :class:`TypeLayout` is the adapter of a plain
``hf:``/``parquet:`` source whose columns already carry the manifest names.

A preset's answers are scored on lmms-eval's path from generated text to
score (:func:`reasoning.answer_to_score`: reasoning removal with the case's
``reasoning_tags``, then the whole-answer strip of its ``process_results``),
then its metric; tests/unit/test_lmms_eval_pipeline_parity.py checks every
registered preset against lmms-eval's own code, sample by sample.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .. import registry
from ..errors import ConfigError
from .base import TaskType
from .cells import decode_rgb, image_extension, per_cell, png
from .grids import concat_images

PRESET_PREFIX = "preset:"


class RowError(ValueError):
    """A dataset row that does not fit the adapter (names the column)."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(f"column {column!r}: {message}")
        self.column = column


class Layout:
    """How rows of one dataset layout become manifest records."""

    #: Identifies the mapping in the materialised cache key.
    key: str
    image_column: str = "image"
    #: A multi-image layout's columns, in order: a row's non-null cells become the
    #: sample's ``images`` (see :meth:`image_files`); empty: the one ``image_column``.
    image_columns: tuple[str, ...] = ()
    #: Columns every row needs besides the image(s).
    columns: tuple[str, ...] = ()
    category_column: str | None = None

    @property
    def all_image_columns(self) -> tuple[str, ...]:
        return self.image_columns or (self.image_column,)

    def image_files(self, cells: Sequence[tuple[str, bytes]]) -> list[tuple[bytes, str]]:
        """The files (bytes, extension) a multi-image row sends, from its non-null
        (column, encoded image) cells in order: each as it is, checked by decoding it.
        Raises (``CellError`` naming the column) on one that does not decode."""
        return per_cell(cells, lambda raw: (raw, image_extension(raw)))

    def accepts(self, row: Mapping[str, Any]) -> bool:
        """False for rows of the split that are not part of this benchmark."""
        return True

    def sample_id(self, row: Mapping[str, Any], index: int) -> str:
        return str(index)

    def fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Manifest fields (prompt inputs and references) of one row."""
        raise NotImplementedError

    def record(self, row: Mapping[str, Any], index: int) -> dict[str, Any]:
        """The manifest record of one row, without its image."""
        out = {"id": self.sample_id(row, index), **self.fields(row)}
        if self.category_column is not None:
            category = row.get(self.category_column)
            if category is not None:
                out["category"] = str(category)
        return out


class TypeLayout(Layout):
    """Columns named like the task type's manifest fields (``id`` optional)."""

    def __init__(self, task_type: TaskType) -> None:
        self.task = task_type
        self.key = f"type:{task_type.name}"
        self.columns = (*task_type.input_fields, *task_type.reference_fields)

    def sample_id(self, row: Mapping[str, Any], index: int) -> str:
        return str(row["id"]) if row.get("id") is not None else str(index)

    def fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {name: row[name] for name in self.columns}

    def record(self, row: Mapping[str, Any], index: int) -> dict[str, Any]:
        out = super().record(row, index)
        if row.get("category") is not None:
            out["category"] = str(row["category"])
        return out


class Preset(Layout):
    """A public benchmark: its hub location, layout, prompt and metrics."""

    name: ClassVar[str]
    #: Benchmark name used to match published reference scores.
    benchmark: ClassVar[str]
    task_type: ClassVar[str]
    repo: ClassVar[str]
    #: Other hub repositories with the same layout, tried in order after ``repo``.
    mirrors: ClassVar[tuple[str, ...]] = ()
    config: ClassVar[str | None] = None
    split: ClassVar[str]
    size: ClassVar[int]
    prompt: ClassVar[str]
    max_tokens: ClassVar[int]
    metrics: ClassVar[tuple[str, ...]]
    #: Bump when :meth:`fields` changes, so materialised copies are rebuilt.
    version: ClassVar[int] = 1

    @property
    def key(self) -> str:  # type: ignore[override]
        return f"preset:{self.name}:v{self.version}"

    def hub_sources(self) -> list[str]:
        """``hf:`` specs of the repository and its mirrors."""
        config = f":{self.config}" if self.config else ""
        return [f"hf:{repo}{config}@{self.split}" for repo in (self.repo, *self.mirrors)]


def _text(row: Mapping[str, Any], column: str) -> str:
    value = row.get(column)
    if not isinstance(value, str):
        raise RowError(column, f"expected a string, got {type(value).__name__}")
    return value


def _text_list(row: Mapping[str, Any], column: str) -> list[str]:
    value = row.get(column)
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise RowError(column, f"expected a list of strings, got {type(value).__name__}")
    return list(value)


class DocVQAVal(Preset):
    """DocVQA validation: questionId -> id, question, answers (list)."""

    name = "docvqa_val"
    benchmark = "DocVQA"
    task_type = "docvqa"
    repo = "lmms-lab/DocVQA"
    mirrors = ("lmms-lab-encoder/DocVQA",)  # lmms-eval's current dataset_path
    config = "DocVQA"
    split = "validation"
    size = 5349
    columns = ("questionId", "question", "answers")
    prompt = "{question}\nAnswer the question using a single word or phrase."
    max_tokens = 32
    metrics = ("anls",)

    def sample_id(self, row: Mapping[str, Any], index: int) -> str:
        value = row.get("questionId")
        if value is None:
            raise RowError("questionId", "missing")
        return str(value)

    def fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {"question": _text(row, "question"), "answers": _text_list(row, "answers")}


class InfoVQAVal(DocVQAVal):
    """InfographicVQA validation, same repository and columns as DocVQA."""

    name = "infovqa_val"
    benchmark = "InfographicVQA"
    config = "InfographicVQA"
    size = 2801


class ChartQATest(Preset):
    """ChartQA test: row index -> id, answer -> answers=[answer], type -> sub-score."""

    name = "chartqa_test"
    benchmark = "ChartQA"
    task_type = "chartqa"
    repo = "lmms-lab/ChartQA"
    mirrors = ("lmms-lab-encoder/ChartQA",)  # lmms-eval's current dataset_path
    split = "test"
    size = 2500
    columns = ("question", "answer", "type")
    category_column = "type"  # human_test / augmented_test
    prompt = "{question}\nAnswer the question with a single word."
    max_tokens = 16
    metrics = ("relaxed_accuracy",)

    def fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {"question": _text(row, "question"), "answers": [_text(row, "answer")]}


class OCRBench(Preset):
    """OCRBench: question stripped, answer list, question_type -> category."""

    name = "ocrbench"
    benchmark = "OCRBench"
    task_type = "ocrbench"
    repo = "echo840/OCRBench"
    split = "test"
    size = 1000
    columns = ("question", "answer", "dataset", "question_type")
    category_column = "question_type"
    prompt = "{question}"
    max_tokens = 128
    metrics = ("ocrbench",)

    def fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "question": _text(row, "question").strip(),
            "answers": _text_list(row, "answer"),
            "dataset": _text(row, "dataset"),
        }


#: Sub-score categories of multi-page questions: where the evidence page lies.
FIRST, MIDDLE, LAST = "evidence:first", "evidence:middle", "evidence:last"


def evidence_category(page: int, n_pages: int) -> str:
    """``evidence:first``/``middle``/``last``: where a 1-based page lies in its document."""
    if page == 1:
        return FIRST
    return LAST if page == n_pages else MIDDLE


class MPDocVQAVal(Preset):
    """MP-DocVQA validation as lmms-eval's ``multidocvqa_val``.

    ``lmms_eval/tasks/multidocvqa/multidocvqa_val.yaml`` and ``utils.py`` (commit
    75571cfe): the non-null ``image_1`` .. ``image_20`` in order are the sample's
    ``images``; ``answers`` is a string holding a Python list (read with
    ``ast.literal_eval``); prompt ``{question}`` + the default post_prompt;
    ``max_new_tokens`` 32; the task's own ANLS and accuracy. ``answer_page_idx``
    (0-based) becomes ``evidence_page`` and the ``evidence:*`` category.
    """

    name = "multidocvqa_val"
    benchmark = "MP-DocVQA"
    task_type = "docvqa"
    repo = "lmms-lab-encoder/MP-DocVQA"  # lmms-eval's current dataset_path
    mirrors = ("lmms-lab/MP-DocVQA",)  # its dataset_path before commit 4be7ee0e
    split = "val"
    size = 5187
    image_columns = tuple(f"image_{i}" for i in range(1, 21))
    columns = ("questionId", "question", "answers")
    prompt = "{question}\nAnswer the question using a single word or phrase."
    max_tokens = 32
    metrics = ("mpdocvqa_anls", "mpdocvqa_accuracy")

    def sample_id(self, row: Mapping[str, Any], index: int) -> str:
        value = row.get("questionId")
        if value is None:
            raise RowError("questionId", "missing")
        return str(value)

    def fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        text = _text(row, "answers")
        try:
            answers = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise RowError("answers", f"not a Python literal: {text[:80]!r}") from None
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise RowError("answers", f"not a list of strings: {text[:80]!r}")
        if not answers:
            raise RowError("answers", "an empty list (lmms-eval fails on it too)")
        out: dict[str, Any] = {"question": _text(row, "question"), "answers": answers}
        pages = sum(row.get(c) is not None for c in self.image_columns)
        try:
            page = int(str(row.get("answer_page_idx"))) + 1
        except ValueError:
            return out
        if 1 <= page <= pages:
            out |= {"evidence_page": page, "category": evidence_category(page, pages)}
        return out


def _slidevqa_answer(value: Any) -> str:
    """SlideVQA's answer as text; a missing one is ``not answerable`` (lmms-eval's
    ``normalize_answer`` before it lower-cases and drops newlines)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not answerable"
    return str(value)


class SlideVQAVal(Preset):
    """SlideVQA validation as lmms-eval's ``slidevqa_val``.

    ``lmms_eval/tasks/slidevqa/`` (commit 75571cfe): the non-null ``page_1`` ..
    ``page_20`` in order, converted to RGB and packed into at most five grid
    images of two columns (:func:`grids.concat_images`, written as PNG), are the
    sample's ``images``; prompt ``{question}`` + the default post_prompt;
    ``max_new_tokens`` 128; the task's ANLS, exact match and word F1 against the
    one ``answer``. The dataset is gated (accept NTT's terms; ``HF_TOKEN``).
    """

    name = "slidevqa_val"
    benchmark = "SlideVQA"
    task_type = "docvqa"
    repo = "NTT-hil-insight/SlideVQA"
    split = "val"
    size = 1652
    image_columns = tuple(f"page_{i}" for i in range(1, 21))
    columns = ("question", "answer")
    prompt = "{question}\nAnswer using only the short answer, without explanation."
    max_tokens = 128
    metrics = ("slidevqa_anls", "slidevqa_em", "slidevqa_f1")

    def sample_id(self, row: Mapping[str, Any], index: int) -> str:
        value = row.get("qa_id")
        return str(value) if value is not None else str(index)

    def fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "question": _text(row, "question"),
            "answers": [_slidevqa_answer(row.get("answer"))],
        }

    def image_files(self, cells: Sequence[tuple[str, bytes]]) -> list[tuple[bytes, str]]:
        pages = per_cell(cells, decode_rgb)
        return [(png(grid), "png") for grid in concat_images(pages)]


#: CC-OCR's KIE instruction (the "basic prompt" of its README, verbatim), then the schema.
CCOCR_KIE_PROMPT = (
    "Suppose you are an information extraction expert. Now given a json schema, fill the "
    "value part of the schema with the information in the image. Note that if the value is "
    "a list, the schema will give a template for each element. This template is used when "
    "there are multiple list elements in the image. Finally, only legal json is required as "
    "the output. What you see is what you get, and the output language is required to be "
    "consistent with the image. No explanation is required. Please output the results as "
    "required.The input json schema content is as follows: "
)

#: Every CORD-v2 ``gt_parse`` field, as a CC-OCR-style empty schema.
CORD_SCHEMA: dict[str, Any] = {
    "menu": [
        {
            "nm": "",
            "num": "",
            "unitprice": "",
            "cnt": "",
            "discountprice": "",
            "price": "",
            "itemsubtotal": "",
            "vatyn": "",
            "etc": "",
            "sub": [{"nm": "", "unitprice": "", "cnt": "", "price": "", "etc": ""}],
        }
    ],
    "void_menu": [{"nm": "", "price": ""}],
    "sub_total": {
        "subtotal_price": "",
        "discount_price": "",
        "service_price": "",
        "othersvc_price": "",
        "tax_price": "",
        "etc": "",
    },
    "total": {
        "total_price": "",
        "total_etc": "",
        "cashprice": "",
        "changeprice": "",
        "creditcardprice": "",
        "emoneyprice": "",
        "menutype_cnt": "",
        "menuqty_cnt": "",
    },
}


class CordKIE(Preset):
    """CORD v2 test: fields = ``json.loads(ground_truth)["gt_parse"]``."""

    name = "cord_kie"
    benchmark = "CORD"
    task_type = "kie"
    repo = "naver-clova-ix/cord-v2"
    split = "test"
    size = 100
    columns = ("ground_truth",)
    prompt = "{question}"
    max_tokens = 4096  # lmms-eval's cc_ocr generation_kwargs
    metrics = ("ccocr_kie_f1",)

    def fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        try:
            parsed = json.loads(_text(row, "ground_truth"))
        except json.JSONDecodeError as exc:
            raise RowError("ground_truth", f"not JSON: {exc.msg}") from None
        gold = parsed.get("gt_parse") if isinstance(parsed, dict) else None
        if not isinstance(gold, dict):
            raise RowError("ground_truth", "has no 'gt_parse' object")
        schema = json.dumps(CORD_SCHEMA, ensure_ascii=False)
        return {"question": CCOCR_KIE_PROMPT + schema, "fields": gold}


class SroieKIE(Preset):
    """SROIE 2019 as published in CC-OCR (``wulipc/CC-OCR``, config ``kie``).

    Rows whose ``split`` column starts with ``sroie2019_word`` (347 receipts);
    the prompt is the row's own ``question`` (CC-OCR's SROIE prompt with the
    ``{"company", "date", "address", "total"}`` schema), the reference its
    ``answer`` JSON.
    """

    name = "sroie_kie"
    benchmark = "SROIE"
    task_type = "kie"
    repo = "wulipc/CC-OCR"
    config = "kie"
    split = "test"
    size = 347
    columns = ("question", "answer", "split")
    prompt = "{question}"
    max_tokens = 4096
    metrics = ("ccocr_kie_f1",)
    subset = "sroie2019_word"

    def accepts(self, row: Mapping[str, Any]) -> bool:
        return str(row.get("split") or "").startswith(self.subset)

    def sample_id(self, row: Mapping[str, Any], index: int) -> str:
        name = row.get("image_name")
        return str(name) if name else str(index)

    def fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        answer = row.get("answer")
        if isinstance(answer, list) and answer:
            answer = answer[0]
        try:
            gold = json.loads(answer) if isinstance(answer, str) else answer
        except json.JSONDecodeError as exc:
            raise RowError("answer", f"not JSON: {exc.msg}") from None
        if not isinstance(gold, dict):
            raise RowError("answer", "is not a JSON object")
        return {"question": _text(row, "question"), "fields": gold}


def load_preset(name: str, **where: Any) -> Preset:
    """The registered preset ``name``; ConfigError listing the allowed ones."""
    preset: Preset = registry.load(registry.PRESETS, name, **where)()
    return preset


def preset_names() -> list[str]:
    return registry.names(registry.PRESETS)


def preset_of_data(data: str) -> str | None:
    """``docvqa_val`` for ``data=preset:docvqa_val``, else None."""
    return data.removeprefix(PRESET_PREFIX) if data.startswith(PRESET_PREFIX) else None


def check_preset_type(preset: Preset, task_type: str | None, **where: Any) -> str:
    """The task type of a row using ``preset``: its own, or the row's if they agree."""
    if task_type and task_type != preset.task_type:
        raise ConfigError(
            f"preset {preset.name!r} is a {preset.task_type!r} task, not "
            f"{task_type!r}; leave 'type' empty or set it to "
            f"{preset.task_type!r}",
            column="type",
            **where,
        )
    return preset.task_type
