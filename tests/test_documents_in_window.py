"""Chat with your documents in the real window, on the real demo model."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.ui.main_window import MainWindow

pytestmark = pytest.mark.model

FACT = (
    "The Hearth lighthouse on Korrin Island was built in 1887 by the engineer Maren Talvik. "
    "Its lamp is fuelled by whale oil and can be seen 31 kilometres out to sea."
)


@pytest.fixture
def window(open_main_window):
    return open_main_window(n_ctx=2048, documents=True)


def test_attached_documents_are_retrieved_cited_and_shown(
    qtbot, window: MainWindow, tmp_path: Path, monkeypatch
) -> None:
    session = window.session
    notes = tmp_path / "lighthouse-notes.md"
    notes.write_text("# Korrin Island\n\n" + FACT + "\n\n# Other notes\n\nThe ferry leaves at noon on Sundays.\n")
    other = tmp_path / "recipes.txt"
    other.write_text("Bread needs flour, water, salt and yeast. Knead it for ten minutes.\n")
    broken = tmp_path / "scan.pdf"
    broken.write_bytes(b"%PDF-1.4 this is not really a pdf")
    with qtbot.waitSignal(session.docs.indexingFinished, timeout=60_000) as finished:
        assert session.docs.attach_files([str(notes), str(other), str(broken)])
    report = finished.args[0]
    assert report.added == 2 and [Path(s.path).name for s in report.skipped] == ["scan.pdf"]
    assert "scan.pdf" in window.notice_bar.label.text()  # the unreadable file is listed with its reason
    assert window.documents_label.text() == "2 documents" and window.use_documents.isChecked()

    with qtbot.waitSignal(session.replyFinished, timeout=60_000) as done:
        qtbot.keyClicks(window.input, "Who built the lighthouse on Korrin Island?")
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    reply = done.args[0]
    sources = reply.stats["sources"]
    assert sources[0]["label"].startswith("lighthouse-notes.md") and "Maren Talvik" in sources[0]["text"]
    assert reply.stats["prompt_tokens"] > 60  # the passage went into the prompt
    view = window.chat_view.toPlainText()
    assert "Sources:" in view and "[1] lighthouse-notes.md" in view
    shown: list[str] = []
    monkeypatch.setattr("app.ui.main_window.QMessageBox.open", lambda box: shown.append(box.informativeText()))
    window.chat_view.sourceRequested.emit(reply.id, 1)
    assert shown and "Maren Talvik" in shown[0]

    # retrieval off for this conversation: no sources
    window.use_documents.setChecked(False)
    with qtbot.waitSignal(session.replyFinished, timeout=60_000) as done:
        qtbot.keyClicks(window.input, "Who built the lighthouse?")
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    assert not (done.args[0].stats or {}).get("sources")
    assert not session.docs.retrieval_enabled()


def test_folder_collection_follows_its_folder(qtbot, window: MainWindow, tmp_path: Path, monkeypatch) -> None:
    session = window.session
    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "a.md").write_text("# Parking\n\nStaff park behind the blue warehouse on Elm Street.\n")
    (folder / "b.txt").write_text("Lunch is served at half past twelve in the canteen.\n")
    dialog = window.show_collections()
    monkeypatch.setattr("app.ui.collections_dialog.QFileDialog.getExistingDirectory", lambda *a, **k: str(folder))
    monkeypatch.setattr("app.ui.collections_dialog.QInputDialog.getText", lambda *a, **k: ("Handbook", True))
    with qtbot.waitSignal(session.docs.indexingFinished, timeout=60_000) as done:
        qtbot.mouseClick(dialog.new_button, Qt.MouseButton.LeftButton)
    assert done.args[0].added == 2
    assert dialog.list.count() == 1 and dialog.list.item(0).checkState() == Qt.CheckState.Checked
    assert window.documents_label.text() == "2 documents"
    with qtbot.waitSignal(session.replyFinished, timeout=60_000) as reply:
        qtbot.keyClicks(window.input, "Where do staff park?")
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    assert reply.args[0].stats["sources"][0]["label"].startswith("a.md")

    # the folder changes; opening a conversation that uses the collection re-indexes it
    (folder / "b.txt").unlink()
    (folder / "a.md").write_text("# Parking\n\nStaff now park in the new garage on Oak Road.\n")
    conv_id = session.conversation.id
    session.conversations.new_conversation()
    with qtbot.waitSignal(session.docs.indexingFinished, timeout=60_000) as synced:
        session.conversations.open_conversation(conv_id)
    report = synced.args[0]
    assert report.updated == 1 and report.removed == 1
    # a conversation where the collection is off does not use it
    session.conversations.new_conversation()
    assert session.documents.conversation_collection_ids(session.conversation.id) == []


def test_hybrid_retrieval_with_an_embedding_model(qtbot, window: MainWindow, tmp_path: Path, demo_model: Path) -> None:
    """The demo model doubles as an embedding model: passages get vectors in the engine and
    retrieval fuses vector similarity with BM25."""
    session = window.session
    notes = tmp_path / "notes.md"
    notes.write_text("# Island\n\n" + FACT + "\n\n# Ferry\n\nThe ferry leaves at noon on Sundays.\n")
    with qtbot.waitSignal(session.docs.indexingFinished, timeout=60_000):
        session.docs.attach_files([str(notes)])
    dialog = window.show_collections()
    row = dialog.embedder.findData(str(demo_model))
    assert row > 0
    statuses: list[str] = []
    session.docs.embeddingStatus.connect(statuses.append)
    dialog.embedder.setCurrentIndex(row)
    dialog.embedder.activated.emit(row)
    qtbot.waitUntil(lambda: any("every passage is embedded" in s for s in statuses), timeout=120_000)
    index = session.documents
    ids = [c.id for c in index.collections(include_attachments=True)]
    assert index.passages_missing_vectors(ids, model=demo_model.name) == []
    hits = index.vector_search(
        __import__("numpy").ones(576, dtype="float32") / 24.0, k=3, collection_ids=ids, model=demo_model.name
    )
    assert hits  # vectors are stored under the embedding model's name
    sent: list[str] = []
    session._embed.connect(lambda ids, texts, tag: sent.append(tag))
    with qtbot.waitSignal(session.replyFinished, timeout=120_000) as done:
        qtbot.keyClicks(window.input, "Who built the lighthouse?")
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    assert "query" in sent  # the question was embedded before retrieval
    assert done.args[0].stats["sources"][0]["label"].startswith("notes.md")
    assert session.config.get("embedding_model") == str(demo_model)


def test_settings_panel_stays_whole_through_indexing(qtbot, window: MainWindow, tmp_path: Path) -> None:
    """The settings dock opens wide enough to show its fields whole, and indexing (whose
    progress appears in the documents row) does not squeeze it for good."""
    from PySide6.QtWidgets import QScrollArea

    panel = window.settings_panel
    scroll = panel.findChild(QScrollArea, "settingsScroll")

    def whole() -> None:
        assert window.settings_dock.width() >= panel.preferred_width()
        assert not scroll.horizontalScrollBar().isVisible()

    # the main window sizes its dock from the panel's hint (the scroll area's own is too narrow
    # under some fonts: on X11 with DejaVu it cut off the reset buttons)
    assert panel.sizeHint().width() >= panel.preferred_width()
    window.settings_dock.show()  # closed at first start (issue 19): opened as a person would
    qtbot.waitUntil(whole)
    notes = tmp_path / "notes.md"
    notes.write_text("# Korrin Island\n\n" + FACT + "\n")
    with qtbot.waitSignal(window.session.docs.indexingFinished, timeout=60_000):
        assert window.session.docs.attach_files([str(notes)])
    qtbot.wait(100)
    whole()
    assert window.sources_budget.isEnabled() and not window.indexing_bar.isVisible()
    assert window.documents_row.isVisible() and window.documents_label.text() == "1 document"
