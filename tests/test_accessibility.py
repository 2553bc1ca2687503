"""Accessibility (issue 19): every control a keyboard reaches has a human name, Tab reaches
every control, every command has a menu entry or keys (listed in Help > Keyboard shortcuts),
a finished reply, a problem and a notice are announced, and the chat can be read message by
message."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible, QAction, QGuiApplication
from PySide6.QtWidgets import QApplication, QComboBox, QWidget

from app import paths
from app.ui import a11y
from app.ui.a11y import focusable_controls, looks_like_identifier


def _name(widget: QWidget) -> str:
    """What a screen reader says for it. On Linux a combo box's accessible Name is its current
    value (the label comes through a relation), so the name set on the combo is checked."""
    if isinstance(widget, QComboBox):
        return widget.accessibleName()
    iface = QAccessible.queryAccessibleInterface(widget)
    assert iface is not None and iface.isValid(), widget.objectName()
    return iface.text(QAccessible.Text.Name)


def unnamed(top: QWidget) -> list[str]:
    """'objectName: problem' for each reachable control without a human name."""
    problems = []
    for widget in focusable_controls(top):
        name = _name(widget).strip()
        where = f"{type(widget).__name__} {widget.objectName()!r}"
        if not name:
            problems.append(f"{where}: no accessible name")
        elif looks_like_identifier(name) or name == widget.objectName():
            problems.append(f"{where}: named like an identifier ({name!r})")
    return problems


def test_identifier_check_tells_code_names_from_words() -> None:
    for code in ("modelPicker", "sendButton", "chatView", "use_documents", "fewShotList", "setting_top_p"):
        assert looks_like_identifier(code), code
    for words in ("Send", "Model", "Search conversations", "Top-p", "Reset Top-p to default", "OK", "GPU layers"):
        assert not looks_like_identifier(words), words


@pytest.fixture
def bare_window(qtbot, monkeypatch):
    """The real main window without an engine (nothing loads): for what is on screen."""
    import keyring
    from memory_keyring import MemoryKeyring

    from app.core.config import AppConfig
    from app.core.documents.index import DocumentIndex
    from app.core.library import ModelLibrary
    from app.core.presets import PresetStore
    from app.core.store import ConversationStore
    from app.session import ChatSession
    from app.ui.lazy_downloads import LazyDownloads
    from app.ui.main_window import MainWindow

    monkeypatch.setattr(keyring, "get_keyring", lambda: MemoryKeyring())
    session = ChatSession(ModelLibrary(), AppConfig(), ConversationStore(paths.data_dir() / "c.sqlite3"))
    session.documents = DocumentIndex(paths.data_dir() / "documents.sqlite3")
    lazy = LazyDownloads()
    window = MainWindow(session, PresetStore(paths.config_dir() / "presets.json"), downloads=lazy)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    yield window
    window.close()
    lazy.close()
    session.shutdown()


def test_every_control_of_the_window_and_its_dialogs_has_a_human_name(qtbot, bare_window) -> None:
    window = bare_window
    problems: list[str] = []
    for page in (window.chat_view, window.first_run):  # the chat and the welcome page
        window.chat_stack.setCurrentWidget(page)
        problems += unnamed(window)
    window.settings_dock.show()
    window.documents_row.show()
    window.indexing_bar.show()
    window.indexing_cancel.show()
    for bar in (window.crash_bar, window.notice_bar, window.undo_bar, window.info_bar):
        bar.show_message("Something happened.")
    problems += unnamed(window)
    window.documents_popover.popup_below(window.attach_tool)
    problems += unnamed(window.documents_popover)
    window.documents_popover.hide()
    dialogs = [
        window.show_preferences(),
        window.show_about(),
        window.show_models(),
        window.show_connections(),
        window.show_collections(),
        window.show_downloads(),
        window.show_shortcuts(),
        window.show_server_panel(),
        window.show_compare(),
    ]
    for dialog in dialogs:
        qtbot.waitExposed(dialog)
        found = unnamed(dialog)
        problems += [f"{dialog.objectName()}: {p}" for p in found]
        assert focusable_controls(dialog), dialog.objectName()  # the walk saw its controls
        dialog.close()
    assert not problems, "\n".join(problems)
    # the names a person hears for the main controls
    window.chat_stack.setCurrentWidget(window.chat_view)
    names = {w.objectName(): _name(w) for w in focusable_controls(window)}
    assert names["messageInput"] == "Message" and names["sendButton"] == "Send"
    assert names["modelPicker"] == "Model" and names["conversationList"] == "Conversations"
    assert names["conversationSearch"] == "Search conversations" and names["chatView"] == "Conversation"


def test_the_walk_finds_an_identifier_name(qtbot, bare_window) -> None:
    """The check itself: a control named like code is reported."""
    bare_window.send_button.setAccessibleName("sendButton")
    assert unnamed(bare_window) == ["QPushButton 'sendButton': named like an identifier ('sendButton')"]


def test_tab_reaches_every_control_of_the_window(qtbot, bare_window) -> None:
    window = bare_window
    window.chat_stack.setCurrentWidget(window.chat_view)
    window.settings_dock.show()
    qtbot.wait(50)
    expected = {id(w): w for w in focusable_controls(window)}
    window.activateWindow()
    window.input.setFocus()
    reached: dict[int, QWidget] = {}
    for _ in range(3 * len(expected)):
        widget = QApplication.focusWidget()
        assert widget is not None
        owner = widget.parentWidget() if id(widget) not in expected else widget  # a spin box's editor
        reached[id(owner)] = owner
        qtbot.keyClick(widget, Qt.Key.Key_Tab)  # (in the chat, Tab visits its links first)
        if len(reached) >= len(expected) and QApplication.focusWidget() is window.input:
            break
    missing = [f"{type(w).__name__} {w.objectName()}" for i, w in expected.items() if i not in reached]
    assert missing == []
    # and the way back: Shift+Tab from the message box goes to the Image… and Attach buttons before it
    window.input.setFocus()
    qtbot.keyClick(window.input, Qt.Key.Key_Backtab)
    assert QApplication.focusWidget() is window.image_tool
    qtbot.keyClick(window.image_tool, Qt.Key.Key_Backtab)
    assert QApplication.focusWidget() is window.attach_tool


def test_every_command_is_in_a_menu_and_every_shortcut_is_listed(qtbot, bare_window) -> None:
    from app.ui.shortcuts_dialog import ShortcutsDialog, shortcut_rows

    window = bare_window
    rows = shortcut_rows(window)
    listed = {keys for _where, _what, keys in rows}
    for action in window.findChildren(QAction):
        for sequence in action.shortcuts():
            assert any(sequence.toString() in keys for keys in listed), action.text()
    commands = {what for _where, what, _keys in rows}
    for expected in (
        "New chat",
        "Stop the reply",
        "Attach files",
        "Documents",
        "Collections",
        "Previous message",
        "Next message",
        "Settings panel",
        "Keyboard shortcuts",
        "Rename conversation",
        "Delete conversation",
    ):
        assert expected in commands, expected
    keys = dict((what, k) for _w, what, k in rows)
    assert keys["Stop the reply"] == "Esc" and keys["Previous message"] == "Alt+Up"
    # the dialog shows the same rows, and F1 opens it
    dialog = ShortcutsDialog(window)
    qtbot.addWidget(dialog)
    assert dialog.rows() == rows
    qtbot.keyClick(window.input, Qt.Key.Key_F1)
    shown = [d for d in window.findChildren(ShortcutsDialog) if d is not dialog and d.isVisible()]
    assert len(shown) == 1
    shown[0].close()


def test_a_first_window_is_calm_and_remembers_the_settings_panel(qtbot, bare_window) -> None:
    window = bare_window
    assert not window.settings_dock.isVisible()  # closed at first start
    assert window.settings_button.isVisible() and window.settings_button.text() == "Settings"
    for hidden in (window.attach_button, window.use_documents, window.sources_budget, window.documents_row):
        assert not hidden.isVisible()  # documents fold into the composer's Attach control
    assert window.attach_tool.isVisible() and window.attach_tool.isEnabled()
    # no glyph that needs an emoji or CJK font on a minimal system
    for widget in (window.sidebar.new_button, window.attach_tool, window.settings_button):
        assert all(ord(c) < 0x2000 or c == "…" for c in widget.text()), widget.text()
    qtbot.mouseClick(window.settings_button, Qt.MouseButton.LeftButton)
    assert window.settings_dock.isVisible() and window.session.config.get("settings_panel_visible") is True
    qtbot.mouseClick(window.attach_tool, Qt.MouseButton.LeftButton)
    popover = window.documents_popover
    qtbot.waitUntil(popover.isVisible)
    assert window.sources_budget.isVisible() and QApplication.focusWidget() is window.attach_button
    qtbot.keyClick(popover, Qt.Key.Key_Escape)
    assert not popover.isVisible() and QApplication.focusWidget() is window.attach_tool


def test_notices_and_problems_are_announced(qtbot, bare_window, monkeypatch) -> None:
    heard = _listen(monkeypatch)
    bare_window.session.errorMessage.emit("The model file is damaged.")
    bare_window.session.infoMessage.emit("Imported 2 presets.")
    assert [(text, polite) for text, polite, _o in heard] == [
        ("Problem: The model file is damaged.", False),
        ("Notice: Imported 2 presets.", True),
    ]


def _listen(monkeypatch) -> list[tuple[str, bool, object]]:
    """Catch what reaches Qt's accessibility update hook (PySide6 has no installUpdateHandler:
    the hook itself is wrapped, and still called): (message, polite, object) per announcement."""
    heard: list[tuple[str, bool, object]] = []
    real = QAccessible.updateAccessibility

    def hook(event) -> None:
        if event.type() == QAccessible.Event.Announcement:
            polite = event.politeness() == QAccessible.AnnouncementPoliteness.Polite
            heard.append((event.message(), polite, event.object()))
        real(event)

    monkeypatch.setattr(a11y.QAccessible, "updateAccessibility", hook)
    return heard


@pytest.mark.model
def test_a_finished_reply_is_announced_and_read_message_by_message(
    qtbot, open_main_window, monkeypatch, demo_model: Path
) -> None:
    heard = _listen(monkeypatch)
    window = open_main_window(max_tokens=12)
    with qtbot.waitSignal(window.session.replyFinished, timeout=120_000) as done:
        qtbot.keyClicks(window.input, "Say hello.")
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    reply = done.args[0]
    finished = [text for text, _polite, obj in heard if text.startswith("Reply finished")]
    assert len(finished) == 1 and heard[-1][2] is window.chat_view
    assert reply.model in finished[0] and reply.text.split()[0].strip("*_#") in finished[0]

    # Alt+Up from the message box selects the reply, then the question; each is announced
    heard.clear()
    qtbot.keyClick(window.input, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    assert window.navigator.current() is not None and window.navigator.current().id == reply.id
    assert QApplication.focusWidget() is window.chat_view
    qtbot.keyClick(window.chat_view, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    assert window.chat_view.textCursor().selectedText().startswith("You")
    assert heard[-1][0] == "You, message 1 of 2: Say hello."
    qtbot.keyClick(window.chat_view, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    assert heard[-1][0] == "No earlier message"
    qtbot.keyClick(window.chat_view, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    assert heard[-1][0].startswith(f"{reply.model}, message 2 of 2: ")
    window.findChild(QAction, "copyMessageAction").trigger()  # Ctrl+Shift+M: the selected message
    assert QGuiApplication.clipboard().text().strip() == reply.text.strip()
