"""Downloads in Qt: the queue's events brought to the GUI thread, and the tables that show them.

:class:`app.core.downloads.DownloadQueue` calls its ``on_event`` from worker threads, sometimes
with its lock held.  :class:`DownloadBridge` is that callback: it only appends the event to a
list under a tiny lock and, if the list was empty, posts one queued wake-up; the GUI thread
then drains the list in order.  A progress event replaces a still-undelivered progress event
of the same item, so a GUI that is busy for a moment catches up with one update per row
instead of a backlog (the queue already limits progress to ~10 events a second per item).

Models (all plain ``QAbstractTableModel`` over snapshots; painting never touches the disk or
the network):

* :class:`DownloadTableModel` — the queue's items: File, Repo, Progress, Speed, ETA, State.
  Each event updates only its own row's changed cells.  It also says when a model file is
  complete: ``modelCompleted(path)`` once per file, and once per split set (with the first
  part's path) when every part is done.
* :class:`RepoSearchModel` — Hub search results; sort through a ``QSortFilterProxyModel``
  with ``setSortRole(SORT_ROLE)``.
* :class:`QuantFileModel` — a repo's GGUF files, one row per quantization (split sets as one
  row) with the memory estimate and a fits / tight / won't fit verdict.

Also :class:`ProgressDelegate` (a progress bar in the Progress column),
:class:`BackgroundTasks` (blocking calls off the GUI thread, results back on it) and
:func:`create_download_manager`, which builds the queue, the Hub client and the bridge.
"""

from __future__ import annotations

import enum
import itertools
import logging
import posixpath
import queue as queue_module
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, QSize, Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionProgressBar, QStyleOptionViewItem

from app import paths
from app.core import secrets
from app.core.downloads import DownloadEvent, DownloadItem, DownloadQueue, DownloadState, EventKind, human_size
from app.core.gguf import split_parts
from app.core.hub import HubClient, QuantFile, RepoSummary
from app.core.library import Fit, fit_bytes
from app.core.sysinfo import MemoryInfo
from app.ui.plain import plain_tip

log = logging.getLogger(__name__)

__all__ = [
    "BackgroundTasks",
    "DownloadBridge",
    "DownloadColumn",
    "DownloadTableModel",
    "ProgressDelegate",
    "QuantColumn",
    "QuantFileModel",
    "RepoSearchModel",
    "SearchColumn",
    "bridge_for",
    "create_download_manager",
    "download_ram_estimate",
    "format_eta",
    "format_speed",
]

SORT_ROLE = Qt.ItemDataRole.UserRole + 1  # numbers (and dates) where the text would sort wrongly
ITEM_ID_ROLE = Qt.ItemDataRole.UserRole + 2  # DownloadTableModel: the item's id, any column
FRACTION_ROLE = Qt.ItemDataRole.UserRole + 3  # DownloadTableModel Progress: 0..1, or None if the size is unknown
STATE_ROLE = Qt.ItemDataRole.UserRole + 4  # DownloadTableModel: DownloadState value, any column
REPO_ID_ROLE = Qt.ItemDataRole.UserRole + 5  # RepoSearchModel: the repo id, any column
FIT_ROLE = Qt.ItemDataRole.UserRole + 6  # QuantFileModel: Fit value (string), any column

_FIT_COLOURS = {
    Fit.FITS: QColor("#2e7d32"),
    Fit.TIGHT: QColor("#b26a00"),
    Fit.WONT_FIT: QColor("#c62828"),
    Fit.UNKNOWN: QColor("#757575"),
}
_FAILED_COLOUR = QColor("#c62828")


# --------------------------------------------------------------------------
# Words and numbers
# --------------------------------------------------------------------------

STATE_WORDS = {
    DownloadState.QUEUED: "Waiting",
    DownloadState.RUNNING: "Downloading",
    DownloadState.PAUSED: "Paused",
    DownloadState.FAILED: "Failed",
    DownloadState.VERIFYING: "Checking",
    DownloadState.COMPLETE: "Done",
    DownloadState.CANCELLED: "Cancelled",
}


