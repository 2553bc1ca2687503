"""The Models dialog: see every model, what it needs, add, inspect, rename, remove, choose.

Anything that reads a model file (headers, copies, the folder scan) runs on a worker
``QThread`` through the core's state-free functions, and its result is applied to the
library back on the GUI thread, so a slow disk or a 40 GB copy never freezes the window.
Problems arrive as typed core errors and are shown in plain words in the message line.

Signals for the main window: ``aboutToRemove(path)`` (unload it now if it is in use; the
file is deleted right after), ``modelRemoved(path)``, ``modelsChanged()`` and
``modelChosen(path)`` (double-click or "Use this model").  :func:`gguf_paths_from_mime`
lets the main window accept dropped model files the same way.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, QModelIndex, QSortFilterProxyModel, Qt, QThread, Signal, Slot
from PySide6.QtGui import (
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QFontDatabase,
    QGuiApplication,
    QKeySequence,
    QShortcut,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,  # tests answer the Remove question through this name  # noqa: F401
    QPlainTextEdit,
    QProgressDialog,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.core import sysinfo
from app.core.adapters import AdapterInfo
from app.core.chat_templates import KNOWN_TEMPLATES
from app.core.gguf import ArraySummary, GGUFError, GGUFMetadata, split_parts
from app.core.library import (
    CopyCancelled,
    LibraryError,
    ModelDefaults,
    ModelInfo,
    ModelLibrary,
    ScanResult,
    copy_into_library,
    human_size,
    model_key,
    read_model,
    scan_models_dir,
)
from app.core.model_bench import BenchResult
from app.core.sysinfo import MemoryInfo
from app.session.bench import ModelBenchmark
from app.ui.load_options_editor import LoadOptionsEditor
from app.ui.model_table import PATH_ROLE, SORT_ROLE, Column, ModelTableModel
from app.ui.plain import ask, plain_tip
from app.ui.projector_picker import ProjectorPicker

log = logging.getLogger(__name__)

__all__ = ["ModelDetailsDialog", "ModelsDialog", "format_metadata", "gguf_paths_from_mime"]


def _named(widget, name: str, human: str | None = None):
    """objectName for tests; a human accessible name where the widget has no text of its own
    (a label or a button speaks its text, never the identifier)."""
    widget.setObjectName(name)
    if human:
        widget.setAccessibleName(human)
    return widget


def gguf_paths_from_mime(mime: QMimeData | None) -> list[str]:
    """Local ``.gguf`` files among dropped URLs, in order, without duplicates.

    Only the name is checked (no disk access on the GUI thread); reading the header
    later says whether a file really is a model.
    """
    if mime is None or not mime.hasUrls():
        return []
    found: list[str] = []
    for url in mime.urls():
        if not url.isLocalFile():
            continue
        path = url.toLocalFile()
        if path.lower().endswith(".gguf") and path not in found:
            found.append(path)
    return found


# --------------------------------------------------------------------------
# Worker thread
# --------------------------------------------------------------------------


class _Job(QThread):
    """Runs ``fn(job)`` once on its own thread and reports ``done(result, error)``.

    ``fn`` may call :meth:`report` for progress and poll :meth:`cancelled`.  It must not
    capture widgets (the dialog included): Qt objects are not thread-safe, so it gets
    plain values and state-free core functions only.
    """

    done = Signal(object, object)  # result, exception (one of them is None)
    progressed = Signal(str, int)  # label, per-mille

    def __init__(self, fn: Callable[[_Job], Any], parent=None) -> None:
        super().__init__(parent)
        self._fn: Callable[[_Job], Any] | None = fn
        self._cancel = threading.Event()
        self._last: tuple[str, int] | None = None

    def run(self) -> None:
        fn = self._fn
        try:
            if fn is None:
                raise RuntimeError("job started twice")
            result, error = fn(self), None
        except Exception as exc:  # shown in plain words by the dialog, never as a traceback
            result, error = None, exc
        self.done.emit(result, error)

    def cancel(self) -> None:
        self._cancel.set()

    def release(self) -> None:
        """Forget the function (and what it captured) once the thread has finished."""
        self._fn = None

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def report(self, label: str, done: int, total: int) -> None:
        permille = min(1000, done * 1000 // total) if total > 0 else 0
        if (label, permille) != self._last:  # at most ~1000 signals per file
            self._last = (label, permille)
            self.progressed.emit(label, permille)


@dataclass
class _Outcome:
    source: str
    info: ModelInfo | None = None
    error: str | None = None
    cancelled: bool = False
    adapter: AdapterInfo | None = None  # a LoRA adapter, for the model ``model``
    model: str | None = None


def _report_copy(job: _Job, name: str, done: int, total: int) -> None:
    job.report(f"Copying {name}…", done, total)


def _import_all(
    job: _Job, sources: list[str], copy: bool, target: tuple[str, str] | None = None, only_adapters: bool = False
) -> list[_Outcome]:
    """Worker side of an import: read headers (and copy); no library state is touched. A LoRA
    adapter is checked against the model ``target`` (path, name) instead of becoming a model."""
    from app.ui.adapters_box import adapter_outcome  # noqa: PLC0415

    outcomes: list[_Outcome] = []
    for source in sources:
        name = Path(source).name
        if job.cancelled():
            outcomes.append(_Outcome(source, cancelled=True))
            continue
        kind, found = adapter_outcome(source, target, only_adapters)
        if isinstance(found, AdapterInfo):
            outcomes.append(_Outcome(source, adapter=found, model=target[0] if target else None))
            continue
        if kind == "error":
            outcomes.append(_Outcome(source, error=str(found)))
            continue
        try:
            if copy:
                dest = copy_into_library(
                    source,
                    progress=partial(_report_copy, job, name),
                    cancel=job.cancelled,
                )
                info = read_model(dest, linked=False)
                if str(dest) != model_key(source):
                    info.source = model_key(source)
            else:
                info = read_model(source, linked=True)
            outcomes.append(_Outcome(source, info))
        except CopyCancelled:
            outcomes.append(_Outcome(source, cancelled=True))
        except (GGUFError, LibraryError) as exc:
            outcomes.append(_Outcome(source, error=str(exc)))
        except OSError as exc:
            outcomes.append(_Outcome(source, error=f"{name}: {exc.strerror or exc}"))
    return outcomes


# --------------------------------------------------------------------------
# Details
# --------------------------------------------------------------------------

_LONG_TEXT = 2000


def _format_value(value: object) -> str:
    if isinstance(value, ArraySummary):
        return f"[{value.length:,} {value.item_type} items — not shown]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.7g}"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        if len(text) > _LONG_TEXT:
            text = f"{text[:_LONG_TEXT]}… ({len(value):,} characters in all)"
        return text
    if isinstance(value, list):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    return str(value)


def format_metadata(meta: GGUFMetadata, info: ModelInfo | None = None) -> str:
    """Every key/value of the header as text a person can read and copy.

    Long arrays (vocabularies, merges) were never decoded and show as their type and
    length; the chat template, which people do want to read, comes in full at the end.
    """
    lines: list[str] = []
    if info is not None:
        lines.append(info.name)
    parts = split_parts(meta.path)
    lines.append(f"File: {meta.path}")
    if len(parts) > 1:
        lines.append(f"Parts: {len(parts)} ({', '.join(p.name for p in parts)})")
    size = info.size if info is not None else meta.file_size
    lines.append(f"Size on disk: {human_size(size)} ({size:,} bytes)")
    lines.append(f"GGUF version: {meta.version}")
    if info is not None and info.parameter_count:
        lines.append(f"Parameters: {info.parameter_count:,}" + (f" ({info.parameters})" if info.parameters else ""))
    elif meta.parameter_count:
        lines.append(f"Parameters: {meta.parameter_count:,}")
    if meta.quantization:
        lines.append(f"Quantization: {meta.quantization}")
    mix = Counter(t.type_name for t in meta.tensors)
    if mix:
        kinds = ", ".join(f"{name} × {count}" for name, count in mix.most_common())
        lines.append(f"Tensors: {len(meta.tensors):,} ({kinds})")
    lines.append("")
    lines.append(f"Metadata ({len(meta.kv)} keys)")
    template = meta.chat_template
    for key, value in meta.kv.items():
        if key == "tokenizer.chat_template" and template is not None:
            lines.append(f"{key} = (shown below, {len(template):,} characters)")
        else:
            lines.append(f"{key} = {_format_value(value)}")
    lines.append("")
    if template is not None:
        lines.append("Chat template")
        lines.append(template)
    else:
        lines.append("No chat template is embedded in this file.")
    return "\n".join(lines)


class ModelDetailsDialog(QDialog):
    """Read-only, selectable and copyable text of a model's header."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        _named(self, "modelDetails", "Model details")
        self.resize(760, 620)
        layout = QVBoxLayout(self)
        self.text = _named(QPlainTextEdit(), "modelDetailsText", "Model metadata and chat template")
        self.text.setReadOnly(True)
        self.text.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        layout.addWidget(self.text, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy_button = _named(
            buttons.addButton("Copy all", QDialogButtonBox.ButtonRole.ActionRole), "copyDetailsButton"
        )
        self.copy_button.clicked.connect(self.copy_all)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)

    def show_text(self, title: str, text: str) -> None:
        self.setWindowTitle(title)
        self.text.setPlainText(text)

    def copy_all(self) -> None:
        QGuiApplication.clipboard().setText(self.text.toPlainText())


