"""Help > Keyboard shortcuts: every shortcut of the window, read from its actions and
QShortcuts when the dialog opens (so the list cannot go stale), plus the keys the message box
and Tab handle themselves.

API:
    shortcut_rows(window) -> list[tuple[str, str, str]]   (where, what, keys)
    ShortcutsDialog(window)                               objectName "shortcutsDialog"
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMenu,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.ui.a11y import named


def _words(text: str) -> str:
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip(".…").strip()


def _keys(sequences: list[QKeySequence]) -> str:
    return ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in sequences if not s.isEmpty())


def _menu_rows(menu: QMenu, path: str, seen: set[int]) -> list[tuple[str, str, str]]:
    rows = []
    for action in menu.actions():
        if action.menu() is not None:
            sub = action.menu()
            assert isinstance(sub, QMenu)
            rows += _menu_rows(sub, f"{path} > {_words(action.text())}", seen)
            continue
        if action.isSeparator() or id(action) in seen:
            continue
        seen.add(id(action))
        rows.append((path, _words(action.text()), _keys(action.shortcuts())))
    return rows


def shortcut_rows(window: QMainWindow) -> list[tuple[str, str, str]]:
    """(where, what, keys) for each menu command (keys "" when it has none), each other
    action or QShortcut of the window with keys, and the keys widgets handle themselves."""
    seen: set[int] = set()
    rows: list[tuple[str, str, str]] = []
    for action in window.menuBar().actions():
        menu = action.menu()
        if isinstance(menu, QMenu):
            rows += _menu_rows(menu, _words(action.text()), seen)
    for action in window.findChildren(QAction):
        if id(action) not in seen and action.shortcuts() and action.text():
            seen.add(id(action))
            rows.append(("Window", _words(action.text()), _keys(action.shortcuts())))
    for shortcut in window.findChildren(QShortcut):
        if shortcut.isEnabled() and not shortcut.key().isEmpty():
            what = shortcut.whatsThis() or shortcut.objectName()
            rows.append(("Window", what, _keys([shortcut.key()])))
    send = getattr(getattr(window, "input", None), "send_with", "enter")
    rows += [
        ("Message box", "Send", "Ctrl+Enter" if send == "ctrl+enter" else "Enter"),
        ("Message box", "New line", "Enter" if send == "ctrl+enter" else "Shift+Enter"),
        ("Everywhere", "Next / previous control", "Tab, Shift+Tab"),
        ("Everywhere", "Open a menu", "Alt + its underlined letter, or F10"),
        ("Chat", "Copy the selected text", QKeySequence(QKeySequence.StandardKey.Copy).toString()),
    ]
    return rows


class ShortcutsDialog(QDialog):
    def __init__(self, window: QMainWindow, parent: QWidget | None = None) -> None:
        super().__init__(parent or window)
        named(self, "shortcutsDialog", "Keyboard shortcuts")
        self.setWindowTitle("Keyboard shortcuts")
        layout = QVBoxLayout(self)
        intro = QLabel("Every command of the menus, with its keys. Commands without keys are in the menus.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        rows = shortcut_rows(window)
        self.table = named(QTableWidget(len(rows), 3), "shortcutsTable", "Keyboard shortcuts")
        self.table.setHorizontalHeaderLabels(["Where", "Command", "Keys"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table, arrows move in it
        for row, values in enumerate(rows):
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                self.table.setItem(row, column, item)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        layout.addWidget(self.table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(620, 560)
        self.table.setCurrentCell(0, 0)

    def rows(self) -> list[tuple[str, str, str]]:
        rows = []
        for r in range(self.table.rowCount()):
            cells = [self.table.item(r, c) for c in range(3)]
            where, what, keys = (cell.text() if cell is not None else "" for cell in cells)
            rows.append((where, what, keys))
        return rows