def format_speed(bytes_per_second: float | None) -> str:
    if not bytes_per_second or bytes_per_second <= 0:
        return ""
    return f"{human_size(bytes_per_second)}/s"


def format_eta(seconds: float | None) -> str:
    """Coarse on purpose: "2 h 5 min", "3 min 20 s", "12 s" (a ticking second is noise)."""
    if seconds is None or seconds < 0 or seconds != seconds:  # None, negative or NaN
        return ""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    if s >= 60:
        return f"{s // 60} min {s % 60} s"
    return f"{s} s"


# Memory needed to run a model of this file size, before we have its header.  The library's
# own estimate (app.core.library.ram_estimate) needs the KV-cache size per token, which only
# the GGUF header gives; for a file still on the Hub we use the file size (the weights) plus
# 10 % for the KV cache and compute buffers at a moderate context, plus 0.5 GB for the runtime.
# Compared with the library's formula (weights + KV + 256 MiB + 5 %), this is a little generous
# for small contexts, which is the safe side for a recommendation.  The verdict thresholds are
# the library's (app.core.library.fit_bytes).
RAM_SIZE_FACTOR = 1.1
RAM_EXTRA_BYTES = 500 * 1000 * 1000


def download_ram_estimate(file_size: int) -> int:
    """Bytes of memory a model file of ``file_size`` bytes needs: size × 1.1 + 0.5 GB."""
    return int(max(file_size, 0) * RAM_SIZE_FACTOR) + RAM_EXTRA_BYTES


# --------------------------------------------------------------------------
# The bridge
# --------------------------------------------------------------------------


class DownloadBridge(QObject):
    """The queue's ``on_event``; re-emits each event as ``eventReceived`` on the GUI thread.

    Create it on the GUI thread and without a parent (the queue keeps it alive through
    :meth:`emit_event`).  Listeners always run from the event loop, never inside the queue's
    lock, even for events caused by a call made on the GUI thread.
    """

    eventReceived = Signal(object)  # DownloadEvent, in the order the queue emitted them
    _wake = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._pending: list[DownloadEvent] = []
        self._wake.connect(self._drain, Qt.ConnectionType.QueuedConnection)

    def emit_event(self, event: DownloadEvent) -> None:
        """Any thread; quick and non-blocking (the queue may hold its lock)."""
        with self._lock:
            was_empty = not self._pending
            if event.kind == EventKind.PROGRESS:
                for i in range(len(self._pending) - 1, -1, -1):
                    older = self._pending[i]
                    if older.item.id == event.item.id:
                        if older.kind == EventKind.PROGRESS:
                            self._pending[i] = event  # coalesce: the newer snapshot wins
                            return
                        break  # a state change in between: keep both, in order
            self._pending.append(event)
        if was_empty:
            self._wake.emit()

    # The name the queue's docs use for its callback.
    __call__ = emit_event

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    @Slot()
    def _drain(self) -> None:
        with self._lock:
            events, self._pending = self._pending, []
        for event in events:
            self.eventReceived.emit(event)


_bridges: weakref.WeakKeyDictionary[DownloadQueue, DownloadBridge] = weakref.WeakKeyDictionary()


def bridge_for(queue: DownloadQueue) -> DownloadBridge | None:
    """The bridge :func:`create_download_manager` made for ``queue``."""
    return _bridges.get(queue)


