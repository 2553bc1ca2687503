"""Property: any bytes given to the document readers give text or the typed error.

For .txt, .md, .html, .pdf and .docx, whatever the bytes (random, a real file with bytes
flipped or cut, a zip of odd members, HTML declaring any codec Python has), ``extract``
returns sections or raises :class:`UnreadableDocument`, within a stated time and memory:

* time: :data:`SECONDS` per file (these inputs are a few KB; a real read takes
  milliseconds, so the bound only catches runaway work, never a slow machine);
* memory: :data:`PEAK_BYTES` of Python allocations (tracemalloc) per file.

Any other exception (UnicodeError, NotImplementedError, zlib.error…) used to escape and
kill the indexing thread.
"""

from __future__ import annotations

import encodings.aliases
import io
import time
import tracemalloc
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_documents import make_docx, make_pdf  # tests/ is on sys.path: conftest

from app.core.documents import ExtractedDocument, UnreadableDocument, extract

SECONDS = 20.0
PEAK_BYTES = 64 * 1024 * 1024
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def read_within_bounds(path: Path, data: bytes) -> ExtractedDocument | None:
    path.write_bytes(data)
    tracemalloc.start()
    started = time.monotonic()
    try:
        try:
            doc = extract(path)
        except UnreadableDocument as exc:
            assert exc.reason and str(exc).startswith(path.name)
            doc = None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    assert elapsed < SECONDS, f"{elapsed:.1f} s"
    assert peak < PEAK_BYTES, f"{peak / 1e6:.0f} MB"
    if doc is not None:
        assert doc.sections and all(s.text.strip() for s in doc.sections)
        "".join(s.text for s in doc.sections).encode("utf-8")  # storable: no lone surrogates
    return doc


def mutate(data: bytes, draw) -> bytes:
    """A real file with a few bytes changed, some cut off, or both."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 8))):
        if not out:
            break
        at = draw(st.integers(0, len(out) - 1))
        out[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        out = out[: draw(st.integers(0, len(out)))]
    return bytes(out)


SUFFIXES = ["txt", "md", "html", "pdf", "docx", "py"]


@SETTINGS
@given(st.sampled_from(SUFFIXES), st.binary(max_size=4096))
def test_random_bytes(tmp_path: Path, suffix: str, data: bytes) -> None:
    read_within_bounds(tmp_path / f"f.{suffix}", data)


_PDF = make_pdf(["First page of the manual", "Second (page) text", ""], title="Manual")
_DOCX = make_docx([("h1", "Title"), ("p", "Body text"), ("table", "a|b\nc|d")], title="Doc")


@SETTINGS
@given(st.data())
def test_damaged_pdfs(tmp_path: Path, data) -> None:
    read_within_bounds(tmp_path / "f.pdf", mutate(_PDF, data.draw))


@SETTINGS
@given(st.data())
def test_damaged_docx(tmp_path: Path, data) -> None:
    read_within_bounds(tmp_path / "f.docx", mutate(_DOCX, data.draw))


_METHODS = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "word/document.xml",
                    "word/styles.xml",
                    "_rels/.rels",
                    "word/_rels/document.xml.rels",
                    "docProps/core.xml",
                    "word/media/a.png",
                    "[Content_Types].xml",
                ]
            ),
            st.sampled_from(_METHODS),
            st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
        ),
        max_size=8,
    ),
    st.booleans(),
)
def test_zips_of_odd_parts(tmp_path: Path, members, keep_real_parts: bool) -> None:
    """Any member, any method (bzip2 and LZMA included), replacing or joining real parts."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        if keep_real_parts:
            with zipfile.ZipFile(io.BytesIO(_DOCX)) as src:
                for info in src.infolist():
                    if info.filename not in {m[0] for m in members}:
                        zf.writestr(info.filename, src.read(info))
        written: set[str] = set()
        for name, method, body in members:
            if name not in written:  # zipfile warns on a duplicate name
                written.add(name)
                zf.writestr(name, body, compress_type=method)
    read_within_bounds(tmp_path / "f.docx", buf.getvalue())


#: Codecs that are no document's encoding, drawn as often as all the others together.
_ODD_CODECS = [
    "punycode",
    "idna",
    "utf-7",
    "unicode_escape",
    "raw_unicode_escape",
    "rot13",
    "hex",
    "zlib",
    "base64",
    "uu",
    "utf-16",
    "utf-32",
    "mbcs",
    "nonsense",
    "",
]
_CODECS = st.sampled_from(_ODD_CODECS) | st.sampled_from(sorted(set(encodings.aliases.aliases.values())))
_HTML_TEXT = st.lists(
    st.sampled_from(
        [
            "<p>",
            "</p>",
            "<h1>",
            "</h1>",
            "<script>",
            "</script>",
            "<pre>",
            "</pre>",
            "<title>",
            "&amp;",
            "&#x110000;",
            "&#0;",
            "<!--",
            "-->",
            "<![CDATA[",
            "<",
            ">",
            "\x00",
            "\ud800",
        ]
    )
    | st.text(max_size=40),
    max_size=40,
).map("".join)


@SETTINGS
@given(_CODECS, _HTML_TEXT, st.sampled_from(["utf-8", "latin-1", "utf-16"]))
def test_html_with_any_declared_charset(tmp_path: Path, charset: str, body: str, written_as: str) -> None:
    page = f'<html><head><meta charset="{charset}"></head><body>{body}</body></html>'
    errors = "replace" if written_as == "latin-1" else "surrogatepass"  # lone surrogates, written raw
    read_within_bounds(tmp_path / "f.html", page.encode(written_as, errors))


@SETTINGS
@given(_HTML_TEXT)
def test_text_and_markdown(tmp_path: Path, body: str) -> None:
    data = body.encode("utf-8", "surrogatepass")
    read_within_bounds(tmp_path / "f.md", data)
    read_within_bounds(tmp_path / "f.txt", data)
