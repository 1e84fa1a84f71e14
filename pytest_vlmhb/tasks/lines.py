"""Pydantic models of one manifest line, per task type.

Types are strict (JSON ``5`` is not the string ``"5"``, ``"a"`` is not a list);
only ``id`` and ``category`` accept an integer, turned into a string. Fields
not declared here are kept, so prompt templates may use them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
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


#: The fields that name what a sample shows; a line gives exactly one.
VISUAL_FIELDS = ("image", "images", "document")


class ManifestLine(BaseModel):
    """The fields every manifest line has: ``id``; exactly one of ``image`` (a
    file), ``images`` (files, in order) or ``document`` (a PDF, with optional
    1-based ``pages``: ``"1-3,7"`` or a list); optional ``category``."""

    model_config = ConfigDict(strict=True, extra="allow")

    id: str
    image: NonEmpty | None = None
    images: Annotated[list[NonEmpty], Field(min_length=1)] | None = None
    document: NonEmpty | None = None
    pages: tuple[int, ...] | None = None
    category: str | None = None
    #: Set by materialised presets: why the row's image cannot be used.
    image_error: str | None = None

    @field_validator("pages", mode="before")
    @classmethod
    def _pages(cls, value: Any) -> tuple[int, ...] | None:
        from ..imageprep import parse_pages

        if value is None:
            return None
        try:
            return parse_pages(value)
        except ValueError as exc:
            raise PydanticCustomError("pages", str(exc).removeprefix("pages: ")) from None

    @model_validator(mode="after")
    def _one_visual(self) -> ManifestLine:
        given = [name for name in VISUAL_FIELDS if getattr(self, name) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "visual_fields",
                "a line gives exactly one of image, images or document (got {given})",
                {"given": ", ".join(given) or "none"},
            )
        if self.pages is not None and self.document is None:
            raise PydanticCustomError("pages", "pages selects pages of a document")
        return self

    def files(self) -> list[tuple[str, str]]:
        """(field, path as written) of every file the line names, in order."""
        if self.images is not None:
            return [(f"images[{i}]", path) for i, path in enumerate(self.images)]
        if self.document is not None:
            return [("document", self.document)]
        return [("image", self.image or "")]

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