def create_download_manager(endpoint: str | None = None) -> tuple[DownloadQueue, HubClient, DownloadBridge]:
    """The download queue (state in the data folder, files into the models folder), the Hub
    client and the bridge, all with the token from the keyring.

    Call on the GUI thread at startup (the bridge must live there).  Reading the keyring may
    take a moment if it has to be unlocked.  Items that were downloading when the app last
    quit come back paused.  Call ``queue.close()`` on exit.
    """
    token = secrets.get_token()
    bridge = DownloadBridge()
    queue = DownloadQueue(
        paths.data_dir() / "downloads.json",
        paths.models_dir(),
        token=token,
        on_event=bridge.emit_event,
        endpoint=endpoint,
    )
    hub = HubClient(endpoint=endpoint, token=token)
    _bridges[queue] = bridge
    return queue, hub, bridge


# --------------------------------------------------------------------------
# Blocking calls off the GUI thread
# --------------------------------------------------------------------------


class _Done(QObject):
    finished = Signal(int, object, object)  # call id, result, exception


def _run_task(task: tuple[int, Callable[[], Any], _Done]) -> None:
    call_id, fn, relay = task
    try:
        result, error = fn(), None
    except Exception as exc:  # delivered to the caller, who words it
        result, error = None, exc
    try:
        relay.finished.emit(call_id, result, error)
    except RuntimeError:  # the relay is gone: nobody is waiting any more
        pass


def _run_lane(
    lane_queue: queue_module.SimpleQueue,
    lanes: dict[str, queue_module.SimpleQueue],
    lock: threading.Lock,
    name: str,
    idle: float,
) -> None:
    """Run a lane's calls in order; end after ``idle`` seconds without one (no thread per
    dialog left waiting forever)."""
    while True:
        try:
            task = lane_queue.get(timeout=idle)
        except queue_module.Empty:
            with lock:
                if lane_queue.empty():
                    if lanes.get(name) is lane_queue:
                        del lanes[name]
                    return
            continue
        _run_task(task)


class BackgroundTasks(QObject):
    """Runs blocking calls (the Hub, the keyring, the queue's file writes) on daemon threads
    and calls back on the GUI thread with ``(result, error)``.

    Calls given the same ``lane`` run one after another in submission order (so Pause then
    Resume happen in that order); others each get a thread.  Daemon threads: quitting never
    waits for a slow server.  If this object is destroyed first, callbacks are dropped.
    """

    LANE_IDLE_SECONDS = 10.0  # a lane's thread ends after this long without work

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._callbacks: dict[int, Callable[[Any, BaseException | None], None] | None] = {}
        self._relays: dict[int, _Done] = {}
        self._lanes_lock = threading.Lock()
        self._lanes: dict[str, queue_module.SimpleQueue] = {}

    def submit(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any, BaseException | None], None] | None = None,
        lane: str | None = None,
    ) -> int:
        call_id = next(self._ids)
        relay = _Done()  # parentless, on this thread; kept until its result is delivered
        relay.finished.connect(self._deliver)
        self._callbacks[call_id] = on_done
        self._relays[call_id] = relay
        task = (call_id, fn, relay)
        if lane is None:
            threading.Thread(target=_run_task, args=(task,), name="hearth-background", daemon=True).start()
            return call_id
        with self._lanes_lock:  # a lane's thread only quits under this lock, with its queue empty
            lane_queue = self._lanes.get(lane)
            if lane_queue is None:
                lane_queue = self._lanes[lane] = queue_module.SimpleQueue()
                threading.Thread(
                    target=_run_lane,
                    args=(lane_queue, self._lanes, self._lanes_lock, lane, self.LANE_IDLE_SECONDS),
                    name=f"hearth-{lane}",
                    daemon=True,
                ).start()
            lane_queue.put(task)
        return call_id

    def busy(self) -> int:
        """Calls whose results have not been delivered yet."""
        return len(self._callbacks)

    @Slot(int, object, object)
    def _deliver(self, call_id: int, result: Any, error: BaseException | None) -> None:
        relay = self._relays.pop(call_id, None)
        if relay is not None:
            relay.deleteLater()
        callback = self._callbacks.pop(call_id, None)
        if callback is not None:
            callback(result, error)
        elif error is not None:
            log.warning("background call failed: %s", error)


