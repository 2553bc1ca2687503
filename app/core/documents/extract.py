"""Text out of the user's files, in sections that carry what a citation needs.

A section is a run of text with the page it is on (PDF) or the heading it sits under
(Markdown, HTML, Word), so an answer can say "manual.pdf, p. 12" or "notes.md, Setup"
instead of just a file name.  Chunking never crosses a section boundary.

Why these readers:

* PDF: pypdf (pure Python, maintained, no native code to build).  Text comes page by page
  so every passage knows its page.  A PDF that needs a password is refused with
  :class:`UnreadableDocument`; one that is merely *owner*-protected (opens without a
  password, as most "secured" PDFs do) is read.
* Word (.docx): python-docx (maintained; it knows the package layout, relationships,
  style inheritance and core properties that a hand-rolled reader gets wrong on real
  files).  Heading styles are found by their built-in English names ("heading 1"), which
  Word keeps even in localized documents, or by outline level, following ``basedOn``.
  Its lxml parser does not resolve entities.  It is never handed the user's zip: the XML
  parts are inflated first in small steps under a running cap, counting the bytes that
  actually come out (a zip's declared sizes can lie), and re-zipped uncompressed.  Paragraph text is read from the
  XML so tracked insertions, fields and content controls are not lost.
* HTML: :mod:`html.parser` from the standard library; scripts, styles and other
  non-text elements are dropped, headings start sections.  A declared charset is used only
  if it is on an allow-list of document encodings: Python's codecs include ones that are
  no document's encoding and are slow on hostile input (``punycode`` is super-quadratic).
* Text, Markdown and source code are kept verbatim (Markdown is split at its headings).

Every failure is an :class:`UnreadableDocument` whose ``reason`` is plain words ("is
encrypted", "is empty", "is a binary file", "is not a supported file type (.png)"), so the
index can list the file with the reason and go on with the rest.  Any other exception a
reader raises on a hostile file is turned into one too (a last resort; the readers name
the cases they know).  ``cancel`` is checked inside a file: between PDF pages, .docx parts
and blocks, and HTML slices.

API::

    Section(text, page=None, heading=None)
    ExtractedDocument(path, title, sections, sha256, mtime, kind, size)
    UnreadableDocument(path, reason)          str(exc) == "<file name> <reason>"
    ExtractionCancelled
    extract(path, data=None, cancel=None) -> ExtractedDocument
    is_supported(path) -> bool                SUPPORTED_SUFFIXES, MAX_FILE_BYTES
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

#: Larger files are refused: extracting them would hold the indexing thread for minutes
#: and their text would swamp a collection anyway.
MAX_FILE_BYTES = 256 * 1024 * 1024
#: Most bytes an XML part of a .docx may inflate to (a real document is a few MB), and all
#: of its XML parts together: counted as they inflate, not taken from the zip's headers.
_MAX_DOCX_XML_BYTES = 128 * 1024 * 1024
_MAX_DOCX_TOTAL_BYTES = 192 * 1024 * 1024
#: More parts than this is not a Word document (a long one has a few hundred).
_MAX_DOCX_MEMBERS = 20_000
_DOCX_STEP = 64 * 1024
_DOCX_TOO_LARGE = "is too large to read (it inflates to more than Hearth reads)"

TEXT_SUFFIXES = frozenset({".txt", ".text", ".rst", ".csv", ".tsv", ".log", ".tex", ".org", ".adoc"})
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
PDF_SUFFIXES = frozenset({".pdf"})
DOCX_SUFFIXES = frozenset({".docx"})
CODE_SUFFIXES = frozenset(
    {
        ".py", ".pyi", ".pyx", ".ipynb", ".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".vue",
        ".svelte", ".c", ".h", ".cc", ".cpp", ".cxx", ".hh", ".hpp", ".hxx", ".m", ".mm", ".cs",
        ".java", ".kt", ".kts", ".scala", ".groovy", ".gradle", ".go", ".rs", ".swift", ".rb",
        ".php", ".pl", ".pm", ".lua", ".r", ".jl", ".dart", ".hs", ".ml", ".mli", ".fs", ".ex",
        ".exs", ".erl", ".clj", ".zig", ".nim", ".f90", ".sh", ".bash", ".zsh", ".fish", ".ps1",
        ".bat", ".cmd", ".sql", ".css", ".scss", ".sass", ".less", ".json", ".jsonl", ".yaml",
        ".yml", ".toml", ".ini", ".cfg", ".conf", ".xml", ".proto", ".graphql", ".cmake", ".mk",
        ".dockerfile", ".tf", ".nix",
    }
)  # fmt: skip
#: Source files known by name rather than suffix.
CODE_NAMES = frozenset(
    {"makefile", "dockerfile", "containerfile", "rakefile", "gemfile", "jenkinsfile", "justfile", "readme", "license"}
)
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | MARKDOWN_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | DOCX_SUFFIXES | CODE_SUFFIXES

#: Formats people try that we do not read, with what to do instead.
_UNSUPPORTED_HINTS = {
    ".doc": "save it as .docx",
    ".rtf": "save it as .docx or .txt",
    ".odt": "save it as .docx",
    ".pages": "export it as .docx or PDF",
}


class UnreadableDocument(Exception):
    """The file cannot be indexed; ``reason`` says why in plain words (it follows the name)."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path.name} {reason}")


