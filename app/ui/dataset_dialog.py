"""File > Export dataset…: fine-tuning rows from the saved conversations, as JSON Lines.

Choose the kind (SFT conversations or preference pairs), the format and the filters; the
preview below counts the rows and shows the first ones, recounted in the background a moment
after each change. Export… asks where to write and writes in the background with progress:
the window never waits for the database or the disk. Problems (a full disk, a folder that may
not be written) are shown as plain messages. The rows are built by :mod:`app.core.datasets`.

API: ``DatasetDialog(store, model_names, parent)``; ``spec() -> DatasetSpec``;
``refresh_preview()``; ``export_to(path) -> bool``; signals ``previewed(object)`` (the
DatasetResult) and ``exported(str, int)`` (path, rows); ``busy``.
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
from typing import Any, cast

from PySide6.QtCore import QDate, QObject, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.datasets import (
    FORMATS,
    KINDS,
    RATINGS,
    DatasetError,
    DatasetResult,
    DatasetSpec,
    Format,
    Kind,
    Rating,
    build,
    describe_count,
    write_jsonl,
)
from app.ui.a11y import named

ALL_MODELS = "All models"
ANY_COLLECTION = "Any conversation"
PREVIEW_ROWS = 3


class _Runner(QObject):
    """Runs one job at a time on a plain thread; results come back queued to the GUI thread."""

    finished = Signal(int, object, object)  # serial, result, error message (one is None)
    progressed = Signal(int, str, int, int)  # serial, what, done, total
    _done = Signal(int, object, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: threading.Thread | None = None
        self.cancel = threading.Event()
        self._done.connect(self._deliver)

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def start(self, serial: int, job: Any) -> bool:
        if self._thread is not None:
            return False
        self.cancel.clear()

        def run() -> None:
            try:
                result, error = job(serial), None
            except DatasetError as exc:
                result, error = None, str(exc)
            except Exception as exc:  # noqa: BLE001 - shown in plain words, never a traceback
                result, error = None, f"Hearth could not read the conversations ({exc})."
            self._done.emit(serial, result, error)

        self._thread = threading.Thread(target=run, name="dataset-export", daemon=True)
        self._thread.start()
        return True

    @Slot(int, object, object)
    def _deliver(self, serial: int, result: Any, error: Any) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        self.finished.emit(serial, result, error)


class DatasetDialog(QDialog):
    previewed = Signal(object)  # DatasetResult of the latest preview
    exported = Signal(str, int)  # path, rows written

    def __init__(
        self,
        store: Any,
        model_names: list[str],
        parent: QWidget | None = None,
        documents: Any = None,
        collection_names: list[str] | None = None,
    ) -> None:
        super().__init__(parent)
        self.documents = documents  # a DocumentIndex: which conversations use a collection
        named(self, "datasetDialog", "Export dataset")
        self.setWindowTitle("Export dataset")
        self.resize(720, 600)
        self.store = store
        self._serial = 0
        self._pending_export: str | None = None
        self._runner = _Runner(self)
        self._runner.finished.connect(self._on_finished)
        self._runner.progressed.connect(self._on_progress)
        self._last: DatasetResult | None = None

        layout = QVBoxLayout(self)
        intro = QLabel(
            "Write your conversations as a dataset for fine-tuning a model elsewhere: one JSON object a line. "
            "Replies that were stopped, failed or interrupted are left out unless you include them."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        layout.addLayout(form)

        self.kind = named(QComboBox(), "datasetKind", "Kind of dataset")
        for key, label in KINDS.items():
            self.kind.addItem(label, key)
        form.addRow("&Kind:", self.kind)
        self.fmt = named(QComboBox(), "datasetFormat", "Format")
        for key, label in FORMATS.items():
            self.fmt.addItem(label, key)
        form.addRow("&Format:", self.fmt)
        self.rating = named(QComboBox(), "datasetRating", "Which replies, by rating")
        for key, label in RATINGS.items():
            self.rating.addItem(label, key)
        form.addRow("&Replies:", self.rating)
        self.model = named(QComboBox(), "datasetModel", "Model", "Only replies written by this model")
        self.model.setEditable(True)
        self.model.addItem(ALL_MODELS)
        for name in sorted(set(model_names), key=str.casefold):
            self.model.addItem(name)
        form.addRow("&Model:", self.model)

        dates = QHBoxLayout()
        today = QDate.currentDate()
        self.use_since = named(QCheckBox("&From"), "datasetUseSince", "Only replies from a date on")
        self.since = named(QDateEdit(today.addMonths(-1)), "datasetSince", "From date")
        self.use_until = named(QCheckBox("&Until"), "datasetUseUntil", "Only replies up to a date")
        self.until = named(QDateEdit(today), "datasetUntil", "Until date (inclusive)")
        for edit in (self.since, self.until):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setEnabled(False)
        self.use_since.toggled.connect(self.since.setEnabled)
        self.use_until.toggled.connect(self.until.setEnabled)
        for w in (self.use_since, self.since, self.use_until, self.until):
            dates.addWidget(w)
        dates.addStretch(1)
        form.addRow("Dates:", dates)
        self.collection = named(
            QComboBox(),
            "datasetCollection",
            "Collection",
            "Only conversations that use this document collection",
        )
        self.collection.addItem(ANY_COLLECTION, "")
        for name in sorted(set(collection_names or []), key=str.casefold):
            self.collection.addItem(name, name)
        self.collection.setEnabled(self.collection.count() > 1 and documents is not None)
        form.addRow("C&ollection:", self.collection)
        self.pinned = named(
            QCheckBox("Only &pinned conversations"),
            "datasetPinned",
            "Only pinned conversations",
            "Pin the conversations you want in a dataset, or use a collection with them",
        )
        form.addRow("", self.pinned)
        self.incomplete = named(
            QCheckBox("Include replies that were &stopped, failed or interrupted"),
            "datasetIncomplete",
            "Include incomplete replies",
        )
        form.addRow("", self.incomplete)

        self.counts = named(QLabel("Counting…"), "datasetCounts", "Rows in the dataset")
        self.counts.setTextFormat(Qt.TextFormat.PlainText)
        self.counts.setWordWrap(True)
        layout.addWidget(self.counts)
        self.preview = named(QPlainTextEdit(), "datasetPreview", "Preview of the first rows")
        self.preview.setReadOnly(True)
        self.preview.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        layout.addWidget(self.preview, 1)
        self.progress = named(QProgressBar(), "datasetProgress", "Export progress")
        self.progress.hide()
        layout.addWidget(self.progress)
        self.message = named(QLabel(), "datasetMessage", "Export message")
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()
        layout.addWidget(self.message)

        buttons = QDialogButtonBox()
        self.export_button = named(
            QPushButton("&Export…"), "datasetExportButton", "Export the dataset", "Choose a file and write the rows"
        )
        buttons.addButton(self.export_button, QDialogButtonBox.ButtonRole.AcceptRole)
        close = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        named(close, "datasetCloseButton", "Close")
        layout.addWidget(buttons)
        self.export_button.clicked.connect(self._choose_file)
        close.clicked.connect(self.reject)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(300)
        self._timer.timeout.connect(self.refresh_preview)
        for combo in (self.kind, self.fmt, self.rating, self.collection):
            combo.currentIndexChanged.connect(self._changed)
        self.model.currentTextChanged.connect(self._changed)
        for box in (self.use_since, self.use_until, self.pinned, self.incomplete):
            box.toggled.connect(self._changed)
        for edit in (self.since, self.until):
            edit.dateChanged.connect(self._changed)
        self.refresh_preview()

    # -- state ---------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._runner.busy

    def spec(self) -> DatasetSpec:
        model = self.model.currentText().strip()

        def stamp(date: QDate, end: bool) -> float:
            day = _dt.date(date.year(), date.month(), date.day())
            return _dt.datetime.combine(day, _dt.time.max if end else _dt.time.min).timestamp()

        return DatasetSpec(
            kind=cast(Kind, self.kind.currentData()),
            fmt=cast(Format, self.fmt.currentData()),
            rating=cast(Rating, self.rating.currentData()),
            models=() if not model or model == ALL_MODELS else (model,),
            since=stamp(self.since.date(), False) if self.use_since.isChecked() else None,
            until=stamp(self.until.date(), True) if self.use_until.isChecked() else None,
            pinned_only=self.pinned.isChecked(),
            include_incomplete=self.incomplete.isChecked(),
            collections=(self.collection.currentData(),) if self.collection.currentData() else (),
        )

    def _changed(self, *_args: object) -> None:
        self.rating.setEnabled(self.kind.currentData() == "sft")  # pairs come from the marks themselves
        self._timer.start()

    # -- preview -------------------------------------------------------------------------------

    def refresh_preview(self) -> None:
        """Count the rows for the current choices, in the background (again later if busy)."""
        if self._runner.busy:
            self._timer.start()
            return
        self._serial += 1
        spec = self.spec()
        store = self.store
        self.counts.setText("Counting…")
        documents = self.documents
        self._runner.start(
            self._serial, lambda serial: build(store, spec, cancelled=self._runner.cancel.is_set, documents=documents)
        )

    # -- export --------------------------------------------------------------------------------

    def _choose_file(self) -> None:
        name = "hearth-preferences.jsonl" if self.kind.currentData() == "preferences" else "hearth-sft.jsonl"
        path, _ = QFileDialog.getSaveFileName(self, "Export dataset", name, "JSON Lines (*.jsonl);;All files (*)")
        if path:
            self.export_to(path)

    def export_to(self, path: str) -> bool:
        """Build the rows again (the store may have changed) and write them; False when busy."""
        if self._runner.busy:
            self._runner.cancel.set()  # a preview is running: it gives way
            self._pending_export = path
            return True
        self._serial += 1
        spec, store, runner, documents = self.spec(), self.store, self._runner, self.documents
        self._set_working(True)

        def job(serial: int) -> tuple[str, int]:
            def read(done: int, total: int) -> None:
                runner.progressed.emit(serial, "Reading conversations…", done, total)

            def wrote(done: int, total: int) -> None:
                runner.progressed.emit(serial, "Writing…", done, total)

            result = build(store, spec, progress=read, documents=documents)
            write_jsonl(path, result.rows, progress=wrote)
            return path, len(result.rows)

        self._runner.start(self._serial, job)
        return True

    def _set_working(self, working: bool) -> None:
        self.export_button.setEnabled(not working)
        self.progress.setVisible(working)
        self.progress.setRange(0, 0)
        if working:
            self.message.hide()

    @Slot(int, str, int, int)
    def _on_progress(self, serial: int, what: str, done: int, total: int) -> None:
        if serial != self._serial:
            return
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{what} %v of %m")

    @Slot(int, object, object)
    def _on_finished(self, serial: int, result: Any, error: Any) -> None:
        if self._pending_export is not None:
            path, self._pending_export = self._pending_export, None
            self.export_to(path)
            return
        current = serial == self._serial
        if isinstance(result, DatasetResult):
            if current:
                self._show_preview(result)
            elif not self._timer.isActive():
                self._timer.start()
            return
        self._set_working(False)
        if error is not None:
            self._show_message(f"The dataset was not written: {error}", problem=True)
            return
        path, rows = result
        self._show_message(f"Wrote {rows:,} row{'s' if rows != 1 else ''} to {path}.", problem=False)
        self.exported.emit(path, rows)

    def _show_preview(self, result: DatasetResult) -> None:
        self._last = result
        text = f"{describe_count(self.kind.currentData(), len(result.rows))} from {result.used:,} of "
        text += f"{result.conversations:,} saved conversations."
        if result.unreadable:
            text += f" {result.unreadable:,} could not be read and are left out."
        if not result.rows:
            text += " Nothing matches: " + (
                "mark the better version of a reply (Prefer this version) or rate versions Good and Bad."
                if self.kind.currentData() == "preferences"
                else "try fewer filters."
            )
        self.counts.setText(text)
        shown = [json.dumps(row, ensure_ascii=False) for row in result.rows[:PREVIEW_ROWS]]
        more = len(result.rows) - len(shown)
        self.preview.setPlainText("\n".join(shown) + (f"\n… and {more:,} more rows" if more > 0 else ""))
        self.export_button.setEnabled(bool(result.rows))
        self.previewed.emit(result)

    def _show_message(self, text: str, problem: bool) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #c62828" if problem else "")
        self.message.show()

    def done(self, code: int) -> None:
        self._runner.cancel.set()
        super().done(code)
