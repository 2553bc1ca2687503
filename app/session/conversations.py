"""The conversations: the one that is open, the list of the others, and what is done to
them — opening, renaming, pinning, deleting (with Undo), searching, import and export,
the tree of versions (‹n/m›) and ratings.

Generation (app/session/chat.py) writes into the open conversation through :meth:`append`
and reads it through :attr:`current`; everything else a widget does to conversations goes
through this object, which owns the writes to the store for them.  It holds no engine:
``is_generating`` tells it when a reply is being written, since then the open conversation
must not change under the reply.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.core.config import AppConfig
from app.core.conversation import Conversation, Message
from app.core.settings import SamplingSettings
from app.core.store import ConversationNotFound, ConversationStore, SearchHit, StoreError
from app.import_worker import ImportResult, ImportWorker


class ConversationsController(QObject):
    conversationOpened = Signal(object)  # Conversation now shown (also: redraw it, its path changed)
    switched = Signal()  # another conversation (or a new empty one) is now the open one
    conversationsChanged = Signal()  # titles, order or membership of the list changed
    conversationDeleted = Signal(str, str)  # id, title: the window offers Undo
    importFinished = Signal(int)  # conversations imported (0: none, and a message said why)
    settingsChanged = Signal()  # the open conversation's sampling settings were replaced
    messageRated = Signal(str)  # message id whose rating or preferred mark changed
    ratingsCounted = Signal(object)  # {model name: (good, bad)}, after request_ratings()
    errorMessage = Signal(str)
    infoMessage = Signal(str)
    statusText = Signal(str)

    def __init__(
        self,
        store: ConversationStore,
        config: AppConfig,
        settings: SamplingSettings,
        is_generating: Callable[[], bool],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.config = config
        self.settings = settings  # the open conversation's sampling settings
        self.current = Conversation()
        self.saved = False  # whether the open conversation has a row in the store yet
        self.few_shot: list[tuple[str, str]] = []  # example exchanges sent as real prior turns
        self._is_generating = is_generating
        self._deleted: Conversation | None = None  # the last deleted conversation, for Undo
        self._importer: ImportWorker | None = None  # reads import files off the GUI thread

    def busy(self) -> bool:
        """True (and says so) while a reply is being written into the open conversation."""
        if self._is_generating():
            self.errorMessage.emit("Stop the reply first (Esc), then switch conversations.")
            return True
        return False

    # -- the list -----------------------------------------------------------------------------

    def new_conversation(self, mode: str | None = None) -> None:
        """An empty chat (``mode="notebook"``: a notebook, see app/session/notebook.py); it
        gets a row in the store with its first message."""
        if self.busy():
            return
        self.few_shot = []
        self.current = Conversation(settings={**self.settings.to_dict(), **({"mode": mode} if mode else {})})
        self.saved = False
        self.conversationOpened.emit(self.current)
        self.switched.emit()

    def open_conversation(self, conversation_id: str, reveal: str | None = None) -> bool:
        """Show a conversation; ``reveal``: a message (a search hit) whose branch is shown."""
        if self.current.id == conversation_id and self.saved:
            if reveal:
                self.reveal(reveal)
            return True
        if self.busy():
            return False
        problems: list[str] = []  # fields of a damaged row the store left out
        try:
            conversation = self.store.load(conversation_id, problems)
        except (ConversationNotFound, StoreError) as exc:
            self.errorMessage.emit(f"Could not open that conversation: {exc}")
            return False
        self.current = conversation
        self.saved = True
        if reveal and any(m.id == reveal for m in conversation.branches):
            self.select_branch(reveal)
        if conversation.settings:  # checked by the store: every known field has its type
            self.settings = SamplingSettings.from_dict(conversation.settings)
            self.settingsChanged.emit()
        self.few_shot = [(u, a) for u, a in (conversation.settings or {}).get("few_shot", [])]
        if problems:
            shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
            self.errorMessage.emit(f"Parts of “{conversation.title}” could not be read and are left out ({shown}).")
        self.config.set("last_conversation", conversation.id)
        self.conversationOpened.emit(conversation)
        self.switched.emit()
        return True

    def rename_conversation(self, conversation_id: str, title: str) -> None:
        title = " ".join(title.split())[:200]
        if not title:
            return
        if conversation_id == self.current.id:
            self.current.title = title
            if not self.saved:
                return
        self.store.rename(conversation_id, title)
        self.conversationsChanged.emit()

    def set_pinned(self, conversation_id: str, pinned: bool) -> None:
        if conversation_id == self.current.id:
            self.current.pinned = pinned
        self.store.set_pinned(conversation_id, pinned)
        self.conversationsChanged.emit()

    def delete_conversation(self, conversation_id: str) -> None:
        if conversation_id == self.current.id and self.busy():
            return
        try:
            doomed = self.store.load(conversation_id)
        except (ConversationNotFound, StoreError):
            return
        self.store.delete_conversation(conversation_id)
        self._deleted = doomed
        self.conversationsChanged.emit()
        self.conversationDeleted.emit(doomed.id, doomed.title)
        if conversation_id == self.current.id:
            recent = self.store.list_conversations(limit=1)
            if recent:
                self.open_conversation(recent[0].id)
            else:
                self.new_conversation()

    def undo_delete(self) -> None:
        doomed, self._deleted = self._deleted, None
        if doomed is not None:
            self.store.restore_conversation(doomed)
            self.conversationsChanged.emit()
            self.open_conversation(doomed.id)

    def search(self, text: str) -> list[SearchHit]:
        return self.store.search(text) if text.strip() else []

    # -- the open conversation's own settings ------------------------------------------------

    def set_few_shot(self, pairs: list[tuple[str, str]]) -> None:
        """Example exchanges for this conversation (sent as real earlier turns), saved with it."""
        self.few_shot = [(str(u), str(a)) for u, a in pairs]
        self.current.settings = {
            **(self.current.settings or self.settings.to_dict()),
            "few_shot": [list(p) for p in self.few_shot],
        }
        if self.saved:
            self.store.save_conversation(self.current)

    def set_settings(self, settings: SamplingSettings) -> None:
        """Valid settings from the panel; they are remembered with this conversation."""
        self.settings = settings
        self.current.settings = {
            **_kept(self.current.settings),
            **settings.to_dict(),
            "few_shot": [list(p) for p in self.few_shot],
        }
        if self.saved:
            self.store.save_conversation(self.current)
        self.settingsChanged.emit()

    # -- import and export ----------------------------------------------------------------------

    def export_conversations(self, path: str, fmt: str, conversation_ids: list[str] | None = None) -> bool:
        """Write the given conversations (all when None) to ``path``; errors become messages."""
        from app.core.export import ExportError, save_export  # noqa: PLC0415 - markdown loads on use

        try:
            if conversation_ids is None:
                conversation_ids = [c.id for c in self.store.list_conversations()]
            conversations = [self._load_for_export(cid) for cid in conversation_ids]
            save_export(path, fmt, conversations)
        except (ExportError, StoreError) as exc:
            self.errorMessage.emit(str(exc))
            return False
        self.infoMessage.emit(
            f"Exported {len(conversations)} conversation{'s' if len(conversations) != 1 else ''} to {Path(path).name}."
        )
        return True

    def _load_for_export(self, conversation_id: str) -> Conversation:
        if conversation_id == self.current.id and not self.saved:
            return self.current
        return self.store.load(conversation_id)

    def import_conversations(self, path: str) -> bool:
        """Import a Hearth JSON or ChatGPT export: all of it, or nothing and a message.

        The file is read and checked on a worker thread (a ChatGPT zip can take seconds),
        and ``importFinished(count)`` follows; False when another import is still running."""
        if self._importer is None:
            self._importer = ImportWorker(self)
            self._importer.finished.connect(self._on_imported)
        if not self._importer.start(path):
            self.errorMessage.emit("Another import is still running; try again when it has finished.")
            return False
        self.statusText.emit(f"Importing {Path(path).name}…")
        return True

    def _on_imported(self, result: ImportResult) -> None:
        name = Path(result.path).name
        count = len(result.conversations)
        if result.error is not None:
            self.errorMessage.emit(f"Nothing was imported from {name}: {result.error}")
        elif not count:
            self.errorMessage.emit(f"{name} holds no conversations.")
        else:
            self.store.import_conversations(result.conversations)
            self.conversationsChanged.emit()
            source = "ChatGPT export" if result.kind == "chatgpt" else "file"
            self.infoMessage.emit(f"Imported {count} conversation{'s' if count != 1 else ''} from the {source} {name}.")
        self.importFinished.emit(count)

    # -- messages and the tree of versions -------------------------------------------------------

    def append(self, message: Message) -> None:
        """Put a new message at the end of the shown path (it follows the last one) and save it."""
        conv = self.current
        message.parent_id = conv.messages[-1].id if conv.messages else None
        message.active = True
        conv.messages.append(message)
        self._save_new_message(message)
        if any(m.parent_id == message.parent_id for m in conv.branches):  # a new variant
            self.store.set_active(conv.id, message.id)

    def _save_new_message(self, message: Message) -> None:
        """Messages are written as they happen: a crash loses at most a save interval."""
        conv = self.current
        if not self.saved:
            if conv.title == "New chat":
                conv.title = title_from(message.text)
                if not message.text.strip() and message.images:  # an image alone: say so
                    first = message.images[0].name or "an image"
                    conv.title = title_from(
                        f"Image: {first}" if len(message.images) == 1 else f"{len(message.images)} images"
                    )
            conv.settings = {
                **_kept(conv.settings),
                **self.settings.to_dict(),
                "few_shot": [list(p) for p in self.few_shot],
            }
            self.store.save_conversation(conv)
            self.saved = True
            self.config.set("last_conversation", conv.id)
        self.store.add_message(conv.id, message, len(conv.messages) - 1)
        self.store.touch(conv.id)

    def set_aside(self, index: int) -> None:
        """Move the path from ``index`` on to the branches; the message there stops being
        the shown variant (what follows it keeps its own choices)."""
        conv = self.current
        head = conv.messages[index]
        head.active = False
        conv.branches.extend(conv.messages[index:])
        del conv.messages[index:]

    def switch_variant(self, message_id: str, step: int) -> bool:
        """Show the previous (-1) or next (+1) variant of a message on the path, with the
        branch that follows it."""
        if self._is_generating():
            self.statusText.emit("Wait for the reply to finish, or stop it, to switch versions.")
            return False
        conv = self.current
        variants = conv.variants(message_id)
        index = next((i for i, m in enumerate(variants) if m.id == message_id), None)
        if index is None or not 0 <= index + step < len(variants):
            return False
        self.select_branch(variants[index + step].id)
        self.conversationOpened.emit(conv)
        return True

    def reveal(self, message_id: str) -> None:
        if self._is_generating() or not any(m.id == message_id for m in self.current.branches):
            return
        self.select_branch(message_id)
        self.conversationOpened.emit(self.current)

    def select_branch(self, message_id: str) -> None:
        """Show the branch through this message and save that choice: the next message is
        written after what is shown, so the database must show the same path."""
        conv = self.current
        conv.select(message_id)
        branch_parents = {m.parent_id for m in conv.branches}
        for message in conv.messages:
            if message.parent_id in branch_parents:  # it has variants: make it the chosen one
                self.store.set_active(conv.id, message.id)

    def continue_in_new_chat(self, message_id: str) -> bool:
        """A new conversation holding the shown turns up to this message (LM Studio's
        "branch"): try another direction without touching this one."""
        conv = self.current
        index = next((i for i, m in enumerate(conv.messages) if m.id == message_id), None)
        if index is None or self.busy():
            return False
        source = Conversation(
            title=f"{conv.title} (continued)",
            messages=conv.messages[: index + 1],
            pinned=False,
            settings={**self.settings.to_dict(), "few_shot": [list(p) for p in self.few_shot]},
        )
        from app.core.export import fresh_ids  # noqa: PLC0415

        copy = fresh_ids(source)
        copy.created = copy.updated = time.time()
        self.store.restore_conversation(copy)
        self.conversationsChanged.emit()
        return self.open_conversation(copy.id)

    def delete_message(self, message_id: str) -> bool:
        if self._is_generating():
            return False
        if not any(m.id == message_id for m in self.current.messages):
            return False
        self.current.remove(message_id)  # what followed it now follows its parent
        self.store.delete_message(message_id)
        self.conversationOpened.emit(self.current)
        return True

    # -- ratings -----------------------------------------------------------------------------------

    def rate(self, message_id: str, rating: int | None) -> bool:
        """👍 (+1), 👎 (-1) or no rating (None) for a reply; saved at once. The message may
        be in another conversation than the open one (a compare column): the store is
        updated either way. False for a rating that is not one of those."""
        if rating not in (1, -1, None):
            return False
        message = self.current.find(message_id)
        if message is not None:
            message.rating = rating
        self.store.set_rating(message_id, rating)
        self.messageRated.emit(message_id)
        return True

    def prefer(self, message_id: str, preferred: bool = True) -> bool:
        """Mark this version of a reply as the better one among its ‹n/m› versions (the
        others lose the mark, in memory and in the same store transaction), or clear it."""
        self.current.set_preferred(message_id, preferred)
        self.store.set_preferred(message_id, preferred)
        self.messageRated.emit(message_id)
        return True

    def request_ratings(self) -> None:
        """Count the rated replies per model off the GUI thread; ``ratingsCounted`` has them."""
        store = self.store

        def work() -> None:
            try:
                counts = store.ratings_by_model()
            except StoreError:
                counts = {}
            self.ratingsCounted.emit(counts)

        threading.Thread(target=work, name="ratings-count", daemon=True).start()


def _kept(settings: dict[str, Any] | None) -> dict[str, Any]:
    """What a conversation's settings hold besides the sampling knobs and few-shot turns
    (its "mode": a notebook stays a notebook when the panel's values change)."""
    return {"mode": settings["mode"]} if settings and isinstance(settings.get("mode"), str) else {}


def title_from(text: str, limit: int = 60) -> str:
    """A sidebar title from the first message: its first line, cut at a word."""
    line = " ".join(text.strip().split("\n", 1)[0].split())
    if len(line) <= limit:
        return line or "New chat"
    cut = line[:limit].rsplit(" ", 1)[0]
    return (cut if len(cut) > limit // 2 else line[:limit]) + "…"