# --------------------------------------------------------------------------
# The dialog
# --------------------------------------------------------------------------


class ModelsDialog(QDialog):
    aboutToRemove = Signal(str)  # path: unload it now if in use; its file goes next
    modelRemoved = Signal(str)  # path
    modelsChanged = Signal()
    modelChosen = Signal(str)  # path

    def __init__(
        self,
        library: ModelLibrary,
        current_model_path: str | None = None,
        parent: QWidget | None = None,
        *,
        n_ctx: int | None = None,
        memory: MemoryInfo | None = None,
        bench: ModelBenchmark | None = None,
    ) -> None:
        """``n_ctx`` is the app's context setting (models without their own default use it
        for the memory estimate); ``memory`` overrides this machine's (tests); ``bench``
        measures models (Benchmark) and keeps their figures (one of its own when None)."""
        super().__init__(parent)
        _named(self, "modelsDialog", "Manage models")
        self.setWindowTitle("Models")
        self.resize(1100, 640)
        self.setAcceptDrops(True)
        self.library = library
        self._fixed_memory = memory
        self._job: _Job | None = None
        self._on_done: Callable[[Any, BaseException | None], None] | None = None
        self._progress: QProgressDialog | None = None
        self._details: ModelDetailsDialog | None = None

        self.bench = bench if bench is not None else ModelBenchmark(parent=self)
        self.model = ModelTableModel(
            library, memory or sysinfo.memory(), n_ctx, current_model_path, self, bench=self.bench.store
        )
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)

        layout = QVBoxLayout(self)
        self.message = _named(QLabel(), "modelsMessage")
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()
        layout.addWidget(self.message)

        self.table = _named(QTableView(), "modelTable", "Models")
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(Column.NAME, Qt.SortOrder.AscendingOrder)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table, 1)

        self.memory_label = _named(QLabel(), "memoryLabel")
        self.memory_label.setWordWrap(True)
        layout.addWidget(self.memory_label)

        # actions
        row = QHBoxLayout()
        self.add_button = _named(QPushButton("Add model file…"), "addModelFileButton")
        self.remove_button = _named(QPushButton("Remove…"), "removeModelButton")
        self.rename_button = _named(QPushButton("Rename"), "renameModelButton")
        self.details_button = _named(QPushButton("Details"), "modelDetailsButton")
        self.refresh_button = _named(QPushButton("Refresh"), "refreshModelsButton")
        self.use_button = _named(QPushButton("Use this model"), "useModelButton")
        self.bench_button = _named(QPushButton("Benchmark"), "benchmarkModelButton", "Benchmark")
        self.bench_button.setToolTip(
            "Measure this model on this computer: prompt and generation speed, load time and peak memory "
            "(a fixed 512-token prompt and 128 generated tokens; takes from seconds to a few minutes)"
        )
        self.refresh_button.setToolTip(plain_tip(f"Look for new model files in {library.models_dir}"))
        for button in (
            self.add_button,
            self.remove_button,
            self.rename_button,
            self.details_button,
            self.bench_button,
            self.refresh_button,
        ):
            row.addWidget(button)
        row.addStretch(1)
        row.addWidget(self.use_button)
        layout.addLayout(row)

        # how files come in
        mode = QHBoxLayout()
        self.link_radio = _named(QRadioButton("Link in place"), "linkRadio")
        self.copy_radio = _named(QRadioButton("Copy into library"), "copyRadio")
        self.link_radio.setChecked(True)  # model files are large: never copy unasked
        group = QButtonGroup(self)
        group.addButton(self.link_radio)
        group.addButton(self.copy_radio)
        mode.addWidget(QLabel("New files:"))
        mode.addWidget(self.link_radio)
        mode.addWidget(self.copy_radio)
        self.mode_hint = _named(QLabel(), "importModeHint")
        self.mode_hint.setWordWrap(True)
        mode.addWidget(self.mode_hint, 1)
        layout.addLayout(mode)

        below = QHBoxLayout()
        below.addWidget(self._build_defaults_editor(), 2)
        below.addWidget(self._build_adapters_box(), 1, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(below)

        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout.addWidget(close)

        # wiring
        self.add_button.clicked.connect(self._choose_files)
        self.remove_button.clicked.connect(self.remove_selected)
        self.rename_button.clicked.connect(self._rename_selected)
        self.details_button.clicked.connect(self.show_details)
        self.refresh_button.clicked.connect(self.refresh)
        self.use_button.clicked.connect(self._use_selected)
        self.bench_button.clicked.connect(self.toggle_benchmark)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._table_menu)
        self.bench.stage.connect(self._bench_stage)
        self.bench.finished.connect(self._bench_finished)
        self.bench.failed.connect(self._bench_failed)
        self.bench.cancelled.connect(self._bench_cancelled)
        self.table.doubleClicked.connect(self._use_index)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.link_radio.toggled.connect(self._update_mode_hint)
        self.model.renamed.connect(self._renamed)
        self.model.renameFailed.connect(self._show_error)
        QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.table).activated.connect(self.remove_selected)

        self._update_mode_hint()
        self._update_memory_label()
        if self.proxy.rowCount():
            self.table.selectRow(0)
        self._update_buttons()

    # -- layout helpers ---------------------------------------------------------------------

    def _build_defaults_editor(self) -> QGroupBox:
        box = _named(QGroupBox("Defaults for this model"), "modelDefaults")
        box.setToolTip("Applied when you pick this model; a chat's own settings still win")
        form = QFormLayout(box)
        self.ctx_spin = _named(QSpinBox(), "defaultContext", "Default context length")
        self.ctx_spin.setRange(0, ModelDefaults.MAX_CTX)
        self.ctx_spin.setSingleStep(512)
        self.ctx_spin.setSpecialValueText("App setting")
        self.ctx_spin.setSuffix(" tokens")
        self.gpu_spin = _named(QSpinBox(), "defaultGpuLayers", "Default GPU layers")
        self.gpu_spin.setRange(-1, 9999)
        self.gpu_spin.setSpecialValueText("App setting")
        self.gpu_spin.setToolTip("0 runs on the CPU only; more layers than the model has puts all of it on the GPU")
        self.threads_spin = _named(QSpinBox(), "defaultThreads", "Default threads")
        self.threads_spin.setRange(0, ModelDefaults.MAX_THREADS)
        self.threads_spin.setSpecialValueText("App setting")
        self.prompt_edit = _named(QPlainTextEdit(), "defaultSystemPrompt", "Default system prompt")
        self.prompt_edit.setPlaceholderText("No default system prompt")
        self.prompt_edit.setAcceptDrops(False)  # a dropped model file imports; it is not text
        self.prompt_edit.setFixedHeight(70)
        self.template_combo = _named(QComboBox(), "defaultChatTemplate", "Chat template")
        self.template_combo.addItem("The model's own", None)
        for template in KNOWN_TEMPLATES:
            self.template_combo.addItem(template.label, template.key)
        self.template_combo.setToolTip(
            "The shape of a chat the model was trained on. Keep the model's own unless it has none "
            "(a base model) or it is broken."
        )
        for spin in (self.ctx_spin, self.gpu_spin, self.threads_spin):
            spin.setMinimumWidth(160)
            spin.setMaximumWidth(220)
        form.addRow("Context length:", self.ctx_spin)
        form.addRow("GPU layers:", self.gpu_spin)
        form.addRow("Threads:", self.threads_spin)
        form.addRow("System prompt:", self.prompt_edit)
        form.addRow("Chat template:", self.template_combo)
        self.projector_picker = ProjectorPicker()
        form.addRow("Image projector:", self.projector_picker)
        self.load_options = LoadOptionsEditor()
        form.addRow("Speed and memory:", self.load_options)
        buttons = QHBoxLayout()
        self.save_defaults_button = _named(QPushButton("Save defaults"), "saveDefaultsButton")
        self.clear_defaults_button = _named(QPushButton("Clear"), "clearDefaultsButton")
        buttons.addStretch(1)
        buttons.addWidget(self.clear_defaults_button)
        buttons.addWidget(self.save_defaults_button)
        form.addRow(buttons)
        self.save_defaults_button.clicked.connect(self.save_defaults)
        self.clear_defaults_button.clicked.connect(self._clear_defaults_editor)
        self.defaults_box = box
        return box

    def _update_mode_hint(self) -> None:
        if self.link_radio.isChecked():
            text = (
                "Linked files stay where they are; nothing is copied, and removing a model "
                "from the library keeps your file."
            )
        else:
            text = (
                f"Files are copied into {self.library.models_dir}; removing a model later "
                "deletes the copy. Large files take a while and use that much disk space again."
            )
        self.mode_hint.setText(text)

    def _update_memory_label(self) -> None:
        mem = self.model.memory
        if not mem.total:
            self.memory_label.setText("This computer's memory could not be read, so memory needs are not rated.")
            return
        available = f", {human_size(mem.available)} available now" if mem.available is not None else ""
        self.memory_label.setText(
            f"This computer has {human_size(mem.total)} of memory{available}. “RAM needed” is an estimate "
            "for running the model on the CPU at its context length."
        )

    # -- public -----------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether a file job (import, copy, scan, details) is running."""
        return self._job is not None

    def reload(self) -> None:
        """Redraw from the library (call it after changing the library elsewhere)."""
        path = self.selected_path()
        self.model.reload()
        if path is not None:
            self.select_path(path)
        self._update_buttons()

    def set_current_model(self, path: str | None) -> None:
        self.model.set_current_path(path)

    def set_context(self, n_ctx: int | None) -> None:
        self.model.set_context(n_ctx)

    def selected_path(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].data(PATH_ROLE) if rows else None

    def select_path(self, path: str) -> bool:
        row = self.model.row_of(path)
        if row < 0:
            return False
        self.table.selectRow(self.proxy.mapFromSource(self.model.index(row, 0)).row())
        return True

    def import_files(self, files: list[str], copy: bool | None = None) -> bool:
        """Add model files (copy or link as chosen in the dialog, unless ``copy`` says).

        Returns False when nothing was started (all already present, or busy).
        """
        if self.busy:
            self._show_error("Please wait until the current operation has finished.")
            return False
        copy = self.copy_radio.isChecked() if copy is None else copy
        notes: list[str] = []
        todo: list[str] = []
        keys: set[str] = set()
        for file in files:
            key = model_key(file)
            existing = self.library.find(file)
            if existing is not None:
                notes.append(f"{existing.name} is already in the library.")
                self.select_path(existing.path)
            elif key not in keys:  # e.g. all parts of one split model dropped together
                keys.add(key)
                todo.append(file)
        if not todo:
            if notes:
                self._show_info(" ".join(notes))
            return False
        selected = self._selected_info()
        target = (selected.path, selected.name) if selected is not None else None
        self._start(
            lambda job: _import_all(job, todo, copy, target),
            lambda result, error: self._imported(result, error, copy, notes),
            progress=copy,
        )
        return True

    def refresh(self) -> None:
        """Find new files in the models folder and re-check which files are missing."""
        if self._fixed_memory is None:
            self.model.set_memory(sysinfo.memory())
            self._update_memory_label()
        known, stale = self.library.refresh_plan()
        self._start(lambda job: scan_models_dir(known, stale), self._scanned)

    def show_details(self) -> None:
        info = self._selected_info()
        if info is None:
            return
        path = info.path
        library = self.library
        self._start(lambda job: library.metadata(path), lambda meta, error: self._details_read(path, meta, error))

    def remove_selected(self) -> None:
        info = self._selected_info()
        if info is None:
            return
        freed = self.library.reclaimable_bytes(info.path)
        if freed:
            text = (
                f"Remove “{info.name}” from the library and delete its file?\n\n"
                f"This frees {human_size(freed)} of disk space."
            )
        else:
            text = f"Remove “{info.name}” from the library?\n\nYour file is kept where it is:\n{info.path}"
        if info.path == self._current_path():
            text += "\n\nThe chat is using this model; it will be unloaded first."
        if not ask(self, "Remove model", text):  # the name is the file's general.name: plain text
            return
        self.aboutToRemove.emit(info.path)
        try:
            freed = self.library.remove(info.path)
        except LibraryError as exc:
            self._show_error(str(exc))
            self.reload()
            return
        except OSError as exc:
            self._show_error(f"{info.file_name}: {exc.strerror or exc}")
            return
        self.reload()
        if self.model.rowCount() and not self.table.selectionModel().hasSelection():
            self.table.selectRow(0)
        self._show_info(
            f"Removed {info.name}; {human_size(freed)} freed."
            if freed
            else f"Removed {info.name} from the library; your file was kept."
        )
        self.modelRemoved.emit(info.path)
        self.modelsChanged.emit()

    def toggle_benchmark(self) -> None:
        """Benchmark the selected model, or cancel the benchmark that is running."""
        if self.bench.running is not None:
            self.bench.cancel()
            self._show_info("Cancelling the benchmark…")
            return
        info = self._selected_info()
        if info is None or not info.exists or info.remote is not None:
            return
        if self.bench.start(info):
            self.model.set_bench_state(info.path, "starting")
            self._show_info(f"Measuring {info.name} on this computer… You can keep using Hearth meanwhile.")
        self._update_buttons()

    def _table_menu(self, pos) -> None:
        index = self.table.indexAt(pos)
        if index.isValid():
            self.table.selectRow(index.row())
        info = self._selected_info()
        menu = QMenu(self)
        if self.bench.running is not None:
            menu.addAction("Cancel benchmark", self.toggle_benchmark)
        elif info is not None and info.exists:
            menu.addAction("Benchmark", self.toggle_benchmark)
        if info is not None and info.exists:
            menu.addAction("Use this model", self._use_selected)
            menu.addAction("Details", self.show_details).setEnabled(self._job is None)
        if menu.isEmpty():
            return
        menu.exec(self.table.viewport().mapToGlobal(pos))

    def _bench_stage(self, path: str, words: str) -> None:
        self.model.set_bench_state(path, words)

    def _bench_ended(self, path: str) -> None:
        self.model.set_bench_state(path, None)
        self._update_buttons()

    def _bench_finished(self, path: str, result: object) -> None:
        self._bench_ended(path)
        info = self.library.get(path)
        name = info.name if info is not None else Path(path).name
        if isinstance(result, BenchResult):
            self._show_info(f"{name} on this computer: {result.summary()}, loaded in {result.load_seconds:.1f} s.")
        self.modelsChanged.emit()  # the picker shows the figures too

    def _bench_failed(self, path: str, message: str) -> None:
        self._bench_ended(path)
        self._show_error(message)

    def _bench_cancelled(self, path: str) -> None:
        self._bench_ended(path)
        self._show_info("The benchmark was cancelled; nothing was saved.")

    def save_defaults(self) -> None:
        info = self._selected_info()
        if info is None:
            return
        defaults = ModelDefaults(
            n_ctx=self.ctx_spin.value() or None,
            n_gpu_layers=None if self.gpu_spin.value() < 0 else self.gpu_spin.value(),
            n_threads=self.threads_spin.value() or None,
            system_prompt=self.prompt_edit.toPlainText().strip() or None,
            chat_template=self.template_combo.currentData(),
            mmproj=self.projector_picker.value(),
            **self.load_options.values(),
        )
        try:
            self.library.set_defaults(info.path, defaults)
        except LibraryError as exc:
            self._show_error(str(exc))
            return
        self.reload()  # the memory estimate follows the context length
        self._show_info(f"Saved the defaults for {info.name}.")
        self.modelsChanged.emit()

    # -- intents ----------------------------------------------------------------------------

    def _choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add model files", "", "GGUF models (*.gguf);;All files (*)")
        if files:
            self.import_files(files)

    def _rename_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows(Column.NAME)
        if rows:
            self.table.setFocus()
            self.table.edit(rows[0])

    def _use_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self._use_index(rows[0])

    def _use_index(self, index: QModelIndex) -> None:
        row = self.proxy.mapToSource(index).row()
        info = self.model.model_at(row)
        if self.model.is_damaged(row):
            self._show_error(
                f"{info.file_name} is damaged, so it cannot be used. Download it again, "
                "or remove it from the models folder."
            )
            return
        if not info.exists:
            self._show_error(f"{info.file_name} is missing, so it cannot be used. Find the file or remove the model.")
            return
        self.modelChosen.emit(info.path)
        self.accept()

    def _renamed(self, path: str) -> None:
        info = self.library.get(path)
        if info is not None:
            self._show_info(f"Renamed to {info.name}.")
        self.modelsChanged.emit()

    # -- job plumbing -----------------------------------------------------------------------

    def _start(
        self,
        fn: Callable[[_Job], Any],
        on_done: Callable[[Any, BaseException | None], None],
        progress: bool = False,
    ) -> bool:
        if self._job is not None:
            self._show_error("Please wait until the current operation has finished.")
            return False
        job = _Job(fn, self)
        job.done.connect(self._job_done)
        self._job, self._on_done = job, on_done
        if progress:
            self._progress = _named(QProgressDialog("Copying…", "Cancel", 0, 1000, self), "copyProgress")
            self._progress.setWindowTitle("Copying model")
            self._progress.setWindowModality(Qt.WindowModality.WindowModal)
            self._progress.setMinimumDuration(400)
            self._progress.setAutoClose(False)
            self._progress.setAutoReset(False)
            self._progress.setValue(0)
            self._progress.canceled.connect(self._cancel_job)
            job.progressed.connect(self._job_progress)
        self._update_buttons()
        job.start()
        return True

    @Slot(str, int)
    def _job_progress(self, label: str, permille: int) -> None:
        if self._progress is not None and not (self._job and self._job.cancelled()):
            self._progress.setLabelText(label)
            self._progress.setValue(permille)

    @Slot()
    def _cancel_job(self) -> None:
        if self._job is not None:
            self._job.cancel()
            if self._progress is not None:
                self._progress.setLabelText("Cancelling…")

    @Slot(object, object)
    def _job_done(self, result: Any, error: BaseException | None) -> None:
        job, on_done = self._job, self._on_done
        self._job = self._on_done = None
        if job is not None:
            job.wait()
            # Drop the job's Python callable now, not inside the C++ destructor that
            # deleteLater runs: freeing Python objects there crashed PySide intermittently.
            job.release()
            job.deleteLater()
        if self._progress is not None:
            self._progress.close()
            self._progress.deleteLater()
            self._progress = None
        self._update_buttons()
        if error is not None and not isinstance(error, (GGUFError, LibraryError, OSError)):
            log.error("model job failed", exc_info=error)
        if on_done is not None:
            on_done(result, error)

    def _stop_job(self) -> None:
        """Cancel a running job and wait for it: a QThread must not outlive the dialog."""
        if self._job is not None:
            self._job.cancel()
            self._job.wait()

    # -- job results ------------------------------------------------------------------------

    def _imported(
        self, outcomes: list[_Outcome] | None, error: BaseException | None, copy: bool, notes: list[str]
    ) -> None:
        if error is not None:
            self._show_error(_plain(error))
            return
        added: list[ModelInfo] = []
        errors: list[str] = []
        cancelled = False
        for outcome in outcomes or []:
            if outcome.adapter is not None and outcome.model is not None:
                try:
                    model = self.library.add_adapter(outcome.model, outcome.adapter)
                except LibraryError as exc:
                    errors.append(str(exc))
                    continue
                notes.append(f"Added the adapter {outcome.adapter.name} to {model.name}.")
                self._show_adapters()
                self.modelsChanged.emit()
            elif outcome.info is not None:
                before = self.library.get(outcome.info.path)
                info = self.library.add_info(outcome.info)
                if before is None:
                    added.append(info)
                else:
                    notes.append(f"{info.name} is already in the library.")
            elif outcome.error:
                errors.append(outcome.error)
            elif outcome.cancelled:
                cancelled = True
        self.reload()
        if added:
            self.select_path(added[-1].path)
            self.modelsChanged.emit()
        lines: list[str] = []
        if added:
            names = ", ".join(m.name for m in added)
            how = "copied into the library" if copy else "linked (the files stay where they are)"
            lines.append(f"Added {names}: {how}.")
        lines += notes
        if cancelled:
            lines.append("The copy was cancelled; nothing was left behind.")
        if errors:
            lines.append("Could not add " + ("this file:" if len(errors) == 1 else "these files:"))
            lines += errors
        if lines:
            (self._show_error if errors else self._show_info)("\n".join(lines))

    def _scanned(self, scan: ScanResult | None, error: BaseException | None) -> None:
        if error is not None or scan is None:
            self._show_error(_plain(error))
            return
        result = self.library.apply_scan(scan)
        self.reload()
        lines: list[str] = []
        if result.added:
            lines.append("Found " + ", ".join(m.name for m in result.added) + ".")
        if result.missing:
            lines.append("Missing: " + ", ".join(f"{m.name} ({m.file_name})" for m in result.missing) + ".")
        lines += result.errors
        if not lines:
            lines.append("No new models; every file is in place.")
        (self._show_error if result.errors else self._show_info)("\n".join(lines))
        if result.changed:
            self.modelsChanged.emit()

    def _details_read(self, path: str, meta: GGUFMetadata | None, error: BaseException | None) -> None:
        if error is not None or meta is None:
            self._show_error(_plain(error))
            return
        info = self.library.get(path)
        if self._details is None:
            self._details = ModelDetailsDialog(self)
        name = info.name if info is not None else Path(path).name
        self._details.show_text(f"Details — {name}", format_metadata(meta, info))
        if self._details.isVisible():
            self._details.raise_()  # already open behind this window: bring it forward
        else:
            self._details.show()

    # -- selection and state ----------------------------------------------------------------

    def _selected_info(self) -> ModelInfo | None:
        path = self.selected_path()
        return self.library.get(path) if path is not None else None

    def _current_path(self) -> str | None:
        return self.model._current

    def _selection_changed(self, *_: object) -> None:
        self._show_adapters()
        self._load_defaults_editor()
        self._update_buttons()

    def _load_defaults_editor(self) -> None:
        info = self._selected_info()
        defaults = info.defaults if info is not None else ModelDefaults()
        self.ctx_spin.setValue(defaults.n_ctx or 0)
        self.gpu_spin.setValue(-1 if defaults.n_gpu_layers is None else max(defaults.n_gpu_layers, 0))
        self.threads_spin.setValue(defaults.n_threads or 0)
        self.prompt_edit.setPlainText(defaults.system_prompt or "")
        self.template_combo.setCurrentIndex(max(self.template_combo.findData(defaults.chat_template), 0))
        self.projector_picker.set_model(info, defaults.mmproj)
        self.load_options.set_defaults(defaults, info.size if info is not None else 0)
        if info is not None and info.context_length:
            self.ctx_spin.setToolTip(f"At most {info.context_length:,}, what the model was trained for")

    def _clear_defaults_editor(self) -> None:
        self.ctx_spin.setValue(0)
        self.gpu_spin.setValue(-1)
        self.threads_spin.setValue(0)
        self.prompt_edit.clear()
        self.template_combo.setCurrentIndex(0)
        self.projector_picker.clear()
        self.load_options.clear()

    def _update_buttons(self) -> None:
        info = self._selected_info()
        idle = self._job is None
        selected = info is not None
        usable = info is not None and info.exists
        self.add_button.setEnabled(idle)
        self.refresh_button.setEnabled(idle)
        self.remove_button.setEnabled(idle and selected)
        self.rename_button.setEnabled(selected)
        self.details_button.setEnabled(idle and usable)
        self.use_button.setEnabled(usable)
        running = self.bench.running is not None
        self.bench_button.setText("Cancel benchmark" if running else "Benchmark")
        self.bench_button.setAccessibleName("Cancel benchmark" if running else "Benchmark")
        self.bench_button.setEnabled(running or (usable and info is not None and info.remote is None))
        self.defaults_box.setEnabled(selected)

    def _show_error(self, text: str) -> None:
        self.message.setStyleSheet("color: #b00020;")
        self.message.setText(text)
        self.message.show()

    def _show_info(self, text: str) -> None:
        self.message.setStyleSheet("")
        self.message.setText(text)
        self.message.show()

    # -- LoRA adapters ----------------------------------------------------------------------

    def _build_adapters_box(self) -> QWidget:
        from app.ui.adapters_box import AdaptersBox  # noqa: PLC0415

        self.adapters_box = AdaptersBox(self)
        self.adapters_box.addRequested.connect(self.add_adapters)
        self.adapters_box.removeRequested.connect(self.remove_adapter)
        return self.adapters_box

    def _show_adapters(self) -> None:
        info = self._selected_info()
        self.adapters_box.show_adapters(list(info.adapters) if info is not None and info.remote is None else None)

    def add_adapters(self, files: list[str]) -> bool:
        """Check adapter files against the selected model (off the GUI thread) and keep those
        that fit; a mismatch is explained in the message line."""
        info = self._selected_info()
        if info is None or not files:
            return False
        target = (info.path, info.name)
        return self._start(
            lambda job: _import_all(job, list(files), False, target, only_adapters=True),
            lambda result, error: self._imported(result, error, False, []),
        )

    def remove_adapter(self, adapter_path: str) -> None:
        info = self._selected_info()
        if info is None:
            return
        self.library.remove_adapter(info.path, adapter_path)
        self._show_adapters()
        self._show_info(f"Removed the adapter {Path(adapter_path).name} (the file is still there).")
        self.modelsChanged.emit()

    # -- drag and drop ----------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if gguf_paths_from_mime(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if gguf_paths_from_mime(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        files = gguf_paths_from_mime(event.mimeData())
        if not files:
            event.ignore()
            return
        event.acceptProposedAction()
        self.import_files(files)

    # -- closing ----------------------------------------------------------------------------

    def done(self, result: int) -> None:
        self._stop_job()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        self._stop_job()
        super().closeEvent(event)


def _plain(error: BaseException | None) -> str:
    """A sentence for any failure: typed core errors carry one; anything else is a bug,
    logged with its traceback and shown only as a short note."""
    if error is None:
        return "Something went wrong."
    if isinstance(error, (GGUFError, LibraryError)):
        return str(error)
    if isinstance(error, OSError):
        name = Path(error.filename).name if error.filename else ""
        return f"{name}: {error.strerror or error}" if name else str(error.strerror or error)
    return f"Something went wrong ({type(error).__name__}); the details are in the log."
