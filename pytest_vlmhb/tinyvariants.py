"""Variants of the built-in tiny model for testing real models' settings.

Each is a copy of a built tiny-idefics3 folder with a few files changed, the
weights untouched, so it answers like the original:

- ``make_remote_code_variant``: custom code (``auto_map``), loadable only with
  ``trust_remote_code``;
- ``make_think_variant``: ``<think>``/``</think>`` as single tokens and a chat
  template that opens a thinking block unless ``enable_thinking`` is false.

Pure file operations (json, shutil): they run under the plugin's Python, no torch.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Written last into a finished variant; its content names the variant and version.
MARKER = ".variant"
VARIANT_VERSION = "1"

REMOTE_MODEL_TYPE = "vlmhb_tiny_custom"
REMOTE_AUTO_MAP = {
    "AutoConfig": "configuration_vlmhb_tiny.VlmhbTinyConfig",
    "AutoModelForImageTextToText": "modeling_vlmhb_tiny.VlmhbTinyForConditionalGeneration",
}
REMOTE_FILES = {
    "configuration_vlmhb_tiny.py": f'''"""The tiny test model's own config class."""

from transformers import Idefics3Config


class VlmhbTinyConfig(Idefics3Config):
    model_type = "{REMOTE_MODEL_TYPE}"
''',
    "modeling_vlmhb_tiny.py": '''"""The tiny test model's own model class: Idefics3's."""

from transformers import Idefics3ForConditionalGeneration

from .configuration_vlmhb_tiny import VlmhbTinyConfig


class VlmhbTinyForConditionalGeneration(Idefics3ForConditionalGeneration):
    config_class = VlmhbTinyConfig
''',
}

THINK_START, THINK_END = "<think>", "</think>"
#: Tokens renamed to the think tags: the last grid cells, only used by a 6x6 split
#: (an image over 6 x 56 px a side with a raised ``size``); the vocabulary keeps 512 ids.
THINK_REPLACES = {"<row_6_col_5>": THINK_START, "<row_6_col_6>": THINK_END}
#: Appended after the tiny template's ``Assistant:``, as Qwen3's thinking templates do.
THINK_GENERATION = (
    "{% if enable_thinking is defined and enable_thinking is false %}"
    "{{ '<think>\\n\\n</think>\\n\\n' }}{% else %}{{ '<think>\\n' }}{% endif %}"
)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(
        json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _make_variant(src: Path, out: Path, name: str, edit: Callable[[Path], None]) -> Path:
    """Copy ``src`` to a temp sibling of ``out``, ``edit`` it, rename it into place.

    A finished variant of the same name and version is reused; an unfinished or
    older one is replaced.
    """
    src, out = Path(src), Path(out)
    stamp = f"{name} {VARIANT_VERSION}\n"
    marker = out / MARKER
    if marker.is_file() and marker.read_text(encoding="utf-8") == stamp:
        return out
    if not (src / "config.json").is_file():
        raise FileNotFoundError(f"{src} is not a model folder (no config.json)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        staged = tmp / "model"
        shutil.copytree(src, staged)
        edit(staged)
        (staged / MARKER).write_text(stamp, encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.rename(staged, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _add_remote_code(folder: Path) -> None:
    config = _read_json(folder / "config.json")
    config["model_type"] = REMOTE_MODEL_TYPE
    config["auto_map"] = dict(REMOTE_AUTO_MAP)
    _write_json(folder / "config.json", config)
    for filename, code in REMOTE_FILES.items():
        (folder / filename).write_text(code, encoding="utf-8")


def make_remote_code_variant(src: Path, out: Path) -> Path:
    """A custom-code copy of the tiny model in ``out``: config ``model_type``
    ``vlmhb_tiny_custom`` with an ``auto_map`` to two Python files in the folder
    (subclasses of Idefics3's config and model). ``architectures`` stays
    Idefics3's, so vLLM keeps its own implementation once the config loads."""
    return _make_variant(src, out, "remote-code", _add_remote_code)


def _rename_tokens(tokenizer: dict[str, Any], renames: dict[str, str]) -> None:
    vocab: dict[str, int] = tokenizer["model"]["vocab"]
    for old, new in renames.items():
        if old not in vocab or new in vocab:
            raise ValueError(f"cannot rename token {old!r} to {new!r} in this vocabulary")
        vocab[new] = vocab.pop(old)
    for added in tokenizer["added_tokens"]:
        if added["content"] in renames:
            # As in Qwen3: added (never split), but not special, so decoded text keeps them.
            added.update(content=renames[added["content"]], special=False)


def _add_thinking(folder: Path) -> None:
    tokenizer = _read_json(folder / "tokenizer.json")
    _rename_tokens(tokenizer, THINK_REPLACES)
    _write_json(folder / "tokenizer.json", tokenizer)
    template_path = folder / "chat_template.jinja"
    template = template_path.read_text(encoding="utf-8")
    generation = "{{ 'Assistant:' }}"
    if template.count(generation) != 1:
        raise ValueError(f"{template_path}: no single {generation} to extend")
    template_path.write_text(
        template.replace(generation, generation + THINK_GENERATION), encoding="utf-8"
    )


def make_think_variant(src: Path, out: Path) -> Path:
    """A copy of the tiny model in ``out`` whose tokenizer has ``<think>`` and
    ``</think>`` as single tokens (two unused grid tokens renamed) and whose chat
    template ends the generation prompt with ``<think>\\n``, or with an empty
    ``<think>\\n\\n</think>\\n\\n`` block when ``enable_thinking`` is false."""
    return _make_variant(src, out, "think", _add_thinking)
