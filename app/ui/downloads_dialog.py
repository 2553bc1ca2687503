"""The Download models window: find GGUF models on Hugging Face, pick a file, watch it arrive.

Three parts, top to bottom: **search** (keywords, a repo id or a huggingface.co link; results
sortable), the chosen **repo's files** (one row per quantization with its size and whether it
fits this computer's memory, license and gated note, Download), and the **downloads** (progress,
speed, time left; Pause, Resume, Cancel, Remove; how many run at once).  The window is not
modal: people keep chatting while models download.

Nothing here waits on the network, the keyring or the disk: Hub calls, keyring calls and the
queue's commands (which save its state file) run through :class:`BackgroundTasks`, and the
queue's events arrive through the :class:`DownloadBridge`.  Errors are typed core exceptions
shown in plain words in the message line.

Signal for the main window: ``modelDownloaded(path)`` — a model file is complete and verified
in the models folder (for a split model: once, with the first part's path, when all parts are).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.core import secrets, sysinfo
from app.core.downloads import (
    AlreadyDownloaded,
    DownloadError,
    DownloadEvent,
    DownloadQueue,
    DownloadState,
    EventKind,
    human_size,
)
from app.core.hub import GATED_MESSAGE, HubClient, HubError, QuantFile, RepoFiles, RepoSummary, parse_repo_ref
from app.core.sysinfo import MemoryInfo
from app.logs import add_secret
from app.ui.downloads import (
    REPO_ID_ROLE,
    SORT_ROLE,
    BackgroundTasks,
    DownloadBridge,
    DownloadColumn,
    DownloadTableModel,
    ProgressDelegate,
    QuantColumn,
    QuantFileModel,
    RepoSearchModel,
    SearchColumn,
    bridge_for,
)

log = logging.getLogger(__name__)

__all__ = ["DownloadsDialog", "TokenDialog"]

SEARCH_DELAY_MS = 400  # wait for a pause in typing before asking the Hub
SEARCH_LIMIT = 50
MAX_PARALLEL = 8
_QUEUE_LANE = "download-queue"  # queue commands run in order, one after another
_SORTS = [("Most downloads", "downloads"), ("Most likes", "likes"), ("Recently updated", "recent")]
_PAUSABLE = {DownloadState.QUEUED, DownloadState.RUNNING, DownloadState.VERIFYING}
_RESUMABLE = {DownloadState.PAUSED, DownloadState.FAILED}
_UNFINISHED = _PAUSABLE | _RESUMABLE


def _plain(error: BaseException) -> str:
    """A sentence for any failure: typed core errors carry one; anything else is a bug,
    logged with its traceback and shown only as a short note."""
    if isinstance(error, (HubError, DownloadError, secrets.TokenStorageUnavailable)):
        return str(error)
    if isinstance(error, OSError):
        return f"Could not save the download list: {error.strerror or error}."
    log.error("download manager error", exc_info=error)
    return f"Something went wrong: {error}"


class TokenDialog(QDialog):
    """Enter or remove the Hugging Face access token (shown as dots, never echoed back)."""

    def __init__(self, has_token: bool, keyring_available: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tokenDialog")
        self.setWindowTitle("Hugging Face access token")
        self.cleared = False
        where = (
            "It is stored in your system keyring, not in Hearth's files."
            if keyring_available
            else "No system keyring is available here, so it will be used for this session only."
        )
        note = QLabel(
            "Gated and private models need a Hugging Face access token (a “read” token from "
            "huggingface.co → Settings → Access Tokens). " + where
        )
        note.setWordWrap(True)
        self.state = QLabel("A token is set." if has_token else "No token is set.")
        self.edit = QLineEdit()
        self.edit.setObjectName("tokenEdit")
        self.edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.edit.setPlaceholderText("hf_…" if not has_token else "Enter a new token to replace it")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.saveButton = buttons.button(QDialogButtonBox.StandardButton.Save)
        self.saveButton.setEnabled(False)
        self.clearButton = buttons.addButton("Remove token", QDialogButtonBox.ButtonRole.DestructiveRole)
        self.clearButton.setObjectName("clearTokenButton")
        self.clearButton.setEnabled(has_token)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.clearButton.clicked.connect(self._clear)
        self.edit.textChanged.connect(lambda text: self.saveButton.setEnabled(bool(text.strip())))
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addWidget(self.state)
        layout.addWidget(self.edit)
        layout.addWidget(buttons)

    def token(self) -> str | None:
        return None if self.cleared else (self.edit.text().strip() or None)

    def _clear(self) -> None:
        self.cleared = True
        self.edit.clear()
        self.accept()


class DownloadsDialog(QDialog):
    """Search, choose, download. ``bridge`` defaults to the one :func:`create_download_manager`
    made for ``queue``; ``memory`` (for tests) replaces this machine's memory figures."""

    modelDownloaded = Signal(str)  # path of a complete, verified model file (first part of a split set)

    def __init__(
        self,
        queue: DownloadQueue,
        hub: HubClient,
        parent: QWidget | None = None,
        *,
        bridge: DownloadBridge | None = None,
        memory: MemoryInfo | None = None,
    ) -> None:
        super().__init__(parent)
        bridge = bridge or bridge_for(queue)
        if bridge is None:
            raise ValueError("DownloadsDialog needs the DownloadBridge that is the queue's on_event")
        self.setObjectName("downloadsDialog")
        self.setWindowTitle("Download models")
        self.setModal(False)
        self.resize(1120, 760)
        self.queue = queue
        self.hub = hub
        self.bridge = bridge
        self._memory_override = memory
        self.tasks = BackgroundTasks(self)
        self._search_ticket = 0
        self._files_ticket = 0
        self._repo: RepoFiles | None = None
        self._repo_id: str | None = None
        self._has_token = False
        self._keyring_available = True
        self.token_dialog: TokenDialog | None = None

        self._build()
        self.bridge.eventReceived.connect(self.downloadsModel.apply_event)
        self.bridge.eventReceived.connect(self._on_event)
        self.downloadsModel.modelCompleted.connect(self._model_completed)
        self.tasks.submit(lambda: (secrets.get_token() is not None, secrets.storage_available()), self._token_known)

    # --- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        # (a) search
        self.searchEdit = QLineEdit()
        self.searchEdit.setObjectName("hubSearch")
        self.searchEdit.setAccessibleName("Search models")
        self.searchEdit.setPlaceholderText("Search GGUF models, or paste a repo id or a huggingface.co link")
        self.searchEdit.setClearButtonEnabled(True)
        self.sortCombo = QComboBox()
        self.sortCombo.setObjectName("hubSort")
        self.sortCombo.setAccessibleName("Sort by")
        for sort_label, key in _SORTS:
            self.sortCombo.addItem(sort_label, key)
        self.tokenButton = QPushButton("Access token…")
        self.tokenButton.setObjectName("tokenButton")
        self.tokenButton.setToolTip("A Hugging Face token for gated and private models")
        self.searchStatus = QLabel()
        self.searchStatus.setObjectName("searchStatus")
        self.resultsModel = RepoSearchModel(self)
        self.resultsProxy = QSortFilterProxyModel(self)
        self.resultsProxy.setSourceModel(self.resultsModel)
        self.resultsProxy.setSortRole(SORT_ROLE)
        self.resultsView = _table("hubResults", self.resultsProxy, QAbstractItemView.SelectionMode.SingleSelection)
        self.resultsView.setAccessibleName("Models found")
        self.resultsView.setSortingEnabled(True)
        self.resultsView.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # the Hub's order until a header is clicked
        self.resultsView.horizontalHeader().setSectionResizeMode(SearchColumn.REPO, QHeaderView.ResizeMode.Stretch)

        search_row = QHBoxLayout()
        search_row.addWidget(self.searchEdit, 1)
        search_row.addWidget(self.sortCombo)
        search_row.addWidget(self.tokenButton)
        search_box = QWidget()
        search_layout = QVBoxLayout(search_box)
        search_layout.setContentsMargins(0, 0, 0, 0)
        search_layout.addWidget(self.searchStatus)
        search_layout.addWidget(self.resultsView, 1)

        # (b) the chosen repo's files
        self.repoTitle = QLabel("Choose a model above to see its files.")
        self.repoTitle.setObjectName("repoTitle")
        self.repoTitle.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.repoNote = QLabel()
        self.repoNote.setObjectName("repoNote")
        self.repoNote.setWordWrap(True)
        self.memoryNote = QLabel()
        self.memoryNote.setObjectName("memoryNote")
        self.memoryNote.setWordWrap(True)
        self.filesModel = QuantFileModel(self)
        self.filesView = _table("repoFiles", self.filesModel, QAbstractItemView.SelectionMode.ExtendedSelection)
        self.filesView.setAccessibleName("Files of this model")
        self.filesView.horizontalHeader().setSectionResizeMode(QuantColumn.FILE, QHeaderView.ResizeMode.Stretch)
        self.downloadButton = QPushButton("Download")
        self.downloadButton.setObjectName("downloadButton")
        self.downloadButton.setEnabled(False)
        # A vision model's repo also holds its image projector (mmproj): offered with the model.
        self.projectorCheck = QCheckBox("With its image projector")
        self.projectorCheck.setObjectName("projectorCheck")
        self.projectorCheck.setAccessibleName("Also download the image projector")
        self.projectorCheck.setToolTip(
            "This repo has a vision projector (mmproj): with it the model can see images you attach. "
            "It pairs with the model by itself."
        )
        self.projectorCheck.setChecked(True)
        self.projectorCheck.hide()
        files_buttons = QHBoxLayout()
        files_buttons.addWidget(self.memoryNote, 1)
        files_buttons.addWidget(self.projectorCheck)
        files_buttons.addWidget(self.downloadButton)
        files_box = QWidget()
        files_layout = QVBoxLayout(files_box)
        files_layout.setContentsMargins(0, 0, 0, 0)
        files_layout.addWidget(self.repoTitle)
        files_layout.addWidget(self.repoNote)
        files_layout.addWidget(self.filesView, 1)
        files_layout.addLayout(files_buttons)

        # (c) downloads
        self.downloadsModel = DownloadTableModel(self.queue.items(), self)
        self.downloadsView = _table(
            "downloadsTable", self.downloadsModel, QAbstractItemView.SelectionMode.ExtendedSelection
        )
        self.downloadsView.setAccessibleName("Downloads")
        self.downloadsView.setItemDelegateForColumn(DownloadColumn.PROGRESS, ProgressDelegate(self.downloadsView))
        header = self.downloadsView.horizontalHeader()
        header.setSectionResizeMode(DownloadColumn.FILE, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(DownloadColumn.PROGRESS, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(DownloadColumn.PROGRESS, 260)  # fixed: a width that follows the text would jitter
        self.pauseButton = _button("Pause", "pauseButton")
        self.resumeButton = _button("Resume", "resumeButton")
        self.cancelButton = _button("Cancel", "cancelButton")
        self.removeButton = _button("Remove", "removeButton")
        self.removeButton.setToolTip("Remove from this list (a finished model stays in your models folder)")
        self.parallelSpin = QSpinBox()
        self.parallelSpin.setObjectName("parallelDownloads")
        self.parallelSpin.setRange(1, MAX_PARALLEL)
        self.parallelSpin.setValue(max(1, min(MAX_PARALLEL, self.queue.max_parallel)))
        self.parallelSpin.setToolTip("How many files download at the same time")
        parallel_label = QLabel("Parallel downloads:")
        parallel_label.setBuddy(self.parallelSpin)
        downloads_buttons = QHBoxLayout()
        for button in (self.pauseButton, self.resumeButton, self.cancelButton, self.removeButton):
            downloads_buttons.addWidget(button)
        downloads_buttons.addStretch(1)
        downloads_buttons.addWidget(parallel_label)
        downloads_buttons.addWidget(self.parallelSpin)
        downloads_box = QWidget()
        downloads_layout = QVBoxLayout(downloads_box)
        downloads_layout.setContentsMargins(0, 0, 0, 0)
        title = QLabel("<b>Downloads</b>")
        downloads_layout.addWidget(title)
        downloads_layout.addWidget(self.downloadsView, 1)
        downloads_layout.addLayout(downloads_buttons)

        self.messageLabel = QLabel()
        self.messageLabel.setObjectName("downloadsMessage")
        self.messageLabel.setWordWrap(True)
        # Labels that show names and messages from the network never interpret them as HTML.
        for label in (self.searchStatus, self.repoNote, self.memoryNote, self.messageLabel):
            label.setTextFormat(Qt.TextFormat.PlainText)
        self.messageLabel.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(search_box)
        top.addWidget(files_box)
        top.setStretchFactor(0, 2)
        top.setStretchFactor(1, 3)
        top.setSizes([520, 600])
        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(top)
        main.addWidget(downloads_box)
        main.setStretchFactor(0, 3)
        main.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(search_row)
        layout.addWidget(main, 1)
        layout.addWidget(self.messageLabel)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(SEARCH_DELAY_MS)
        self._debounce.timeout.connect(self.search_now)
        self.searchEdit.textEdited.connect(lambda _text: self._debounce.start())
        self.searchEdit.returnPressed.connect(self.search_now)
        self.sortCombo.currentIndexChanged.connect(self._sort_changed)
        self.tokenButton.clicked.connect(self.show_token_dialog)
        self.resultsView.selectionModel().currentRowChanged.connect(self._result_chosen)
        self.filesView.selectionModel().selectionChanged.connect(self._files_selection_changed)
        self.downloadButton.clicked.connect(self.download_selected)
        self.downloadsView.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self.downloadsModel.dataChanged.connect(lambda *_: self._update_buttons())
        self.downloadsModel.rowsInserted.connect(lambda *_: self._update_buttons())
        self.downloadsModel.rowsRemoved.connect(lambda *_: self._update_buttons())
        self.downloadsModel.modelReset.connect(self._update_buttons)
        self.pauseButton.clicked.connect(self.pause_selected)
        self.resumeButton.clicked.connect(self.resume_selected)
        self.cancelButton.clicked.connect(self.cancel_selected)
        self.removeButton.clicked.connect(self.remove_selected)
        self.parallelSpin.valueChanged.connect(self._parallel_changed)
        self._update_buttons()

    # --- messages ------------------------------------------------------------------------

    def show_message(self, text: str, error: bool = False) -> None:
        self.messageLabel.setText(text)
        self.messageLabel.setStyleSheet("color: #c62828;" if error else "")

    def message(self) -> str:
        return self.messageLabel.text()

    # --- (a) search ----------------------------------------------------------------------------

    @Slot()
    def search_now(self) -> None:
        """Search for the box's text now (Enter, or a pause in typing); a repo id or link opens it."""
        self._debounce.stop()
        text = self.searchEdit.text().strip()
        self._search_ticket += 1
        if not text:
            self.resultsModel.set_results([])
            self.searchStatus.setText("")
            return
        repo_id = parse_repo_ref(text) if "/" in text else None
        if repo_id is not None:
            self.searchStatus.setText(f"Opening {repo_id}…")
            self.open_repo(repo_id)
            return
        ticket = self._search_ticket
        sort = self.sortCombo.currentData()
        self.searchStatus.setText("Searching…")
        hub = self.hub
        self.tasks.submit(
            lambda: hub.search(text, sort=sort, limit=SEARCH_LIMIT), partial(self._searched, ticket, text)
        )

    def _sort_changed(self, _index: int) -> None:
        # The Hub's order again: a column the user sorted by would hide the new order.
        self.resultsView.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        if self.searchEdit.text().strip():
            self.search_now()

    def _searched(self, ticket: int, text: str, results: list[RepoSummary] | None, error: BaseException | None) -> None:
        if ticket != self._search_ticket:
            return  # the user has typed on since: an older answer must not replace a newer one
        if error is not None:
            self.searchStatus.setText(_plain(error))
            return
        results = results or []
        self.resultsModel.set_results(results)
        if results:
            more = "+" if len(results) >= SEARCH_LIMIT else ""
            self.searchStatus.setText(f"{len(results)}{more} models with GGUF files.")
        else:
            self.searchStatus.setText(f"No GGUF models match “{text}”.")

    def _result_chosen(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            repo_id = current.data(REPO_ID_ROLE)
            if repo_id and (repo_id != self._repo_id or self._repo is None):  # None: retry after an error
                self.open_repo(repo_id)

    # --- (b) a repo's files ----------------------------------------------------------------

    def open_repo(self, repo_id: str) -> None:
        """List ``repo_id``'s GGUF files (in the background) in the files part."""
        self._files_ticket += 1
        ticket = self._files_ticket
        self._repo_id = repo_id
        self._repo = None
        self.filesModel.clear()
        self.repoTitle.setText(f"<b>{_escape(repo_id)}</b>")
        self.repoNote.setText("Loading the file list…")
        self.repoNote.setStyleSheet("")
        self.memoryNote.setText("")
        self._files_selection_changed()
        hub, override = self.hub, self._memory_override

        def work() -> tuple[RepoFiles, MemoryInfo]:
            return hub.list_gguf_files(repo_id), override or sysinfo.memory()

        self.tasks.submit(work, partial(self._listed, ticket, repo_id))

    def _listed(
        self, ticket: int, repo_id: str, result: tuple[RepoFiles, MemoryInfo] | None, error: BaseException | None
    ) -> None:
        if ticket != self._files_ticket:
            return
        if error is not None:
            self.repoNote.setText(_plain(error))
            self.repoNote.setStyleSheet("color: #c62828;")
            return
        assert result is not None
        files, memory = result
        self._repo = files
        if self.searchStatus.text() == f"Opening {repo_id}…":
            self.searchStatus.setText("")
        self.filesModel.set_files(files.files, memory)
        self.projectorCheck.setVisible(_projector_of(files) is not None)
        self.repoNote.setStyleSheet("")
        self.repoNote.setText(self._repo_note(files))
        self.memoryNote.setText(_memory_note(memory))
        best = self.filesModel.best_row()
        if best is not None:
            self.filesView.scrollTo(self.filesModel.index(best, 0))

    def _repo_note(self, files: RepoFiles) -> str:
        lines = []
        if files.license:
            lines.append(f"License: {files.license}.")
        if not files.files:
            lines.append("This repo has no GGUF files Hearth can use.")
        if files.gated:
            lines.append(
                GATED_MESSAGE
                if not self._has_token
                else "This repo is gated: your access token is used; if the download is refused, "
                "accept its license on huggingface.co."
            )
            if not self._has_token:
                lines.append("(Use “Access token…” above to add the token.)")
        return " ".join(lines)

    def _files_selection_changed(self, *_: Any) -> None:
        self.downloadButton.setEnabled(bool(self._selected_files()))

    def _selected_files(self) -> list[QuantFile]:
        rows = sorted({index.row() for index in self.filesView.selectionModel().selectedRows()})
        return [self.filesModel.file_at(r) for r in rows if self.filesModel.file_at(r).complete]

    @Slot()
    def download_selected(self) -> None:
        """Queue every selected file (each part of a split set), after asking the Hub that we may."""
        repo = self._repo
        chosen = self._selected_files()
        if repo is None or not chosen:
            return
        projector = _projector_of(repo)
        wants_projector = self.projectorCheck.isVisible() and self.projectorCheck.isChecked()
        if projector is not None and wants_projector and not any(f.is_projector for f in chosen):
            if any(not f.is_projector for f in chosen):
                chosen.insert(0, projector)  # first, so the model finds it beside itself when it lands
        self.show_message("Starting " + ", ".join(f.name for f in chosen) + "…")
        hub, queue = self.hub, self.queue
        for f in chosen:
            self.tasks.submit(partial(_enqueue, hub, queue, repo, f), partial(self._enqueued, f))

    def _enqueued(self, f: QuantFile, problems: list[str] | None, error: BaseException | None) -> None:
        if error is not None:
            self.show_message(_plain(error), error=True)
        elif problems:
            self.show_message(" ".join(problems), error=True)
        else:
            self.show_message(f"{f.name} is in the download list.")

    # --- (c) downloads ---------------------------------------------------------------------

    def _selected_ids(self, states: set[DownloadState] | None = None) -> list[str]:
        ids = []
        for index in self.downloadsView.selectionModel().selectedRows():
            item = self.downloadsModel.item_at(index.row())
            if states is None or item.state in states:
                ids.append(item.id)
        return ids

    def _update_buttons(self) -> None:
        self.pauseButton.setEnabled(bool(self._selected_ids(_PAUSABLE)))
        self.resumeButton.setEnabled(bool(self._selected_ids(_RESUMABLE)))
        self.cancelButton.setEnabled(bool(self._selected_ids(_UNFINISHED)))
        self.removeButton.setEnabled(bool(self._selected_ids()))

    def _command(self, fn: Callable[[], Any]) -> None:
        self.tasks.submit(fn, self._command_done, lane=_QUEUE_LANE)

    def _command_done(self, _result: Any, error: BaseException | None) -> None:
        if error is not None:
            self.show_message(_plain(error), error=True)

    def _each(self, ids: list[str], action: Callable[[str], None]) -> None:
        def run() -> None:
            problems = []
            for item_id in ids:
                try:
                    action(item_id)
                except DownloadError as exc:  # e.g. no disk space to resume one: go on with the rest
                    problems.append(str(exc))
            if problems:
                raise DownloadError(" ".join(problems))

        self._command(run)

    @Slot()
    def pause_selected(self) -> None:
        self._each(self._selected_ids(_PAUSABLE), self.queue.pause)

    @Slot()
    def resume_selected(self) -> None:
        self._each(self._selected_ids(_RESUMABLE), self.queue.resume)

    @Slot()
    def cancel_selected(self) -> None:
        ids = self._selected_ids(_UNFINISHED)
        if not ids or not self._confirm(
            "Cancel download",
            _count(len(ids), "download") + " will be cancelled and the partly downloaded data deleted. Cancel?",
        ):
            return
        self._each(ids, self.queue.cancel)

    @Slot()
    def remove_selected(self) -> None:
        ids = self._selected_ids()
        unfinished = self._selected_ids(_UNFINISHED)
        if not ids:
            return
        if unfinished and not self._confirm(
            "Remove download",
            _count(len(unfinished), "unfinished download") + " will be stopped and the partly downloaded data "
            "deleted. Remove?",
        ):
            return
        self._each(ids, self.queue.remove)

    def _confirm(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(
            self,
            title,
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _parallel_changed(self, n: int) -> None:
        queue = self.queue
        self._command(lambda: queue.set_max_parallel(n))

    @Slot(object)
    def _on_event(self, event: DownloadEvent) -> None:
        item = event.item
        if event.kind == EventKind.STATE and item.state == DownloadState.FAILED and item.error:
            self.show_message(f"{_base(item.filename)}: {item.error}", error=True)

    @Slot(str)
    def _model_completed(self, path: str) -> None:
        self.show_message(f"{_base(path)} is downloaded and checked; it is in your models.")
        self.modelDownloaded.emit(path)

    # --- token ---------------------------------------------------------------------------

    def _token_known(self, result: tuple[bool, bool] | None, error: BaseException | None) -> None:
        if result is not None:
            self._has_token, self._keyring_available = result
            if self._repo is not None:
                self.repoNote.setText(self._repo_note(self._repo))

    @Slot()
    def show_token_dialog(self) -> TokenDialog:
        """Open the token window (window-modal; ``open()``, so nothing here waits on it)."""
        dialog = TokenDialog(self._has_token, self._keyring_available, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self._token_entered(dialog.token()))
        self.token_dialog = dialog
        dialog.destroyed.connect(lambda *_: setattr(self, "token_dialog", None))
        dialog.open()
        return dialog

    def _token_entered(self, token: str | None) -> None:
        # Used at once by the next request; stored (which may block on the keyring) off-thread.
        if token:
            add_secret(token)  # masked in the log from the first request on, whatever its shape
        self.hub.set_token(token)
        self.queue.set_token(token)
        self._has_token = token is not None
        if self._repo is not None:
            self.repoNote.setText(self._repo_note(self._repo))
        self.tasks.submit(lambda: secrets.set_token(token), partial(self._token_stored, token is not None))

    def _token_stored(self, saved: bool, _result: Any, error: BaseException | None) -> None:
        if error is not None:
            self._keyring_available = False
            self.show_message(_plain(error), error=not isinstance(error, secrets.TokenStorageUnavailable))
        elif saved:
            self.show_message("The access token is saved in your system keyring.")
        else:
            self.show_message("The access token was removed.")

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing only hides the window: downloads go on (the main window owns the queue)."""
        self._debounce.stop()
        super().closeEvent(event)


# --- helpers ----------------------------------------------------------------------------------


def _projector_of(repo: RepoFiles) -> QuantFile | None:
    """The repo's image projector to fetch with a model: F16 when there is one (what the
    converters write by default and every build reads), else the largest."""
    projectors = [f for f in repo.files if f.is_projector and f.complete]
    if not projectors:
        return None
    f16 = [f for f in projectors if (f.quant or "").upper() == "F16" or "f16" in f.name.lower()]
    return (f16 or sorted(projectors, key=lambda f: f.size or 0))[-1]


def _enqueue(hub: HubClient, queue: DownloadQueue, repo: RepoFiles, f: QuantFile) -> list[str]:
    """Worker side of Download: HEAD each part (gated? gone?), then queue it. Returns problems."""
    problems: list[str] = []
    for filename, size, sha in zip(f.filenames, f.part_sizes or [f.size], f.parts_sha256 or [f.sha256]):
        try:
            access = hub.check_access(repo.repo_id, filename, revision=repo.revision)
            queue.add(repo.repo_id, filename, access.url, total=size if size is not None else access.size, sha256=sha)
        except AlreadyDownloaded as exc:
            problems.append(str(exc))
        except (HubError, DownloadError) as exc:
            problems.append(str(exc))
            break  # the other parts would fail the same way (gated, no space)
    return problems


def _table(name: str, model: Any, mode: QAbstractItemView.SelectionMode) -> QTableView:
    view = QTableView()
    view.setObjectName(name)
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(mode)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.verticalHeader().hide()
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.horizontalHeader().setStretchLastSection(False)
    view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    return view


def _button(text: str, name: str) -> QPushButton:
    button = QPushButton(text)
    button.setObjectName(name)
    return button


def _memory_note(memory: MemoryInfo) -> str:
    if not memory.total:
        return "This computer's memory could not be read, so Hearth can't tell which files fit."
    free = f", {human_size(memory.available)} free now" if memory.available is not None else ""
    return f"This computer has {human_size(memory.total)} of memory{free}. Memory needed ≈ file size × 1.1 + 0.5 GB."


def _base(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _count(n: int, noun: str) -> str:
    return f"1 {noun}" if n == 1 else f"{n} {noun}s"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
