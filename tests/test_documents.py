"""Documents and retrieval (app/core/documents): extraction, chunking, the index, BM25
ranking, the token budget, re-indexing, citations, fusion and vector search.

Every file is written by the test itself: PDFs by hand (a few objects and an xref table,
the way a PDF writer lays them out) and encrypted with pypdf's writer, .docx files as a zip
of WordprocessingML parts.
"""

from __future__ import annotations

import io
import os
import random
import threading
import zipfile
from pathlib import Path

import numpy as np
import pypdf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import paths
from app.core.documents import (
    CollectionNotFound,
    DocumentIndex,
    DocumentIndexError,
    DocumentStatus,
    Section,
    UnreadableDocument,
    approx_tokens,
    build_context,
    chunk_sections,
    chunk_text,
    cited_numbers,
    extract,
    fts_query,
    fuse,
    retrieve,
    with_context,
)
from app.core.documents.retrieval import INSTRUCTIONS, query_terms

# -- file makers -----------------------------------------------------------------------------


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A real, minimal PDF: one Helvetica text line per page, with a correct xref table."""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    n = len(pages)
    font = 3 + 2 * n
    objs = ["<< /Type /Catalog /Pages 2 0 R >>"]
    objs.append(f"<< /Type /Pages /Kids [{' '.join(f'{3 + 2 * i} 0 R' for i in range(n))}] /Count {n} >>")
    for i, text in enumerate(pages):
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {4 + 2 * i} 0 R >>"
        )
        lines = text.split("\n")
        ops = ["BT", "/F1 11 Tf", "14 TL", "50 740 Td"] + [f"({esc(line)}) Tj T*" for line in lines] + ["ET"]
        stream = "\n".join(ops)
        objs.append(f"<< /Length {len(stream.encode('latin-1'))} >>\nstream\n{stream}\nendstream")
    objs.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    info = None
    if title is not None:
        objs.append(f"<< /Title ({esc(title)}) >>")
        info = len(objs)
    out = b"%PDF-1.4\n"
    offsets = []
    for i, obj in enumerate(objs):
        offsets.append(len(out))
        out += f"{i + 1} 0 obj\n{obj}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    trailer = f"/Size {len(objs) + 1} /Root 1 0 R" + (f" /Info {info} 0 R" if info else "")
    out += f"trailer\n<< {trailer} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def encrypt_pdf(data: bytes, user_password: str, owner_password: str | None = None) -> bytes:
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt(user_password, owner_password=owner_password)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


_W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def make_docx(blocks: list[tuple[str, str]], title: str | None = None, localized_headings: bool = False) -> bytes:
    """A .docx as Word writes it: ``blocks`` are ("h1"/"h2"/"p"/"table", text) pairs; a table's
    text is rows separated by "\\n" and cells by "|".  ``localized_headings`` uses German
    style ids (as German Word does) whose built-in names are still "heading N"."""
    from xml.sax.saxutils import escape

    sid = {"h1": "berschrift1", "h2": "berschrift2"} if localized_headings else {"h1": "Heading1", "h2": "Heading2"}
    body = []
    for kind, text in blocks:
        if kind in ("h1", "h2"):
            body.append(
                f'<w:p><w:pPr><w:pStyle w:val="{sid[kind]}"/></w:pPr><w:r><w:t>{escape(text)}</w:t></w:r></w:p>'
            )
        elif kind == "table":
            rows = "".join(
                "<w:tr>"
                + "".join(f"<w:tc><w:p><w:r><w:t>{escape(c)}</w:t></w:r></w:p></w:tc>" for c in row.split("|"))
                + "</w:tr>"
                for row in text.split("\n")
            )
            body.append(f"<w:tbl>{rows}</w:tbl>")
        else:
            first, _, rest = text.partition("\t")
            run = f'<w:r><w:t xml:space="preserve">{escape(first)}</w:t></w:r>'
            if rest:
                run += f"<w:r><w:tab/><w:t>{escape(rest)}</w:t></w:r>"
            # a deleted tracked change: must not show up as text
            run += "<w:del><w:r><w:delText>DELETEDWORDS</w:delText></w:r></w:del>"
            body.append(f"<w:p>{run}</w:p>")
    document = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<w:document xmlns:w="{_W_NS}"><w:body>{"".join(body)}<w:sectPr/></w:body></w:document>'
    )
    styles = (
        f'<?xml version="1.0" encoding="UTF-8"?><w:styles xmlns:w="{_W_NS}">'
        f'<w:style w:type="paragraph" w:styleId="{sid["h1"]}"><w:name w:val="heading 1"/></w:style>'
        f'<w:style w:type="paragraph" w:styleId="{sid["h2"]}"><w:name w:val="heading 2"/></w:style>'
        f"</w:styles>"
    )
    content_types = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/word/document.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
        "</Types>"
    )
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    package_rels = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="word/document.xml"/>'
        + (
            '<Relationship Id="rId2" Target="docProps/core.xml" Type="http://schemas.openxmlformats.org/'
            'package/2006/relationships/metadata/core-properties"/>'
            if title
            else ""
        )
        + "</Relationships>"
    )
    document_rels = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{rel}/styles" Target="styles.xml"/></Relationships>'
    )
    content_types = content_types.replace(
        "</Types>",
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Override PartName="/word/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/>'
        '<Override PartName="/docProps/core.xml" '
        'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/></Types>',
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", content_types)
        zf.writestr("_rels/.rels", package_rels)
        zf.writestr("word/document.xml", document)
        zf.writestr("word/_rels/document.xml.rels", document_rels)
        zf.writestr("word/styles.xml", styles)
        if title:
            zf.writestr(
                "docProps/core.xml",
                '<?xml version="1.0"?><cp:coreProperties '
                'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
                f'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{escape(title)}</dc:title>'
                "</cp:coreProperties>",
            )
    return buf.getvalue()


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    return d


@pytest.fixture
def index():
    idx = DocumentIndex()
    yield idx
    idx.close()


# -- extraction ------------------------------------------------------------------------------


def test_plain_text_utf8_and_utf16_with_bom(docs: Path) -> None:
    (docs / "a.txt").write_text("Café crème\r\nsecond line\n", encoding="utf-8")
    (docs / "b.txt").write_bytes("Grüße aus Köln".encode("utf-16"))  # BOM + NUL bytes: still text
    (docs / "c.txt").write_bytes("na\xefve caf\xe9".encode("cp1252"))  # not UTF-8: falls back
    a = extract(docs / "a.txt")
    assert [s.text for s in a.sections] == ["Café crème\nsecond line\n"]
    assert a.kind == "text" and a.title == "a.txt" and len(a.sha256) == 64
    assert a.mtime == pytest.approx((docs / "a.txt").stat().st_mtime)
    assert extract(docs / "b.txt").sections[0].text == "Grüße aus Köln"
    assert extract(docs / "c.txt").sections[0].text == "naïve café"


def test_markdown_split_at_headings_outside_code_fences(docs: Path) -> None:
    (docs / "n.md").write_text(
        "Preamble text.\n\n# Install\nRun the installer.\n\n```sh\n# not a heading\nmake\n```\n\n"
        "Usage\n-----\nCall it.\n\n## Trouble ##\nRestart.\n"
    )
    secs = extract(docs / "n.md").sections
    assert [(s.heading, s.page) for s in secs] == [(None, None), ("Install", None), ("Usage", None), ("Trouble", None)]
    assert secs[0].text == "Preamble text."
    assert "# not a heading\nmake" in secs[1].text
    assert secs[2].text == "Call it."


def test_html_drops_scripts_and_styles_and_keeps_headings(docs: Path) -> None:
    (docs / "p.html").write_text(
        "<!doctype html><html><head><title>The  Page</title><style>body{color:red}</style>"
        "<script>var secretScript = 1;</script></head><body>"
        "<noscript>enable javascript</noscript><p>Intro &amp; welcome.</p>"
        "<h2>Details</h2><p>First<br>second</p><ul><li>one</li><li>two</li></ul>"
        "<pre>  indented\n    code</pre><svg><text>svgtext</text></svg></body></html>",
        encoding="utf-8",
    )
    doc = extract(docs / "p.html")
    assert doc.title == "The Page" and doc.kind == "html"
    text = doc.text
    for gone in ("secretScript", "color:red", "enable javascript", "svgtext"):
        assert gone not in text
    assert doc.sections[0] == Section("Intro & welcome.", None, None)
    assert doc.sections[1].heading == "Details"
    assert "First\nsecond" in doc.sections[1].text and "one\ntwo" in doc.sections[1].text.replace("\n\n", "\n")
    assert "  indented\n    code" in doc.sections[1].text


def test_html_declared_charset(docs: Path) -> None:
    (docs / "l.htm").write_bytes(
        '<html><head><meta charset="iso-8859-1"></head><body><p>Ol\xe1 Jos\xe9</p></body></html>'.encode("latin-1")
    )
    assert extract(docs / "l.htm").text == "Olá José"


def test_pdf_text_per_page_with_title(docs: Path) -> None:
    (docs / "m.pdf").write_bytes(make_pdf(["Alpha page text", "Beta (second) page", ""], title="The Manual"))
    doc = extract(docs / "m.pdf")
    assert doc.kind == "pdf" and doc.title == "The Manual"
    # the empty third page gives no section, but numbering is by physical page
    assert [(s.page, s.text) for s in doc.sections] == [(1, "Alpha page text"), (2, "Beta (second) page")]


def test_encrypted_pdf_is_refused_but_owner_only_protection_is_read(docs: Path) -> None:
    plain = make_pdf(["Confidential numbers"])
    (docs / "locked.pdf").write_bytes(encrypt_pdf(plain, "secret"))
    with pytest.raises(UnreadableDocument) as err:
        extract(docs / "locked.pdf")
    assert str(err.value).startswith("locked.pdf is encrypted")
    assert err.value.reason.startswith("is encrypted")
    (docs / "owner.pdf").write_bytes(encrypt_pdf(plain, "", owner_password="boss"))
    assert extract(docs / "owner.pdf").sections[0].text == "Confidential numbers"


def test_damaged_and_textless_pdfs(docs: Path) -> None:
    (docs / "bad.pdf").write_bytes(b"%PDF-1.4\n this is not really a pdf at all")
    with pytest.raises(UnreadableDocument, match="bad.pdf"):
        extract(docs / "bad.pdf")
    (docs / "fake.pdf").write_bytes(b"hello, not a pdf")
    with pytest.raises(UnreadableDocument, match="not a valid PDF"):
        extract(docs / "fake.pdf")
    (docs / "scan.pdf").write_bytes(make_pdf(["", ""]))
    with pytest.raises(UnreadableDocument, match="no text layer"):
        extract(docs / "scan.pdf")


@pytest.mark.parametrize("localized", [False, True])
def test_docx_headings_tables_and_title(docs: Path, localized: bool) -> None:
    (docs / "r.docx").write_bytes(
        make_docx(
            [
                ("p", "Opening words."),
                ("h1", "Results"),
                ("p", "Yield rose\tsharply."),
                ("table", "Year|Yield\n2023|41"),
                ("h2", "Caveats"),
                ("p", "Small sample."),
            ],
            title="Field Report",
            localized_headings=localized,
        )
    )
    doc = extract(docs / "r.docx")
    assert doc.kind == "docx" and doc.title == "Field Report"
    assert [(s.heading, s.text) for s in doc.sections] == [
        (None, "Opening words."),
        ("Results", "Yield rose\tsharply.\nYear | Yield\n2023 | 41"),
        ("Caveats", "Small sample."),
    ]
    assert "DELETEDWORDS" not in doc.text


def test_docx_damaged_or_encrypted(docs: Path) -> None:
    (docs / "x.docx").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(UnreadableDocument, match="not a valid Word document"):
        extract(docs / "x.docx")
    # Word saves a password-protected .docx as an OLE compound file
    (docs / "enc.docx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    with pytest.raises(UnreadableDocument, match="encrypted"):
        extract(docs / "enc.docx")
    # a proper package whose main part is cut off mid-element
    broken = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(make_docx([("p", "x")]))) as src, zipfile.ZipFile(broken, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, b"<w:document" if info.filename == "word/document.xml" else src.read(info))
    (docs / "badxml.docx").write_bytes(broken.getvalue())
    with pytest.raises(UnreadableDocument, match="damaged"):
        extract(docs / "badxml.docx")
    # a zip without the package's parts (someone renamed an archive)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("notes.txt", "hello")
    (docs / "renamed.docx").write_bytes(buf.getvalue())
    with pytest.raises(UnreadableDocument, match=r"not a valid Word document \(it is a zip archive with no Word"):
        extract(docs / "renamed.docx")


def test_docx_written_by_python_docx_with_tracked_insertions_and_links(docs: Path) -> None:
    """A file from python-docx's own template (the styles, rels and core part Word writes),
    with text that python-docx's ``Paragraph.text`` would drop: a tracked insertion and a
    field.  Deleted tracked text stays out."""
    import docx
    from docx.oxml import parse_xml

    ns = f'xmlns:w="{_W_NS}"'
    document = docx.Document()
    document.core_properties.title = "Maintenance  Manual"
    document.add_paragraph("Read this first.")
    document.add_heading("Oil change", level=1)
    para = document.add_paragraph("Use 5W-30 oil")
    para._p.append(parse_xml(f"<w:ins {ns} w:id='1' w:author='a'><w:r><w:t> every 10,000 km</w:t></w:r></w:ins>"))
    para._p.append(
        parse_xml(f"<w:del {ns} w:id='2' w:author='a'><w:r><w:delText>DELETEDWORDS</w:delText></w:r></w:del>")
    )
    para._p.append(parse_xml(f"<w:fldSimple {ns} w:instr='PAGE'><w:r><w:t>.</w:t></w:r></w:fldSimple>"))
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([("Part", "Torque"), ("Drain plug", "25 Nm")]):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    document.add_heading("Tyres", level=2)
    document.add_paragraph("Check pressure monthly.")
    document.save(docs / "manual.docx")

    doc = extract(docs / "manual.docx")
    assert doc.title == "Maintenance Manual"
    assert [(s.heading, s.text) for s in doc.sections] == [
        (None, "Read this first."),
        ("Oil change", "Use 5W-30 oil every 10,000 km.\nPart | Torque\nDrain plug | 25 Nm"),
        ("Tyres", "Check pressure monthly."),
    ]
    assert "DELETEDWORDS" not in doc.text


def test_docx_parts_that_inflate_too_far_are_refused(docs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A zip bomb is refused from the sizes the archive declares, before anything inflates."""
    import importlib

    extract_module = importlib.import_module("app.core.documents.extract")
    data = make_docx([("p", "word " * 500)])
    monkeypatch.setattr(extract_module, "_MAX_DOCX_XML_BYTES", 1000)
    (docs / "bomb.docx").write_bytes(data)
    with pytest.raises(UnreadableDocument, match="too large"):
        extract(docs / "bomb.docx")


