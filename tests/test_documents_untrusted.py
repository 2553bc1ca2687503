"""Documents from strangers: what a hostile or odd file can do to indexing, and cannot.

Each test here names the defect it guards (issue 13, points 3 and 6): a .docx that inflates
far beyond what it declares, an HTML charset that is a slow codec, an error that used to
kill the indexing thread, cancel inside one long file, a folder's symlink to a file
elsewhere, and a reply whose "citation" is thousands of digits long.
"""

from __future__ import annotations

import bz2
import gc
import importlib
import io
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest
from test_documents import make_docx  # tests/ is on sys.path: conftest

from app.core.documents import DocumentIndex, UnreadableDocument, cited_numbers, extract, retrieve
from app.core.documents.index import LINKS_OUTSIDE

extract_module = importlib.import_module("app.core.documents.extract")


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


# -- zips that lie -----------------------------------------------------------------------------


def raw_zip(members: list[tuple[str, int, bytes, int, int]]) -> bytes:
    """A zip written by hand, so a member can declare any size and CRC: ``(name, method,
    compressed bytes, crc32, declared uncompressed size)``."""
    out = io.BytesIO()
    central = []
    for name, method, payload, crc, size in members:
        offset = out.tell()
        encoded = name.encode()
        out.write(
            struct.pack(
                "<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(payload), size, len(encoded), 0
            )
        )
        out.write(encoded)
        out.write(payload)
        central.append(
            struct.pack(
                "<4sHHHHHHIIIHHHHHII",
                b"PK\x01\x02",
                20,
                20,
                0,
                method,
                0,
                0x21,
                crc,
                len(payload),
                size,
                len(encoded),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + encoded
        )
    start = out.tell()
    for entry in central:
        out.write(entry)
    out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(central), len(central), out.tell() - start, start, 0))
    return out.getvalue()


def docx_with_document_part(method: int, payload: bytes, crc: int, declared: int) -> bytes:
    """A real small .docx whose ``word/document.xml`` is replaced by the given raw member."""
    members = []
    with zipfile.ZipFile(io.BytesIO(make_docx([("p", "hello")]))) as zf:
        for info in zf.infolist():
            if info.filename == "word/document.xml":
                members.append((info.filename, method, payload, crc, declared))
            else:
                body = zf.read(info)
                members.append((info.filename, zipfile.ZIP_STORED, body, zlib.crc32(body), len(body)))
    return raw_zip(members)


def peak_bytes_while(fn) -> int:
    """Peak Python memory (tracemalloc: bytes objects included) while ``fn`` runs."""
    gc.collect()
    tracemalloc.start()
    try:
        try:
            fn()
        except UnreadableDocument:
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


INFLATED = 96 * 1024 * 1024  # what the bombs below inflate to
BOUND = 24 * 1024 * 1024  # generous: a real reading of these files needs a few MB


def test_a_bzip2_docx_is_refused_without_inflating_it(docs: Path) -> None:
    """bzip2 is a method Word never writes, and zipfile cannot bound one bzip2 step: a
    tiny member inflated to hundreds of MB before Hearth looked at it."""
    payload = bz2.compress(b" " * INFLATED)
    assert len(payload) < 1000
    data = docx_with_document_part(zipfile.ZIP_BZIP2, payload, 0, 1000)  # it says 1 KB
    (docs / "bomb.docx").write_bytes(data)
    assert len(data) < 4000
    peak = peak_bytes_while(lambda: extract(docs / "bomb.docx"))
    assert peak < BOUND, f"peak {peak / 1e6:.0f} MB"
    with pytest.raises(UnreadableDocument, match="compression method"):
        extract(docs / "bomb.docx")


