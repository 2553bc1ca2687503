"""Compare: one prompt answered by 2–4 contenders side by side (a contender is a model × a
preset or the current settings), a blind vote, and the result kept as a conversation.

Local contenders run one after another through the engine service's queue (one model fits in
memory; a job may load its model: ``JobRequest.switch_model``), each as an interactive job.
Remote contenders run in parallel, each on its own connection to its server
(``EngineService.submit_remote``), while the local ones take their turns. Each job's events
are read on a small thread and handed to the GUI thread in batches (~40 ms), with the peak
resident memory of the engine process sampled meanwhile (local contenders only).

When every column has ended, the comparison is saved as a conversation: the prompt (or the
turns it re-runs) and, after its last user message, one reply version per contender (the
variants of one reply, as a regenerated reply has), each recording its model, settings and
stats (``stats["compare"]``: its column, its contender, blind or not, load time, peak RAM).
A vote marks the winner as the preferred version and makes it the version shown; in blind
mode the contenders get their letters in a random order and the names are revealed only then. Any column continues as an ordinary chat.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from app.core.conversation import Conversation, Message, MessageState, Role
from app.core.presets import PresetStore, apply_preset, effective_system_prompt, few_shot_turns
from app.core.settings import SamplingSettings
from app.engine import protocol as p
from app.engine.jobs import INTERACTIVE, Job, JobFailed, JobRequest, QueueFull, UnknownModel
from app.session.state import EngineState

if TYPE_CHECKING:
    from app.session.chat import ChatSession

MAX_CONTENDERS = 4
LABELS = "ABCD"
CURRENT = ""  # a contender's preset: the current conversation's settings


@dataclass(frozen=True)
class Contender:
    model_path: str  # a library path, or a connection's remote://… reference
    preset: str = CURRENT  # a preset's name; CURRENT: the settings of the open conversation


@dataclass
class Column:
    """One contender's run: what the view shows in its column."""

    label: str  # "A", "B", …
    contender: Contender
    name: str  # "model · preset": hidden in blind mode until the vote
    remote: bool
    settings: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, str]] = field(default_factory=list)
    state: str = "waiting"  # waiting, loading, writing, done, stopped, failed
    text: str = ""
    error: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    load_seconds: float | None = None  # None: already loaded (or remote)
    peak_rss: int | None = None  # bytes; None: not measured (remote)
    message: Message | None = None  # its reply version in the saved conversation
    job: Job | None = None

    @property
    def ended(self) -> bool:
        return self.state in ("done", "stopped", "failed")


