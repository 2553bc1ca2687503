"""Models > Local API server…: serve the models in this window to other programs.

Editors, notebooks and scripts speak the OpenAI API; this panel starts Hearth's own server
on this computer (127.0.0.1) by default, with listening on the network an explicit choice
that says what it means. An API key, if set, lives in the keyring. The log shows every
request as it ends. The server runs on its own thread and feeds jobs to the same engine as
the chat window; starting and stopping it happen off the GUI thread too.
"""

from __future__ import annotations

import secrets as pysecrets
import threading
import time
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.core import secrets
from app.core.config import AppConfig

KEY_NAME = "api-server"  # the keyring entry of the server's own API key
MAX_LOG_ROWS = 500
_COLUMNS = ("Time", "Client", "Endpoint", "Model", "Tokens", "Tokens/s", "Status")


class RequestLogModel(QAbstractTableModel):
    """The newest requests first; at most MAX_LOG_ROWS kept."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: list[tuple[str, ...]] = []

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(_COLUMNS)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or role != Qt.ItemDataRole.DisplayRole:
            return None
        return self._rows[index.row()][index.column()]

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return _COLUMNS[section]
        return None

    def add(self, entry: Any) -> None:
        rate = f"{entry.tokens_per_s:.1f}" if entry.tokens_per_s else ""
        row = (
            time.strftime("%H:%M:%S", time.localtime(entry.time)),
            entry.client,
            entry.endpoint,
            entry.model,
            str(entry.tokens) if entry.tokens else "",
            rate,
            str(entry.status),
        )
        self.beginInsertRows(QModelIndex(), 0, 0)
        self._rows.insert(0, row)
        self.endInsertRows()
        if len(self._rows) > MAX_LOG_ROWS:
            self.beginRemoveRows(QModelIndex(), MAX_LOG_ROWS, len(self._rows) - 1)
            del self._rows[MAX_LOG_ROWS:]
            self.endRemoveRows()


class ServerPanel(QDialog):
    serverChanged = Signal(bool)  # running or not (the window's status bar shows it)
    _requestDone = Signal(object)  # a RequestLogEntry, from the server's thread
    _started = Signal(object, str)  # the ApiServer or None, and the error in words
    _stopped = Signal()

    def __init__(self, gateway: Any, config: AppConfig, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("serverPanel")
        self.setWindowTitle("Local API server")
        self.setAccessibleName("Local API server")
        self.resize(760, 520)
        self.gateway = gateway
        self.config = config
        self.server: Any = None  # app.server.runner.ApiServer while it runs
        self._busy = False

        layout = QVBoxLayout(self)
        intro = QLabel(
            "Other programs on this computer — an editor, a notebook, your own scripts — can use the "
            "models here through the OpenAI API. They share the engine with this window: while you chat, "
            "their requests wait."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)

        form = QFormLayout()
        self.local_only = QRadioButton("Only this computer (127.0.0.1)")
        self.local_only.setObjectName("serverLocalOnly")
        self.network = QRadioButton("Also other computers on the network")
        self.network.setObjectName("serverNetwork")
        where = QVBoxLayout()
        where.addWidget(self.local_only)
        where.addWidget(self.network)
        self.network_warning = QLabel(
            "Anyone who can reach this computer on the network can then use your models and read "
            "what they write. Set an API key, and only do this on a network you trust."
        )
        self.network_warning.setObjectName("serverNetworkWarning")
        self.network_warning.setWordWrap(True)
        self.network_warning.setStyleSheet("color: #b71c1c;")
        where.addWidget(self.network_warning)
        form.addRow("Who may connect:", where)
        self.port = QSpinBox()
        self.port.setObjectName("serverPort")
        self.port.setAccessibleName("Port")
        self.port.setRange(1024, 65535)
        form.addRow("Port:", self.port)
        key_row = QHBoxLayout()
        self.key = QLineEdit()
        self.key.setObjectName("serverKey")
        self.key.setAccessibleName("API key")
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText("none: any program on this computer may connect")
        generate = QPushButton("Generate")
        generate.setObjectName("serverGenerateKey")
        generate.setAccessibleName("Generate an API key")
        generate.clicked.connect(self._generate_key)
        key_row.addWidget(self.key, 1)
        key_row.addWidget(generate)
        form.addRow("API key:", key_row)
        self.origins = QLineEdit()
        self.origins.setObjectName("serverOrigins")
        self.origins.setAccessibleName("Allowed browser origins")
        self.origins.setPlaceholderText("none (web pages may not call the server); e.g. http://localhost:3000")
        form.addRow("Browser origins:", self.origins)
        self.allow_switch = QCheckBox("A request may load another model from the library")
        self.allow_switch.setObjectName("serverAllowSwitch")
        self.allow_switch.setToolTip("The window then switches to that model too; one model is in memory at a time.")
        form.addRow("", self.allow_switch)
        layout.addLayout(form)

        state_row = QHBoxLayout()
        self.start_button = QPushButton("Start server")
        self.start_button.setObjectName("serverStart")
        self.start_button.setAccessibleName("Start or stop the server")
        self.start_button.clicked.connect(self.toggle)
        self.state = QLabel("Stopped.")
        self.state.setObjectName("serverState")
        self.state.setTextFormat(Qt.TextFormat.PlainText)
        self.state.setWordWrap(True)
        state_row.addWidget(self.start_button)
        state_row.addWidget(self.state, 1)
        layout.addLayout(state_row)
        url_row = QHBoxLayout()
        self.url = QLineEdit()
        self.url.setObjectName("serverUrl")
        self.url.setAccessibleName("Base URL")
        self.url.setReadOnly(True)
        copy = QPushButton("Copy")
        copy.setObjectName("serverCopyUrl")
        copy.setAccessibleName("Copy the base URL")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.url.text()))
        url_row.addWidget(QLabel("Base URL:"))
        url_row.addWidget(self.url, 1)
        url_row.addWidget(copy)
        layout.addLayout(url_row)

        self.log_model = RequestLogModel(self)
        self.log = QTableView()
        self.log.setObjectName("serverLog")
        self.log.setAccessibleName("Request log")
        self.log.setModel(self.log_model)
        self.log.verticalHeader().hide()
        self.log.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.log.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.log, 1)

        self._requestDone.connect(self.log_model.add)
        self._started.connect(self._on_started)
        self._stopped.connect(self._on_stopped)
        self.network.toggled.connect(self.network_warning.setVisible)
        self._load_choices()

    # -- choices -------------------------------------------------------------------------

    def _load_choices(self) -> None:
        from app.server.runner import DEFAULT_PORT

        network = bool(self.config.get("api_server_network", False))
        (self.network if network else self.local_only).setChecked(True)
        self.network_warning.setVisible(network)
        port = self.config.get("api_server_port", DEFAULT_PORT)
        self.port.setValue(port if isinstance(port, int) and 1024 <= port <= 65535 else DEFAULT_PORT)
        origins = self.config.get("api_server_origins", "")
        self.origins.setText(origins if isinstance(origins, str) else "")
        self.allow_switch.setChecked(bool(self.config.get("api_server_allow_switch", False)))

    def _save_choices(self) -> None:
        self.config.set("api_server_network", self.network.isChecked())
        self.config.set("api_server_port", self.port.value())
        self.config.set("api_server_origins", self.origins.text().strip())
        self.config.set("api_server_allow_switch", self.allow_switch.isChecked())

    def _generate_key(self) -> None:
        self.key.setEchoMode(QLineEdit.EchoMode.Normal)  # shown once, to copy into the client
        self.key.setText("sk-hearth-" + pysecrets.token_urlsafe(24))

    # -- start and stop ------------------------------------------------------------------

    def toggle(self) -> None:
        if self._busy:
            return
        if self.server is not None:
            self.stop()
        else:
            self.start()

    def start(self) -> None:
        """Start serving with the choices shown; the socket is bound on a worker thread."""
        self._save_choices()
        self._busy = True
        self.start_button.setEnabled(False)
        self.state.setText("Starting…")
        host = "0.0.0.0" if self.network.isChecked() else "127.0.0.1"
        port = self.port.value()
        typed_key = self.key.text().strip()
        origins = [o.strip() for o in self.origins.text().replace(" ", ",").split(",") if o.strip()]
        self.gateway.allow_model_switch = self.allow_switch.isChecked()

        def work() -> None:
            from app.server.runner import ApiServer

            try:
                if typed_key:
                    try:
                        secrets.set_secret(KEY_NAME, typed_key)
                    except secrets.TokenStorageUnavailable:
                        pass  # used for this session; the panel says so below
                    key = typed_key
                else:
                    key = secrets.get_secret(KEY_NAME) or ""
                server = ApiServer(self.gateway, host, port, key or None, origins, on_request=self._requestDone.emit)
                server.start()
            except OSError as exc:
                reason = "the port is in use by another program" if exc.errno in (98, 48, 10048) else str(exc)
                self._started.emit(None, f"Could not start on port {port}: {reason}.")
                return
            except Exception as exc:  # said in words; the panel stays usable
                self._started.emit(None, f"Could not start the server: {type(exc).__name__}: {exc}")
                return
            self._started.emit(server, "with an API key" if key else "")

        threading.Thread(target=work, name="api-server-start", daemon=True).start()

    def _on_started(self, server: Any, note: str) -> None:
        self._busy = False
        self.start_button.setEnabled(True)
        if server is None:
            self.state.setText(note)
            return
        self.server = server
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.clear()
        self.key.setPlaceholderText("stored in the system keyring (type a new one to replace it)")
        where = "this computer only" if server.host == "127.0.0.1" else "the network"
        keyed = ", API key required" if note else ", no API key"
        self.state.setText(f"Serving on {where}{keyed}.")
        self.url.setText(server.base_url)
        self.start_button.setText("Stop server")
        for widget in (self.local_only, self.network, self.port, self.origins):
            widget.setEnabled(False)
        self.serverChanged.emit(True)

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is None:
            return
        self._busy = True
        self.start_button.setEnabled(False)
        self.state.setText("Stopping…")

        def work() -> None:
            server.stop()
            self._stopped.emit()

        threading.Thread(target=work, name="api-server-stop", daemon=True).start()

    def _on_stopped(self) -> None:
        self._busy = False
        self.start_button.setEnabled(True)
        self.start_button.setText("Start server")
        self.state.setText("Stopped.")
        self.url.clear()
        for widget in (self.local_only, self.network, self.port, self.origins):
            widget.setEnabled(True)
        self.serverChanged.emit(False)

    def shutdown(self) -> None:
        """The app is closing: stop serving now (blocking, bounded by the server's own limit)."""
        server, self.server = self.server, None
        if server is not None:
            server.stop()