def test_source_code_kept_verbatim(docs: Path) -> None:
    code = "def f(x):\n    if x:\n        return {'a': 1}  # comment\n\n\nclass A: pass\n"
    (docs / "m.py").write_text(code)
    (docs / "Makefile").write_text("all:\n\tgcc main.c\n")
    doc = extract(docs / "m.py")
    assert doc.kind == "code" and doc.sections == [Section(code)]
    assert extract(docs / "Makefile").sections[0].text == "all:\n\tgcc main.c\n"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "is empty"),
        ("blank.md", b"  \n\n\t\n", "contains no text"),
        ("blob.txt", b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)) * 4, "is a binary file"),
        ("ctrl.py", bytes([1, 2, 3, 4, 5, 6, 7, 14, 15, 16]) * 50, "is a binary file"),
        ("photo.png", b"\x89PNG\r\n\x1a\n", "is not a supported file type (.png)"),
        ("old.doc", b"\xd0\xcf\x11\xe0", "save it as .docx"),
        ("noext", b"text", "no extension"),
    ],
)
def test_unreadable_files_have_plain_reasons(docs: Path, name: str, content: bytes, reason: str) -> None:
    (docs / name).write_bytes(content)
    with pytest.raises(UnreadableDocument) as err:
        extract(docs / name)
    assert reason in err.value.reason
    assert str(err.value).startswith(name + " ")


