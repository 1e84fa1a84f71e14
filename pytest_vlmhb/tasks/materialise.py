"""A dataset split -> a JSONL manifest plus its image files, in the cache.

A row of a single-image layout gets one ``image``; a row of a multi-image
layout (``Layout.image_columns``) an ``images`` list: its non-null cells in
column order, as the layout turns them into files (as they are, or packed into
grids).

Rows are read one at a time (images undecoded by ``datasets``, then checked
one by one with Pillow), so memory stays bounded whatever the split's size.
The folder is keyed by the layout and the dataset's fingerprint, built once
under a file lock (xdist workers wait for it) and reused afterwards.

A row whose image does not decode becomes a sample that fails on its own,
naming dataset, split and row; a row whose other columns do not fit the
layout is a ConfigError naming dataset, split, row and column.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

from ..errors import ConfigError
from .cells import CellError, image_bytes, image_extension, per_cell
from .hub import DataSource, open_split
from .presets import Layout, RowError

#: Bump when the folder format changes.
FORMAT_VERSION = 1
MANIFEST = "manifest.jsonl"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60]


def _rows(dataset: Any, image_columns: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """Rows one at a time, with the image columns left encoded."""
    import datasets

    for column in image_columns:
        feature = dataset.features.get(column)
        if isinstance(feature, datasets.Image) and feature.decode:
            dataset = dataset.cast_column(column, datasets.Image(decode=False))
    yield from dataset


def _check_columns(dataset: Any, source: DataSource, layout: Layout) -> None:
    have = set(dataset.column_names)
    needed = (*layout.all_image_columns, *layout.columns)
    for column in needed:
        if column not in have:
            raise ConfigError(
                f"{source.label}, split {source.split!r}: missing column "
                f"{column!r} (the layout {layout.key!r} needs {', '.join(needed)})",
                column=column,
                allowed=sorted(have),
            )


def _add_image(
    record: dict[str, Any], row: Any, layout: Layout, out: Path, index: int, where: str
) -> None:
    """One ``image`` file (single-image layouts)."""
    try:
        raw = image_bytes(row.get(layout.image_column))
        ext = image_extension(raw)
    except Exception as exc:  # Pillow raises many types for a bad image
        record["image"] = f"images/{index:07d}.undecodable"
        record["image_error"] = f"{where}: image does not decode ({type(exc).__name__}: {exc})"
    else:
        record["image"] = f"images/{index:07d}.{ext}"
        (out / record["image"]).write_bytes(raw)


def _add_images(
    record: dict[str, Any], row: Any, layout: Layout, out: Path, index: int, where: str
) -> None:
    """The ``images`` files of a multi-image layout, in column order."""
    try:
        cells = [(c, row.get(c)) for c in layout.image_columns if row.get(c) is not None]
        if not cells:
            first, last = layout.image_columns[0], layout.image_columns[-1]
            raise ValueError(f"no image in {first} .. {last}")
        raws = per_cell(cells, image_bytes)
        files = layout.image_files([(c, raw) for (c, _), raw in zip(cells, raws, strict=True)])
    except Exception as exc:  # Pillow raises many types for a bad image
        what = str(exc) if isinstance(exc, CellError) else f"{type(exc).__name__}: {exc}"
        record["images"] = [f"images/{index:07d}.undecodable"]
        record["image_error"] = f"{where}: images do not decode ({what})"
        return
    names = []
    for number, (raw, ext) in enumerate(files, start=1):
        names.append(f"images/{index:07d}-{number:02d}.{ext}")
        (out / names[-1]).write_bytes(raw)
    record["images"] = names


def _write(dataset: Any, source: DataSource, layout: Layout, out: Path) -> int:
    (out / "images").mkdir(parents=True)
    add = _add_images if layout.image_columns else _add_image
    written = 0
    seen: dict[str, int] = {}
    with (out / MANIFEST).open("w", encoding="utf-8") as sink:
        for index, row in enumerate(_rows(dataset, layout.all_image_columns)):
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
            add(record, row, layout, out, index, where)
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