class ExtractionCancelled(Exception):
    """``cancel()`` returned true while a long document was being read."""


@dataclass(frozen=True)
class Section:
    """A run of text a citation can point at: its page (1-based, PDFs) or its heading."""

    text: str
    page: int | None = None
    heading: str | None = None


@dataclass(frozen=True)
class ExtractedDocument:
    path: Path
    title: str
    sections: list[Section]
    sha256: str
    mtime: float
    kind: str = "text"  # "text", "markdown", "html", "pdf", "docx", "code"
    size: int = 0

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections)


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in PDF_SUFFIXES:
        return "pdf"
    if suffix in DOCX_SUFFIXES:
        return "docx"
    if suffix in HTML_SUFFIXES:
        return "html"
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix in CODE_SUFFIXES or (not suffix and path.name.lower() in CODE_NAMES):
        return "code"
    return None


def is_supported(path: str | os.PathLike[str]) -> bool:
    """Whether :func:`extract` would try this file (by name; the content may still fail)."""
    return _kind(Path(path)) is not None


def extract(
    path: str | os.PathLike[str],
    data: bytes | None = None,
    cancel: Callable[[], bool] | None = None,
) -> ExtractedDocument:
    """Read ``path`` (or the given bytes of it) into sections.

    Raises :class:`UnreadableDocument` for a missing, unsupported, empty, binary,
    encrypted or damaged file (and for anything else that goes wrong reading it), and
    :class:`ExtractionCancelled` when ``cancel`` turns true while it is read.
    """
    path = Path(path)
    kind = _kind(path)
    if kind is None:
        suffix = path.suffix.lower()
        if not suffix:
            raise UnreadableDocument(path, "is not a supported file type (it has no extension)")
        hint = _UNSUPPORTED_HINTS.get(suffix)
        raise UnreadableDocument(path, f"is not a supported file type ({suffix})" + (f": {hint}" if hint else ""))
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UnreadableDocument(path, "does not exist (it may have been moved or deleted)") from None
    except OSError as exc:
        raise UnreadableDocument(path, f"could not be opened ({exc.strerror or exc})") from None
    if not path.is_file():
        raise UnreadableDocument(path, "is not a file")
    if st.st_size > MAX_FILE_BYTES:
        raise UnreadableDocument(path, f"is too large (over {MAX_FILE_BYTES // (1024 * 1024)} MB)")
    if data is None:
        try:
            data = path.read_bytes()
        except PermissionError:
            raise UnreadableDocument(path, "could not be opened (permission denied)") from None
        except OSError as exc:
            raise UnreadableDocument(path, f"could not be read ({exc.strerror or exc})") from None
    if not data:
        raise UnreadableDocument(path, "is empty")
    sha = hashlib.sha256(data).hexdigest()

    try:
        title, sections = _read(path, kind, data, cancel)
    except (UnreadableDocument, ExtractionCancelled):
        raise
    except RecursionError:
        raise UnreadableDocument(path, "could not be read (it is nested too deeply)") from None
    except MemoryError:
        raise UnreadableDocument(path, "could not be read (it needs more memory than is free)") from None
    except Exception as exc:  # a reader's own bug on a hostile file must not stop the indexing
        raise UnreadableDocument(path, f"could not be read ({type(exc).__name__}: {_short(exc)})") from None
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise UnreadableDocument(path, "contains no text" if kind != "pdf" else _NO_PDF_TEXT)
    return ExtractedDocument(
        path=path, title=title or path.name, sections=sections, sha256=sha, mtime=st.st_mtime, kind=kind, size=len(data)
    )


