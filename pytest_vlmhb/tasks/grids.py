"""Slide pages packed into grid images, as lmms-eval's SlideVQA task sends them.

:func:`concat_images` reproduces ``concat_images`` of lmms-eval's
``lmms_eval/tasks/slidevqa/utils.py`` (commit 75571cfe): the pages, in order,
go in batches of ``ceil(n / max_concat)`` (at least 1), so at most
``max_concat`` grids; each grid has ``column_num`` columns, is sized by its
batch's first page (``width * column_num`` by ``height * rows``, white) and
gets every page pasted at ``(index % column_num * page.width, index //
column_num * page.height)`` of that page's own size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image

MAX_CONCAT = 5
COLUMN_NUM = 2


def concat_images(
    images: Sequence[Image.Image], max_concat: int = MAX_CONCAT, column_num: int = COLUMN_NUM
) -> list[Image.Image]:
    """Pages -> at most ``max_concat`` grid images of ``column_num`` columns."""
    interval = max(math.ceil(len(images) / max_concat), 1)
    grids = []
    for start in range(0, len(images), interval):
        batch = images[start : start + interval]
        rows = math.ceil(len(batch) / column_num)
        first = batch[0]
        grid = Image.new("RGB", (first.width * column_num, first.height * rows), "white")
        for index, image in enumerate(batch):
            grid.paste(
                image, ((index % column_num) * image.width, (index // column_num) * image.height)
            )
        grids.append(grid)
    return grids