class _Reader(QObject):
    """Reads one job's events on its own thread; text comes out batched as Qt signals, and
    the peak resident memory of ``pid`` (the engine process) is sampled meanwhile."""

    text = Signal(str)
    started = Signal()  # the first event: the model is loaded and working on the prompt
    ended = Signal(object, object)  # p.Done or JobFailed, peak RSS in bytes (None: not measured)

    def __init__(self, job: Job, interval: float, pid: int | None) -> None:
        super().__init__()
        self.job = job
        self.interval = interval
        self.pid = pid
        self._thread = threading.Thread(target=self._run, name="compare-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _rss(self, process: Any) -> int | None:
        try:
            return int(process.memory_info().rss) if process is not None else None
        except Exception:  # the process ended or cannot be read: not a reason to fail the column
            return None

    def _run(self) -> None:
        process = None
        if self.pid is not None:
            try:
                import psutil

                process = psutil.Process(self.pid)
            except Exception:
                process = None
        peak: int | None = None
        pending: list[str] = []
        flushed = time.monotonic()
        begun = False
        while True:
            try:
                event = next(self.job.events(timeout=self.interval))
            except TimeoutError:
                event = None
            rss = self._rss(process)
            if rss is not None:
                peak = max(peak or 0, rss)
            if event is not None and not begun:
                begun = True
                self.started.emit()
            now = time.monotonic()
            if isinstance(event, p.Delta):
                pending.append(event.text)
            if pending and (event is None or now - flushed >= self.interval or not isinstance(event, p.Delta)):
                self.text.emit("".join(pending))
                pending.clear()
                flushed = now
            if isinstance(event, (p.Done, JobFailed)):
                self.ended.emit(event, peak)
                return


class CompareController(QObject):
    """The compare view's logic (no widgets): contenders, the run, the vote, the result."""

    columnsReset = Signal()  # a new set of columns (self.columns)
    columnText = Signal(int, str)  # column index, new text
    columnChanged = Signal(int)  # its state, stats or error changed
    progress = Signal(str)  # which contender runs and what comes next, in plain words
    runningChanged = Signal(bool)
    saved = Signal(str)  # the comparison's conversation id
    voted = Signal(int)  # the winning column (names are shown from now on)
    problem = Signal(str)  # a refusal the person should read

    def __init__(self, session: ChatSession, presets: PresetStore, flush_interval: float = 0.04) -> None:
        super().__init__()
        self.session = session
        self.presets = presets
        self.flush_interval = flush_interval
        self.columns: list[Column] = []
        self.blind = False
        self.winner: int | None = None
        self.conversation: Conversation | None = None  # the saved comparison
        self._history: list[Message] = []  # the turns the replies follow (the last is the prompt)
        self._readers: dict[int, _Reader] = {}
        self._local_queue: list[int] = []
        self._local_running: int | None = None
        self._stopping = False
        self._home: str | None = None  # the window's model before the run: it gets it back
        self.shuffle = random.shuffle  # blind mode: which contender gets which letter
        session.worker.loaded.connect(self._on_loaded)

    # -- what can be compared --------------------------------------------------------------

    def model_choices(self) -> list[tuple[str, str]]:
        """(path, name) of every model that can take part: files in the library, then the
        models the connections serve."""
        models = self.session.models
        local = [(m.path, m.name) for m in models.library.models() if m.exists]
        remote = [(path, m.name) for path, m in models.remote_models.items()]
        return local + remote

    def preset_choices(self) -> list[str]:
        return [pr.name for pr in self.presets.list()]

    def can_rerun(self) -> bool:
        return any(m.role is Role.USER for m in self.session.conversation.messages)

    @property
    def running(self) -> bool:
        return any(not c.ended for c in self.columns)

    def name_of(self, index: int) -> str:
        """What the column is called now: its letter while blind and not voted, else the
        contender's name too."""
        column = self.columns[index]
        if self.blind and self.winner is None:
            return column.label
        return f"{column.label}: {column.name}"

    # -- the run ---------------------------------------------------------------------------

    def start(
        self, contenders: list[Contender], prompt: str = "", rerun_last: bool = False, blind: bool = False
    ) -> bool:
        """Run the contenders on ``prompt`` (or on the open conversation up to its last user
        message). False, and a plain message, when it cannot start."""
        if self.running:
            self.problem.emit("A comparison is running: stop it first.")
            return False
        if not 2 <= len(contenders) <= MAX_CONTENDERS:
            self.problem.emit(f"Choose from 2 to {MAX_CONTENDERS} contenders.")
            return False
        history = self._history_for(prompt, rerun_last)
        if history is None:
            return False
        contenders = list(contenders)
        if blind:  # the letters must not follow the order in which the person listed them
            self.shuffle(contenders)
        columns = []
        for index, contender in enumerate(contenders):
            column = self._column(index, contender)
            if column is None:
                return False
            columns.append(column)
        self.columns = columns
        self.blind = blind
        self.winner = None
        self.conversation = None
        self._history = history
        self._stopping = False
        self._local_queue = [i for i, c in enumerate(columns) if not c.remote]
        self._local_running = None
        current = self.session.current_model
        self._home = current.path if current is not None else None
        self.columnsReset.emit()
        self.runningChanged.emit(True)
        for index, column in enumerate(columns):
            if column.remote:
                self._submit(index)
        self._next_local()
        return True

    def _history_for(self, prompt: str, rerun_last: bool) -> list[Message] | None:
        if rerun_last:
            messages = self.session.conversation.messages
            last = max((i for i, m in enumerate(messages) if m.role is Role.USER), default=None)
            if last is None:
                self.problem.emit("The open conversation has no message of yours to re-run.")
                return None
            return [
                Message(m.role, m.text, model=m.model, settings=m.settings, stats=m.stats)
                for m in messages[: last + 1]
                if not (m.role is Role.ASSISTANT and not m.text)
            ]
        if not prompt.strip():
            self.problem.emit("Type a prompt for the contenders first.")
            return None
        return [Message(Role.USER, prompt)]

    def _column(self, index: int, contender: Contender) -> Column | None:
        session = self.session
        model = session.model_info(contender.model_path)
        if model is None:
            self.problem.emit("One of the chosen models is no longer available; choose another.")
            return None
        base = session.settings
        few_shot = session.few_shot
        preset_name = "current settings"
        if contender.preset:
            preset = self.presets.get(contender.preset)
            if preset is None:
                self.problem.emit(f"The preset “{contender.preset}” no longer exists; choose another.")
                return None
            base = apply_preset(preset, base)
            few_shot = list(preset.few_shot)
            preset_name = preset.name
        problems = base.validate(None)
        if problems:
            self.problem.emit(f"{preset_name}: " + " ".join(pr.message for pr in problems))
            return None
        settings = base.to_dict()
        system = base.system_prompt or model.defaults.system_prompt or ""
        messages = [{"role": "system", "content": effective_system_prompt(_with_system(base, system))}]
        if not messages[0]["content"]:
            messages = []
        messages += few_shot_turns(few_shot)
        remote = model.remote is not None
        return Column(
            label=LABELS[index],
            contender=contender,
            name=f"{model.name} · {preset_name}",
            remote=remote,
            settings=settings,
            messages=messages,
            load_seconds=None,
        )

    def _next_local(self) -> None:
        if self._local_running is not None:
            return
        while self._local_queue and not self._stopping:
            index = self._local_queue.pop(0)
            if self._submit(index):
                self._local_running = index
                break
        if self._local_running is None:
            self._give_back_model()
        self._say_progress()

    def _give_back_model(self) -> None:
        """The local contenders are done: the window gets back the model it had (a contender
        that loaded another one made the window follow)."""
        session, home = self.session, self._home
        self._home = None
        loaded = session.loaded_info.model_path if session.loaded_info is not None else None
        if home is not None and loaded is not None and loaded != home and session.model_info(home) is not None:
            session.select_model(home)

    def _submit(self, index: int) -> bool:
        column = self.columns[index]
        session = self.session
        messages = column.messages + [{"role": m.role.value, "content": m.text} for m in self._history]
        request = JobRequest(
            kind="chat",
            model=column.contender.model_path,
            messages=messages,
            settings=column.settings,
            priority=INTERACTIVE,
            client="compare",
            switch_model=True,
        )
        try:
            if column.remote:
                model = session.model_info(column.contender.model_path)
                target = session.models.remote_target(model) if model is not None else None
                if target is None:
                    raise UnknownModel(column.contender.model_path, [])
                job = session.worker.submit_remote(request, target)
            else:
                job = session.worker.submit(request)
        except (UnknownModel, QueueFull) as exc:
            column.state, column.error = "failed", str(exc)
            self.columnChanged.emit(index)
            self._maybe_done()
            return False
        column.job = job
        loaded = session.loaded_info.model_path if session.loaded_info is not None else None
        column.state = "writing" if column.remote or job.target == loaded else "loading"
        reader = _Reader(job, self.flush_interval, None if column.remote else session.worker.engine_pid)
        reader.text.connect(lambda text, i=index, r=reader: self._on_text(i, r, text))
        reader.started.connect(lambda i=index: self._on_started(i))
        reader.ended.connect(lambda event, peak, i=index, r=reader: self._on_ended(i, r, event, peak))
        self._readers[index] = reader
        self.columnChanged.emit(index)
        reader.start()
        return True

    def _say_progress(self) -> None:
        if not self.columns or not self.running:
            return
        running = [i for i, c in enumerate(self.columns) if c.job is not None and not c.ended]
        parts = []
        if running:
            parts.append("Running " + ", ".join(self.name_of(i) for i in running))
        if self._local_queue and not self._stopping:
            parts.append("next: " + ", ".join(self.name_of(i) for i in self._local_queue))
        self.progress.emit("; ".join(parts) + "…" if parts else "Finishing…")

    def stop(self) -> None:
        """Stop every contender: what was written stays, marked stopped; the rest do not start."""
        if not self.running:
            return
        self._stopping = True
        for index in list(self._local_queue):
            column = self.columns[index]
            column.state, column.error = "stopped", "Not started: the comparison was stopped."
            self.columnChanged.emit(index)
        self._local_queue.clear()
        for column in self.columns:
            if column.job is not None and not column.ended:
                column.job.cancel()
        self.progress.emit("Stopping…")
        self._maybe_done()

    def close(self) -> None:
        """The view closes: everything running is cancelled (nothing is saved unless done)."""
        self.stop()

    # -- the jobs' events (GUI thread) -----------------------------------------------------

    def _on_loaded(self, info: p.Loaded) -> None:
        index = self._local_running
        if index is None or index >= len(self.columns):
            return
        column = self.columns[index]
        if column.state == "loading" and info.model_path == column.contender.model_path:
            column.load_seconds = info.load_seconds
            column.state = "writing"
            self.columnChanged.emit(index)

    def _on_started(self, index: int) -> None:
        column = self.columns[index]
        if column.state == "loading":
            column.state = "writing"
            self.columnChanged.emit(index)

    def _on_text(self, index: int, reader: _Reader, text: str) -> None:
        if self._readers.get(index) is reader:
            self.columns[index].text += text
            self.columnText.emit(index, text)

    def _on_ended(self, index: int, reader: _Reader, event: p.Done | JobFailed, peak: int | None) -> None:
        if index >= len(self.columns) or self._readers.get(index) is not reader:
            return
        self._readers.pop(index, None)
        column = self.columns[index]
        column.peak_rss = peak
        if isinstance(event, JobFailed):
            column.state = "stopped" if event.status == 499 else "failed"
            column.error = event.message
        else:
            column.stats = dict(event.stats, finish_reason=event.reason)
            column.state = "stopped" if event.reason == "cancelled" or self._stopping else "done"
        self.columnChanged.emit(index)
        if index == self._local_running:
            self._local_running = None
            self._next_local()
        else:
            self._say_progress()
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self.running or not self.columns or self.conversation is not None:
            return
        self.runningChanged.emit(False)
        if any(c.text for c in self.columns):
            self._save()
            self.progress.emit("Done. " + ("Vote for the better reply to see who wrote which." if self.blind else ""))
        else:
            self.progress.emit("Nothing was written.")

    # -- the result ------------------------------------------------------------------------

    def _save(self) -> None:
        """The comparison as a conversation: the turns, then one reply version per column."""
        history = self._history
        prompt = history[-1]
        replies: list[Message] = []
        for column in self.columns:
            state = {"done": MessageState.COMPLETE, "stopped": MessageState.STOPPED}.get(
                column.state, MessageState.FAILED
            )
            model = self.session.model_info(column.contender.model_path)
            stats = dict(column.stats)
            stats["compare"] = {
                "column": column.label,
                "contender": column.name,
                "preset": column.contender.preset or None,
                "blind": self.blind,
                "load_seconds": column.load_seconds,
                "peak_rss_bytes": column.peak_rss,
            }
            message = Message(
                Role.ASSISTANT,
                column.text,
                state,
                model=model.name if model is not None else column.name,
                settings=column.settings,
                stats=stats,
                parent_id=prompt.id,
                active=not replies,
            )
            column.message = message
            replies.append(message)
        title = " ".join(prompt.text.split())[:60] or "Comparison"
        conversation = Conversation(
            title=f"Compare: {title}",
            messages=[*history, replies[0]],
            settings={**self.session.settings.to_dict(), "compare": [c.label for c in self.columns]},
            branches=replies[1:],
        )
        self.conversation = conversation
        self.session.store.restore_conversation(conversation)
        self.session.conversations.conversationsChanged.emit()
        self.saved.emit(conversation.id)

    def vote(self, index: int) -> bool:
        """The person prefers this column's reply: recorded as the preferred version (and the
        one shown when the conversation opens); in blind mode the names are shown now."""
        conversation = self.conversation
        if conversation is None or not 0 <= index < len(self.columns):
            return False
        message = self.columns[index].message
        if message is None or not message.text:
            return False
        store = self.session.store
        conversation.set_preferred(message.id)
        store.set_preferred(message.id)
        for m in conversation.variants(message.id):
            compare = dict((m.stats or {}).get("compare") or {})
            compare["winner"] = m is message
            m.stats = {**(m.stats or {}), "compare": compare}
            store.update_message(m)
        conversation.select(message.id)
        store.set_active(conversation.id, message.id)
        shown = self.session.conversation
        if shown.id == conversation.id:  # open in the window: the same mark and version there
            shown.set_preferred(message.id)
            if self.session.state is not EngineState.GENERATING and shown.find(message.id) is not None:
                shown.select(message.id)
                self.session.conversations.conversationOpened.emit(shown)  # redrawn now
        self.winner = index
        self.voted.emit(index)
        self.progress.emit(f"Recorded: {self.name_of(index)} is better.")
        return True

    def continue_in_chat(self, index: int) -> bool:
        """Open the comparison in the window with this column's reply as the version shown."""
        conversation = self.conversation
        if conversation is None or not 0 <= index < len(self.columns):
            return False
        message = self.columns[index].message
        if message is None:
            return False
        session = self.session
        if session.conversation.id != conversation.id and not session.conversations.open_conversation(conversation.id):
            return False
        return self._reveal(message)

    def _reveal(self, message: Message) -> bool:
        session = self.session
        conv = session.conversation
        if not any(m.id == message.id for m in conv.messages):
            session.conversations.select_branch(message.id)
            session.conversations.conversationOpened.emit(conv)
        return any(m.id == message.id for m in conv.messages)


def _with_system(settings: SamplingSettings, system: str) -> SamplingSettings:
    if settings.system_prompt == system:
        return settings
    return SamplingSettings.from_dict({**settings.to_dict(), "system_prompt": system})
