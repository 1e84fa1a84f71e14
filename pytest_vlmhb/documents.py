"""What a sample shows, made ready for its request: the process's page preparer,
documents' page counts at load, ``<image>`` placeholders in prompts, and the
user turn's content parts.

Each image is one ``image_url`` part; with no ``<image>`` in the prompt all of
them come first, in order, then the text (lmms-eval's chat layout,
``_build_user_turn``). A prompt may place them itself with the literal
placeholder ``<image>``, one per image, consumed here.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import Case
from .errors import ConfigError, SampleError
from .pages import PagePreparer, Prepared
from .tasks.manifest import Sample

#: The placeholder a prompt may place an image with.
IMAGE_PLACEHOLDER = "<image>"


#: The process's page preparers by cache dir (in practice one).
_PREPARERS: dict[Path, PagePreparer] = {}


def preparer(cache_dir: Path) -> PagePreparer:
    """The process's page preparer (one PDFium render thread per process)."""
    if cache_dir not in _PREPARERS:
        _PREPARERS[cache_dir] = PagePreparer(cache_dir)
    return _PREPARERS[cache_dir]


def close_preparers() -> None:
    """End the render threads (closing their open documents); a later call to
    :func:`preparer` starts a fresh one."""
    while _PREPARERS:
        _PREPARERS.popitem()[1].close()


def with_page_counts(samples: Sequence[Sample], cache_dir: Path) -> list[Sample]:
    """The samples, each document's page count filled in (opening it, not
    rendering); a document that cannot be opened fails its own sample."""
    out = []
    for sample in samples:
        if sample.document is None or sample.error is not None:
            out.append(sample)
            continue
        try:
            count = preparer(cache_dir).page_count(sample.document)
        except SampleError as exc:
            out.append(dataclasses.replace(sample, error=_where(sample, str(exc))))
            continue
        outside = [p for p in sample.pages or () if p > count]
        error = (
            _where(sample, f"page {outside[0]} is outside the document ({count} pages)")
            if outside
            else None
        )
        out.append(dataclasses.replace(sample, page_count=count, error=error))
    return out


def _where(sample: Sample, reason: str) -> str:
    return f"{sample.manifest}:{sample.line}: document: {reason}"


def check_placeholders(case: Case, samples: Sequence[Sample]) -> None:
    """A prompt that places images with ``<image>`` has exactly one per image the
    sample sends; ConfigError naming the manifest line otherwise."""
    for sample in samples:
        placed = sample.prompt.count(IMAGE_PLACEHOLDER)
        if not placed or sample.error is not None:
            continue
        sent = sample.image_count(case.max_pages)
        if placed != sent:
            raise ConfigError(
                f"the prompt places {placed} image(s) with {IMAGE_PLACEHOLDER} but the "
                f"sample sends {sent} (case {case.id!r}, max_pages {case.max_pages}): "
                f"use one {IMAGE_PLACEHOLDER} per image, or none to send all images first",
                file=sample.manifest,
                line=sample.line,
                column="prompt",
            )


async def prepare(case: Case, sample: Sample, cache_dir: Path) -> Prepared:
    """The sample's images, prepared off the event loop (PrepError: why not)."""
    return await preparer(cache_dir).prepare(
        images=sample.image_files,
        document=sample.document,
        pages=sample.pages,
        prep=case.image_prep,
    )


def user_content(prompt: str, prepared: Prepared) -> list[dict[str, Any]]:
    """The user turn: one ``image_url`` part per image, in order, all first or
    where the prompt's ``<image>`` placeholders are, and the text."""
    images = [
        {
            "type": "image_url",
            "image_url": {
                "url": f"data:{image.mime};base64,{base64.b64encode(image.data).decode()}"
            },
        }
        for image in prepared.images
    ]
    if IMAGE_PLACEHOLDER not in prompt:
        return [*images, {"type": "text", "text": prompt}]
    parts: list[dict[str, Any]] = []
    texts = prompt.split(IMAGE_PLACEHOLDER)
    for index, text in enumerate(texts):
        if text:
            parts.append({"type": "text", "text": text})
        if index < len(images):
            parts.append(images[index])
    return parts