def test_missing_file_is_unreadable(docs: Path) -> None:
    with pytest.raises(UnreadableDocument, match="does not exist"):
        extract(docs / "gone.txt")


# -- chunking --------------------------------------------------------------------------------


def _words(n: int, prefix: str = "w") -> str:
    return " ".join(f"{prefix}{i}" for i in range(n))


def test_chunks_cover_the_text_with_overlap_and_exact_offsets() -> None:
    text = _words(500)
    pieces = chunk_text(text, words=200, overlap=40)
    for start, piece in pieces:
        assert text[start : start + len(piece)] == piece
        assert len(piece.split()) <= 200
    words = [p.split() for _, p in pieces]
    assert [w[0] for w in words] == ["w0", "w160", "w320"]
    assert words[-1][-1] == "w499"
    # consecutive passages share exactly the overlap
    for a, b in zip(words, words[1:]):
        assert a[-40:] == b[:40]


def test_chunks_end_at_a_sentence_when_one_is_near() -> None:
    sentences = [f"Sentence {i} has exactly seven words here." for i in range(60)]
    text = " ".join(sentences)
    pieces = chunk_text(text, words=50, overlap=10)
    assert len(pieces) > 3
    for _, piece in pieces[:-1]:
        assert piece.endswith("."), piece[-30:]


def test_chunks_cap_characters_for_text_without_spaces() -> None:
    blob = "x" * 10_000
    pieces = chunk_text(blob, words=200, overlap=40, max_chars=1000)
    assert all(len(p) <= 1000 for _, p in pieces)
    assert "".join(p for _, p in pieces) == blob  # no overlap possible inside one "word": nothing lost or repeated
    code = "\n".join(f"    value_{i} = compute(argument_{i}, option={i})  # explain" for i in range(300))
    assert all(len(p) <= 1600 for _, p in chunk_text(code, words=200, overlap=40))


def test_passages_never_cross_pages_and_keep_page_and_heading() -> None:
    sections = [Section(_words(250, "a"), page=1), Section(_words(30, "b"), page=2), Section("c1 c2 c3", heading="H")]
    passages = chunk_sections(7, sections, words=100, overlap=20)
    assert [p.ordinal for p in passages] == list(range(len(passages)))
    assert all(p.doc_id == 7 for p in passages)
    for p in passages:
        prefixes = {w[0] for w in p.text.split()}
        assert len(prefixes) == 1  # one section's words only
        assert p.page == {"a": 1, "b": 2, "c": None}[p.text[0]]
    assert passages[-1].heading == "H" and passages[-1].text == "c1 c2 c3"
    assert sum(1 for p in passages if p.page == 1) == 3  # 250 words at 100/20 → 0,80,160