# --------------------------------------------------------------------------
# Downloads table
# --------------------------------------------------------------------------


class _RowTable(QAbstractTableModel):
    """What the three tables here share: a list of rows, an IntEnum of columns with their
    headers, and selectable rows. Subclasses set ``COLUMNS`` and ``HEADERS``."""

    COLUMNS: type[enum.IntEnum]
    HEADERS: dict

    _rows: list

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            if 0 <= section < len(self.COLUMNS):
                return self.HEADERS[self.COLUMNS(section)]
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def _valid(self, index: QModelIndex | QPersistentModelIndex) -> bool:
        return (
            index.isValid()
            and not index.parent().isValid()
            and 0 <= index.row() < len(self._rows)
            and 0 <= index.column() < len(self.COLUMNS)
        )


class DownloadColumn(enum.IntEnum):
    FILE = 0
    REPO = 1
    PROGRESS = 2
    SPEED = 3
    ETA = 4
    STATE = 5


_DOWNLOAD_HEADERS = {
    DownloadColumn.FILE: "File",
    DownloadColumn.REPO: "Repo",
    DownloadColumn.PROGRESS: "Progress",
    DownloadColumn.SPEED: "Speed",
    DownloadColumn.ETA: "Time left",
    DownloadColumn.STATE: "State",
}

_ACTIVE = {DownloadState.QUEUED, DownloadState.RUNNING, DownloadState.VERIFYING}


@dataclass
class _DownloadRow:
    item: DownloadItem
    speed: float | None = None
    eta: float | None = None


