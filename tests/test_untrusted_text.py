"""Untrusted text (passages, GGUF names, titles, preset text) is shown as text, and only a
clicked http(s) link ever reaches the desktop."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QTextDocument
from PySide6.QtGui import Qt as QtGuiNamespace
from PySide6.QtWidgets import QLabel, QMessageBox, QWidget

from app.core.library import ModelLibrary
from app.core.presets import Preset, PresetStore
from app.core.sysinfo import MemoryInfo
from app.ui import plain
from app.ui.about_dialog import AboutDialog, AboutInfo, Component
from app.ui.chat_view import ChatView
from app.ui.conversation_list import ConversationListModel
from app.ui.main_window import MainWindow
from app.ui.model_table import Column
from app.ui.models_dialog import ModelsDialog
from app.ui.settings_panel import SettingsPanel

HOSTILE = '<a href="file:///etc/passwd">x</a> <b>bold</b> <img src="file:///etc/hosts">'
REFUSED_LINKS = [
    "file:///etc/passwd",
    "smb://server/share",
    "javascript:alert(1)",
    "data:text/html,<b>x</b>",
    "mailto:someone@example.com",
    "relative/page.html",
    "hearth-abc:copy-code/1/1",
    "https://",
]


def shown_as(text: str | None) -> str:
    """What Qt shows for ``text`` in a label, message box or tooltip left on automatic format:
    the same ``Qt::mightBeRichText`` decision, then the document's visible text."""
    doc = QTextDocument()
    if text and QtGuiNamespace.mightBeRichText(text):
        doc.setHtml(text)
    else:
        doc.setPlainText(text or "")
    return doc.toPlainText()


def _has_anchor(text: str) -> bool:
    doc = QTextDocument()
    doc.setHtml(text) if QtGuiNamespace.mightBeRichText(text) else doc.setPlainText(text)
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            if it.fragment().charFormat().isAnchor():
                return True
            it += 1
        block = block.next()
    return False


# -- the helpers --------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab <>&;\"'/=:#!-_qtpimgahref\n")), max_size=60))
def test_as_plain_shows_any_text_literally_and_never_as_a_link(text: str) -> None:
    shown = plain.as_plain(text)
    # HTML collapses runs of spaces; every character is there, in order.
    assert shown_as(shown).split() == text.split()
    assert not _has_anchor(shown)
    assert plain.plain_tip(None) is None and plain.plain_tip("") == ""


def test_text_qt_already_shows_plain_is_left_alone() -> None:
    for text in ("Remove “model” from the library?\n\nYour file is kept where it is:\n/a/<b>.gguf", "a < b & c"):
        assert plain.as_plain(text) == text


def test_make_plain_covers_a_message_boxs_text_and_informative_text(qtbot) -> None:
    box = QMessageBox()
    qtbot.addWidget(box)
    box.setText(HOSTILE)
    box.setInformativeText(HOSTILE)
    plain.make_plain(box)
    labels = box.findChildren(QLabel)
    shown = [label for label in labels if label.text() == HOSTILE]
    assert len(shown) == 2
    for label in labels:
        assert label.textFormat() == Qt.TextFormat.PlainText and not label.openExternalLinks()


# -- links --------------------------------------------------------------------------------------


@pytest.mark.parametrize("link", REFUSED_LINKS)
def test_only_web_links_are_opened(monkeypatch, link: str) -> None:
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", staticmethod(lambda url: opened.append(url) or True))
    assert not plain.open_web_link(QUrl(link))
    assert not plain.open_web_link(link)
    assert opened == []


def test_http_and_https_links_are_opened(monkeypatch) -> None:
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", staticmethod(lambda url: opened.append(url) or True))
    assert plain.open_web_link(QUrl("https://example.com/a?b=c"))
    assert plain.open_web_link("HTTP://example.com/")
    assert [u.toString() for u in opened] == ["https://example.com/a?b=c", "http://example.com/"]


def test_chat_view_opens_only_clicked_web_links(qtbot) -> None:
    opened: list[QUrl] = []
    view = ChatView(open_url=opened.append)
    qtbot.addWidget(view)
    for link in REFUSED_LINKS:
        view.anchorClicked.emit(QUrl(link))
    assert opened == []
    view.anchorClicked.emit(QUrl("https://example.com/ok"))
    assert [u.toString() for u in opened] == ["https://example.com/ok"]


def test_about_dialog_license_links_open_only_web_links(qtbot, tmp_path: Path) -> None:
    opened: list[QUrl] = []
    info = AboutInfo("9.9", "6.0", [Component("Thing", "1", "MIT", "file:///etc/passwd")], [("Data", tmp_path)], None)
    dialog = AboutDialog(info, open_url=lambda url: opened.append(url) or True)
    qtbot.addWidget(dialog)
    for link in REFUSED_LINKS:
        dialog.licenses.anchorClicked.emit(QUrl(link))
    assert opened == []
    dialog.licenses.anchorClicked.emit(QUrl("https://www.qt.io/licensing"))
    assert [u.toString() for u in opened] == ["https://www.qt.io/licensing"]