_CHUNK_TEXT = st.lists(
    st.one_of(
        st.sampled_from(["alpha", "beta.", "gamma!", "“quoted.”", "naïve", "東京", "x" * 40, "(aside)", "end:"]),
        st.text(alphabet="abc .!\n", min_size=1, max_size=12),
    ),
    max_size=400,
).map(lambda ws: "".join(w + (" " if i % 7 else "\n\n" if i % 21 == 0 else "\n") for i, w in enumerate(ws)))


@settings(max_examples=150, deadline=None)
@given(_CHUNK_TEXT, st.integers(1, 60), st.integers(0, 30), st.sampled_from([None, 16, 50, 300]))
def test_chunk_properties(text: str, words: int, overlap: int, max_chars: int | None) -> None:
    """Every passage is a verbatim slice that starts and ends on a word, within the word and
    character caps, in order, and together they cover every word."""
    pieces = chunk_text(text, words=words, overlap=overlap, max_chars=max_chars)
    cap = max(16, max_chars if max_chars is not None else words * 8)
    covered = [False] * len(text)
    last = -1
    for start, piece in pieces:
        assert piece and text[start : start + len(piece)] == piece
        assert not piece[0].isspace() and not piece[-1].isspace()
        assert len(piece) <= cap and len(piece.split()) <= words
        assert start > last
        last = start
        covered[start : start + len(piece)] = [True] * len(piece)
    assert all(covered[i] for i, ch in enumerate(text) if not ch.isspace())


def test_chunking_rejects_nonsense_sizes() -> None:
    with pytest.raises(ValueError):
        chunk_text("a b c", words=0)
    assert chunk_text("a b c d", words=2, overlap=5) == [(0, "a b"), (2, "b c"), (4, "c d")]


# -- index: adding, reporting, re-indexing ---------------------------------------------------


def test_index_file_lives_in_the_data_dir(index: DocumentIndex, hearth_home: Path) -> None:
    assert index.path == paths.data_dir() / "documents.sqlite3"
    assert index.path.exists()
    mode = index._conn().execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_unreadable_files_are_listed_and_skipped_the_rest_indexed(index: DocumentIndex, docs: Path) -> None:
    (docs / "good.md").write_text("# Title\nUseful content about otters.")
    (docs / "locked.pdf").write_bytes(encrypt_pdf(make_pdf(["hidden"]), "pw"))
    (docs / "empty.txt").write_bytes(b"")
    (docs / "pic.png").write_bytes(b"\x89PNG")
    (docs / "data.txt").write_bytes(b"\x00\x01\x02binary")
    (docs / "paper.pdf").write_bytes(make_pdf(["Otters eat fish", "Otters sleep"]))
    coll = index.create_collection("Mine")
    seen: list[tuple[int, int, str]] = []
    report = index.add_files(
        coll.id,
        [docs / n for n in ("good.md", "locked.pdf", "empty.txt", "pic.png", "data.txt", "paper.pdf", "nope.txt")],
        progress=lambda done, total, name: seen.append((done, total, name)),
    )
    assert report.added == 2 and report.updated == 0 and not report.cancelled
    reasons = {p.name: r for p, r in report.skipped}
    assert set(reasons) == {"locked.pdf", "empty.txt", "pic.png", "data.txt", "nope.txt"}
    assert reasons["locked.pdf"] == "locked.pdf is encrypted (it needs a password to open)"
    assert reasons["empty.txt"] == "empty.txt is empty"
    assert "not a supported file type" in reasons["pic.png"]
    assert "binary" in reasons["data.txt"]
    assert "does not exist" in reasons["nope.txt"]
    assert seen[0] == (0, 7, "good.md") and seen[-1] == (7, 7, "")

    listed = {d.name: d for d in index.documents(coll.id)}
    assert "nope.txt" not in listed  # a path that does not exist is not a document
    assert listed["good.md"].status is DocumentStatus.INDEXED and listed["good.md"].error is None
    assert listed["paper.pdf"].passages == 2
    assert listed["locked.pdf"].status is DocumentStatus.UNREADABLE
    assert listed["locked.pdf"].error == "is encrypted (it needs a password to open)"
    assert index.collection(coll.id).documents == 6


def test_folder_is_expanded_to_supported_files(index: DocumentIndex, docs: Path) -> None:
    (docs / "sub").mkdir()
    (docs / ".git").mkdir()
    (docs / "a.txt").write_text("alpha")
    (docs / "sub" / "b.py").write_text("print('beta')")
    (docs / ".git" / "c.txt").write_text("hidden")
    (docs / "d.jpg").write_bytes(b"\xff\xd8")
    coll = index.create_collection("Folder drop")
    report = index.add_files(coll.id, [docs])
    assert report.added == 2 and report.skipped == []
    assert sorted(d.name for d in index.documents(coll.id)) == ["a.txt", "b.py"]


def test_sync_reindexes_changed_files_and_drops_removed(index: DocumentIndex, docs: Path) -> None:
    for i in range(3):
        (docs / f"f{i}.txt").write_text(f"file {i} mentions kiwis number{i}")
    coll = index.create_collection("Watched", folder=docs)
    first = index.sync_collection(coll.id)
    assert (first.added, first.updated, first.removed, first.unchanged) == (3, 0, 0, 0)

    assert index.sync_collection(coll.id).unchanged == 3  # nothing changed: nothing re-read

    f0, f1, f2 = (docs / f"f{i}.txt" for i in range(3))
    old = f0.stat().st_mtime
    f0.write_text("file 0 now talks about mangoes instead")
    os.utime(f0, (old + 10, old + 10))
    os.utime(f1, (old + 20, old + 20))  # touched, same content: no re-index
    f2.unlink()
    (docs / "new.md").write_text("a newcomer about papayas")
    report = index.sync_collection(coll.id)
    assert (report.added, report.updated, report.removed, report.unchanged) == (1, 1, 1, 1)
    names = {d.name: d for d in index.documents(coll.id)}
    assert set(names) == {"f0.txt", "f1.txt", "new.md"}
    assert names["f1.txt"].mtime == old + 20  # the new mtime is remembered
    assert retrieve(index, "mangoes", [coll.id])[0].path == f0.resolve()
    assert retrieve(index, "kiwis number0", [coll.id])[0].path != f0.resolve()
    assert retrieve(index, "number2", [coll.id]) == []  # the removed file's passages are gone
    index.verify()  # the search index matches the passages after updates and removals


