"""The task-type interface: manifest fields, default prompt, metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class TaskType:
    """A kind of document task; subclasses register under ``vlmhb.tasks``.

    A manifest line holds ``id``, ``image``, the type's :attr:`input_fields`
    and :attr:`reference_fields`; the prompt is :attr:`default_prompt` (or the
    task row's ``prompt``) formatted with the line's fields plus
    :meth:`prompt_variables`.
    """

    name: ClassVar[str]
    #: Manifest fields the prompt needs (besides ``id`` and ``image``).
    input_fields: ClassVar[tuple[str, ...]] = ()
    #: Manifest fields holding the ground truth the metrics see.
    reference_fields: ClassVar[tuple[str, ...]]
    default_metrics: ClassVar[tuple[str, ...]]
    default_prompt: ClassVar[str]
    default_max_tokens: ClassVar[int] = 64

    def prompt_variables(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Extra names a prompt template may use, derived from the record."""
        return {}

    def reference(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The ground truth the metrics see."""
        return {field: record[field] for field in self.reference_fields}

    def render_prompt(self, template: str, record: Mapping[str, Any]) -> str:
        """The prompt text for one sample."""
        return template.format_map({**record, **self.prompt_variables(record)})
