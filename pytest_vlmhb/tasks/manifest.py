"""JSONL manifests: one sample per line, validated with file:line errors."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import TaskType


@dataclass(frozen=True)
class Sample:
    """One benchmark sample: image, prompt and ground truth."""

    id: str
    image: Path
    prompt: str
    reference: dict[str, Any] = field(hash=False)
    manifest: Path = field(hash=False)
    line: int = 0
    #: Sub-score group (ChartQA split, OCRBench question type); None when ungrouped.
    category: str | None = None
    #: Why this sample cannot run (e.g. its dataset row's image does not decode).
    error: str | None = None


def _escape_error(manifest: Path, line: int, image: Path) -> str | None:
    """Why ``image`` may not be read: its path leaves the manifest's folder (``../``)."""
    folder = os.path.normpath(os.path.abspath(manifest.parent))
    target = os.path.normpath(os.path.abspath(image))
    if os.path.commonpath([folder, target]) == folder:
        return None
    return f"{manifest}:{line}: image path {image} escapes the dataset folder {folder}"


def load_manifest(path: Path, task: TaskType, prompt_template: str) -> list[Sample]:
    """All samples of a manifest; raises ConfigError naming file and line."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError("manifest not found", file=path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"manifest is not UTF-8 ({exc.reason})", file=path) from None
    required = ("id", "image", *task.input_fields, *task.reference_fields)
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"invalid JSON: {exc.msg}", file=path, line=line_no) from None
        if not isinstance(record, dict):
            raise ConfigError("each line must be a JSON object", file=path, line=line_no)
        for name in required:
            if name not in record:
                raise ConfigError(
                    f"missing field {name!r}; task type {task.name!r} needs the fields "
                    f"{', '.join(required)}", file=path, line=line_no)
        sample_id = str(record["id"])
        if sample_id in seen:
            raise ConfigError(
                f"duplicate sample id {sample_id!r} (first on line {seen[sample_id]})",
                file=path, line=line_no,
            )
        seen[sample_id] = line_no
        try:
            prompt = task.render_prompt(prompt_template, record)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"prompt template {prompt_template!r} cannot be filled: {exc!r}",
                file=path, line=line_no, allowed=sorted(record),
            ) from None
        image = path.parent / str(record["image"])
        error = record.get("image_error") or _escape_error(path, line_no, image)
        category = record.get("category")
        samples.append(
            Sample(
                id=sample_id,
                image=image,
                prompt=prompt,
                reference=task.reference(record),
                manifest=path,
                line=line_no,
                category=None if category is None else str(category),
                error=str(error) if error else None,
            )
        )
    if not samples:
        raise ConfigError("manifest has no samples", file=path)
    return samples
