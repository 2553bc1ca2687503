"""Reads a conversation export off the GUI thread.

A ChatGPT export is a zip of hundreds of megabytes: decompressing and parsing it takes
seconds, and on the GUI thread the window would freeze that long. :class:`ImportWorker` runs
:func:`app.core.export.read_import_file` on a plain thread and hands the result back through a
queued signal, so the slot runs on the thread the worker lives on (the GUI thread).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal, Slot

from app.core.conversation import Conversation, MessageState

if TYPE_CHECKING:
    # imported where used: export brings markdown-it and Pygments, which start-up does not need
    from app.core.export import ImportKind

log = logging.getLogger(__name__)


@dataclass
class ImportResult:
    """What one import produced: conversations ready for the store, or why there are none."""

    path: str
    kind: ImportKind | None = None
    conversations: list[Conversation] = field(default_factory=list)
    error: str | None = None  # plain words; set when nothing could be imported


def prepare_import(path: str) -> ImportResult:
    """Read, validate and give fresh ids; never raises (a failure is ``error``)."""
    from app.core.export import ImportFormatError, fresh_ids, read_import_file

    try:
        kind, conversations = read_import_file(path)
    except ImportFormatError as exc:
        return ImportResult(path, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug in a reader must not kill the thread silently
        log.exception("importing %s failed", path)
        return ImportResult(path, error=f"Hearth could not read it ({type(exc).__name__}).")
    conversations = [fresh_ids(c) for c in conversations]
    for c in conversations:
        for m in c.all_messages():
            if m.state is MessageState.STREAMING:
                m.state = MessageState.INTERRUPTED
    return ImportResult(path, kind, conversations)


class ImportWorker(QObject):
    """One import at a time; ``finished(ImportResult)`` arrives on this object's thread."""

    finished = Signal(object)
    _done = Signal(object)  # emitted on the reading thread, queued to this object's thread

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: threading.Thread | None = None
        self._done.connect(self._deliver)

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def start(self, path: str) -> bool:
        """Begin reading ``path``; False (nothing started) while another import runs."""
        if self._thread is not None:
            return False
        self._thread = threading.Thread(
            target=lambda: self._done.emit(prepare_import(path)), name="conversation-import", daemon=True
        )
        self._thread.start()
        return True

    @Slot(object)
    def _deliver(self, result: ImportResult) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()  # it has emitted: only its return is left
        self.finished.emit(result)