def _read(path: Path, kind: str, data: bytes, cancel: Callable[[], bool] | None) -> tuple[str, list[Section]]:
    if kind == "pdf":
        return _read_pdf(path, data, cancel)
    if kind == "docx":
        return _read_docx(path, data, cancel)
    if kind == "html":
        return _read_html(path, data, cancel)
    text = _decode_text(path, data)
    if kind == "markdown":
        return path.name, _markdown_sections(text)
    return path.name, [Section(text)] if text.strip() else []


# -- plain text ------------------------------------------------------------------------------

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
#: Control characters (category Cc) that plain text does not contain: all but backspace,
#: tab, the line and page breaks and escape (ANSI colours in logs).
_BAD_CONTROLS = re.compile("[\x00-\x07\x0e-\x1a\x1c-\x1f\x7f-\x9f]")


def _decode_text(path: Path, data: bytes, declared: str | None = None) -> str:
    """Bytes to text: BOM, then the declared charset, then UTF-8, then Windows-1252.

    NUL bytes (outside UTF-16/32) or a high share of control characters mean a binary
    file that merely has a text-like name.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _clean(data[len(bom) :].decode(encoding, errors="replace"))
    if b"\x00" in data[:8192]:
        raise UnreadableDocument(path, "is a binary file, not text")
    text: str | None = None
    codec = _document_encoding(declared) if declared else None
    if codec:
        try:
            text = data.decode(codec)
        except (LookupError, UnicodeError):
            text = None
    if text is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
    sample = text[:8192]
    controls = len(_BAD_CONTROLS.findall(sample))
    if sample and controls / len(sample) > 0.05:
        raise UnreadableDocument(path, "is a binary file, not text")
    return _clean(text)


#: Encodings a document may declare (codec names as :func:`codecs.lookup` gives them).  Not
#: on it: codecs that are no document's encoding (punycode, idna, utf-7, the escapes) and
#: UTF-16/32 without a BOM, which browsers also ignore in a ``<meta>`` (the BOM is read first).
_DOCUMENT_ENCODINGS = frozenset(
    {
        "utf-8", "ascii", "iso8859-1", "iso8859-2", "iso8859-3", "iso8859-4", "iso8859-5",
        "iso8859-6", "iso8859-7", "iso8859-8", "iso8859-9", "iso8859-10", "iso8859-11",
        "iso8859-13", "iso8859-14", "iso8859-15", "iso8859-16", "cp1250", "cp1251", "cp1252",
        "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258", "cp874", "tis-620",
        "cp437", "cp850", "cp866", "koi8-r", "koi8-u", "mac-roman", "mac-cyrillic",
        "shift_jis", "cp932", "euc_jp", "iso2022_jp", "gbk", "gb2312", "gb18030", "big5",
        "big5hkscs", "cp950", "euc_kr", "cp949",
    }
)  # fmt: skip


def _document_encoding(declared: str) -> str | None:
    """The codec for a declared charset, or None (then UTF-8, then Windows-1252, is used)."""
    try:
        name = codecs.lookup(declared[:40]).name
    except (LookupError, ValueError):
        return None
    return name if name in _DOCUMENT_ENCODINGS else None


def _clean(text: str) -> str:
    """Line ends unified; NULs and lone surrogates (which SQLite cannot store) removed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return text.encode("utf-8", "replace").decode("utf-8")


_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")


def _markdown_sections(text: str) -> list[Section]:
    """Split at ATX (``# Title``) and setext (underlined) headings outside code fences."""
    sections: list[Section] = []
    heading: str | None = None
    body: list[str] = []
    fence: str | None = None

    def flush() -> None:
        chunk = "\n".join(body).strip("\n")
        if chunk.strip():
            sections.append(Section(chunk, heading=heading))
        body.clear()

    for line in text.split("\n"):
        m = _FENCE.match(line)
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            body.append(line)
            continue
        if m:
            fence = m.group(1)
            body.append(line)
            continue
        m = _ATX.match(line)
        if m:
            flush()
            heading = (m.group(2) or "").strip() or None
            continue
        m = _SETEXT.match(line)
        if m and body and body[-1].strip() and not body[-1].lstrip().startswith(("-", "*", "+", ">", "|")):
            title = body.pop().strip()
            flush()
            heading = title
            continue
        body.append(line)
    flush()
    return sections


