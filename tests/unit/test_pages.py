"""Page rendering and image preparation (pytest_vlmhb/pages.py and its helpers).

PDFs are made here with fpdf2 (text, known page sizes, passwords, 500 pages)
or written object by object (no pages, a rotated page, a huge page): the test
process never calls PDFium itself, so every PDFium call it sees is the
preparer's.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fpdf import FPDF
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pytest_vlmhb import pagecache
from pytest_vlmhb.errors import SampleError
from pytest_vlmhb.imageprep import encode, fit_size, render_scale
from pytest_vlmhb.pages import (
    ImagePrep,
    PagePreparer,
    Prepared,
    PrepError,
    document_hash,
    parse_image_format,
    parse_pages,
)

A4 = (595.28, 841.89)


# -- documents and images ----------------------------------------------------------


def text_pdf(path: Path, sizes: list[tuple[float, float]], *, password: str | None = None) -> Path:
    """One page per size (in points), each saying which page it is."""
    pdf = FPDF(unit="pt")
    pdf.set_font("helvetica", size=10)
    for n, size in enumerate(sizes, 1):
        pdf.add_page(format=size)
        pdf.text(20, 40, f"Page {n}: The quick brown fox jumps over the lazy dog.")
    if password is not None:
        pdf.set_encryption(owner_password="owner", user_password=password)
    path.write_bytes(bytes(pdf.output()))
    return path


def raw_pdf(path: Path, *objects: bytes) -> Path:
    """A PDF of these objects (1 is the catalog) with a correct xref table."""
    out = b"%PDF-1.7\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(out)
    return path


def one_page_pdf(path: Path, page: bytes) -> Path:
    return raw_pdf(
        path,
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R " + page + b">>",
    )


def png_file(path: Path, size: tuple[int, int], mode: str = "RGB", fmt: str = "PNG") -> Path:
    image = Image.new(mode, size, "white" if mode != "RGBA" else (255, 255, 255, 0))
    for x in range(0, size[0], 7):  # some detail, so encoders have work to do
        image.putpixel((x, (x * 3) % size[1]), (0, 0, 0) if mode != "L" else 0)
    image.save(path, format=fmt)
    return path


def decoded_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size


@pytest.fixture
def preparer(tmp_path: Path) -> Iterator[PagePreparer]:
    with PagePreparer(tmp_path / "cache") as prep:
        yield prep


@pytest.fixture
def pdfium_calls(
    preparer: PagePreparer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[str, int, Any]]:
    """Every call into pypdfium2 from now on: (what, thread id, argument).

    pypdfium2 is first imported by the preparer on its render thread; only then
    are its classes wrapped (the test itself never calls it).
    """
    preparer.page_count(text_pdf(tmp_path / "warm.pdf", [A4]))
    pdfium = sys.modules["pypdfium2"]
    calls: list[tuple[str, int, Any]] = []

    def spy(cls: type, name: str, arg: Callable[..., Any] = lambda *a, **k: None) -> None:
        real = getattr(cls, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, threading.get_ident(), arg(*args, **kwargs)))
            return real(*args, **kwargs)

        monkeypatch.setattr(cls, name, wrapper)

    doc, page = pdfium.PdfDocument, pdfium.PdfPage
    spy(doc, "__init__")
    spy(doc, "__len__")
    spy(doc, "init_forms")
    spy(doc, "close")
    spy(doc, "get_page_size", lambda self, index: index + 1)
    spy(doc, "get_page", lambda self, index: index + 1)
    spy(page, "render", lambda self, scale=1, **kw: scale)
    spy(page, "close")
    return calls


def prepare(preparer: PagePreparer, **kwargs: Any) -> Prepared:
    kwargs.setdefault("prep", ImagePrep())
    return preparer.prepare_blocking(**kwargs)


# -- settings and their parsers ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("png", "png"),
        (" PNG ", "png"),
        ("jpeg", "jpeg:90"),
        ("jpg", "jpeg:90"),
        ("JPEG:85", "jpeg:85"),
        ("jpeg:1", "jpeg:1"),
        ("jpeg:100", "jpeg:100"),
        ("jpeg:085", "jpeg:85"),
    ],
)
def test_parse_image_format_accepts(text: str, expected: str) -> None:
    assert parse_image_format(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "gif", "webp", "jpeg:0", "jpeg:101", "jpeg:x", "jpeg:", "jpeg:-5", "png:9", "jpeg 85"],
)
def test_parse_image_format_rejects_naming_the_allowed_values(text: str) -> None:
    with pytest.raises(ValueError, match=r"png|jpeg") as info:
        parse_image_format(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1", (1,)),
        ("1-3,7", (1, 2, 3, 7)),
        (" 2 - 4 , 9 ", (2, 3, 4, 9)),
        ("5-5", (5,)),
        ("3,1", (3, 1)),
        ([1, 2, 3, 7], (1, 2, 3, 7)),
        ((4, 2), (4, 2)),
        ("99999", (99999,)),
    ],
)
def test_parse_pages_accepts(spec: Any, expected: tuple[int, ...]) -> None:
    assert parse_pages(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("  ", "empty"),
        ([], "empty"),
        ("3-1", "backwards"),
        ("0", "between 1 and"),
        ("-2", "not a page or a range"),
        ("a", "not a page or a range"),
        ("1,,2", "not a page or a range"),
        ("1-", "not a page or a range"),
        ("1.5", "not a page or a range"),
        ("100000", "between 1 and"),
        ("1-1000000000", "between 1 and"),
        ("1-3,2", "listed twice"),
        ([1, 1], "listed twice"),
        ([True], "not a page number"),
        ([1.0], "not a page number"),
        (["1"], "not a page number"),
        ([0], "between 1 and"),
        (7, "neither a list"),
    ],
)
def test_parse_pages_rejects(spec: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_pages(spec)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dpi": 0}, "dpi"),
        ({"dpi": float("nan")}, "dpi"),
        ({"dpi": float("inf")}, "dpi"),
        ({"dpi": True}, "dpi"),
        ({"dpi": 5000}, "dpi"),
        ({"max_pages": 0}, "max_pages"),
        ({"max_pages": True}, "max_pages"),
        ({"max_image_side": 0}, "max_image_side"),
        ({"max_image_pixels": -1}, "max_image_pixels"),
        ({"max_image_pixels": 1.5}, "max_image_pixels"),
        ({"image_format": "gif"}, "png, jpeg"),
    ],
)
def test_image_prep_rejects(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImagePrep(**kwargs)


def test_image_prep_normalises_describes_and_keys() -> None:
    prep = ImagePrep(dpi=144, max_image_side=1536, image_format="JPG")
    assert prep.image_format == "jpeg:90" and prep.dpi == 144.0
    assert prep == ImagePrep(max_image_side=1536, image_format="jpeg:90")
    assert prep.describe() == "144 dpi, max side 1536, up to 20 pages, jpeg q90"
    assert ImagePrep(max_image_pixels=10**6, image_format="png").describe() == (
        "144 dpi, max 1000000 px, up to 20 pages, png"
    )
    assert ImagePrep().describe() == "144 dpi, up to 20 pages, files as sent, pages png"
    key = prep.key()
    assert json.loads(json.dumps(key)) == key
    assert key == {
        "dpi": 144.0,
        "max_pages": 20,
        "max_image_side": 1536,
        "max_image_pixels": None,
        "image_format": "jpeg:90",
    }
    assert ImagePrep().key() != ImagePrep(image_format="png").key()


# -- the caps' arithmetic -----------------------------------------------------------

caps = st.tuples(
    st.one_of(st.none(), st.integers(1, 5000)), st.one_of(st.none(), st.integers(1, 10**8))
)


def _aspect_kept(size: tuple[int, int], width: float, height: float) -> bool:
    """Within one pixel of the exact aspect ratio (a side of 1 px cannot show it)."""
    out_w, out_h = size
    if min(out_w, out_h) == 1:
        return True
    if width >= height:
        return abs(out_h - out_w * height / width) <= 1.0 + 1e-9
    return abs(out_w - out_h * width / height) <= 1.0 + 1e-9


def _obeys(size: tuple[int, int], side: int | None, pixels: int | None) -> bool:
    return (side is None or max(size) <= side) and (pixels is None or size[0] * size[1] <= pixels)


@settings(max_examples=300, deadline=None)
@given(
    st.floats(1, 14400),
    st.floats(1, 14400),
    st.sampled_from([72.0, 96.0, 144.0, 200.0, 300.0]),
    caps,
)
def test_render_scale_obeys_the_caps_at_the_largest_size(
    width: float, height: float, dpi: float, cap: tuple[int | None, int | None]
) -> None:
    side, pixels = cap
    prep = ImagePrep(dpi=dpi, max_image_side=side, max_image_pixels=pixels)
    scale, out_w, out_h = render_scale(width, height, prep)
    assert (out_w, out_h) == (math.ceil(width * scale), math.ceil(height * scale))  # PDFium's
    assert 0 < scale <= dpi / 72
    assert _obeys((out_w, out_h), side, pixels)
    assert _aspect_kept((out_w, out_h), width, height)
    if scale < dpi / 72 and min(out_w, out_h) > 1:  # a cap binds: no smaller than needed
        side_binds = side is not None and max(out_w, out_h) >= side - 1
        pixels_bind = pixels is not None and (out_w + 1) * (out_h + 1) > pixels
        assert side_binds or pixels_bind


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 20000), st.integers(1, 20000), caps)
def test_fit_size_obeys_the_caps_and_never_enlarges(
    width: int, height: int, cap: tuple[int | None, int | None]
) -> None:
    side, pixels = cap
    size = fit_size(width, height, ImagePrep(max_image_side=side, max_image_pixels=pixels))
    assert size[0] <= width and size[1] <= height
    assert _obeys(size, side, pixels)
    assert _aspect_kept(size, width, height)
    if _obeys((width, height), side, pixels):
        assert size == (width, height)


# -- rendering ----------------------------------------------------------------------


def test_pages_come_in_document_order_at_the_dpi(preparer: PagePreparer, tmp_path: Path) -> None:
    sizes = [(200.0, 300.0), (210.0, 300.0), (220.0, 300.0)]
    doc = text_pdf(tmp_path / "d.pdf", sizes)
    result = prepare(preparer, document=doc)
    assert [image.page for image in result.images] == [1, 2, 3]
    assert [(image.width, image.height) for image in result.images] == [
        (400, 600),
        (420, 600),
        (440, 600),
    ]
    for image in result.images:
        assert image.mime == "image/png" and image.data.startswith(b"\x89PNG")
        assert decoded_size(image.data) == (image.width, image.height)
    assert result.pages_dropped == 0
    assert result.image_bytes == sum(len(image.data) for image in result.images)
    picked = prepare(preparer, document=doc, pages=[3, 1])
    assert [(image.page, image.width) for image in picked.images] == [(3, 440), (1, 400)]


@pytest.mark.parametrize(
    ("size", "dpi", "expected"),
    [
        (A4, 144, (1191, 1684)),
        ((612.0, 792.0), 144, (1224, 1584)),  # US Letter
        (A4, 72, (596, 842)),
        (A4, 300, (2481, 3508)),
    ],
)
def test_page_size_at_dpi(
    preparer: PagePreparer,
    tmp_path: Path,
    size: tuple[float, float],
    dpi: int,
    expected: tuple[int, int],
) -> None:
    result = prepare(preparer, document=text_pdf(tmp_path / "d.pdf", [size]), prep=ImagePrep(dpi))
    (image,) = result.images
    assert (image.width, image.height) == expected == decoded_size(image.data)


def test_a_rotated_page_renders_upright_sized(preparer: PagePreparer, tmp_path: Path) -> None:
    doc = one_page_pdf(tmp_path / "r.pdf", b"/MediaBox[0 0 200 100]/Rotate 90")
    (image,) = prepare(preparer, document=doc).images
    assert (image.width, image.height) == (200, 400)


@pytest.mark.parametrize(
    ("side", "pixels", "binding"),
    [
        (1000, None, "side"),
        (None, 500_000, "pixels"),
        (1000, 200_000, "pixels"),  # both: the stricter wins
        (500, 2_000_000, "side"),
    ],
)
def test_caps_on_pages_keep_the_aspect_ratio(
    preparer: PagePreparer,
    tmp_path: Path,
    side: int | None,
    pixels: int | None,
    binding: str,
) -> None:
    doc = text_pdf(tmp_path / "d.pdf", [A4])
    prep = ImagePrep(max_image_side=side, max_image_pixels=pixels)
    (image,) = prepare(preparer, document=doc, prep=prep).images
    width, height = image.width, image.height
    assert (width, height) == decoded_size(image.data)
    assert abs(width - height * A4[0] / A4[1]) <= 1.0
    assert _obeys((width, height), side, pixels)
    if binding == "side":
        assert height == side
    else:
        assert pixels is not None and width * height > pixels * 0.99


def test_pages_render_directly_at_the_capped_scale(
    preparer: PagePreparer, tmp_path: Path, pdfium_calls: list[tuple[str, int, Any]]
) -> None:
    doc = text_pdf(tmp_path / "d.pdf", [A4, A4])
    result = prepare(preparer, document=doc, prep=ImagePrep(max_image_side=1000))
    scales = [arg for name, _, arg in pdfium_calls if name == "render"]
    assert len(scales) == 2
    for scale in scales:
        assert scale == pytest.approx(1000 / A4[1], rel=1e-6)  # never 2.0, then shrunk
    for image in result.images:
        assert (image.width, image.height) == (math.ceil(A4[0] * scales[0]), 1000)


def test_formats_png_and_jpeg_quality(preparer: PagePreparer, tmp_path: Path) -> None:
    doc = text_pdf(tmp_path / "d.pdf", [A4])
    sizes = {}
    for fmt in ("png", "jpeg:30", "jpeg:95"):
        (image,) = prepare(preparer, document=doc, prep=ImagePrep(image_format=fmt)).images
        expected = ("image/png", b"\x89PNG") if fmt == "png" else ("image/jpeg", b"\xff\xd8\xff")
        assert (image.mime, image.data[:3]) == (expected[0], expected[1][:3])
        assert decoded_size(image.data) == (1191, 1684)
        sizes[fmt] = len(image.data)
    assert sizes["jpeg:30"] < sizes["jpeg:95"]
    (default,) = prepare(preparer, document=doc).images
    assert len(default.data) == sizes["png"]


# -- image files ------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_image_files_are_sent_unchanged_without_caps(
    preparer: PagePreparer, tmp_path: Path, fmt: str, mime: str
) -> None:
    # The extension lies: the type comes from the bytes.
    path = png_file(tmp_path / "picture.bin", (300, 200), fmt=fmt)
    for prep in (ImagePrep(), ImagePrep(max_image_side=300, max_image_pixels=60_000)):
        (image,) = prepare(preparer, images=[path], prep=prep).images
        assert image.data == path.read_bytes()
        assert (image.mime, image.width, image.height, image.page) == (mime, 300, 200, None)


def test_other_image_formats_become_png(preparer: PagePreparer, tmp_path: Path) -> None:
    path = png_file(tmp_path / "scan.bmp", (40, 30), fmt="BMP")
    (image,) = prepare(preparer, images=[path]).images
    assert image.mime == "image/png" and decoded_size(image.data) == (40, 30)


@pytest.mark.parametrize(
    ("prep", "size", "mime"),
    [
        (ImagePrep(max_image_side=100), (100, 50), "image/png"),
        (ImagePrep(max_image_pixels=20_000), (200, 100), "image/png"),
        (ImagePrep(max_image_side=100, max_image_pixels=1_250), (50, 25), "image/png"),
        (ImagePrep(max_image_side=100, image_format="jpeg:80"), (100, 50), "image/jpeg"),
        (ImagePrep(image_format="jpeg"), (1000, 500), "image/jpeg"),
    ],
)
def test_image_files_capped_or_reencoded(
    preparer: PagePreparer, tmp_path: Path, prep: ImagePrep, size: tuple[int, int], mime: str
) -> None:
    path = png_file(tmp_path / "wide.png", (1000, 500), mode="RGBA")
    (image,) = prepare(preparer, images=[path], prep=prep).images
    assert (image.mime, (image.width, image.height)) == (mime, size)
    assert decoded_size(image.data) == size
    assert image.data != path.read_bytes()


def test_png_asked_for_keeps_a_png_file_unless_a_cap_binds(
    preparer: PagePreparer, tmp_path: Path
) -> None:
    path = png_file(tmp_path / "p.png", (80, 60))
    (same,) = prepare(preparer, images=[path], prep=ImagePrep(image_format="png")).images
    assert same.data == path.read_bytes()
    jpeg = png_file(tmp_path / "p.jpg", (80, 60), fmt="JPEG")
    (converted,) = prepare(preparer, images=[jpeg], prep=ImagePrep(image_format="png")).images
    assert converted.mime == "image/png" and converted.data.startswith(b"\x89PNG")


def test_images_beyond_max_pages_are_dropped_in_order(
    preparer: PagePreparer, tmp_path: Path
) -> None:
    paths = [png_file(tmp_path / f"{n}.png", (10 + n, 10)) for n in range(5)]
    result = prepare(preparer, images=paths, prep=ImagePrep(max_pages=3))
    assert [image.width for image in result.images] == [10, 11, 12]
    assert result.pages_dropped == 2


def test_decompression_bomb_limit_is_an_error(
    preparer: PagePreparer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = png_file(tmp_path / "big.png", (100, 100))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 7_000)
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(PrepError) as warned:
        prepare(preparer, images=[path])
    assert "decompression-bomb limit" in str(warned.value)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # over twice the limit: Pillow refuses
    with pytest.raises(PrepError, match="decompression-bomb limit"):
        prepare(preparer, images=[path], prep=ImagePrep(max_image_side=10))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "image not found"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty file"),
        (lambda p: (p.write_bytes(b"not an image"), p)[1], "not an image format"),
        (lambda p: (p.write_bytes(png_file(p, (50, 50)).read_bytes()[:60]), p)[1], "unreadable"),
        (lambda p: (os.mkfifo(p), p)[1], "is a FIFO, not a regular file"),
    ],
)
def test_bad_image_files(
    preparer: PagePreparer, tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    path = make(tmp_path / "x.png")
    with pytest.raises(PrepError, match=message) as info:
        prepare(preparer, images=[path], prep=ImagePrep(max_image_side=10))
    assert str(path) in str(info.value)
    assert isinstance(info.value, SampleError)  # fails the sample, not the run


# -- bad documents ------------------------------------------------------------------


def _corrupt(path: Path) -> Path:
    path.write_bytes(b"%PDF-1.7\n" + os.urandom(2000))
    return path


BAD_DOCUMENTS: list[tuple[str, Callable[[Path], Path], dict[str, Any], str]] = [
    ("corrupt", _corrupt, {}, r": is not a readable PDF \(damaged, or not a PDF\)$"),
    ("not a pdf", lambda p: (p.write_text("hello"), p)[1], {}, r": is not a readable PDF"),
    ("empty file", lambda p: (p.write_bytes(b""), p)[1], {}, r": is not a readable PDF"),
    ("password", lambda p: text_pdf(p, [A4], password="secret"), {}, r": needs a password$"),
    (
        "no pages",
        lambda p: raw_pdf(p, b"<</Type/Catalog/Pages 2 0 R>>", b"<</Type/Pages/Kids[]/Count 0>>"),
        {},
        r": has no pages$",
    ),
    (
        "page outside",
        lambda p: text_pdf(p, [A4] * 7),
        {"pages": [2, 9, 12]},
        r": page 9 is outside the document \(7 pages\)$",
    ),
    (
        "page outside one",
        lambda p: text_pdf(p, [A4]),
        {"pages": "2"},
        r": page 2 is outside the document \(1 page\)$",
    ),
    ("bad pages", lambda p: text_pdf(p, [A4]), {"pages": [0]}, r": pages: page 0 is not between"),
    (
        "over 100 MP",
        lambda p: one_page_pdf(p, b"/MediaBox[0 0 14400 14400]"),
        {},
        r": page 1 would render at 829\.4 megapixels \(limit 100\)$",
    ),
    ("missing", lambda p: p, {}, r"^document not found: "),
    ("fifo", lambda p: (os.mkfifo(p), p)[1], {}, r"is a FIFO, not a regular file$"),
]


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [case[1:] for case in BAD_DOCUMENTS],
    ids=[case[0] for case in BAD_DOCUMENTS],
)
def test_bad_documents_are_errors_of_the_sample_and_the_renderer_goes_on(
    preparer: PagePreparer,
    tmp_path: Path,
    make: Callable[[Path], Path],
    kwargs: dict[str, Any],
    message: str,
) -> None:
    doc = make(tmp_path / "document.pdf")
    started = time.perf_counter()
    with pytest.raises(PrepError, match=message) as info:
        prepare(preparer, document=doc, **kwargs)
    assert time.perf_counter() - started < 10  # never a hang
    text = str(info.value)
    assert "Error" not in text and "Pdfium" not in text and "Exception" not in text
    assert str(doc) in text
    assert preparer.renders == 0
    good = prepare(preparer, document=text_pdf(tmp_path / "good.pdf", [A4]))
    assert [(image.width, image.height) for image in good.images] == [(1191, 1684)]
    assert preparer.renders == 1


def test_the_render_thread_survives_a_run_of_errors(preparer: PagePreparer, tmp_path: Path) -> None:
    good = text_pdf(tmp_path / "good.pdf", [(100.0, 100.0)])
    for n, (_, make, kwargs, message) in enumerate(BAD_DOCUMENTS * 2):
        path = tmp_path / f"bad{n}.pdf"
        with pytest.raises(PrepError, match=message):
            prepare(preparer, document=make(path), **kwargs)
        assert preparer.page_count(good) == 1
    assert len(preparer.render_thread_ids) == 1


def test_page_count(preparer: PagePreparer, tmp_path: Path) -> None:
    assert preparer.page_count(text_pdf(tmp_path / "seven.pdf", [A4] * 7)) == 7
    with pytest.raises(PrepError, match="needs a password"):
        preparer.page_count(text_pdf(tmp_path / "locked.pdf", [A4], password="x"))
    with pytest.raises(PrepError, match="not a readable PDF"):
        preparer.page_count(_corrupt(tmp_path / "bad.pdf"))


def test_500_pages_only_the_kept_pages_are_touched(
    preparer: PagePreparer, tmp_path: Path, pdfium_calls: list[tuple[str, int, Any]]
) -> None:
    pdf = FPDF(unit="pt", format=(100, 100))
    for _ in range(500):
        pdf.add_page()
    doc = tmp_path / "long.pdf"
    doc.write_bytes(bytes(pdf.output()))
    started = time.perf_counter()
    result = prepare(preparer, document=doc, prep=ImagePrep(dpi=36))
    assert time.perf_counter() - started < 10
    assert [image.page for image in result.images] == list(range(1, 21))
    assert result.pages_dropped == 480
    assert preparer.renders == 20
    for what in ("get_page", "get_page_size"):
        assert sorted(arg for name, _, arg in pdfium_calls if name == what) == list(range(1, 21))
    middle = prepare(preparer, document=doc, pages="250-300", prep=ImagePrep(dpi=36, max_pages=5))
    assert [image.page for image in middle.images] == [250, 251, 252, 253, 254]
    assert middle.pages_dropped == 46


def test_max_pages_after_the_selection(preparer: PagePreparer, tmp_path: Path) -> None:
    doc = text_pdf(tmp_path / "d.pdf", [(100.0, 100.0)] * 5)
    result = prepare(preparer, document=doc, prep=ImagePrep(max_pages=2))
    assert ([image.page for image in result.images], result.pages_dropped) == ([1, 2], 3)
    result = prepare(preparer, document=doc, pages="2-5", prep=ImagePrep(max_pages=2))
    assert ([image.page for image in result.images], result.pages_dropped) == ([2, 3], 2)


def test_neither_or_both_sources_is_a_caller_error(preparer: PagePreparer, tmp_path: Path) -> None:
    doc = text_pdf(tmp_path / "d.pdf", [A4])
    image = png_file(tmp_path / "p.png", (5, 5))
    with pytest.raises(ValueError, match="either images or a document"):
        prepare(preparer)
    with pytest.raises(ValueError, match="either images or a document"):
        prepare(preparer, images=[image], document=doc)
    with pytest.raises(ValueError, match="pages select pages of a document"):
        prepare(preparer, images=[image], pages=[1])


# -- threads ------------------------------------------------------------------------


def test_every_pdfium_call_runs_on_the_one_render_thread(
    preparer: PagePreparer, tmp_path: Path, pdfium_calls: list[tuple[str, int, Any]]
) -> None:
    docs = [text_pdf(tmp_path / f"d{n}.pdf", [(100.0 + n, 100.0)] * 3) for n in range(3)]
    prepare(preparer, document=docs[0])
    with pytest.raises(PrepError):
        prepare(preparer, document=_corrupt(tmp_path / "bad.pdf"))

    async def many() -> list[Prepared]:
        jobs = [preparer.prepare(document=doc, prep=ImagePrep(dpi=50)) for doc in docs * 3]
        return await asyncio.gather(*jobs)

    asyncio.run(many())
    from_threads = [threading.Thread(target=preparer.page_count, args=(doc,)) for doc in docs]
    for thread in from_threads:
        thread.start()
    for thread in from_threads:
        thread.join()
    names = {name for name, _, _ in pdfium_calls}
    assert {"__init__", "get_page_size", "get_page", "render", "close"} <= names
    threads = {ident for _, ident, _ in pdfium_calls}
    assert threads == set(preparer.render_thread_ids)
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_concurrent_prepares_agree_render_each_page_once_and_never_block_the_loop(
    preparer: PagePreparer, tmp_path: Path
) -> None:
    docs = [text_pdf(tmp_path / f"d{n}.pdf", [A4, (300.0 + n, 200.0)]) for n in range(3)]
    prep = ImagePrep(dpi=100)

    async def run() -> tuple[list[Prepared], float, float]:
        gaps = [0.0]
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        started = time.perf_counter()
        results = await asyncio.gather(
            *(preparer.prepare(document=docs[n % 3], prep=prep) for n in range(24))
        )
        elapsed = time.perf_counter() - started
        done.set()
        await tick
        return results, max(gaps), elapsed

    results, worst_gap, elapsed = asyncio.run(run())
    assert preparer.renders == 6  # 3 documents x 2 pages, each rendered once
    for n, result in enumerate(results):
        assert result.images == results[n % 3].images
    assert results[0].images != results[1].images
    assert worst_gap < max(0.25, elapsed / 3)  # the loop kept running while pages rendered


# -- the cache ----------------------------------------------------------------------


def test_second_prepare_renders_nothing_also_in_a_new_process(
    preparer: PagePreparer, tmp_path: Path
) -> None:
    doc = text_pdf(tmp_path / "d.pdf", [A4, A4, A4])
    first = prepare(preparer, document=doc)
    assert preparer.renders == 3
    again = prepare(preparer, document=doc)
    assert preparer.renders == 3
    assert again.images == first.images and again.prep_s < first.prep_s
    pagecache.clear_hash_memo()  # as a fresh process would start
    with PagePreparer(tmp_path / "cache") as other:
        assert prepare(other, document=doc).images == first.images
        assert other.renders == 0
    folder = tmp_path / "cache" / "pages" / document_hash(doc)[:2] / document_hash(doc)
    assert sorted(p.suffix for p in folder.iterdir()) == [".json", ".png", ".png", ".png"]
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_changed_settings_or_bytes_render_again(preparer: PagePreparer, tmp_path: Path) -> None:
    doc = text_pdf(tmp_path / "d.pdf", [A4])
    first = prepare(preparer, document=doc)
    prepare(preparer, document=doc, prep=ImagePrep(max_pages=5))  # not a page setting
    assert preparer.renders == 1
    prepare(preparer, document=doc, prep=ImagePrep(dpi=100))
    prepare(preparer, document=doc, prep=ImagePrep(image_format="jpeg:50"))
    assert preparer.renders == 3
    text_pdf(doc, [(300.0, 300.0)])  # new bytes under the same name
    changed = prepare(preparer, document=doc)
    assert preparer.renders == 4
    assert (changed.images[0].width, changed.images[0].height) == (600, 600)
    assert changed.images != first.images


def test_a_damaged_cache_file_is_rendered_again(preparer: PagePreparer, tmp_path: Path) -> None:
    doc = text_pdf(tmp_path / "d.pdf", [A4])
    first = prepare(preparer, document=doc)
    (cached,) = (tmp_path / "cache" / "pages").rglob("*.png")
    cached.write_bytes(cached.read_bytes()[:20])
    again = prepare(preparer, document=doc)
    assert preparer.renders == 2 and again.images == first.images


def test_an_unwritable_cache_costs_renders_not_the_sample(tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    doc = text_pdf(tmp_path / "d.pdf", [A4])
    with PagePreparer(blocker) as preparer:
        assert len(prepare(preparer, document=doc).images) == 1
        assert len(prepare(preparer, document=doc).images) == 1
        assert preparer.renders == 2


def test_document_hash_is_sha256_memoised_by_stat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = text_pdf(tmp_path / "d.pdf", [A4])
    reads = []
    real = pagecache.read_document
    monkeypatch.setattr(pagecache, "read_document", lambda p: (reads.append(p), real(p))[1])
    assert document_hash(doc) == hashlib.sha256(doc.read_bytes()).hexdigest()
    assert document_hash(doc) == hashlib.sha256(doc.read_bytes()).hexdigest()
    assert len(reads) == 1
    text_pdf(doc, [A4, A4])
    assert document_hash(doc) == hashlib.sha256(doc.read_bytes()).hexdigest()
    assert len(reads) == 2
    with pytest.raises(PrepError, match="document not found"):
        document_hash(tmp_path / "missing.pdf")


def test_gray_pages_are_encoded_as_grayscale_losslessly(tmp_path: Path) -> None:
    gray = Image.new("RGB", (64, 48), (255, 255, 255))
    for x in range(64):
        gray.putpixel((x, x % 48), (x * 3, x * 3, x * 3))
    data, mime = encode(gray, "png")
    with Image.open(io.BytesIO(data)) as decoded:
        assert (mime, decoded.mode) == ("image/png", "L")
        assert decoded.convert("RGB").tobytes() == gray.tobytes()
    color = gray.copy()
    color.putpixel((5, 5), (200, 10, 10))
    with Image.open(io.BytesIO(encode(color, "png")[0])) as decoded:
        assert decoded.mode == "RGB" and decoded.getpixel((5, 5)) == (200, 10, 10)


def test_colour_pages_stay_in_colour(preparer: PagePreparer, tmp_path: Path) -> None:
    pdf = FPDF(unit="pt", format=(200, 100))
    pdf.add_page()
    pdf.set_fill_color(255, 0, 0)
    pdf.rect(0, 0, 100, 100, style="F")
    doc = tmp_path / "red.pdf"
    doc.write_bytes(bytes(pdf.output()))
    (text,) = prepare(preparer, document=text_pdf(tmp_path / "t.pdf", [A4])).images
    (red,) = prepare(preparer, document=doc).images
    with Image.open(io.BytesIO(text.data)) as decoded:
        assert decoded.mode == "L"  # black text on white: gray, 15x smaller as L
    with Image.open(io.BytesIO(red.data)) as decoded:
        assert decoded.mode == "RGB"
        assert decoded.getpixel((50, 100)) == (255, 0, 0)
        assert decoded.getpixel((350, 100)) == (255, 255, 255)


def test_a_16_bit_gray_file_keeps_its_range_when_resized(
    preparer: PagePreparer, tmp_path: Path
) -> None:
    path = tmp_path / "deep.png"
    Image.new("I;16", (100, 50), 32896).save(path)  # mid-gray: 128 * 257
    (image,) = prepare(preparer, images=[path], prep=ImagePrep(max_image_side=50)).images
    with Image.open(io.BytesIO(image.data)) as decoded:
        assert (decoded.mode, decoded.size, decoded.getextrema()) == ("L", (50, 25), (128, 128))