def test_a_deflate_member_that_lies_about_its_size_is_bounded_by_what_inflates(docs: Path) -> None:
    """The declared size said 1 KB; the member inflates to 96 MB.  Reading is bounded by
    the bytes actually inflated, and the mismatch is a plain "damaged"."""
    payload = zlib.compress(b" " * INFLATED, 9)[2:-4]  # raw deflate
    (docs / "liar.docx").write_bytes(docx_with_document_part(zipfile.ZIP_DEFLATED, payload, 0, 1000))
    peak = peak_bytes_while(lambda: extract(docs / "liar.docx"))
    assert peak < BOUND, f"peak {peak / 1e6:.0f} MB"
    with pytest.raises(UnreadableDocument, match="damaged|not a valid Word"):
        extract(docs / "liar.docx")


def test_the_parts_together_are_capped_by_what_they_inflate_to(docs: Path, monkeypatch) -> None:
    """Each part may be within its own cap; together they are counted as they inflate."""
    body = ("<w:document/>" + " " * 200_000).encode()
    payload = zlib.compress(body, 9)[2:-4]
    data = docx_with_document_part(zipfile.ZIP_DEFLATED, payload, zlib.crc32(body), len(body))
    (docs / "big.docx").write_bytes(data)
    monkeypatch.setattr(extract_module, "_MAX_DOCX_TOTAL_BYTES", 150_000)
    with pytest.raises(UnreadableDocument, match="too large"):
        extract(docs / "big.docx")


def test_a_docx_with_pictures_still_reads(docs: Path) -> None:
    """Pictures are not inflated (no text in them), and the document still opens."""
    data = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(make_docx([("h1", "Title"), ("p", "Body text")]))) as src,
        zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        dst.writestr("word/media/image1.png", b"\x89PNG" + b"\x00" * 5000)
    (docs / "pics.docx").write_bytes(data.getvalue())
    doc = extract(docs / "pics.docx")
    assert [(s.heading, s.text) for s in doc.sections] == [("Title", "Body text")]


# -- HTML charsets -----------------------------------------------------------------------------


@pytest.mark.parametrize("charset", ["punycode", "idna", "utf-7", "unicode_escape", "rot13", "utf-16", "zlib"])
def test_an_html_charset_that_is_no_document_encoding_falls_back_to_utf8(docs: Path, charset: str) -> None:
    """punycode is super-quadratic (a 1 MB page stalled indexing for minutes) and raised a
    bare UnicodeError that killed the indexing thread; such codecs are not used at all."""
    body = "a" * 20_000 + "-" + "ba" * 20_000  # valid punycode: decoding it takes quadratic time
    (docs / "p.html").write_bytes(f'<meta charset="{charset}"><p>{body}'.encode())
    assert extract(docs / "p.html").text == body
    (docs / "q.html").write_bytes(f'<meta charset="{charset}"><p>Café'.encode())
    assert extract(docs / "q.html").text == "Café"


def test_allowed_html_charsets_are_still_used(docs: Path) -> None:
    (docs / "sj.html").write_bytes('<meta charset="Shift_JIS"><p>日本語のテキスト</p>'.encode("shift_jis"))
    (docs / "w.html").write_bytes('<meta charset="windows-1251"><p>Привет</p>'.encode("cp1251"))
    assert extract(docs / "sj.html").text == "日本語のテキスト"
    assert extract(docs / "w.html").text == "Привет"


# -- every error ends in the report, and the job ends -----------------------------------------


@pytest.mark.parametrize("error", [UnicodeError("bad"), NotImplementedError("no"), RuntimeError("bug")])
def test_any_error_reading_one_file_lists_it_and_goes_on(
    index: DocumentIndex, docs: Path, monkeypatch, error: Exception
) -> None:
    (docs / "a.html").write_text("<p>first file about herons</p>")
    (docs / "b.txt").write_text("second file about otters")

    def broken(path, data, cancel=None):
        raise error

    monkeypatch.setattr(extract_module, "_read_html", broken)
    cid = index.create_collection("c").id
    report = index.add_files(cid, [docs / "a.html", docs / "b.txt"])
    assert report.added == 1 and [s.path.name for s in report.skipped] == ["a.html"]
    assert report.skipped[0].reason.startswith("a.html could not be read")
    assert {d.name: d.status.value for d in index.documents(cid)} == {"a.html": "unreadable", "b.txt": "indexed"}