# -- HTML -----------------------------------------------------------------------------------

_SKIP_TAGS = frozenset(
    {"script", "style", "noscript", "template", "svg", "math", "iframe", "object", "canvas", "select"}
)
_BLOCK_TAGS = frozenset(
    {
        "p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "section", "article",
        "header", "footer", "nav", "aside", "main", "pre", "blockquote", "hr", "figure",
        "figcaption", "form", "fieldset", "address", "details", "summary", "caption", "body",
    }
)  # fmt: skip
_HEADING_TAGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


class _HTMLText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self.title = ""
        self._heading: str | None = None
        self._parts: list[str] = []
        self._skip = 0  # depth inside elements whose text is not content
        self._pre = 0
        self._in_title = False
        self._in_heading = False
        self._heading_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag in _HEADING_TAGS and not self._skip:
            self._flush()
            self._in_heading = True
            self._heading_parts = []
        elif tag == "pre":
            self._pre += 1
            self._parts.append("\n")
        elif tag in ("td", "th"):
            self._parts.append("\t")
        elif tag in _BLOCK_TAGS:
            self._parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS and not self._skip:
            self._parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif tag in _HEADING_TAGS and self._in_heading:
            self._in_heading = False
            heading = " ".join("".join(self._heading_parts).split())
            self._heading = heading or None
            if heading and not self.title and tag == "h1":
                self.title = heading
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
            self._parts.append("\n")
        elif tag in _BLOCK_TAGS:
            self._parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_title:
            self.title += data
        elif self._in_heading:
            self._heading_parts.append(data)
        elif self._pre:
            self._parts.append(data.replace("\n", "\x00"))  # protected from collapsing
        else:
            self._parts.append(data)

    def _flush(self) -> None:
        raw = "".join(self._parts)
        self._parts = []
        lines = []
        for line in raw.split("\n"):
            if "\x00" in line:
                lines.extend(line.replace("\x00", "\n").split("\n"))
            else:
                lines.append(" ".join(line.split()))
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
        if text:
            self.sections.append(Section(text, heading=self._heading))

    def close(self) -> None:
        super().close()
        self._flush()
        self.title = " ".join(self.title.split())


#: HTML is parsed this many characters at a time, so a cancel is seen inside a long page.
_HTML_STEP = 1024 * 1024


def _read_html(path: Path, data: bytes, cancel: Callable[[], bool] | None = None) -> tuple[str, list[Section]]:
    m = _CHARSET.search(data[:4096])
    declared = m.group(1).decode("ascii", "replace") if m else None
    text = _decode_text(path, data, declared)
    parser = _HTMLText()
    try:
        for start in range(0, len(text), _HTML_STEP):
            if cancel is not None and cancel():
                raise ExtractionCancelled()
            parser.feed(text[start : start + _HTML_STEP])
        parser.close()
    except ExtractionCancelled:
        raise
    except Exception as exc:  # html.parser is lenient; this is a last resort
        raise UnreadableDocument(path, f"could not be read as HTML ({exc})") from None
    return parser.title or path.name, parser.sections


# -- PDF ------------------------------------------------------------------------------------

_NO_PDF_TEXT = "has no text layer (it may be a scan; run it through OCR first)"


