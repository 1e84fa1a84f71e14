"""Chat templates: ``--chat-template`` loading and per-request ``chat_template_kwargs``.

Both follow vLLM: the option is a file path or the template itself, and a
request's kwargs reach the template only where the template uses them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .protocol import ApiError

#: Keys a request may not set: the server decides them (vLLM refuses the same two).
FORBIDDEN_KWARGS = frozenset({"chat_template", "tokenize"})
#: ``apply_chat_template``'s own parameters, passed even where the template never reads them.
BASE_KWARGS = frozenset({"add_generation_prompt", "continue_final_message", "tools", "documents"})


def load_chat_template(value: str) -> str:
    """The template text: a file's contents, or ``value`` itself when it looks like Jinja."""
    path = Path(value).expanduser()
    if path.is_file():
        return path.read_text(encoding="utf-8")
    if any(c in value for c in "{}\n"):
        return value
    raise ValueError(f"--chat-template {value}: no such file (nor an inline Jinja template)")


def template_variables(template: str | None) -> frozenset[str] | None:
    """The variables a template reads; None when unknown (then every kwarg passes)."""
    if not template:
        return None
    try:
        from transformers.utils.chat_template_utils import _get_template_variables

        variables: frozenset[str] = frozenset(_get_template_variables(template))
    except Exception:  # a private helper: absent or failing in another version
        return None
    return variables


def resolve_template_kwargs(
    kwargs: dict[str, Any] | None, variables: frozenset[str] | None
) -> dict[str, Any]:
    """``apply_chat_template`` kwargs for one request; ApiError for the forbidden keys."""
    kwargs = kwargs or {}
    if forbidden := sorted(FORBIDDEN_KWARGS & kwargs.keys()):
        raise ApiError(
            f"chat_template_kwargs may not set {', '.join(forbidden)}",
            param="chat_template_kwargs",
        )
    used = {
        k: v for k, v in kwargs.items() if variables is None or k in variables or k in BASE_KWARGS
    }
    return {"add_generation_prompt": True, **used}