class DownloadTableModel(_RowTable):
    """The queue's items as rows, kept current by :meth:`apply_event` (connect the bridge's
    ``eventReceived`` to it)."""

    COLUMNS = DownloadColumn
    HEADERS = _DOWNLOAD_HEADERS

    modelCompleted = Signal(str)  # a model file (a split set's first part) is complete and verified

    def __init__(self, items: Sequence[DownloadItem] = (), parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[_DownloadRow] = [_DownloadRow(i) for i in items]
        self._index: dict[str, int] = {}
        self._reindex()
        # Every file seen complete this session or at start (kept when its row is removed), so
        # a split set whose parts finish at different times is announced exactly once.
        self._complete: set[str] = {i.dest for i in items if i.state == DownloadState.COMPLETE}
        self._announced: set[str] = set()

    def _reindex(self) -> None:
        self._index = {row.item.id: n for n, row in enumerate(self._rows)}

    # --- reading -----------------------------------------------------------------------------

    def items(self) -> list[DownloadItem]:
        return [row.item for row in self._rows]

    def item(self, item_id: str) -> DownloadItem | None:
        n = self._index.get(item_id)
        return self._rows[n].item if n is not None else None

    def item_at(self, row: int) -> DownloadItem:
        return self._rows[row].item

    def row_of(self, item_id: str) -> int:
        return self._index.get(item_id, -1)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not self._valid(index):
            return None
        row = self._rows[index.row()]
        item = row.item
        column = DownloadColumn(index.column())
        if role == ITEM_ID_ROLE:
            return item.id
        if role == STATE_ROLE:
            return item.state.value
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, column)
        if role == FRACTION_ROLE and column == DownloadColumn.PROGRESS:
            return _fraction(item)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == DownloadColumn.FILE:
                return plain_tip(f"{item.filename}\n→ {item.dest}")
            if column == DownloadColumn.STATE and item.error:
                return plain_tip(item.error)
            if column == DownloadColumn.PROGRESS and item.total:
                return f"{item.done:,} of {item.total:,} bytes"
            return None
        if role == Qt.ItemDataRole.ForegroundRole and column == DownloadColumn.STATE:
            return _FAILED_COLOUR if item.state == DownloadState.FAILED else None
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (DownloadColumn.SPEED, DownloadColumn.ETA):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _text(self, row: _DownloadRow, column: DownloadColumn) -> str:
        item = row.item
        running = item.state == DownloadState.RUNNING
        if column == DownloadColumn.FILE:
            return posixpath.basename(item.filename)
        if column == DownloadColumn.REPO:
            return item.repo_id
        if column == DownloadColumn.PROGRESS:
            if item.state == DownloadState.COMPLETE and item.total:
                return human_size(item.total)
            if item.total:
                percent = min(100, item.done * 100 // item.total)
                return f"{human_size(item.done)} / {human_size(item.total)} ({percent}%)"
            return human_size(item.done)
        if column == DownloadColumn.SPEED:
            return format_speed(row.speed) if running else ""
        if column == DownloadColumn.ETA:
            return format_eta(row.eta) if running else ""
        words = STATE_WORDS[item.state]
        if running and item.error:  # the queue is retrying after a transient error
            return "Retrying…"
        return words

    # --- updating ----------------------------------------------------------------------------

    def reset_items(self, items: Sequence[DownloadItem]) -> None:
        self.beginResetModel()
        self._rows = [_DownloadRow(i) for i in items]
        self._reindex()
        self._complete |= {i.dest for i in items if i.state == DownloadState.COMPLETE}
        self.endResetModel()

    @Slot(object)
    def apply_event(self, event: DownloadEvent) -> None:
        item = event.item
        n = self._index.get(item.id)
        if event.kind == EventKind.REMOVED:
            if n is not None:
                self.beginRemoveRows(QModelIndex(), n, n)
                del self._rows[n]
                self._reindex()
                self.endRemoveRows()
            return
        if n is None:  # ADDED, or an item this model was created too late to see added
            n = len(self._rows)
            self.beginInsertRows(QModelIndex(), n, n)
            self._rows.append(_DownloadRow(item))
            self._index[item.id] = n
            self.endInsertRows()
        else:
            row = self._rows[n]
            row.item = item
            if event.kind == EventKind.PROGRESS:
                row.speed, row.eta = event.speed, event.eta
                first, last = DownloadColumn.PROGRESS, DownloadColumn.ETA
            else:
                if item.state != DownloadState.RUNNING:
                    row.speed = row.eta = None
                first, last = DownloadColumn.PROGRESS, DownloadColumn.STATE
            self.dataChanged.emit(self.index(n, first), self.index(n, last))
        if event.kind == EventKind.COMPLETED or item.state == DownloadState.COMPLETE:
            self._complete.add(item.dest)
        if event.kind == EventKind.COMPLETED:
            self._announce(str(event.path) if event.path is not None else item.dest)

    def _announce(self, path: str) -> None:
        parts = [str(p) for p in split_parts(path)]
        if not all(p in self._complete for p in parts):
            return  # a split set with parts still to come
        first = parts[0]
        if first in self._announced:
            return
        self._announced.add(first)
        self.modelCompleted.emit(first)


def _fraction(item: DownloadItem) -> float | None:
    if item.state == DownloadState.COMPLETE:
        return 1.0
    if not item.total:
        return None
    return max(0.0, min(1.0, item.done / item.total))


class ProgressDelegate(QStyledItemDelegate):
    """Draws the Progress column as a progress bar with the model's text on it."""

    def paint(self, painter, option: QStyleOptionViewItem, index: QModelIndex) -> None:  # type: ignore[override]
        fraction = index.data(FRACTION_ROLE)
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum = 0
        bar.maximum = 1000 if fraction is not None else 0  # 0..0: the style's "busy" bar
        bar.progress = int(round((fraction or 0.0) * 1000))
        bar.text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        bar.textVisible = True
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        bar.state = option.state | QStyle.StateFlag.State_Horizontal  # Qt 6: no orientation field
        bar.palette = option.palette
        bar.fontMetrics = option.fontMetrics
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(option.rect, option.palette.highlight())
        style = option.widget.style() if option.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, option.widget)

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # type: ignore[override]
        # Room for the text on one line inside the bar's frame, and a bar worth looking at.
        hint = super().sizeHint(option, index)
        text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        width = max(option.fontMetrics.horizontalAdvance(text) + 32, 160)
        return QSize(width, max(hint.height(), option.fontMetrics.height() + 10))


