"""Pydantic models of one manifest line, per task type.

Types are strict (JSON ``5`` is not the string ``"5"``, ``"a"`` is not a list);
only ``id`` and ``category`` accept an integer, turned into a string. Fields
not declared here are kept, so prompt templates may use them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

#: Characters a sample id may not start with (a spreadsheet formula would); '='
#: is allowed here and escaped in the CSV outputs, as the issue's rule for names says.
FORMULA_STARTS = ("+", "-", "@")

NonEmpty = Annotated[str, Field(min_length=1)]


def _str_or_int(value: Any, *, empty_ok: bool) -> str:
    """A string, or an integer turned into one (bool, float, null, list rejected)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and (value or empty_ok):
        return value
    what = "a string or an integer" if empty_ok else "a non-empty string or an integer"
    raise PydanticCustomError("str_or_int", f"Input should be {what}")


class ManifestLine(BaseModel):
    """The fields every manifest line has: ``id``, ``image``, optional ``category``."""

    model_config = ConfigDict(strict=True, extra="allow")

    id: str
    image: NonEmpty
    category: str | None = None
    #: Set by materialised presets: why the row's image cannot be used.
    image_error: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: Any) -> str:
        text = _str_or_int(value, empty_ok=False)
        if text.startswith(FORMULA_STARTS):
            raise PydanticCustomError(
                "formula_start",
                "a sample id may not start with '+', '-' or '@' "
                "(spreadsheets read it as a formula)",
            )
        return text

    @field_validator("category", mode="before")
    @classmethod
    def _category(cls, value: Any) -> str | None:
        return None if value is None else _str_or_int(value, empty_ok=True)


class QuestionLine(ManifestLine):
    """DocVQA, ChartQA: a question and its accepted answers."""

    question: NonEmpty
    answers: Annotated[list[str], Field(min_length=1)]


class OCRBenchLine(QuestionLine):
    """OCRBench: a question, its answers and the source dataset (selects the rule)."""

    dataset: str


class TextLine(ManifestLine):
    """OCR: the full text of the image."""

    text: str


class FieldsLine(ManifestLine):
    """KIE: a JSON object of gold fields (nested objects and lists allowed)."""

    fields: dict[str, Any]


class LabelLine(ManifestLine):
    """Document classification: the gold label, one of the line's labels."""

    label: str
    labels: Annotated[list[str], Field(min_length=1)]

    @field_validator("labels")
    @classmethod
    def _has_label(cls, labels: list[str], info: ValidationInfo) -> list[str]:
        label = info.data.get("label")
        if isinstance(label, str) and label not in labels:
            raise PydanticCustomError(
                "label_not_in_labels",
                "Input should contain the label {label}",
                {"label": repr(label)},
            )
        return labels