def _read_pdf(path: Path, data: bytes, cancel: Callable[[], bool] | None) -> tuple[str, list[Section]]:
    import pypdf  # imported here: only PDF indexing pays for it
    from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise UnreadableDocument(path, "is not a valid PDF file")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                opened = bool(reader.decrypt(""))  # owner-password-only PDFs open with an empty one
            except (DependencyError, NotImplementedError, PyPdfError):
                opened = False
            if not opened:
                raise UnreadableDocument(path, "is encrypted (it needs a password to open)")
        pages = reader.pages
        count = len(pages)
    except UnreadableDocument:
        raise
    except FileNotDecryptedError:
        raise UnreadableDocument(path, "is encrypted (it needs a password to open)") from None
    except Exception as exc:  # pypdf raises many kinds of error on a damaged file
        raise UnreadableDocument(path, f"could not be read as a PDF ({_short(exc)})") from None

    sections: list[Section] = []
    failed = 0
    for number in range(count):
        if cancel is not None and cancel():
            raise ExtractionCancelled()
        try:
            text = pages[number].extract_text() or ""
        except FileNotDecryptedError:
            raise UnreadableDocument(path, "is encrypted (it needs a password to open)") from None
        except Exception:  # one damaged page should not lose the rest of the document
            failed += 1
            continue
        text = _clean(text).strip()
        if text:
            sections.append(Section(text, page=number + 1))
    if not sections and failed:
        raise UnreadableDocument(path, "could not be read as a PDF (its pages are damaged)")
    title = path.name
    try:
        meta_title = reader.metadata.title if reader.metadata else None
        if isinstance(meta_title, str) and meta_title.strip():
            title = " ".join(meta_title.split())
    except Exception:
        pass
    return title, sections


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "…"


# -- Word (.docx) ---------------------------------------------------------------------------

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: The text-bearing runs of a paragraph, wherever they sit: plain runs, hyperlinks, fields,
#: tracked insertions, smart tags and inline content controls (python-docx's own
#: ``Paragraph.text`` sees only the first two).  ``w:delText`` (a deleted tracked change)
#: is not content and is not matched.
_DOCX_TEXT_TAGS = {f"{_W}t": None, f"{_W}tab": "\t", f"{_W}br": "\n", f"{_W}cr": "\n", f"{_W}noBreakHyphen": "-"}


def _docx_unpack(path: Path, data: bytes, cancel: Callable[[], bool] | None = None) -> bytes:
    """The package re-zipped uncompressed from what its members *actually* inflate to.

    Why not hand python-docx the file: zipfile inflates a member whole before it cuts it at
    the declared size, and for bzip2 and LZMA it cannot bound a single step at all, so a
    600-byte .docx whose header says 1 KB could take hundreds of MB.  Here every XML part
    is read in small steps with a running cap (per part and in total), only the methods
    Word writes (stored, deflate) are read, and the rest of the package (pictures, fonts)
    is replaced by empty parts, since no text comes from them.
    """
    if data.startswith(_OLE_MAGIC):
        raise UnreadableDocument(path, "is encrypted (it needs a password to open) or is an old-format .doc file")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError):
        raise UnreadableDocument(path, "is not a valid Word document (.docx)") from None
    with zf:
        infos = zf.infolist()
        names = {i.filename for i in infos}
        if "[Content_Types].xml" not in names or not any(n.startswith("word/") for n in names):
            raise UnreadableDocument(
                path, "is not a valid Word document (it is a zip archive with no Word document in it)"
            )
        if len(infos) > _MAX_DOCX_MEMBERS:
            raise UnreadableDocument(path, "is too large to read (it has more parts than a Word document has)")
        # the declared sizes refuse an honest large file early; the reads below bound a lying one
        if any(i.file_size > _MAX_DOCX_XML_BYTES for i in infos if _docx_is_xml(i.filename)):
            raise UnreadableDocument(path, _DOCX_TOO_LARGE)
        parts: dict[str, bytes] = {}
        budget = _MAX_DOCX_TOTAL_BYTES
        for info in infos:
            if info.is_dir():
                continue
            if not _docx_is_xml(info.filename):
                parts[info.filename] = b""  # a picture or a font: no text in it
                continue
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise UnreadableDocument(
                    path, "uses a compression method Word does not write (Hearth reads stored and deflated parts)"
                )
            if info.flag_bits & 0x1:
                raise UnreadableDocument(path, "is encrypted (it needs a password to open)")
            part = _docx_read_member(path, zf, info, min(_MAX_DOCX_XML_BYTES, budget), cancel)
            budget -= len(part)
            parts[info.filename] = part
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as rezipped:
        for name, part in parts.items():
            rezipped.writestr(name, part)
    return out.getvalue()


def _docx_is_xml(name: str) -> bool:
    return name.lower().endswith((".xml", ".rels"))


