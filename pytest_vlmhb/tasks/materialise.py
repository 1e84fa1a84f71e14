"""A dataset split -> a JSONL manifest plus one image file per row, in the cache.

Rows are read one at a time (images undecoded by ``datasets``, then checked
one by one with Pillow), so memory stays bounded whatever the split's size.
The folder is keyed by the layout and the dataset's fingerprint, built once
under a file lock (xdist workers wait for it) and reused afterwards.

A row whose image does not decode becomes a sample that fails on its own,
naming dataset, split and row; a row whose other columns do not fit the
layout is a ConfigError naming dataset, split, row and column.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock
from PIL import Image

from ..errors import ConfigError
from .hub import DataSource, open_split
from .presets import Layout, RowError

#: Bump when the folder format changes.
FORMAT_VERSION = 1
MANIFEST = "manifest.jsonl"
_EXTENSIONS = {
    "PNG": "png",
    "JPEG": "jpg",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tiff",
}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60]


def _image_bytes(value: Any) -> bytes:
    """The encoded image of a cell: an Image feature dict, raw bytes, or base64 text."""
    if isinstance(value, Mapping):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path") and os.path.isfile(value["path"]):
            return Path(value["path"]).read_bytes()
        raise ValueError("the image cell holds neither bytes nor a readable path")
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str) and value:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the image cell is text but not base64") from None
    raise ValueError(f"the image cell is {type(value).__name__}, not an image")


def _check_image(raw: bytes) -> str:
    """The file extension of a decodable image; raises on one that does not decode."""
    with Image.open(io.BytesIO(raw)) as img:
        fmt = img.format or ""
        img.load()
    return _EXTENSIONS.get(fmt, fmt.lower() or "bin")


def _rows(dataset: Any, image_column: str) -> Iterator[dict[str, Any]]:
    """Rows one at a time, with the image column left encoded."""
    import datasets

    feature = dataset.features.get(image_column)
    if isinstance(feature, datasets.Image) and feature.decode:
        dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    yield from dataset


def _check_columns(dataset: Any, source: DataSource, layout: Layout) -> None:
    have = set(dataset.column_names)
    for column in (layout.image_column, *layout.columns):
        if column not in have:
            raise ConfigError(
                f"{source.label}, split {source.split!r}: missing column "
                f"{column!r} (the layout {layout.key!r} needs "
                f"{', '.join((layout.image_column, *layout.columns))})",
                column=column,
                allowed=sorted(have),
            )


def _write(dataset: Any, source: DataSource, layout: Layout, out: Path) -> int:
    (out / "images").mkdir(parents=True)
    written = 0
    seen: dict[str, int] = {}
    with (out / MANIFEST).open("w", encoding="utf-8") as sink:
        for index, row in enumerate(_rows(dataset, layout.image_column)):
            if not layout.accepts(row):
                continue
            where = f"{source.label}, split {source.split!r}, row {index}"
            try:
                record = layout.record(row, index)
            except RowError as exc:
                raise ConfigError(f"{where}: {exc}", column=exc.column) from None
            except KeyError as exc:
                raise ConfigError(f"{where}: missing value {exc}") from None
            if record["id"] in seen:
                record["id"] = f"{record['id']}#{index}"  # keep ids unique, stay traceable
            seen[record["id"]] = index
            try:
                raw = _image_bytes(row.get(layout.image_column))
                ext = _check_image(raw)
            except Exception as exc:  # Pillow raises many types for a bad image
                record["image"] = f"images/{index:07d}.undecodable"
                record["image_error"] = (
                    f"{where}: image does not decode ({type(exc).__name__}: {exc})"
                )
            else:
                record["image"] = f"images/{index:07d}.{ext}"
                (out / record["image"]).write_bytes(raw)
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += 1
    return written


def materialise(source: DataSource, layout: Layout, cache: Path) -> Path:
    """The manifest of ``source`` in ``layout``, built into the cache once."""
    dataset = open_split(source)
    _check_columns(dataset, source, layout)
    identity = [
        FORMAT_VERSION,
        layout.key,
        source.kind,
        source.location,
        source.config,
        source.split,
        source.revision,
        dataset._fingerprint,
    ]
    key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]
    name = _slug(f"{source.location.rsplit('/', 2)[-1]}-{source.config or ''}-{source.split}")
    out = cache / "data" / "hub" / f"{name}-{key}"
    if (out / ".complete").exists():
        return out / MANIFEST
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if not (out / ".complete").exists():
            partial = out.with_name(out.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            if _write(dataset, source, layout, partial) == 0:
                shutil.rmtree(partial, ignore_errors=True)
                raise ConfigError(
                    f"{source.label}, split {source.split!r}: no rows for the layout {layout.key!r}"
                )
            shutil.rmtree(out, ignore_errors=True)
            partial.rename(out)
            (out / ".complete").write_text(json.dumps(identity) + "\n")
    return out / MANIFEST
