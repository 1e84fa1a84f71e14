"""The task-type interface: manifest fields, default prompt, metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .lines import ManifestLine
from .templates import render_template


class TaskType:
    """A kind of document task; subclasses register under ``vlmhb.tasks``.

    A manifest line holds ``id``, ``image``, the type's :attr:`input_fields`
    and :attr:`reference_fields`, validated with :attr:`line_model`; the prompt
    is :attr:`default_prompt` (or the task row's ``prompt``), a template of
    plain ``{name}`` fields (see :mod:`.templates`) filled from the line's
    fields plus :meth:`prompt_variables`.
    """

    name: ClassVar[str]
    #: Manifest fields the prompt needs (besides ``id`` and ``image``).
    input_fields: ClassVar[tuple[str, ...]] = ()
    #: Manifest fields holding the ground truth the metrics see.
    reference_fields: ClassVar[tuple[str, ...]]
    default_metrics: ClassVar[tuple[str, ...]]
    default_prompt: ClassVar[str]
    default_max_tokens: ClassVar[int] = 64
    #: Pydantic model of one manifest line (strict types; extra fields allowed).
    line_model: ClassVar[type[ManifestLine]] = ManifestLine

    def prompt_variables(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Extra names a prompt template may use, derived from the record."""
        return {}

    def reference(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The ground truth the metrics see."""
        return {field: record[field] for field in self.reference_fields}

    def render_prompt(self, template: str, record: Mapping[str, Any]) -> str:
        """The prompt text for one sample."""
        return render_template(template, {**record, **self.prompt_variables(record)})