def _docx_read_member(
    path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, cancel: Callable[[], bool] | None
) -> bytes:
    """One member, inflated 64 KB at a time; refused as soon as it passes ``cap`` bytes."""
    chunks: list[bytes] = []
    size = 0
    try:
        with zf.open(info) as member:
            while True:
                if cancel is not None and cancel():
                    raise ExtractionCancelled()
                chunk = member.read(_DOCX_STEP)
                if not chunk:
                    break
                size += len(chunk)
                if size > cap:
                    raise UnreadableDocument(path, _DOCX_TOO_LARGE)
                chunks.append(chunk)
    except (UnreadableDocument, ExtractionCancelled):
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError, NotImplementedError) as exc:
        raise UnreadableDocument(path, f"is damaged (a part cannot be unpacked: {_short(exc)})") from None
    return b"".join(chunks)


def _docx_text(el: Any) -> str:
    parts: list[str] = []
    for node in el.iter(*_DOCX_TEXT_TAGS):
        replacement = _DOCX_TEXT_TAGS[node.tag]
        parts.append((node.text or "") if replacement is None else replacement)
    return "".join(parts)


def _docx_is_heading(paragraph: Any) -> bool:
    """By the style's built-in English name ("heading 1", "Title"), which Word keeps in
    localized documents whose style ids are "berschrift1", or by an outline level."""
    style = paragraph.style
    while style is not None:
        name = (style.name or "").lower()
        if name.startswith("heading") or name == "title":
            return True
        level = style.element.find(f"{_W}pPr/{_W}outlineLvl")
        if level is not None and level.get(f"{_W}val", "9") < "9":
            return True
        style = style.base_style
    level = paragraph._p.find(f"{_W}pPr/{_W}outlineLvl")
    return level is not None and level.get(f"{_W}val", "9") < "9"


def _read_docx(path: Path, data: bytes, cancel: Callable[[], bool] | None = None) -> tuple[str, list[Section]]:
    package = _docx_unpack(path, data, cancel)
    import docx  # python-docx: imported here so the app starts without loading lxml
    from docx.opc.exceptions import OpcError
    from docx.text.paragraph import Paragraph
    from lxml import etree

    try:
        document = docx.Document(io.BytesIO(package))
        body = document.element.body
        blocks = list(body.iterchildren())
    except (OpcError, KeyError, ValueError, zipfile.BadZipFile):
        raise UnreadableDocument(path, "is not a valid Word document (its document part is missing)") from None
    except etree.XMLSyntaxError as exc:
        raise UnreadableDocument(path, f"is damaged (a part is not valid XML: {_short(exc)})") from None
    except Exception as exc:
        raise UnreadableDocument(path, f"is damaged ({_short(exc)})") from None
    sections: list[Section] = []
    heading: str | None = None
    paragraphs: list[str] = []

    def flush() -> None:
        text = _clean("\n".join(paragraphs)).strip()
        if text:
            sections.append(Section(text, heading=heading))
        paragraphs.clear()

    try:
        for number, block in enumerate(blocks):
            if cancel is not None and number % 256 == 0 and cancel():
                raise ExtractionCancelled()
            if block.tag == f"{_W}p":
                text = _docx_text(block)
                if text.strip() and _docx_is_heading(Paragraph(block, document)):
                    flush()
                    heading = " ".join(text.split())
                else:
                    paragraphs.append(text)
            elif block.tag == f"{_W}tbl":
                for row in block.iter(f"{_W}tr"):
                    cells = [" ".join(_docx_text(tc).split()) for tc in row.iterchildren(f"{_W}tc")]
                    paragraphs.append(" | ".join(cells))
            elif block.tag == f"{_W}sdt":  # content controls (tables of contents, forms)
                paragraphs.extend(_docx_text(p) for p in block.iter(f"{_W}p"))
        flush()
        title = " ".join((document.core_properties.title or "").split()) or path.name
    except ExtractionCancelled:
        raise
    except Exception as exc:  # a broken styles or core part; python-docx raises many kinds
        raise UnreadableDocument(path, f"is damaged ({_short(exc)})") from None
    return title, sections


__all__ = [
    "ExtractedDocument",
    "ExtractionCancelled",
    "MAX_FILE_BYTES",
    "SUPPORTED_SUFFIXES",
    "Section",
    "UnreadableDocument",
    "extract",
    "is_supported",
]
