"""Completion mode: a notebook in which the model continues the text the person writes.

No chat template: the whole text is the prompt (base models are trained for exactly this),
sampled with the conversation's own settings (the same settings panel as a chat).

Storage: a notebook is a conversation whose settings say ``"mode": "notebook"`` (a plain
key the store and the JSON export keep, and that older versions ignore: they show it as a
chat). Its shown path holds the text in *segments*, in order — ``Role.USER``: text the
person wrote, ``Role.ASSISTANT``: one continuation, recorded like a chat reply (model,
settings, stats, stopped/interrupted). The text is the segments joined. Edits are saved as
the person types (after a short pause, on Continue, on leaving): the segments before the
first change keep their place; typing at the end goes into the last segment of the
person's own; an edit further up makes the rest one segment of the person's (an edited
continuation is theirs now). So nothing typed is lost, and exports stay readable
(the person's text and the model's, turn by turn).

Generation is an interactive job on the engine service's queue (ahead of waiting API
requests); its events are read on a small thread that hands the text over as Qt signals
in batches (~40 ms), so the GUI thread never waits on the engine.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from app.core.conversation import Conversation, Message, MessageState, Role
from app.engine import protocol as p
from app.engine.jobs import INTERACTIVE, Job, JobFailed, JobRequest, QueueFull, UnknownModel
from app.session.conversations import title_from
from app.session.state import EngineState

if TYPE_CHECKING:
    from app.session.chat import ChatSession

NOTEBOOK = "notebook"  # the value of a conversation's settings["mode"]; stored: never change it


def is_notebook(conversation: Conversation) -> bool:
    return (conversation.settings or {}).get("mode") == NOTEBOOK


def notebook_text(conversation: Conversation) -> str:
    return "".join(m.text for m in conversation.messages)


class _JobReader(QObject):
    """Reads one job's events on its own thread; text comes out batched, as Qt signals
    (queued to the GUI thread, where this object lives)."""

    text = Signal(str)
    info = Signal(object)  # p.PromptInfo
    ended = Signal(object)  # p.Done or JobFailed

    def __init__(self, job: Job, interval: float) -> None:
        super().__init__()
        self.job = job
        self.interval = interval
        self._thread = threading.Thread(target=self._run, name="notebook-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        pending: list[str] = []
        flushed = time.monotonic()
        while True:
            try:
                event = next(self.job.events(timeout=self.interval))
            except TimeoutError:
                event = None
            now = time.monotonic()
            if isinstance(event, p.Delta):
                pending.append(event.text)
            elif isinstance(event, p.PromptInfo):
                self.info.emit(event)
            if pending and (event is None or now - flushed >= self.interval or not isinstance(event, p.Delta)):
                self.text.emit("".join(pending))
                pending.clear()
                flushed = now
            if isinstance(event, (p.Done, JobFailed)):
                self.ended.emit(event)
                return


class NotebookController(QObject):
    """The notebook open in the window (the session's current conversation, when it is
    one): its text, Continue, Stop and Undo, saved as it changes."""

    textAppended = Signal(str)  # a batch of the continuation, for the end of the text
    textReplaced = Signal(str)  # the whole text (opened, or a continuation undone)
    generatingChanged = Signal(bool)
    statusText = Signal(str)  # what the notebook is doing, in plain words
    problem = Signal(str)  # a refusal or failure the person should read; nothing was lost
    undoAvailable = Signal(bool)

    SAVE_INTERVAL = 0.5  # as for chat replies: what a crash can lose of a continuation

    def __init__(self, session: ChatSession, flush_interval: float = 0.04) -> None:
        super().__init__()
        self.session = session
        self.flush_interval = flush_interval
        self._job: Job | None = None
        self._reader: _JobReader | None = None
        self._segment: Message | None = None  # the continuation being written
        self._saved_at = 0.0
        self._stop_requested = False
        self._prompt_tokens = 0
        # The notebook shown (None: a chat is). Kept apart from the session's conversation so
        # text typed just before another conversation opens is still saved into this one.
        self._conv: Conversation | None = None

    # -- what is shown ------------------------------------------------------------------------

    @property
    def conversation(self) -> Conversation:
        return self._conv if self._conv is not None else self.session.conversation

    @property
    def active(self) -> bool:
        return self._conv is not None and self._conv is self.session.conversation

    def show(self, conversation: Conversation) -> None:
        """The window shows this conversation now (its text, when it is a notebook)."""
        self._conv = conversation if is_notebook(conversation) else None

    @property
    def generating(self) -> bool:
        return self._job is not None

    def text(self) -> str:
        return notebook_text(self.conversation)

    def can_undo(self) -> bool:
        """The last continuation can be taken back while the text still ends with it
        untouched (once the person writes after it or edits it, it is part of their text)."""
        messages = self.conversation.messages
        return self.active and not self.generating and bool(messages) and messages[-1].role is Role.ASSISTANT

    def continuation_spans(self) -> list[tuple[int, int]]:
        """(start, end) of the model's continuations in the text, in the UTF-16 units that
        Qt's text positions count (an emoji is two)."""
        spans, at = [], 0
        for m in self.conversation.messages:
            size = len(m.text.encode("utf-16-le")) // 2
            if m.role is Role.ASSISTANT and size:
                spans.append((at, at + size))
            at += size
        return spans

    # -- intents ------------------------------------------------------------------------------

    def new_notebook(self) -> bool:
        """A new, empty notebook (an empty chat is turned into one rather than left behind)."""
        session = self.session
        if self.generating or session.state is EngineState.GENERATING:
            self.problem.emit("Stop the model first (Esc), then start a notebook.")
            return False
        if not session.conversation.messages and not session.conversations.saved:
            session.conversation.settings = {**(session.conversation.settings or {}), "mode": NOTEBOOK}
            session.conversation.title = "New notebook"
            session.conversations.conversationOpened.emit(session.conversation)
            return True
        session.conversations.new_conversation(mode=NOTEBOOK)
        if not is_notebook(session.conversation):
            return False
        session.conversation.title = "New notebook"
        session.conversations.conversationOpened.emit(session.conversation)  # shown with its title
        return True

    def set_text(self, text: str) -> None:
        """The person's edit (the whole text as it is now): saved, segment by segment, into
        the notebook shown (also when another conversation is opening)."""
        conv = self._conv
        if conv is None or self.generating or text == notebook_text(conv):
            return
        store = self.session.store
        rest = text
        keep = 0
        messages = conv.messages
        while keep < len(messages) and rest.startswith(messages[keep].text):
            last_user = keep == len(messages) - 1 and messages[keep].role is Role.USER
            if last_user:
                break  # the person's own last segment takes what follows
            rest = rest[len(messages[keep].text) :]
            keep += 1
        if keep == len(messages) - 1 and messages[keep].role is Role.USER:
            segment = messages[keep]
            if rest:
                segment.text = rest
                store.update_message(segment)
                store.touch(conv.id)
                self.undoAvailable.emit(self.can_undo())
                return
        if keep and messages[keep - 1].role is Role.USER:  # the person's text stays one segment
            keep -= 1
            rest = messages[keep].text + rest
        for gone in messages[keep:]:  # edited (or deleted) from here on: one segment of the person's
            store.delete_message(gone.id)
        del messages[keep:]
        conv.link()
        if rest:
            self._append(conv, Message(Role.USER, rest))
            self.session.conversations.conversationsChanged.emit()
        else:
            store.touch(conv.id)
        self.undoAvailable.emit(self.can_undo())

    def _append(self, conv: Conversation, message: Message) -> None:
        """A new segment at the end, saved (with the notebook's row, for its first one)."""
        session = self.session
        message.parent_id = conv.messages[-1].id if conv.messages else None
        message.active = True
        conv.messages.append(message)
        if len(conv.messages) == 1:  # its first text: the notebook gets (or keeps) its row and a title
            if conv.title in ("New notebook", "New chat"):
                conv.title = title_from(message.text)
            session.store.save_conversation(conv)  # an upsert: also right for one emptied earlier
            if conv is session.conversation:
                session.conversations.saved = True
                session.config.set("last_conversation", conv.id)
        session.store.add_message(conv.id, message, len(conv.messages) - 1)
        session.store.touch(conv.id)

    def continue_text(self, text: str | None = None) -> bool:
        """Save ``text`` (the editor's) and let the model continue it. False, and a plain
        message, when it cannot start now; the text is kept either way."""
        if not self.active:
            return False
        if self.generating:
            return False
        if text is not None:
            self.set_text(text)
        session = self.session
        prompt = self.text()
        if not prompt.strip():
            self.problem.emit("Write the beginning of a text first: the model continues what you write.")
            return False
        if session.state is EngineState.LOADING:
            self.problem.emit("The model is still loading; press Continue again when it is ready.")
            return False
        if session.state is EngineState.CRASHED:
            self.problem.emit("The model engine stopped: press Restart engine, then Continue.")
            return False
        if session.state is not EngineState.READY or session.current_model is None:
            self.problem.emit("No model is loaded: choose one in the model picker, then press Continue.")
            return False
        problems = session.settings.validate(None)
        if problems:
            self.problem.emit(" ".join(pr.message for pr in problems))
            return False
        settings = session._request_settings()
        try:
            job = session.worker.submit(
                JobRequest(kind="complete", prompt=prompt, settings=settings, priority=INTERACTIVE, client="notebook")
            )
        except UnknownModel:
            self.problem.emit("No model is loaded: choose one in the model picker, then press Continue.")
            return False
        except QueueFull as exc:  # not for interactive jobs today; said plainly if it ever is
            self.problem.emit(str(exc))
            return False
        self._segment = Message(
            Role.ASSISTANT, "", MessageState.STREAMING, model=session.current_model.name, settings=settings
        )
        self._append(self.conversation, self._segment)
        session.conversations.conversationsChanged.emit()
        self._saved_at = time.monotonic()
        self._stop_requested = False
        self._job = job
        self._reader = reader = _JobReader(job, self.flush_interval)
        reader.text.connect(self._on_text)
        reader.info.connect(self._on_info)
        reader.ended.connect(self._on_ended)
        session._set_state(EngineState.GENERATING, f"{session.current_model.name} is continuing your text…")
        if session.worker.busy_with_api():
            self.statusText.emit("The model continues your text when it has finished an API request…")
        else:
            self.statusText.emit("Writing… (Esc stops)")
        self.generatingChanged.emit(True)
        self.undoAvailable.emit(False)
        reader.start()
        return True

    def stop(self) -> None:
        if self._job is not None:
            self._stop_requested = True
            self._job.cancel()
            self.statusText.emit("Stopping…")

    def undo(self) -> bool:
        """Take back the last continuation (the text before it is as it was)."""
        if not self.can_undo():
            return False
        conv = self.conversation
        last = conv.messages.pop()
        self.session.store.delete_message(last.id)
        self.session.store.touch(conv.id)
        self.textReplaced.emit(self.text())
        self.undoAvailable.emit(self.can_undo())
        self.statusText.emit("The last continuation was taken back.")
        return True

    def shutdown(self) -> None:
        """The window closes: a continuation being written is kept, marked interrupted."""
        if self._job is not None:
            self._job.cancel()
            self._finish(MessageState.INTERRUPTED, {})

    # -- the job's events (GUI thread) -------------------------------------------------------

    def _on_text(self, text: str) -> None:
        segment = self._segment
        if segment is None or self._reader is not self.sender():
            return
        segment.text += text
        self.textAppended.emit(text)
        now = time.monotonic()
        if now - self._saved_at >= self.SAVE_INTERVAL:
            self._saved_at = now
            self.session.store.update_message(segment)

    def _on_info(self, info: p.PromptInfo) -> None:
        self._prompt_tokens = info.prompt_tokens
        session = self.session
        if self._segment is not None and info.model_path:
            answering = session.model_info(info.model_path)
            if answering is not None:
                self._segment.model = answering.name
        session.context_used = info.prompt_tokens
        session.contextChanged.emit(info.prompt_tokens, info.n_ctx)

    def _on_ended(self, event: p.Done | JobFailed) -> None:
        if self._reader is not self.sender():
            return
        if isinstance(event, JobFailed):  # what was written before it failed is kept
            self._finish(MessageState.INTERRUPTED, {})
            self.problem.emit(f"The model could not continue the text: {event.message}")
            return
        stopped = event.reason == "cancelled" or self._stop_requested
        stats = dict(event.stats, finish_reason=event.reason)
        self._finish(MessageState.STOPPED if stopped else MessageState.COMPLETE, stats)

    def _finish(self, state: MessageState, stats: dict[str, Any]) -> None:
        segment, self._segment = self._segment, None
        self._job = self._reader = None
        session = self.session
        conv = self.conversation
        if segment is not None and segment in conv.messages:
            if segment.text:
                segment.state = state
                segment.stats = stats or None
                session.store.update_message(segment)
            else:  # nothing written: no empty continuation to undo later
                conv.messages.remove(segment)
                session.store.delete_message(segment.id)
            session.store.touch(conv.id)
            session.conversations.conversationsChanged.emit()
        written = segment.text if segment is not None else ""
        if state is MessageState.STOPPED:
            status = "Stopped."
        elif state is MessageState.COMPLETE and not written:
            status = self._why_nothing(stats)
        elif state is MessageState.COMPLETE:
            rate = stats.get("tokens_per_s")
            status = f"Done — {stats.get('tokens', 0)} tokens" + (f", {rate:.1f} tokens/s" if rate else "")
        else:
            status = "The continuation was cut short; what was written is kept."
        if session.state is EngineState.GENERATING:
            session._set_state(EngineState.READY, status)
        if session.loaded_info is not None:
            used = self._prompt_tokens + int(stats.get("tokens") or 0)
            session.context_used = used
            session.contextChanged.emit(used, session.loaded_info.n_ctx)
        self.statusText.emit(status)
        self.generatingChanged.emit(False)
        self.undoAvailable.emit(self.can_undo())

    @staticmethod
    def _why_nothing(stats: dict[str, Any]) -> str:
        sequence = stats.get("stop_sequence")
        if isinstance(sequence, str):
            return "The model wrote nothing: one of your stop sequences came first (see the settings panel)."
        if stats.get("finish_reason") in ("length", "context_full"):
            return "The model wrote nothing: the context is full. Shorten the text or raise the context length."
        return "The model ended at once without writing anything; try again, or a higher temperature."
