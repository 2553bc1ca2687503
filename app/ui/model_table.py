"""The model library as a Qt table: one row per model, the columns a person compares.

The rows are a snapshot taken by :meth:`ModelTableModel.reload` (whether each file still
exists, the memory estimate and its verdict), so painting never touches the disk.  Sort
through a ``QSortFilterProxyModel`` with ``setSortRole(SORT_ROLE)``: the sort role gives
numbers for sizes and counts, where the display text ("1.2 GB") would sort wrongly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPixmap

from app.core.chat_templates import known_template
from app.core.library import (
    DamagedFile,
    Fit,
    LibraryError,
    ModelInfo,
    ModelLibrary,
    effective_context,
    fit_bytes,
    human_size,
    ram_estimate,
)
from app.core.model_bench import BenchResult, BenchStore, file_stamp
from app.core.sysinfo import MemoryInfo
from app.ui.plain import plain_tip

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
PATH_ROLE = Qt.ItemDataRole.UserRole + 2  # the model's path (library key), any column
FIT_ROLE = Qt.ItemDataRole.UserRole + 3  # Fit value of the RAM column, as its string


class Column(enum.IntEnum):
    NAME = 0
    FILE = 1
    SIZE = 2
    ARCHITECTURE = 3
    PARAMETERS = 4
    QUANTIZATION = 5
    CONTEXT = 6
    TEMPLATE = 7
    RAM = 8
    SPEED = 9  # measured here (Benchmark), next to the estimate
    STATUS = 10
    RATINGS = 11  # replies rated good / bad in the chats (by the model's name)


HEADERS = {
    Column.NAME: "Name",
    Column.FILE: "File",
    Column.SIZE: "Size",
    Column.ARCHITECTURE: "Architecture",
    Column.PARAMETERS: "Parameters",
    Column.QUANTIZATION: "Quantization",
    Column.CONTEXT: "Context",
    Column.TEMPLATE: "Template",
    Column.RAM: "RAM needed",
    Column.SPEED: "Speed here",
    Column.STATUS: "Status",
    Column.RATINGS: "Ratings",
}

HEADER_TIPS = {
    Column.CONTEXT: "How many tokens of context the model was trained for",
    Column.TEMPLATE: "The chat template: the file's own, one you chose, or none (a base model)",
    Column.RAM: "Estimated memory to run the model on the CPU at its context length, against this computer",
    Column.STATUS: "linked: your file, used where it is · copied: stored in Hearth's models folder · "
    "missing: the file is gone · damaged: a file in the models folder that cannot be read, and why",
    Column.SPEED: "Measured on this computer with Benchmark: prompt processing (pp) and generation (tg) "
    "in tokens per second, and the peak memory while loading and running",
    Column.RATINGS: "Your ratings of its replies in the chats: rated good (+) and rated bad (−)",
}

FIT_COLOURS = {
    Fit.FITS: QColor("#2e7d32"),
    Fit.TIGHT: QColor("#b26a00"),
    Fit.WONT_FIT: QColor("#c62828"),
    Fit.UNKNOWN: QColor("#757575"),
}

_FIT_WORDS = {
    Fit.FITS: "it fits",
    Fit.TIGHT: "it is tight: close other programs first, or choose a smaller context or quantization",
    Fit.WONT_FIT: "it will not fit: choose a smaller quantization or model",
    Fit.UNKNOWN: "this computer's memory could not be read",
}

_STATUS_TIPS = {
    "linked": "Linked: Hearth uses your file where it is; removing the model keeps the file.",
    "copied": "Stored in Hearth's models folder; removing the model deletes the file.",
    "missing": "The file is gone (moved, deleted or on a drive that is not connected).",
}
DAMAGED = "damaged"  # the status of a file in the models folder whose header cannot be read


@dataclass
class _Row:
    info: ModelInfo
    status: str
    n_ctx: int
    ram: int
    fit: Fit
    problem: str | None = None  # why a damaged file cannot be used, in plain words
    bench: BenchResult | None = None  # figures measured on this computer (Benchmark)


class ModelTableModel(QAbstractTableModel):
    """Rows of :class:`ModelInfo` from a :class:`ModelLibrary`; the Name column is editable."""

    renamed = Signal(str)  # path of a model whose name was edited in the table
    renameFailed = Signal(str)  # a plain-words reason

    def __init__(
        self,
        library: ModelLibrary,
        memory: MemoryInfo | None = None,
        n_ctx: int | None = None,
        current_path: str | None = None,
        parent=None,
        bench: BenchStore | None = None,
    ) -> None:
        super().__init__(parent)
        self.library = library
        self.bench = bench
        self.bench_running: dict[str, str] = {}  # path -> what the running benchmark does now
        self._memory = memory or MemoryInfo(None, None)
        self._n_ctx = n_ctx
        self._current = current_path
        self._rows: list[_Row] = []
        self._icons: dict[Fit, QIcon] = {}
        self._ratings: dict[str, tuple[int, int]] = {}  # model name -> (good, bad)
        self.reload()

    # -- state from outside -----------------------------------------------------------------

    def reload(self) -> None:
        """Take a fresh snapshot of the library (after any change to it)."""
        self.beginResetModel()
        self._rows = [self._make_row(info) for info in self.library.models()]
        self._rows += [self._damaged_row(d) for d in self.library.damaged()]
        self.endResetModel()

    def _damaged_row(self, damaged: DamagedFile) -> _Row:
        """A file in the models folder that cannot be read: shown, with why, never usable."""
        try:
            size = Path(damaged.path).stat().st_size
        except OSError:
            size = 0
        info = ModelInfo(path=damaged.path, name=Path(damaged.path).stem, size=size, added=0.0)
        return _Row(info, DAMAGED, 0, 0, Fit.UNKNOWN, damaged.reason)

    def is_damaged(self, row: int) -> bool:
        return self._rows[row].status == DAMAGED

    def _make_row(self, info: ModelInfo) -> _Row:
        return _Row(info, info.status, *self._estimate(info), bench=self._bench_of(info))

    def _bench_of(self, info: ModelInfo) -> BenchResult | None:
        if self.bench is None or info.remote is not None:
            return None
        stamp = file_stamp(info.path)
        return self.bench.get(info.path, stamp) if stamp is not None else None

    def set_bench_state(self, path: str, words: str | None) -> None:
        """A benchmark of ``path`` is at ``words`` (None: it ended; its figures are re-read)."""
        if words is None:
            self.bench_running.pop(path, None)
        else:
            self.bench_running[path] = words
        row = self.row_of(path)
        if row < 0:
            return
        if words is None and self._rows[row].status != DAMAGED:
            self._rows[row].bench = self._bench_of(self._rows[row].info)
        self.dataChanged.emit(self.index(row, Column.SPEED), self.index(row, Column.SPEED))

    def set_ratings(self, ratings: dict[str, tuple[int, int]]) -> None:
        """How many replies of each model (by name) were rated good and bad."""
        self._ratings = dict(ratings)
        if self._rows:
            self.dataChanged.emit(self.index(0, Column.RATINGS), self.index(len(self._rows) - 1, Column.RATINGS))

    def ratings_of(self, name: str) -> tuple[int, int]:
        return self._ratings.get(name, (0, 0))

    def set_memory(self, memory: MemoryInfo) -> None:
        self._memory = memory
        self._recompute()

    def set_context(self, n_ctx: int | None) -> None:
        """The app's context setting, used for models without their own default."""
        self._n_ctx = n_ctx
        self._recompute()

    def _recompute(self) -> None:
        for i, row in enumerate(self._rows):
            if row.status != DAMAGED:
                self._rows[i] = _Row(row.info, row.status, *self._estimate(row.info), bench=row.bench)
        if self._rows:
            self.dataChanged.emit(self.index(0, Column.RAM), self.index(len(self._rows) - 1, Column.RAM))

    def _estimate(self, info: ModelInfo) -> tuple[int, int, Fit]:
        ram = ram_estimate(info, self._n_ctx)
        return effective_context(info, self._n_ctx), ram, fit_bytes(ram, self._memory)

    def set_current_path(self, path: str | None) -> None:
        """Show which model the chat uses now (bold)."""
        self._current = path
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(Column) - 1))

    @property
    def memory(self) -> MemoryInfo:
        return self._memory

    def model_at(self, row: int) -> ModelInfo:
        return self._rows[row].info

    def row_of(self, path: str) -> int:
        return next((i for i, r in enumerate(self._rows) if r.info.path == path), -1)

    # -- QAbstractTableModel ----------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(Column)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(Column):
            return None
        column = Column(section)
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[column]
        if role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS.get(column)
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren
        if index.column() == Column.NAME and not self.is_damaged(index.row()):
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        column = Column(index.column())
        if row.status == DAMAGED:
            return self._damaged_data(row, column, role)
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, column)
        if role == Qt.ItemDataRole.EditRole:
            return row.info.name if column == Column.NAME else self._display(row, column)
        if role == SORT_ROLE:
            return self._sort_key(row, column)
        if role == PATH_ROLE:
            return row.info.path
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tip(self._tooltip(row, column))  # names and paths come from files
        if column == Column.RAM:
            if role == FIT_ROLE:
                return row.fit.value
            if role == Qt.ItemDataRole.ForegroundRole:
                return FIT_COLOURS[row.fit]
            if role == Qt.ItemDataRole.DecorationRole:
                return self._fit_icon(row.fit)
        if role == Qt.ItemDataRole.ForegroundRole and row.status == "missing":
            return QColor("#9e9e9e")
        if role == Qt.ItemDataRole.FontRole and row.info.path == self._current:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (
            Column.SIZE,
            Column.PARAMETERS,
            Column.CONTEXT,
            Column.RAM,
        ):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def setData(
        self, index: QModelIndex | QPersistentModelIndex, value: Any, role: int = Qt.ItemDataRole.EditRole
    ) -> bool:
        if not index.isValid() or index.column() != Column.NAME or role != Qt.ItemDataRole.EditRole:
            return False
        row = self._rows[index.row()]
        if not isinstance(value, str):
            return False
        try:
            self.library.rename(row.info.path, value)
        except LibraryError as exc:
            self.renameFailed.emit(str(exc))
            return False
        self.dataChanged.emit(index, index)
        self.renamed.emit(row.info.path)
        return True

    # -- cell contents ----------------------------------------------------------------------

    def _display(self, row: _Row, column: Column) -> str:
        info = row.info
        if column == Column.NAME:
            return info.name
        if column == Column.FILE:
            parts = len(info.parts)
            return f"{info.file_name} (+{parts - 1} parts)" if parts > 1 else info.file_name
        if column == Column.SIZE:
            return human_size(info.size)
        if column == Column.ARCHITECTURE:
            return info.architecture or "—"
        if column == Column.PARAMETERS:
            return info.parameters or "—"
        if column == Column.QUANTIZATION:
            return info.quantization or "—"
        if column == Column.CONTEXT:
            return f"{info.context_length:,}" if info.context_length else "—"
        if column == Column.TEMPLATE:
            chosen = known_template(info.defaults.chat_template)
            if chosen is not None:
                return f"{chosen.key} (chosen)"
            if info.template_problem:
                return "none — base model" if not info.has_chat_template else "broken"
            return "yes"
        if column == Column.RAM:
            return f"{human_size(row.ram)} · {row.fit.value}"
        if column == Column.SPEED:
            running = self.bench_running.get(info.path)
            if running is not None:
                return f"measuring: {running}…"
            return row.bench.summary() if row.bench is not None else "—"
        if column == Column.RATINGS:
            good, bad = self.ratings_of(info.name)
            return f"+{good} / −{bad}" if good or bad else "—"
        return row.status

    def _damaged_data(self, row: _Row, column: Column, role: int) -> Any:
        """A damaged file: its name, size and the reason in plain words; nothing else is known."""
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            if column == Column.NAME:
                return row.info.name
            if column == Column.FILE:
                return row.info.file_name
            if column == Column.SIZE:
                return human_size(row.info.size)
            if column == Column.STATUS:
                return f"{DAMAGED}: {row.problem}"
            return "—"
        if role == SORT_ROLE:  # numbers where the other rows have numbers
            if column == Column.SIZE:
                return row.info.size
            if column in (Column.PARAMETERS, Column.CONTEXT, Column.RAM, Column.SPEED):
                return -1
            if column == Column.RATINGS:
                return -(10**9)
            return str(self._damaged_data(row, column, Qt.ItemDataRole.DisplayRole)).casefold()
        if role == PATH_ROLE:
            return row.info.path
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tip(
                f"{row.info.path}\nThis file cannot be used: {row.problem}\n"
                "Download it again, or remove it from the models folder."
            )
        if role == Qt.ItemDataRole.ForegroundRole:
            return FIT_COLOURS[Fit.WONT_FIT]
        return None

    def _sort_key(self, row: _Row, column: Column) -> int | str:
        info = row.info
        if column == Column.SIZE:
            return info.size
        if column == Column.PARAMETERS:
            return info.parameter_count or -1
        if column == Column.CONTEXT:
            return info.context_length or -1
        if column == Column.RAM:
            return row.ram
        if column == Column.SPEED:
            return int(row.bench.gen_tok_s * 10) if row.bench is not None else -1
        if column == Column.RATINGS:
            good, bad = self.ratings_of(info.name)
            return good - bad if good or bad else -(10**9)
        return self._display(row, column).casefold()

    def _tooltip(self, row: _Row, column: Column) -> str | None:
        info = row.info
        if column == Column.NAME:
            extra = "\nThe chat is using this model now." if info.path == self._current else ""
            return info.name + extra
        if column == Column.FILE:
            return "\n".join(str(p) for p in info.parts)
        if column == Column.RAM:
            return self._ram_tip(row)
        if column == Column.STATUS:
            return _STATUS_TIPS.get(row.status)
        if column == Column.SPEED:
            if row.bench is not None:
                return row.bench.describe()
            return "Not measured on this computer yet: select the model and press Benchmark."
        if column == Column.RATINGS:
            good, bad = self.ratings_of(info.name)
            return (
                f"{good:,} repl{'y' if good == 1 else 'ies'} rated good, {bad:,} rated bad (Good / Bad under a reply)"
            )
        if column == Column.SIZE:
            return f"{info.size:,} bytes"
        if column == Column.PARAMETERS and info.parameter_count:
            return f"{info.parameter_count:,} parameters"
        return None

    def _ram_tip(self, row: _Row) -> str:
        mem = self._memory
        context = f"a context of {row.n_ctx:,} tokens" if row.n_ctx else "its context"
        text = f"About {human_size(row.ram)} to run with {context} (model weights, context memory and the runtime)."
        if mem.total:
            text += f"\nThis computer has {human_size(mem.total)} of memory"
            text += f", {human_size(mem.available)} available now" if mem.available is not None else ""
            text += "."
        return f"{text}\nVerdict: {_FIT_WORDS[row.fit]}."

    def _fit_icon(self, fit: Fit) -> QIcon:
        icon = self._icons.get(fit)
        if icon is None:
            pixmap = QPixmap(12, 12)
            pixmap.fill(QColor(0, 0, 0, 0))
            painter = QPainter(pixmap)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(FIT_COLOURS[fit])
            painter.drawEllipse(1, 1, 10, 10)
            painter.end()
            icon = self._icons[fit] = QIcon(pixmap)
        return icon