def test_sync_keeps_a_collection_whose_folder_is_missing(index: DocumentIndex, docs: Path, tmp_path: Path) -> None:
    (docs / "a.txt").write_text("on an external drive")
    coll = index.create_collection("USB", folder=docs)
    index.sync_collection(coll.id)
    docs.rename(tmp_path / "unplugged")
    with pytest.raises(DocumentIndexError, match="cannot be found"):
        index.sync_collection(coll.id)
    assert [d.name for d in index.documents(coll.id)] == ["a.txt"]


def test_deleting_a_collection_while_it_is_indexed(index: DocumentIndex, docs: Path) -> None:
    files = [docs / f"f{i}.txt" for i in range(4)]
    for f in files:
        f.write_text(f"text of {f.name}")
    coll = index.create_collection("Doomed")
    keep = index.create_collection("Kept")
    index.add_files(keep.id, [files[0]])

    def progress(done: int, total: int, name: str) -> None:
        if done == 2:
            index.delete_collection(coll.id)  # e.g. the GUI thread, mid-run

    with pytest.raises(CollectionNotFound):
        index.add_files(coll.id, files, progress=progress)
    assert index.stats().documents == 1
    index.verify()


def test_sync_retries_an_unreadable_file_only_when_it_changes(index: DocumentIndex, docs: Path) -> None:
    (docs / "e.txt").write_bytes(b"")
    coll = index.create_collection("W", folder=docs)
    assert len(index.sync_collection(coll.id).skipped) == 1
    assert index.sync_collection(coll.id).skipped == []  # unchanged: not reported again
    (docs / "e.txt").write_text("now it has words")
    report = index.sync_collection(coll.id)
    assert report.updated == 1 and report.skipped == []
    assert index.documents(coll.id)[0].status is DocumentStatus.INDEXED


def test_add_files_reports_unchanged_and_updates_changed(index: DocumentIndex, docs: Path) -> None:
    f = docs / "a.txt"
    f.write_text("version one")
    coll = index.create_collection("C")
    index.add_files(coll.id, [f])
    assert index.add_files(coll.id, [f]).unchanged == 1
    f.write_text("version two, longer")
    assert index.add_files(coll.id, [f]).updated == 1
    assert [p.passage.text for p in index.passages(index.documents(coll.id)[0].id)] == ["version two, longer"]


def test_cancel_mid_index_keeps_finished_files(index: DocumentIndex, docs: Path) -> None:
    files = []
    for i in range(6):
        files.append(docs / f"d{i}.txt")
        files[-1].write_text(f"document {i} text")
    coll = index.create_collection("C")
    calls = []

    def progress(done: int, total: int, name: str) -> None:
        calls.append(done)

    # cancelled once the third file is in hand: cancel is seen inside a file, so that one stops too
    report = index.add_files(coll.id, files, progress=progress, cancel=lambda: len(calls) >= 3)
    assert report.cancelled and report.added == 2
    assert calls == [0, 1, 2]  # no final "done" callback after a cancel
    assert [d.name for d in index.documents(coll.id)] == ["d0.txt", "d1.txt"]
    # the index is consistent: searching finds exactly the finished files
    assert {h.path.name for h in retrieve(index, "document", [coll.id], k=10)} == {"d0.txt", "d1.txt"}


def test_cancel_inside_a_long_pdf(index: DocumentIndex, docs: Path) -> None:
    (docs / "long.pdf").write_bytes(make_pdf([f"page {i}" for i in range(30)]))
    coll = index.create_collection("C")
    checks = []

    def cancel() -> bool:
        checks.append(1)
        return len(checks) > 5  # passes the between-files check, trips between pages

    report = index.add_files(coll.id, [docs / "long.pdf"], cancel=cancel)
    assert report.cancelled and report.added == 0
    assert index.documents(coll.id) == []


# -- collections and conversations -----------------------------------------------------------


def test_collections_create_rename_delete(index: DocumentIndex, docs: Path) -> None:
    a = index.create_collection("  Papers  ")
    assert a.name == "Papers" and a.folder is None and not a.is_attachments
    with pytest.raises(DocumentIndexError, match="already a collection"):
        index.create_collection("papers")
    with pytest.raises(DocumentIndexError, match="needs a name"):
        index.create_collection("   ")
    with pytest.raises(DocumentIndexError, match="not a folder"):
        index.create_collection("F", folder=docs / "missing")
    b = index.create_collection("Notes", folder=docs)
    assert b.folder == docs.resolve()
    assert index.rename_collection(a.id, "Articles").name == "Articles"
    with pytest.raises(DocumentIndexError):
        index.rename_collection(a.id, "Notes")
    (docs / "x.txt").write_text("hello")
    index.add_files(a.id, [docs / "x.txt"])
    index.delete_collection(a.id)
    with pytest.raises(CollectionNotFound):
        index.collection(a.id)
    with pytest.raises(CollectionNotFound):
        index.add_files(a.id, [docs / "x.txt"])
    assert [c.name for c in index.collections()] == ["Notes"]
    assert index.stats().passages == 0  # the deleted collection's passages went with it
    index.verify()
    assert (docs / "x.txt").exists()  # files are never touched