# -- where untrusted text is shown ---------------------------------------------------------------


class _WindowStandIn(QWidget):
    """Just what ``MainWindow._show_source`` reads: the current conversation's messages."""

    def __init__(self, messages) -> None:
        super().__init__()
        self.session = SimpleNamespace(conversation=SimpleNamespace(messages=messages))


def test_source_dialog_shows_a_passage_as_text(qtbot, monkeypatch) -> None:
    source = {"number": 1, "label": HOSTILE, "text": "Passage: " + HOSTILE}
    window = _WindowStandIn([SimpleNamespace(id="m1", stats={"sources": [source]})])
    qtbot.addWidget(window)
    shown: list[QMessageBox] = []
    monkeypatch.setattr(QMessageBox, "open", lambda box: shown.append(box))
    MainWindow._show_source(window, "m1", 1)
    assert len(shown) == 1
    box = shown[0]
    assert box.informativeText() == "Passage: " + HOSTILE
    labels = box.findChildren(QLabel)
    assert {label.text() for label in labels} >= {"[1] " + HOSTILE, "Passage: " + HOSTILE}
    for label in labels:
        assert label.textFormat() == Qt.TextFormat.PlainText, label.text()
        assert not label.openExternalLinks()


def test_remove_model_question_shows_the_gguf_name_as_text(qtbot, tiny: Path, monkeypatch) -> None:
    library = ModelLibrary()
    info = library.add_file(tiny, name=HOSTILE)
    dialog = ModelsDialog(library, memory=MemoryInfo(16 * 10**9, 8 * 10**9))
    qtbot.addWidget(dialog)
    asked: list[str] = []
    monkeypatch.setattr(
        QMessageBox, "question", lambda parent, title, text, *a: asked.append(text) or QMessageBox.StandardButton.No
    )
    dialog.select_path(info.path)
    dialog.remove_button.click()
    assert len(asked) == 1
    assert f"Remove “{HOSTILE}” from the library?" in shown_as(asked[0])
    assert not _has_anchor(asked[0])
    assert library.get(info.path) is not None  # answered No


def test_model_table_tooltips_show_names_as_text(qtbot, tiny: Path) -> None:
    library = ModelLibrary()
    info = library.add_file(tiny, name=HOSTILE)
    dialog = ModelsDialog(library, memory=MemoryInfo(16 * 10**9, 8 * 10**9))
    qtbot.addWidget(dialog)
    row = dialog.model.row_of(info.path)
    tip = dialog.model.index(row, Column.NAME).data(Qt.ItemDataRole.ToolTipRole)
    assert shown_as(tip).startswith(HOSTILE)
    assert not _has_anchor(tip)


def test_conversation_titles_in_tooltips_are_text(qtbot) -> None:
    model = ConversationListModel(store=None)
    hit = SimpleNamespace(title=HOSTILE, conversation_id="c1", snippet=None, message_id=None)
    other = SimpleNamespace(title="t", conversation_id="c2", snippet="<i>" + HOSTILE, message_id="m")
    model.show_search([hit, other])
    tips = [model.index(r, 0).data(Qt.ItemDataRole.ToolTipRole) for r in (1, 2)]
    assert [shown_as(t) for t in tips] == [HOSTILE, "<i>" + HOSTILE]


def test_preset_text_in_tooltips_is_text(qtbot, tmp_path: Path) -> None:
    store = PresetStore(tmp_path / "presets.json")
    store.save(Preset(name="Imported", description=HOSTILE))
    panel = SettingsPanel(store)
    qtbot.addWidget(panel)
    panel.set_few_shot([(HOSTILE, "<b>answer</b>")])
    assert shown_as(panel._examples.item(0).toolTip()) == f"You: {HOSTILE}\n\nModel: <b>answer</b>"
    at = panel._picker.findText("Imported")
    assert at >= 0
    assert shown_as(panel._picker.itemData(at, Qt.ItemDataRole.ToolTipRole)) == HOSTILE


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(alphabet=st.sampled_from(list("<>ab/=\"'& ahrefimgsrc:")), min_size=1, max_size=40))
def test_any_conversation_title_tooltip_reads_as_written(qtbot, name: str) -> None:
    model = ConversationListModel(store=None)
    model.show_search([SimpleNamespace(title=name, conversation_id="c", snippet=None, message_id=None)])
    tip = model.index(1, 0).data(Qt.ItemDataRole.ToolTipRole)
    assert shown_as(tip).split() == name.split()


def test_no_widget_follows_links_by_itself() -> None:
    """Links reach the desktop only through plain.open_web_link: no widget opens them on its own."""
    app_dir = Path(__file__).resolve().parent.parent / "app"
    offenders = [
        str(p.relative_to(app_dir))
        for p in app_dir.rglob("*.py")
        if "setOpenExternalLinks(True)" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []
