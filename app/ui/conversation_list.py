"""The conversation sidebar: a Qt list model over the store, and the sidebar widget.

The model reads summaries a page at a time (``fetchMore``), so ten thousand conversations
cost no more at start than two hundred. Group headers (Pinned, Today, Yesterday…) are
rows of their own: plain to draw, and screen readers announce them.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractListModel, QByteArray, QModelIndex, QPersistentModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QAction, QFont, QIcon
from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QListView, QMenu, QPushButton, QVBoxLayout, QWidget

from app.ui.a11y import named
from app.ui.plain import plain_tip

ModelIndex = QModelIndex | QPersistentModelIndex


@dataclass
class _Row:
    kind: str  # "header" or "conversation"
    text: str
    id: str | None = None
    pinned: bool = False
    updated: float = 0.0
    snippet: str | None = None


def group_label(updated: float, now: float) -> str:
    today = dt.date.fromtimestamp(now)
    day = dt.date.fromtimestamp(updated)
    delta = (today - day).days
    if delta <= 0:
        return "Today"
    if delta == 1:
        return "Yesterday"
    if delta < 7:
        return "Previous 7 days"
    return "Older"


class ConversationListModel(QAbstractListModel):
    IdRole = Qt.ItemDataRole.UserRole + 1
    KindRole = Qt.ItemDataRole.UserRole + 2
    PinnedRole = Qt.ItemDataRole.UserRole + 3

    def __init__(self, store: Any, page_size: int = 200, clock: Callable[[], float] = time.time, parent=None) -> None:
        super().__init__(parent)
        self._store = store
        self._page = page_size
        self._clock = clock
        self._rows: list[_Row] = []
        self._loaded = 0
        self._total = 0
        self._last_group: str | None = None
        self._search: list[Any] | None = None

    # -- loading --------------------------------------------------------------------------

    def reload(self) -> None:
        self.beginResetModel()
        self._rows, self._loaded, self._last_group, self._search = [], 0, None, None
        self._total = self._store.count_conversations()
        self._append(self._store.list_conversations(limit=self._page, offset=0))
        self.endResetModel()

    def show_search(self, hits: list[Any]) -> None:
        """Show search results (one row per conversation, best first) instead of the list."""
        self.beginResetModel()
        self._search = hits
        seen: set[str] = set()
        self._rows = [_Row("header", f"{len(hits)} match" + ("" if len(hits) == 1 else "es"))]
        for hit in hits:
            if hit.conversation_id in seen:
                continue
            seen.add(hit.conversation_id)
            self._rows.append(_Row("conversation", hit.title, hit.conversation_id, snippet=hit.snippet))
        self._rows[0].text = f"{len(seen)} conversation" + ("" if len(seen) == 1 else "s") + " found"
        self.endResetModel()

    def best_hit_message(self, conversation_id: str) -> str | None:
        """While searching: the id of the best matching message in that conversation."""
        return next(
            (h.message_id for h in self._search or [] if h.conversation_id == conversation_id and h.message_id), None
        )

    def _append(self, summaries: list[Any]) -> None:
        self._rows += self._rows_for(summaries)
        self._loaded += len(summaries)

    def _rows_for(self, summaries: list[Any]) -> list[_Row]:
        """Rows for the next page, with a header wherever the group changes."""
        now = self._clock()
        rows: list[_Row] = []
        for s in summaries:
            group = "Pinned" if s.pinned else group_label(s.updated, now)
            if group != self._last_group:
                rows.append(_Row("header", group))
                self._last_group = group
            rows.append(_Row("conversation", s.title or "Untitled", s.id, s.pinned, s.updated))
        return rows

    def canFetchMore(self, parent: ModelIndex = QModelIndex()) -> bool:
        return not parent.isValid() and self._search is None and self._loaded < self._total

    def fetchMore(self, parent: ModelIndex = QModelIndex()) -> None:
        if not self.canFetchMore(parent):
            return
        page = self._store.list_conversations(limit=self._page, offset=self._loaded)
        if not page:
            self._total = self._loaded
            return
        rows = self._rows_for(page)
        self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(rows) - 1)
        self._rows += rows
        self._loaded += len(page)
        self.endInsertRows()

    # -- Qt model API ---------------------------------------------------------------------

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            # no pin glyph: minimal systems lack emoji fonts, and the "Pinned" group says it
            return row.text
        if role == Qt.ItemDataRole.ToolTipRole and row.kind == "conversation":
            return plain_tip(row.snippet or row.text)  # titles and text may come from an import
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return row.text if row.kind == "conversation" else f"Group: {row.text}"
        if role == Qt.ItemDataRole.FontRole and row.kind == "header":
            font = QFont()
            font.setBold(True)
            font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
            return font
        if role == self.IdRole:
            return row.id
        if role == self.KindRole:
            return row.kind
        if role == self.PinnedRole:
            return row.pinned
        return None

    def flags(self, index: ModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        if self._rows[index.row()].kind == "header":
            return Qt.ItemFlag.ItemIsEnabled
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def roleNames(self) -> dict[int, QByteArray]:
        names = super().roleNames()
        names.update(
            {
                self.IdRole: QByteArray(b"conversationId"),
                self.KindRole: QByteArray(b"kind"),
                self.PinnedRole: QByteArray(b"pinned"),
            }
        )
        return names

    # -- helpers --------------------------------------------------------------------------

    def row_of(self, conversation_id: str) -> int:
        for i, row in enumerate(self._rows):
            if row.id == conversation_id:
                return i
        return -1

    def conversation_ids(self) -> list[str]:
        return [r.id for r in self._rows if r.kind == "conversation" and r.id]


class ConversationSidebar(QWidget):
    """New chat, search and the list; every action is an intent signal for the session."""

    activated = Signal(str)  # conversation id
    newRequested = Signal()
    renameRequested = Signal(str)
    deleteRequested = Signal(str)
    pinRequested = Signal(str, bool)
    exportRequested = Signal(str)
    searchChanged = Signal(str)

    def __init__(self, model: ConversationListModel, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("conversationSidebar")
        self.model = model
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        # plain text (a full-width plus needs fonts a minimal Linux lacks); the theme's icon if any
        self.new_button = named(
            QPushButton("New chat"), "newChatButton", "New chat", "Start a new conversation (Ctrl+N)"
        )
        self.new_button.setIcon(QIcon.fromTheme("document-new"))
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        top.addWidget(self.new_button)
        layout.addLayout(top)
        self.search = QLineEdit()
        named(self.search, "conversationSearch", "Search conversations", "Titles and message text (Ctrl+F)")
        self.search.setPlaceholderText("Search chats (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        layout.addWidget(self.search)
        self.list = QListView()
        named(
            self.list,
            "conversationList",
            "Conversations",
            "Enter opens one; the context menu (Menu key) renames, pins, exports or deletes",
        )
        self.list.setModel(model)
        self.list.setUniformItemSizes(True)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        layout.addWidget(self.list, 1)

        self.new_button.clicked.connect(self.newRequested)
        self.search.textChanged.connect(self.searchChanged)
        self.list.clicked.connect(self._clicked)
        self.list.activated.connect(self._clicked)
        self.list.customContextMenuRequested.connect(self._menu)
        # the context menu's commands from the keyboard too, while the list has the focus
        for text, key, name, signal in (
            ("Rename conversation", "F2", "renameConversationAction", self.renameRequested),
            ("Delete conversation", "Delete", "deleteConversationAction", self.deleteRequested),
        ):
            action = QAction(text, self.list)
            action.setObjectName(name)
            action.setShortcut(key)
            action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
            action.triggered.connect(lambda _=False, s=signal: self._emit_for_current(s))
            self.list.addAction(action)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """At least 180 px, and never narrower than New chat's text (a large font, 200 %)."""
        hint = super().minimumSizeHint()
        return QSize(max(180, hint.width(), self.new_button.sizeHint().width()), hint.height())

    def current_id(self) -> str | None:
        index = self.list.currentIndex()
        return index.data(ConversationListModel.IdRole) if index.isValid() else None

    def select(self, conversation_id: str | None) -> None:
        row = self.model.row_of(conversation_id) if conversation_id else -1
        while row < 0 and conversation_id and self.model.canFetchMore():
            self.model.fetchMore()
            row = self.model.row_of(conversation_id)
        if row >= 0:
            self.list.setCurrentIndex(self.model.index(row, 0))
        else:
            self.list.clearSelection()

    def _clicked(self, index: QModelIndex) -> None:
        conversation_id = index.data(ConversationListModel.IdRole)
        if conversation_id:
            self.activated.emit(conversation_id)

    def _emit_for_current(self, signal) -> None:
        conversation_id = self.current_id()
        if conversation_id:
            signal.emit(conversation_id)

    def _menu(self, pos) -> None:
        index = self.list.indexAt(pos)
        if not index.isValid():  # the Menu key: the current row
            index = self.list.currentIndex()
            pos = self.list.visualRect(index).center()
        conversation_id = index.data(ConversationListModel.IdRole) if index.isValid() else None
        if not conversation_id:
            return
        pinned = bool(index.data(ConversationListModel.PinnedRole))
        menu = QMenu(self)
        actions = [
            ("Rename…", lambda: self.renameRequested.emit(conversation_id)),
            ("Unpin" if pinned else "Pin to top", lambda: self.pinRequested.emit(conversation_id, not pinned)),
            ("Export…", lambda: self.exportRequested.emit(conversation_id)),
            ("Delete", lambda: self.deleteRequested.emit(conversation_id)),
        ]
        for text, slot in actions:
            action = QAction(text, menu)
            action.triggered.connect(slot)
            menu.addAction(action)
        menu.exec(self.list.viewport().mapToGlobal(pos))
