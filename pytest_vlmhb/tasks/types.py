"""The built-in task types (registered in pyproject's ``vlmhb.tasks``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import TaskType
from .lines import FieldsLine, LabelLine, QuestionLine, TextLine


class DocVQA(TaskType):
    """Document visual question answering, scored with ANLS."""

    name = "docvqa"
    line_model = QuestionLine
    input_fields = ("question",)
    reference_fields = ("answers",)
    default_metrics = ("anls", "exact_match")
    default_prompt = "{question}\nAnswer the question using a single word or phrase."
    default_max_tokens = 32


class ChartQA(TaskType):
    """Questions about charts, scored with relaxed accuracy."""

    name = "chartqa"
    line_model = QuestionLine
    input_fields = ("question",)
    reference_fields = ("answers",)
    default_metrics = ("relaxed_accuracy",)
    default_prompt = "{question}\nAnswer the question with a single word."
    default_max_tokens = 16


class OCR(TaskType):
    """Full-text recognition, scored with CER and WER."""

    name = "ocr"
    line_model = TextLine
    reference_fields = ("text",)
    default_metrics = ("cer", "wer")
    default_prompt = "Read all the text in the image."
    default_max_tokens = 128


def _field_names(fields: Mapping[str, Any], prefix: str = "") -> list[str]:
    names: list[str] = []
    for key, value in fields.items():
        if isinstance(value, Mapping):
            names.extend(_field_names(value, f"{prefix}{key}."))
        else:
            names.append(f"{prefix}{key}")
    return names


class KIE(TaskType):
    """Key-information extraction: the model answers JSON, scored with field F1."""

    name = "kie"
    line_model = FieldsLine
    reference_fields = ("fields",)
    default_metrics = ("f1", "kie_precision", "kie_recall")
    default_prompt = (
        "Extract the following fields from the document and answer with a JSON object "
        "only: {field_names}."
    )
    default_max_tokens = 128

    def prompt_variables(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return {"field_names": ", ".join(_field_names(record["fields"]))}


class DocClassification(TaskType):
    """Document classification among the manifest's labels, scored with accuracy."""

    name = "doc_classification"
    line_model = LabelLine
    reference_fields = ("label", "labels")
    default_metrics = ("accuracy",)
    default_prompt = "What kind of document is this? Answer with one word from: {label_list}."
    default_max_tokens = 8

    def prompt_variables(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return {"label_list": ", ".join(record["labels"])}
