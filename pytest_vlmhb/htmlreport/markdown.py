"""report.md as HTML: the small Markdown subset report.md is written in.

Headings (``#`` lines; level 1 is left out, the page has its own title),
pipe tables (``\\|`` is a literal bar in a cell), ``- `` lists, image lines
``![alt](src)``, paragraphs and inline code. Every piece of text is
HTML-escaped; nothing else of Markdown is interpreted.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_CODE = re.compile(r"`([^`]+)`")
_SAFE_SRC = re.compile(r"[A-Za-z0-9_./-]+")


def inline(text: str) -> str:
    """Escaped text with ``code`` spans."""
    parts = _CODE.split(text)
    return "".join(
        f"<code>{html.escape(part)}</code>" if i % 2 else html.escape(part)
        for i, part in enumerate(parts)
    )


def _cells(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [cell.strip().replace("\\|", "|") for cell in _CELL_SPLIT.split(body)]


def _table(lines: list[str]) -> str:
    header, rows = _cells(lines[0]), [_cells(line) for line in lines[2:]]
    head = "".join(f"<th>{inline(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (
        '<div class="scroll"><table class="md sortable">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _image(line: str) -> str | None:
    match = _IMAGE.fullmatch(line.strip())
    if match is None or not _SAFE_SRC.fullmatch(match.group(2)) or ".." in match.group(2):
        return None
    alt, src = html.escape(match.group(1)), html.escape(match.group(2))
    return (
        f'<figure><a href="{src}" target="_blank"><img class="plot" src="{src}" alt="{alt}"></a>'
        f"<figcaption>{alt}</figcaption></figure>"
    )


def _blocks(lines: list[str]) -> Iterator[str]:
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
            continue
        if stripped.startswith("#"):
            level = len(stripped) - len(stripped.lstrip("#"))
            title = stripped[level:].strip()
            if level > 1:
                tag = f"h{min(level, 6)}"
                yield f"<{tag}>{inline(title)}</{tag}>"
            i += 1
            continue
        if stripped.startswith("|"):
            block = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                block.append(lines[i])
                i += 1
            yield _table(block) if len(block) >= 2 else f"<p>{inline(block[0])}</p>"
            continue
        if stripped.startswith("- "):
            items = []
            while i < len(lines) and lines[i].strip().startswith("- "):
                items.append(f"<li>{inline(lines[i].strip()[2:])}</li>")
                i += 1
            yield f"<ul>{''.join(items)}</ul>"
            continue
        image = _image(stripped)
        if image is not None:
            yield image
            i += 1
            continue
        para = [stripped]  # a paragraph, or an image line that is not ours to show
        i += 1
        while i < len(lines) and lines[i].strip() and not _starts_block(lines[i]):
            para.append(lines[i].strip())
            i += 1
        yield f"<p>{inline(' '.join(para))}</p>"


def _starts_block(line: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(("#", "|", "- ")) or _IMAGE.fullmatch(stripped) is not None


def to_html(markdown: str) -> str:
    """The HTML of report.md's text."""
    return "\n".join(_blocks(markdown.splitlines()))