# --------------------------------------------------------------------------
# Search results
# --------------------------------------------------------------------------


class SearchColumn(enum.IntEnum):
    REPO = 0
    AUTHOR = 1
    DOWNLOADS = 2
    LIKES = 3
    MODIFIED = 4


_SEARCH_HEADERS = {
    SearchColumn.REPO: "Repo",
    SearchColumn.AUTHOR: "Author",
    SearchColumn.DOWNLOADS: "Downloads",
    SearchColumn.LIKES: "Likes",
    SearchColumn.MODIFIED: "Updated",
}


class RepoSearchModel(_RowTable):
    """Hub search results, in the order the Hub gave them (its sort); sortable by column."""

    COLUMNS = SearchColumn
    HEADERS = _SEARCH_HEADERS

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[RepoSummary] = []

    def set_results(self, results: Sequence[RepoSummary]) -> None:
        self.beginResetModel()
        self._rows = list(results)
        self.endResetModel()

    def repo_at(self, row: int) -> RepoSummary:
        return self._rows[row]

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not self._valid(index):
            return None
        repo = self._rows[index.row()]
        column = SearchColumn(index.column())
        if role == REPO_ID_ROLE:
            return repo.repo_id
        if role == Qt.ItemDataRole.DisplayRole:
            if column == SearchColumn.REPO:
                return repo.repo_id + ("  (gated)" if repo.gated else "")
            if column == SearchColumn.AUTHOR:
                return repo.author
            if column == SearchColumn.DOWNLOADS:
                return f"{repo.downloads:,}"
            if column == SearchColumn.LIKES:
                return f"{repo.likes:,}"
            return repo.last_modified.strftime("%Y-%m-%d") if repo.last_modified else ""
        if role == SORT_ROLE:
            if column == SearchColumn.REPO:
                return repo.repo_id.lower()
            if column == SearchColumn.AUTHOR:
                return repo.author.lower()
            if column == SearchColumn.DOWNLOADS:
                return repo.downloads
            if column == SearchColumn.LIKES:
                return repo.likes
            return repo.last_modified.timestamp() if repo.last_modified else 0.0
        if role == Qt.ItemDataRole.ToolTipRole and column == SearchColumn.REPO and repo.gated:
            return "Gated: you must accept its license on huggingface.co and add an access token to download it."
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (SearchColumn.DOWNLOADS, SearchColumn.LIKES):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


# --------------------------------------------------------------------------
# A repo's files
# --------------------------------------------------------------------------


class QuantColumn(enum.IntEnum):
    QUANT = 0
    FILE = 1
    SIZE = 2
    RAM = 3
    FIT = 4


_QUANT_HEADERS = {
    QuantColumn.QUANT: "Quantization",
    QuantColumn.FILE: "File",
    QuantColumn.SIZE: "Size",
    QuantColumn.RAM: "Memory needed",
    QuantColumn.FIT: "This computer",
}

_FIT_TEXT = {
    Fit.FITS: "fits",
    Fit.TIGHT: "tight",
    Fit.WONT_FIT: "won't fit",
    Fit.UNKNOWN: "can't tell",
}

_FIT_TIPS = {
    Fit.FITS: "Fits in the memory free now, with room to spare.",
    Fit.TIGHT: "Only fits if you close other programs first.",
    Fit.WONT_FIT: "Needs more memory than this computer has: choose a smaller quantization.",
    Fit.UNKNOWN: "This computer's memory could not be read.",
}


