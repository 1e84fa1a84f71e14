"""Prompt templates: ``str.format`` syntax restricted to plain field names.

A template may hold literal text, ``{{``/``}}`` for literal braces and
``{name}`` where ``name`` is a Python identifier naming a manifest field or a
prompt variable of the task type. Everything else ``str.format`` knows is
refused when the template is loaded: attribute and index lookups
(``{q.__class__}``, ``{q[0]}``) would reach interpreter internals,
positional fields (``{}``, ``{0}``) have nothing to fill them, and
conversions and format specs (``{q!r}``, ``{q:>10}``) are not needed for a
prompt, so the only rule is "plain names". Filling never calls
``str.format``: each field is replaced by ``str(value)``.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

_HINT = "; a template may only use plain {name} fields (write {{ and }} for literal braces)"


def _parse(template: str) -> list[tuple[str, str | None]]:
    """(literal text, field name or None) pieces; raises ValueError on a bad template."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{exc}{_HINT}") from None
    pieces: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is None:
            pieces.append((literal, None))
            continue
        shown = (
            "{"
            + name
            + (f"!{conversion}" if conversion else "")
            + (f":{spec}" if spec else "")
            + "}"
        )
        if name == "" or name.isdigit():
            raise ValueError(f"positional field {shown} is not allowed{_HINT}")
        if not name.isidentifier():
            raise ValueError(f"field {shown} is not a plain field name{_HINT}")
        if conversion:
            raise ValueError(f"field {shown} has a conversion (!{conversion}){_HINT}")
        if spec:
            raise ValueError(f"field {shown} has a format spec (:{spec}){_HINT}")
        pieces.append((literal, name))
    return pieces


def check_template(template: str) -> str | None:
    """Why ``template`` is not a valid prompt template, or None when it is."""
    try:
        _parse(template)
    except ValueError as exc:
        return str(exc)
    return None


def template_fields(template: str) -> list[str]:
    """The field names ``template`` uses, in order, each once (ValueError if invalid)."""
    return list(dict.fromkeys(name for _, name in _parse(template) if name is not None))


def render_template(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with each field replaced by ``str(values[name])`` (KeyError if absent)."""
    return "".join(
        literal + ("" if name is None else str(values[name])) for literal, name in _parse(template)
    )