def test_conversation_attachments_and_enabled_collections(index: DocumentIndex, docs: Path) -> None:
    (docs / "att.txt").write_text("the attached file talks about walruses")
    (docs / "lib.txt").write_text("the library talks about walruses too")
    report = index.attach_files("conv-1", [docs / "att.txt"])
    assert report.added == 1
    att = index.attachments_collection("conv-1", create=False)
    assert att is not None and att.is_attachments and att.documents == 1
    assert index.collections() == []  # attachments are not named collections
    assert [c.id for c in index.collections(include_attachments=True)] == [att.id]
    lib = index.create_collection("Library")
    index.add_files(lib.id, [docs / "lib.txt"])

    assert index.conversation_collection_ids("conv-1") == [att.id]
    index.enable_collection("conv-1", lib.id)
    index.enable_collection("conv-1", lib.id)  # twice is once
    assert index.conversation_collection_ids("conv-1") == [lib.id, att.id]
    assert index.conversation_collection_ids("conv-2") == []
    hits = retrieve(index, "walruses", index.conversation_collection_ids("conv-1"))
    assert {h.path.name for h in hits} == {"att.txt", "lib.txt"}
    assert [h.path.name for h in retrieve(index, "walruses", index.conversation_collection_ids("conv-2"))] == []

    index.set_retrieval_enabled("conv-1", False)
    assert not index.retrieval_enabled("conv-1") and index.conversation_collection_ids("conv-1") == []
    index.set_retrieval_enabled("conv-1", True)
    index.enable_collection("conv-1", lib.id, enabled=False)
    assert index.conversation_collection_ids("conv-1") == [att.id]
    with pytest.raises(CollectionNotFound):
        index.enable_collection("conv-1", 9999)

    index.enable_collection("conv-1", lib.id)
    index.forget_conversation("conv-1")
    assert index.attachments_collection("conv-1", create=False) is None
    assert index.enabled_collections("conv-1") == []
    assert index.collection(lib.id).documents == 1  # a named collection outlives the chat
    assert retrieve(index, "walruses", [att.id, lib.id])[0].path.name == "lib.txt"
    index.verify()


def test_index_survives_reopening(docs: Path) -> None:
    (docs / "a.txt").write_text("persistent penguins")
    with DocumentIndex() as idx:
        cid = idx.create_collection("P").id
        idx.add_files(cid, [docs / "a.txt"])
    with DocumentIndex() as idx:
        assert retrieve(idx, "penguins", [cid])[0].path.name == "a.txt"
    with pytest.raises(DocumentIndexError, match="closed"):
        idx.collections()


def test_verify_detects_a_search_index_out_of_step_and_rebuild_fixes_it(index: DocumentIndex, docs: Path) -> None:
    (docs / "a.txt").write_text("alpha beta gamma")
    cid = index.create_collection("V").id
    index.add_files(cid, [docs / "a.txt"])
    index.verify()
    # a passage changed behind the index's back (what a missed FTS update would leave)
    index._write(lambda c: c.execute("UPDATE passages SET text = 'delta epsilon'"))
    with pytest.raises(DocumentIndexError, match="rebuild"):
        index.verify()
    index.rebuild_search_index()
    index.verify()
    assert retrieve(index, "epsilon", [cid])[0].passage.text == "delta epsilon"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "future.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(DocumentIndexError, match="newer version"):
        DocumentIndex(path)


# -- retrieval -------------------------------------------------------------------------------

TOPICS = [
    ("volcano", "magma eruption lava crater ash basalt caldera tectonic vent"),
    ("baking", "flour yeast dough oven knead crust proof loaf butter"),
    ("sailing", "mast keel rudder tack jib hull harbor anchor wind"),
    ("chess", "pawn bishop rook gambit checkmate castle opening endgame knight"),
    ("astronomy", "telescope nebula galaxy orbit comet quasar parallax star redshift"),
    ("gardening", "compost mulch seedling prune soil trowel bloom perennial weed"),
    ("finance", "bond yield equity dividend ledger audit interest portfolio hedge"),
    ("medicine", "dosage symptom diagnosis vaccine clinic nurse fever tablet therapy"),
    ("music", "chord melody tempo rhythm octave violin sonata harmony scale"),
    ("cycling", "pedal derailleur saddle spoke chain gear helmet sprint climb"),
    ("coffee", "espresso roast grinder bean crema barista arabica brew filter"),
    ("photography", "aperture shutter lens exposure tripod focus iso sensor flash"),
    ("knitting", "yarn needle purl stitch wool pattern cardigan cable gauge"),
    ("mountaineering", "crampon ice axe rope summit glacier altitude belay carabiner"),
    ("aquarium", "filter tank algae guppy coral reef salinity gravel heater"),
    ("woodwork", "chisel plane dovetail grain lathe sanding oak joinery clamp"),
    ("beekeeping", "hive queen honey comb smoker swarm pollen nectar drone"),
    ("railways", "locomotive track signal gauge sleeper freight carriage timetable platform"),
    ("pottery", "clay kiln glaze wheel slip throw bisque porcelain stoneware"),
    ("radio", "antenna frequency transmitter receiver band amplitude signal modulation static"),
]
FILLER = "the of and a to in is was for on that with as it by this at from be are".split()


def _topic_text(rng: random.Random, vocab: str, n: int) -> str:
    words = vocab.split()
    out = []
    for i in range(n):
        out.append(rng.choice(words) if rng.random() < 0.35 else rng.choice(FILLER))
        if i % 12 == 11:
            out[-1] += "."
    return " ".join(out)


@pytest.fixture
def corpus(index: DocumentIndex, docs: Path) -> tuple[DocumentIndex, int]:
    """Twenty documents on twenty topics; one of them ("baking") holds a unique answer."""
    rng = random.Random(7)
    for name, vocab in TOPICS:
        text = _topic_text(rng, vocab, 600)
        if name == "baking":
            words = text.split()
            answer = "The sourdough starter must rest for exactly nineteen hours before the bake."
            text = " ".join(words[:300]) + " " + answer + " " + " ".join(words[300:])
        (docs / f"{name}.txt").write_text(text)
    coll = index.create_collection("Twenty")
    assert index.add_files(coll.id, sorted(docs.iterdir())).added == 20
    return index, coll.id


def test_bm25_ranks_the_passage_with_the_answer_first(corpus: tuple[DocumentIndex, int]) -> None:
    index, cid = corpus
    hits = retrieve(index, "How long should the sourdough starter rest?", [cid], k=4)
    assert hits[0].path.name == "baking.txt"
    assert "nineteen hours" in hits[0].passage.text
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    # a topical question lands in the right document among twenty
    for name, vocab in TOPICS:
        q = "Tell me about " + " and ".join(vocab.split()[:3])
        assert retrieve(index, q, [cid], k=1)[0].path.name == f"{name}.txt", name