@dataclass(frozen=True)
class _QuantRow:
    file: QuantFile
    ram: int | None
    fit: Fit | None  # None: not a chat model on its own (projector) or size unknown


class QuantFileModel(_RowTable):
    """A repo's GGUF files, one row per quantization; split sets are one row.

    The rows come in the Hub client's order (smallest first, so quantizations group from
    Q2 up to F16).  Incomplete split sets are listed but disabled (they cannot be used).
    """

    COLUMNS = QuantColumn
    HEADERS = _QUANT_HEADERS

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[_QuantRow] = []
        self._best: int | None = None

    def set_files(self, files: Sequence[QuantFile], memory: MemoryInfo | None) -> None:
        memory = memory or MemoryInfo(None, None)
        rows = []
        for f in files:
            if f.size is None or f.is_projector:
                rows.append(_QuantRow(f, None, None))
            else:
                ram = download_ram_estimate(f.size)
                rows.append(_QuantRow(f, ram, fit_bytes(ram, memory)))
        self.beginResetModel()
        self._rows = rows
        # The best quality that comfortably fits: the biggest usable file whose verdict is "fits".
        fitting = [n for n, r in enumerate(rows) if r.fit == Fit.FITS and r.file.complete]
        self._best = max(fitting, key=lambda n: rows[n].file.size or 0) if fitting else None
        self.endResetModel()

    def clear(self) -> None:
        self.set_files([], None)

    def file_at(self, row: int) -> QuantFile:
        return self._rows[row].file

    def fit_at(self, row: int) -> Fit | None:
        return self._rows[row].fit

    def best_row(self) -> int | None:
        return self._best

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.ToolTipRole
            and section == QuantColumn.RAM
        ):
            return "Estimated memory to run it: file size × 1.1 + 0.5 GB"
        return super().headerData(section, orientation, role)

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if index.isValid() and not self._rows[index.row()].file.complete:
            return Qt.ItemFlag.NoItemFlags  # an incomplete split set cannot be used
        return super().flags(index)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not self._valid(index):
            return None
        row = self._rows[index.row()]
        f = row.file
        column = QuantColumn(index.column())
        if role == FIT_ROLE:
            return row.fit.value if row.fit is not None else None
        if role == Qt.ItemDataRole.DisplayRole:
            if column == QuantColumn.QUANT:
                if f.is_projector:
                    return "vision projector"
                return f.quant or "—"
            if column == QuantColumn.FILE:
                if f.is_split:
                    missing = "" if f.complete else ", parts missing"
                    return f"{f.name} ({len(f.filenames)} parts{missing})"
                return posixpath.basename(f.filenames[0])
            if column == QuantColumn.SIZE:
                return human_size(f.size) if f.size is not None else "?"
            if column == QuantColumn.RAM:
                return human_size(row.ram) if row.ram is not None else ""
            if row.fit is None:
                return ""
            text = _FIT_TEXT[row.fit]
            return text + " ★ recommended" if index.row() == self._best else text
        if role == SORT_ROLE:
            if column == QuantColumn.SIZE or column == QuantColumn.RAM:
                return f.size or 0
            return self.data(index, Qt.ItemDataRole.DisplayRole)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == QuantColumn.FILE:
                return plain_tip("\n".join(f.filenames))
            if column == QuantColumn.FIT and row.fit is not None:
                tip = _FIT_TIPS[row.fit]
                if index.row() == self._best:
                    tip += " The best quality that fits."
                return tip
            if column == QuantColumn.QUANT and f.is_projector:
                return "Adds image input to a vision model; not a chat model on its own."
            if not f.complete:
                return "Some parts of this split model are missing from the repo, so it can't be used."
            return None
        if role == Qt.ItemDataRole.ForegroundRole and column == QuantColumn.FIT and row.fit is not None:
            return _FIT_COLOURS[row.fit]
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (QuantColumn.SIZE, QuantColumn.RAM):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None
