"""Models > Connections…: the OpenAI-compatible servers whose models appear in the picker.

A row per connection (name, address, what kind of server answered last, the last test);
a form to add one or change the selected one (name, address, API key); Test asks the server
on a worker thread, so the window never waits on the network or on a locked keyring.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core import secrets
from app.core.connections import Connection, ConnectionError_, ConnectionStore, check_name, normalise_url
from app.ui.plain import ask

# (base_url, api_key) -> an object with kind, version, latency_ms and models (a ProbeResult)
Probe = Callable[[str, str | None], Any]


def _default_probe(base_url: str, api_key: str | None) -> Any:
    from app.engine.remote import RemoteBackend

    backend = RemoteBackend(base_url, api_key)
    try:
        return backend.probe()
    finally:
        backend.close()


def describe_probe(result: Any) -> str:
    """“Answers in 23 ms — llama.cpp server b5123, 2 models” from a probe result."""
    kind = getattr(result.kind, "value", str(result.kind))
    version = f" {result.version}" if result.version else ""
    count = len(result.models)
    return f"Answers in {result.latency_ms:.0f} ms — {kind}{version}, {count} model{'s' if count != 1 else ''}"


class ConnectionsDialog(QDialog):
    connectionsChanged = Signal()  # added, changed or removed: the picker lists models anew
    _tested = Signal(str, object, str)  # connection name, probe result or None, error text
    _saved = Signal(object, str)  # the Connection (None: not saved), what to say

    def __init__(self, store: ConnectionStore, probe: Probe | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("connectionsDialog")
        self.setWindowTitle("Connections")
        self.setAccessibleName("Connections")
        self.resize(720, 440)
        self.store = store
        self._probe = probe or _default_probe
        self._results: dict[str, str] = {}  # name -> last test, in words
        self._threads: list[threading.Thread] = []

        layout = QVBoxLayout(self)
        intro = QLabel(
            "Chat with models served by another program or computer: a llama.cpp server, vLLM, "
            "Ollama, LM Studio or any OpenAI-compatible service. What you type in such a chat is "
            "sent to that server."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)

        self.table = QTableWidget(0, 4)
        self.table.setObjectName("connectionsTable")
        self.table.setAccessibleName("Connections")
        self.table.setHorizontalHeaderLabels(["Name", "Address", "Server", "Last test"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        layout.addWidget(self.table, 1)

        form = QFormLayout()
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("connectionName")
        self.name_edit.setAccessibleName("Connection name")
        self.name_edit.setPlaceholderText("e.g. GPU box")
        self.url_edit = QLineEdit()
        self.url_edit.setObjectName("connectionUrl")
        self.url_edit.setAccessibleName("Server address")
        self.url_edit.setPlaceholderText("e.g. http://192.168.1.20:8080 or https://api.example.com/v1")
        self.key_edit = QLineEdit()
        self.key_edit.setObjectName("connectionKey")
        self.key_edit.setAccessibleName("API key")
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText("optional; kept in the system keyring")
        form.addRow("Name:", self.name_edit)
        form.addRow("Address:", self.url_edit)
        form.addRow("API key:", self.key_edit)
        layout.addLayout(form)

        self.message = QLabel()
        self.message.setObjectName("connectionsMessage")
        self.message.setTextFormat(Qt.TextFormat.PlainText)  # server strings are untrusted
        self.message.setWordWrap(True)
        layout.addWidget(self.message)

        buttons = QHBoxLayout()
        self.new_button = self._button("New", "connectionNew", self._new)
        self.save_button = self._button("Save", "connectionSave", self.save)
        self.test_button = self._button("Test", "connectionTest", self.test_selected)
        self.remove_button = self._button("Remove", "connectionRemove", self.remove_selected)
        for button in (self.new_button, self.save_button, self.test_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        buttons.addWidget(close)
        layout.addLayout(buttons)

        self._tested.connect(self._show_test)
        self._saved.connect(self._on_saved)
        self.reload()

    def _button(self, text: str, name: str, slot: Callable[[], object]) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.setAccessibleName(text + " connection" if text != "New" else "New connection")
        button.clicked.connect(slot)
        return button

    # -- state ---------------------------------------------------------------------------

    def reload(self, select: str | None = None) -> None:
        connections = self.store.all()
        self.table.setRowCount(len(connections))
        for row, connection in enumerate(connections):
            cells = (
                connection.name,
                connection.base_url,
                connection.kind or "—",
                self._results.get(connection.name, ""),
            )
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
            if connection.name == select:
                self.table.selectRow(row)
        self.table.resizeColumnsToContents()
        self._selection_changed()

    def selected(self) -> Connection | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return self.store.get(item.text()) if item is not None else None

    def _selection_changed(self) -> None:
        connection = self.selected()
        self.remove_button.setEnabled(connection is not None)
        self.test_button.setEnabled(connection is not None)
        if connection is not None:
            self.name_edit.setText(connection.name)
            self.url_edit.setText(connection.base_url)
            self.key_edit.clear()
            self.key_edit.setPlaceholderText("unchanged (leave empty to keep the stored key)")

    # -- intents -------------------------------------------------------------------------

    def _new(self) -> None:
        self.table.clearSelection()
        for edit in (self.name_edit, self.url_edit, self.key_edit):
            edit.clear()
        self.key_edit.setPlaceholderText("optional; kept in the system keyring")
        self.name_edit.setFocus()

    def save(self) -> None:
        """Add the connection in the form, or update the one with its name. The address is
        checked here; the keyring is written on a worker thread (a locked one may prompt)."""
        name, url = self.name_edit.text(), self.url_edit.text()
        try:
            check_name(name)
            normalise_url(url)
        except ConnectionError_ as exc:
            self._say(str(exc))
            return
        key = self.key_edit.text().strip() or None
        keep = self.store.get(name) is not None and key is None
        self.save_button.setEnabled(False)
        store = self.store

        def work() -> None:
            try:
                connection = store.add_or_update(name, url, key, keep_key=keep)
            except secrets.TokenStorageUnavailable as exc:
                self._saved.emit(store.get(name), str(exc).replace("token", "API key"))
            except (ConnectionError_, OSError) as exc:
                self._saved.emit(None, str(exc))
            else:
                self._saved.emit(connection, f"Saved “{connection.name}”. Press Test to see whether it answers.")

        self._start(work, "connection-save")

    def _on_saved(self, connection: Connection | None, text: str) -> None:
        self.save_button.setEnabled(True)
        self._say(text)
        if connection is not None:
            self.key_edit.clear()
            self.reload(select=connection.name)
            self.connectionsChanged.emit()

    def _start(self, work: Callable[[], None], name: str) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        thread = threading.Thread(target=work, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def remove_selected(self) -> None:
        connection = self.selected()
        if connection is None:
            return
        if not ask(self, "Remove connection", f"Remove the connection “{connection.name}” and its API key?"):
            return
        self.store.remove(connection.name)
        self._results.pop(connection.name, None)
        self._say(f"Removed “{connection.name}”.")
        self._new()
        self.reload()
        self.connectionsChanged.emit()

    def test_selected(self) -> None:
        connection = self.selected()
        if connection is None:
            return
        self._say(f"Asking {connection.host}…")
        self.test_button.setEnabled(False)
        probe = self._probe

        def work() -> None:
            try:
                result = probe(connection.base_url, ConnectionStore.api_key(connection))
            except Exception as exc:  # every failure is said in words; RemoteError's are plain
                self._tested.emit(connection.name, None, str(exc) or type(exc).__name__)
                return
            self._tested.emit(connection.name, result, "")

        self._start(work, "connection-test")

    def _show_test(self, name: str, result: Any, error: str) -> None:
        if result is not None:
            text = describe_probe(result)
            self.store.set_kind(name, getattr(result.kind, "value", str(result.kind)))
        else:
            text = f"No answer: {error}"
        self._results[name] = text
        self._say(f"{name}: {text}")
        selected = self.selected()
        self.reload(select=selected.name if selected else None)
        if result is not None:
            self.connectionsChanged.emit()  # its models may have changed

    def _say(self, text: str) -> None:
        self.message.setText(text)