def test_the_progress_bar_ends_whatever_the_indexing_job_raises(qtbot, docs: Path, monkeypatch) -> None:
    """The indexing thread died on an unexpected exception, so indexingFinished never came
    and the window's progress bar stayed forever."""
    from app import paths
    from app.core.config import AppConfig
    from app.core.library import ModelLibrary
    from app.core.presets import PresetStore
    from app.core.store import ConversationStore
    from app.session import ChatSession
    from app.ui.main_window import MainWindow

    store = ConversationStore(paths.data_dir() / "conversations.sqlite3")
    session = ChatSession(ModelLibrary(), AppConfig(), store)
    session.documents = DocumentIndex()
    window = MainWindow(session, PresetStore(paths.config_dir() / "presets.json"))
    qtbot.addWidget(window)
    (docs / "p.html").write_bytes(b'<meta charset="punycode"><p>abc-def</p>')
    (docs / "n.txt").write_text("notes about kestrels")

    def explode(*args, **kwargs):
        raise NotImplementedError("a bug somewhere in indexing")

    try:
        with qtbot.waitSignal(session.docs.indexingFinished, timeout=30_000) as first:
            assert session.docs.attach_files([str(docs / "p.html"), str(docs / "n.txt")])
        assert first.args[0].added == 2  # the odd charset no longer stops anything
        monkeypatch.setattr(DocumentIndex, "attach_files", explode)
        errors: list[str] = []
        session.errorMessage.connect(errors.append)
        with qtbot.waitSignal(session.docs.indexingFinished, timeout=30_000) as second:
            assert session.docs.attach_files([str(docs / "n.txt")])
        assert second.args[0] is None and "a bug somewhere" in errors[-1]
        qtbot.waitUntil(lambda: not session.docs.indexing)
        assert window.indexing_bar.isHidden()
    finally:
        session.documents.close()


# -- cancel inside one file --------------------------------------------------------------------


def _cancel_after(calls: int):
    seen = [0]

    def cancel() -> bool:
        seen[0] += 1
        return seen[0] > calls

    return cancel, seen


@pytest.mark.parametrize("kind", ["txt", "html", "docx"])
def test_cancel_takes_effect_inside_one_long_file(index: DocumentIndex, docs: Path, kind: str) -> None:
    """Cancel was checked only between files (and PDF pages): one long text, page or
    Word document ran to its end."""
    words = " ".join(f"word{i}" for i in range(400_000))
    path = docs / f"long.{kind}"
    if kind == "txt":
        path.write_text(words)
    elif kind == "html":
        path.write_text("<p>" + words + "</p>")
    else:
        path.write_bytes(make_docx([("p", f"paragraph {i} " + "text " * 20) for i in range(2000)]))
    cancel, seen = _cancel_after(1)  # the check before the file says no; every later one says yes
    cid = index.create_collection("c").id
    report = index.add_files(cid, [path], cancel=cancel)
    assert report.cancelled and report.added == 0 and seen[0] >= 2
    assert index.documents(cid) == []


# -- folders and links -------------------------------------------------------------------------