def test_stemming_and_diacritics_match(index: DocumentIndex, docs: Path) -> None:
    (docs / "a.txt").write_text("Installing the café software requires patience.")
    (docs / "b.txt").write_text("Nothing relevant is written here at all.")
    cid = index.create_collection("S").id
    index.add_files(cid, [docs / "a.txt", docs / "b.txt"])
    assert [h.path.name for h in retrieve(index, "how do I install it at the cafe?", [cid])] == ["a.txt"]


def test_token_budget_is_respected(corpus: tuple[DocumentIndex, int]) -> None:
    index, cid = corpus
    unlimited = retrieve(index, "oven dough flour yeast magma lava", [cid], k=6, token_budget=100_000)
    assert len(unlimited) == 6
    for budget in (0, 50, 200, 400, 700, 1000, 1500):
        hits = retrieve(index, "oven dough flour yeast magma lava", [cid], k=6, token_budget=budget)
        block, _ = build_context(hits)
        assert approx_tokens(block) <= budget
        if budget < approx_tokens(INSTRUCTIONS) + 20:
            assert hits == []
    # with room for about three passages, the budget is used, not left empty
    three = approx_tokens(build_context(unlimited[:3])[0])
    assert len(retrieve(index, "oven dough flour yeast magma lava", [cid], k=6, token_budget=three)) == 3

    # a model's own tokenizer (here: one token a character) is honoured too
    def chars(text: str) -> int:
        return len(text)

    hits = retrieve(index, "oven dough flour yeast magma lava", [cid], k=6, token_budget=2500, count_tokens=chars)
    assert hits and len(build_context(hits)[0]) <= 2500


def test_smaller_passage_fills_the_budget_a_big_one_would_overrun(index: DocumentIndex, docs: Path) -> None:
    (docs / "big.txt").write_text("zebra " * 60 + " ".join(f"pad{i}" for i in range(130)))
    (docs / "small.txt").write_text("zebra stripes are unique")
    cid = index.create_collection("B").id
    index.add_files(cid, [docs / "big.txt", docs / "small.txt"])
    full = retrieve(index, "zebra", [cid], token_budget=100_000)
    assert [h.path.name for h in full] == ["big.txt", "small.txt"]
    budget = approx_tokens(INSTRUCTIONS) + 40
    assert [h.path.name for h in retrieve(index, "zebra", [cid], token_budget=budget)] == ["small.txt"]


def test_citations_are_numbered_and_match_the_prompt(index: DocumentIndex, docs: Path) -> None:
    (docs / "guide.pdf").write_bytes(make_pdf(["intro page", "The reactor coolant is heavy water."]))
    (docs / "notes.md").write_text("# Coolant\nOur reactor coolant notes say heavy water too.\n")
    (docs / "run.py").write_text("reactor = 'coolant heavy water'\n")
    cid = index.create_collection("R").id
    index.add_files(cid, sorted(docs.iterdir()))
    hits = retrieve(index, "reactor coolant heavy water", [cid])
    labels = {h.path.name: h.source_label for h in hits}
    assert labels == {"guide.pdf": "guide.pdf, p. 2", "notes.md": "notes.md, “Coolant”", "run.py": "run.py"}
    block, cites = build_context(hits)
    assert block.startswith(INSTRUCTIONS)
    assert [c.number for c in cites] == [1, 2, 3]
    for c, h in zip(cites, hits):
        assert f"[{c.number}] {h.source_label}:\n{h.passage.text}" in block
        assert c.label == h.source_label and c.text == h.passage.text and c.path == h.path
    pdf_cite = next(c for c in cites if c.file_name == "guide.pdf")
    assert pdf_cite.page == 2 and pdf_cite.location == "p. 2"
    assert build_context([]) == ("", [])


def test_with_context_puts_sources_before_the_last_question() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "What is the coolant?"},
    ]
    out = with_context(messages, "[1] a.txt:\nheavy water")
    assert out[:3] == messages[:3]
    assert out[3] == {"role": "user", "content": "[1] a.txt:\nheavy water\n\nQuestion: What is the coolant?"}
    assert messages[3]["content"] == "What is the coolant?"  # the caller's list is not changed
    assert with_context(messages, "") == messages


def test_cited_numbers() -> None:
    text = "Water [2]. Also [1][3], see [2, 4] and [7]; not a citation: [x] or [ ]."
    assert cited_numbers(text) == [2, 1, 3, 4, 7]
    assert cited_numbers(text, count=3) == [2, 1, 3]
    assert cited_numbers("") == []


def test_fts_query_quotes_terms_and_drops_stop_words() -> None:
    assert fts_query("What is the boiling point of water?") == '"boiling" OR "point" OR "water"'
    assert fts_query("what is it") == '"what" OR "is" OR "it"'  # all stop words: keep them
    assert (
        fts_query('NEAR(alpha beta) "gamma" -delta eps* AND OR')
        == '"near" OR "alpha" OR "beta" OR "gamma" OR "delta" OR "eps"'
    )
    assert fts_query("x y z") == '"x" OR "y" OR "z"'  # single letters only when nothing else is left
    assert fts_query("  ?!  ") is None
    assert query_terms("Ünïcödé façade 東京 2024") == ["ünïcödé", "façade", "東京", "2024"]
    assert len(query_terms(_words(500))) == 32


HOSTILE = [
    '"',
    '""',
    "'",
    "*",
    "-",
    "-foo",
    "foo*",
    "NEAR",
    "NEAR(a b, 3)",
    "a NEAR/2 b",
    "AND",
    "OR OR OR",
    "NOT x",
    "text:foo",
    "heading: bar",
    "{text heading}: x",
    "^start",
    "(((",
    ")",
    "a + b",
    "\x00\x01",
    "\ud800 lone surrogate",
    "😀 emoji 🚀",
    "東京タワー",
    "x" * 5000,
    "rank:bm25",
    "; DROP TABLE passages; --",
]


def test_hostile_queries_never_raise(corpus: tuple[DocumentIndex, int]) -> None:
    index, cid = corpus
    for query in HOSTILE:
        hits = retrieve(index, query, [cid])
        assert isinstance(hits, list), query
    assert index.stats().passages > 0
    # hostile words are still searched for as words
    assert retrieve(index, 'magma* -lava "crater', [cid])[0].path.name == "volcano.txt"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=80))