def test_a_folder_collection_does_not_follow_a_file_link_out_of_its_folder(
    index: DocumentIndex, tmp_path: Path
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    private = tmp_path / "private"
    private.mkdir()
    (private / "secret.txt").write_text("the vault code is zebra-4471")
    (folder / "notes.txt").write_text("meeting notes about gardens")
    (folder / "inner.md").symlink_to(folder / "notes.txt")  # a link inside the folder is fine
    (folder / "leak.txt").symlink_to(private / "secret.txt")
    coll = index.create_collection("Shared", folder=folder)
    report = index.sync_collection(coll.id)
    assert report.added == 1
    assert [(s.path.name, s.reason) for s in report.skipped] == [("leak.txt", f"leak.txt {LINKS_OUTSIDE}")]
    assert [d.name for d in index.documents(coll.id)] == ["notes.txt"]
    assert retrieve(index, "vault code zebra", [coll.id]) == []
    # a folder picked for attachments follows the same rule
    att = index.create_collection("Picked")
    picked = index.add_files(att.id, [folder])
    assert picked.added == 1 and [s.path.name for s in picked.skipped] == ["leak.txt"]


def test_sync_drops_a_link_target_an_older_version_indexed(index: DocumentIndex, tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    outside = tmp_path / "secret.txt"
    outside.write_text("the vault code is zebra-4471")
    (folder / "notes.txt").write_text("meeting notes about gardens")
    coll = index.create_collection("Shared", folder=folder)
    index.add_files(coll.id, [outside])  # what following the link used to store
    report = index.sync_collection(coll.id)
    assert report.removed == 1 and [d.name for d in index.documents(coll.id)] == ["notes.txt"]


# -- citations ---------------------------------------------------------------------------------


def test_citation_parsing_is_bounded() -> None:
    assert cited_numbers("[" + "7" * 5000 + "]") == []  # int() of it raised ValueError
    assert cited_numbers("see [" + "1, " * 5000 + "1]") == []  # far more numbers than sources
    assert cited_numbers("[" + "1" * 4 + "] [12345] [3]") == [1111, 3]
    assert cited_numbers("[1,\t2; 3]", count=3) == [1, 2, 3]


def test_a_reply_citing_thousands_of_digits_finishes(qtbot) -> None:
    """The ValueError in the finished slot left the session in "generating" for good."""
    from app import paths
    from app.core.config import AppConfig
    from app.core.conversation import Message, Role
    from app.core.documents.retrieval import Citation
    from app.core.library import ModelLibrary
    from app.core.store import ConversationStore
    from app.session import ChatSession, EngineState

    session = ChatSession(ModelLibrary(), AppConfig(), ConversationStore(paths.data_dir() / "c.sqlite3"))
    session.conversations.append(Message(role=Role.USER, text="What is in the notes?"))
    reply = Message(role=Role.ASSISTANT, text="")
    session.conversations.append(reply)
    session._reply = reply
    session._citations = [Citation(number=1, file_name="notes.txt", location=None, text="the notes")]
    session.state = EngineState.GENERATING
    session._on_tokens("As the notes say [" + "9" * 5000 + "] and [1].")
    with qtbot.waitSignal(session.replyFinished, timeout=5000) as done:
        session._on_finished("stop", {"tokens": 12})
    assert session.state is EngineState.READY
    assert [s["cited"] for s in done.args[0].stats["sources"]] == [True]


def test_the_collections_dialog_lists_a_link_out_of_the_folder(qtbot, tmp_path: Path, monkeypatch) -> None:
    from PySide6.QtCore import Qt

    from app import paths
    from app.core.config import AppConfig
    from app.core.library import ModelLibrary
    from app.core.store import ConversationStore
    from app.session import ChatSession
    from app.ui.collections_dialog import CollectionsDialog

    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "notes.txt").write_text("meeting notes about gardens")
    (tmp_path / "secret.txt").write_text("the vault code is zebra-4471")
    (folder / "<b>leak.txt").symlink_to(tmp_path / "secret.txt")
    session = ChatSession(ModelLibrary(), AppConfig(), ConversationStore(paths.data_dir() / "c.sqlite3"))
    session.documents = DocumentIndex()
    try:
        dialog = CollectionsDialog(session)
        qtbot.addWidget(dialog)
        monkeypatch.setattr("app.ui.collections_dialog.QFileDialog.getExistingDirectory", lambda *a, **k: str(folder))
        monkeypatch.setattr("app.ui.collections_dialog.QInputDialog.getText", lambda *a, **k: ("Shared", True))
        with qtbot.waitSignal(session.docs.indexingFinished, timeout=30_000):
            qtbot.mouseClick(dialog.new_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not dialog.skipped.isHidden())
        assert dialog.skipped.text() == f"Not indexed: <b>leak.txt {LINKS_OUTSIDE}"
        assert dialog.skipped.textFormat() == Qt.TextFormat.PlainText
        assert dialog.list.item(0).text().startswith("Shared — 1 documents")
    finally:
        session.documents.close()