def test_any_text_is_a_safe_query(corpus: tuple[DocumentIndex, int], query: str) -> None:
    index, cid = corpus
    retrieve(index, query, [cid])


def test_retrieve_edge_cases(corpus: tuple[DocumentIndex, int]) -> None:
    index, cid = corpus
    assert retrieve(index, "magma", []) == []
    assert retrieve(index, "magma", [cid], k=0) == []
    assert retrieve(index, "", [cid]) == []
    assert retrieve(index, "magma", [cid + 1000]) == []


def test_duplicate_passages_are_shown_once(index: DocumentIndex, docs: Path) -> None:
    (docs / "a.txt").write_text("identical walnut text")
    (docs / "copy").mkdir()
    (docs / "copy" / "a.txt").write_text("identical walnut text")
    c1 = index.create_collection("One").id
    c2 = index.create_collection("Two").id
    index.add_files(c1, [docs / "a.txt"])
    index.add_files(c2, [docs / "copy" / "a.txt"])
    assert len(retrieve(index, "walnut", [c1, c2])) == 1


# -- fusion and vectors ----------------------------------------------------------------------


def test_reciprocal_rank_fusion() -> None:
    fused = fuse([["a", "b", "c"], ["c", "a", "d"]])
    scores = dict(fused)
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["b"] == pytest.approx(1 / 62)
    assert scores["d"] == pytest.approx(1 / 63)
    assert [x for x, _ in fused] == ["a", "c", "b", "d"]
    # ties go to the better first rank, then the earlier list; repeats count once
    assert [x for x, _ in fuse([["x", "y"], ["y", "x"]])] == ["x", "y"]
    assert dict(fuse([["a", "a", "b"]]))["a"] == pytest.approx(1 / 61)
    assert fuse([]) == [] and fuse([[], []]) == []
    assert dict(fuse([[1]], k=0))[1] == 1.0


def test_vector_store_and_cosine_search(corpus: tuple[DocumentIndex, int]) -> None:
    index, cid = corpus
    rng = np.random.default_rng(0)
    todo = index.passages_missing_vectors([cid], limit=10_000)
    assert len(todo) == index.stats().passages
    ids = [pid for pid, _ in todo]
    vecs = rng.normal(size=(len(ids), 32)).astype(np.float32)
    index.store_vectors(ids, vecs)
    assert index.passages_missing_vectors([cid]) == []
    assert index.passages_missing_vectors([cid], model="other") != []

    target = 5
    query = vecs[target] * 3.0 + rng.normal(scale=0.05, size=32)  # scale does not matter to cosine
    hits = index.vector_search(query, k=3, collection_ids=[cid])
    assert hits[0][0] == ids[target] and hits[0][1] == pytest.approx(1.0, abs=0.01)
    assert hits[0][1] >= hits[1][1] >= hits[2][1]
    # brute force agrees
    norm = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    expected = np.argsort(-(norm @ (query / np.linalg.norm(query))))[:3]
    assert [pid for pid, _ in hits] == [ids[i] for i in expected]

    assert index.vector_search(query, k=3, collection_ids=[cid + 99]) == []
    assert index.vector_search(query, k=3, model="other") == []
    assert index.vector_search(np.zeros(32), k=3) == []
    with pytest.raises(ValueError):
        index.vector_search(np.ones(8), k=3)
    with pytest.raises(ValueError):
        index.store_vectors(ids[:2], vecs[:3])
    with pytest.raises(ValueError):
        index.store_vectors(ids[:1], np.full((1, 32), np.nan))

    # replacing a vector is seen at once (the cached matrix is invalidated)
    index.store_vectors([ids[0]], query.reshape(1, -1))
    assert index.vector_search(query, k=1)[0][0] in (ids[0], ids[target])
    assert index.vector_search(query, k=2, collection_ids=[cid])[0][1] == pytest.approx(1.0, abs=1e-5)


def test_hybrid_retrieval_finds_a_passage_with_no_shared_words(index: DocumentIndex, docs: Path) -> None:
    (docs / "lex.txt").write_text("automobile engine maintenance schedule")
    (docs / "sem.txt").write_text("how to service your car motor")  # no word in common with the query
    (docs / "noise.txt").write_text("unrelated gardening compost")
    cid = index.create_collection("H").id
    index.add_files(cid, sorted(docs.iterdir()))
    pid = {sp.path.name: sp.id for d in index.documents(cid) for sp in index.passages(d.id)}
    basis = np.eye(4, dtype=np.float32)
    index.store_vectors([pid["lex.txt"], pid["sem.txt"], pid["noise.txt"]], basis[[0, 1, 2]] + 0.1)

    lexical = retrieve(index, "automobile engine maintenance", [cid])
    assert [h.path.name for h in lexical] == ["lex.txt"]
    # the "embedded question" is close to sem.txt, and fairly close to lex.txt
    qvec = basis[1] + 0.6 * basis[0]
    hybrid = retrieve(index, "automobile engine maintenance", [cid], query_vector=qvec)
    names = [h.path.name for h in hybrid]
    assert names[:2] in (["lex.txt", "sem.txt"], ["sem.txt", "lex.txt"])
    assert hybrid[0].score == pytest.approx(1 / 61 + 1 / 62)  # in both lists, ranks 1 and 2
    # with no lexical match at all, vectors alone still answer
    assert retrieve(index, "zzzz", [cid], query_vector=basis[1], k=1)[0].path.name == "sem.txt"


# -- threads ---------------------------------------------------------------------------------


def test_indexing_on_a_worker_thread_while_another_thread_reads(index: DocumentIndex, docs: Path) -> None:
    rng = random.Random(3)
    files = []
    for i in range(40):
        files.append(docs / f"t{i}.txt")
        files[-1].write_text(_topic_text(rng, TOPICS[i % len(TOPICS)][1], 300))
    cid = index.create_collection("T").id
    errors: list[BaseException] = []
    result = {}

    def work() -> None:
        try:
            result["report"] = index.add_files(cid, files)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    reads = 0
    while worker.is_alive() or reads < 5:
        index.documents(cid)
        retrieve(index, "magma lava telescope", [cid])
        reads += 1
    worker.join()
    assert not errors
    assert result["report"].added == 40
    assert len(index.documents(cid)) == 40
    assert len(retrieve(index, "magma lava", [cid], k=3)) == 3
