"""The engine service: the engine worker plus one queue of jobs that any client can submit to.

The chat window streams through the worker's own slots (``chat``), as before; the local API
server (and later a compare view) submits :class:`~app.engine.jobs.Job`\\ s from its own
thread. One model is in memory and every core is busy while it generates, so jobs run one
at a time on the worker's thread, in order of priority: a message the person sends waits
only for the job already running, never for queued API requests. Each job is cancelled on
its own; the window's Stop never touches an API job, and an API client that goes away
never stops the person's reply.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot

from app.engine import protocol as p
from app.engine.client import EngineClient, EngineCrashed, EngineError
from app.engine.jobs import (
    INTERACTIVE,
    Embedded,
    Job,
    JobFailed,
    JobRequest,
    ModelEntry,
    QueueFull,
    UnknownModel,
)
from app.engine.params import default_load_options
from app.engine.worker import EngineWorker


@dataclass(frozen=True)
class CatalogEntry:
    """A model a client may ask for by id (a snapshot the GUI thread hands over)."""

    id: str
    name: str
    path: str
    aliases: tuple[str, ...] = ()
    # the Load to switch to it with (the model's own defaults); None: the app's defaults
    load: p.Load | None = None


@dataclass(order=True)
class _Queued:
    priority: int
    seq: int
    job: Job = field(compare=False)


class EngineService(EngineWorker):
    jobStarted = Signal(str)  # an API job started: who asked (the window shows the engine is busy)
    jobEnded = Signal()
    _wake = Signal()

    RETRY_AFTER = 5.0  # seconds a client is told to wait when the queue is full

    def __init__(self, flush_interval: float = 0.04, client: EngineClient | None = None, max_waiting: int = 4) -> None:
        super().__init__(flush_interval=flush_interval, client=client)
        self.max_waiting = max_waiting  # API jobs that may wait; beyond that: 429
        self.allow_model_switch = False  # may an API request load another library model?
        self._heap: list[_Queued] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._catalog: tuple[CatalogEntry, ...] = ()
        self._interactive_pending = threading.Event()  # the window's chat is on its way
        self._interactive_cancel = threading.Event()  # Stop pressed for it
        self._interactive_running = False
        self._api_running = False
        self._wake.connect(self._run_next, Qt.ConnectionType.QueuedConnection)

    # -- the gateway (any thread) -------------------------------------------------------------

    def set_catalog(self, entries: list[CatalogEntry]) -> None:
        """The models clients may ask for (from the GUI thread, whenever the library changes)."""
        self._catalog = tuple(entries)

    def models(self) -> list[ModelEntry]:
        loaded = self._loaded_path()
        return [ModelEntry(e.id, e.name, e.path == loaded) for e in self._catalog]

    def submit(self, request: JobRequest) -> Job:
        path = self._resolve(request.model, request.switch_model)
        job = Job(request)
        job.target = path
        with self._lock:
            waiting = sum(1 for q in self._heap if q.priority > INTERACTIVE)
            if request.priority > INTERACTIVE and waiting >= self.max_waiting:
                raise QueueFull(self.RETRY_AFTER, "The engine is busy with other requests; try again shortly.")
            heapq.heappush(self._heap, _Queued(request.priority, next(self._seq), job))
        self._wake.emit()
        return job

    def submit_remote(self, request: JobRequest, target: p.RemoteTarget) -> Job:
        """Run a chat job on a model another server serves, on a thread and a connection of
        its own: it runs alongside the queue (a local job, other remote ones), since nothing
        of it uses this machine's engine (the compare view's remote contenders)."""
        job = Job(request)
        job.target = target.model_id
        threading.Thread(target=self._run_remote, args=(job, target), name="remote-job", daemon=True).start()
        return job

    def _run_remote(self, job: Job, target: p.RemoteTarget) -> None:
        from app.core.connections import ConnectionStore
        from app.engine.remote import RemoteBackend

        backend: RemoteBackend | None = None
        try:
            connection = ConnectionStore().get(target.connection)
            key = ConnectionStore.api_key(connection) if connection is not None else None
            backend = RemoteBackend(target.base_url, key)
            backend.load(p.Load(target.model_id))
            asked_to_stop = False
            for event in backend.chat(p.Chat(list(job.request.messages or []), job.request.settings), tick=0.05):
                if job.cancelled.is_set() and not asked_to_stop:
                    backend.cancel()
                    asked_to_stop = True
                if event is None or isinstance(event, p.Waiting):
                    continue
                job.put(event)
                if isinstance(event, p.Done):
                    return
            job.put(JobFailed("The server ended the reply without finishing it.", 502))
        except EngineError as exc:
            job.put(JobFailed(str(exc), 499 if job.cancelled.is_set() else 502))
        except Exception as exc:  # never leave a client waiting forever
            job.put(JobFailed(f"The request failed ({type(exc).__name__}).", 500))
        finally:
            if backend is not None:
                backend.close()

    def busy_with_api(self) -> bool:
        """Whether an API job runs or waits (a reply the person asks for now comes after the running one)."""
        with self._lock:
            return self._api_running or any(q.priority > INTERACTIVE for q in self._heap)

    def _loaded_path(self) -> str | None:
        info = self._info
        return info.model_path if info is not None else None

    def _resolve(self, model: str | None, switch: bool = False) -> str:
        """The library path a request means; UnknownModel when there is none it may use."""
        loaded = self._loaded_path()
        catalog = self._catalog
        if not model:
            if loaded is None:
                raise UnknownModel("", [e.id for e in catalog])
            return loaded
        wanted = model.strip()
        for entry in catalog:
            if wanted in (entry.id, entry.name, entry.path, Path(entry.path).name, *entry.aliases):
                if entry.path == loaded or self.allow_model_switch or switch:
                    return entry.path
                break
        if loaded is not None and wanted == loaded:
            return loaded
        usable = [e.id for e in catalog if e.path == loaded or self.allow_model_switch]
        raise UnknownModel(wanted, usable)

    # -- the window's chat keeps its place ahead of API jobs ------------------------------

    def announce_chat(self) -> None:
        """Called by the session (GUI thread) just before it asks for a reply: queued API jobs
        wait until that reply is done."""
        self._interactive_cancel.clear()
        self._interactive_pending.set()

    def cancel(self) -> None:
        """The window's Stop: only its own reply, never an API job."""
        self._interactive_cancel.set()
        if self._interactive_running:
            super().cancel()

    # A new name, not an override of ``chat``: PySide calls an overridden slot directly in
    # the emitting (GUI) thread instead of queueing it to the worker's.
    @Slot(object, object)
    def chat_interactive(self, messages: list[dict[str, str]], settings: dict[str, Any]) -> None:
        """The window's chat: runs before any queued API job (see announce_chat)."""
        self._interactive_pending.clear()
        if self._interactive_cancel.is_set():  # stopped while an API job was still running
            self._interactive_cancel.clear()
            self.finished.emit("cancelled", {})
            return
        self._interactive_running = True
        try:
            self.chat(messages, settings)
        finally:
            self._interactive_running = False

    # -- running jobs (the worker's thread) ---------------------------------------------------

    @Slot()
    def _run_next(self) -> None:
        if self._interactive_pending.is_set():
            self._wake.emit()  # after the window's chat, which is already posted
            return
        with self._lock:
            if not self._heap:
                return
            job = heapq.heappop(self._heap).job
            more = bool(self._heap)
        try:
            self._run(job)
        finally:
            if more:
                self._wake.emit()  # one job per turn: a chat the person sends meanwhile goes next

    def _run(self, job: Job) -> None:
        request = job.request
        if job.cancelled.is_set():
            job.put(JobFailed("The request was cancelled.", 499))
            return
        api = request.priority > INTERACTIVE  # an interactive job (the notebook) is the person's own
        if api:
            self.jobStarted.emit(request.client)
            self._api_running = True
        try:
            if job.target and job.target != self._loaded_path() and not self._switch_to(job.target):
                job.put(JobFailed("The model could not be loaded.", 503))
                return
            if request.kind == "embed":
                self._run_embed(job)
            else:
                self._run_generation(job)
        except Exception as exc:  # never leave a client waiting forever
            job.put(JobFailed(f"The request failed ({type(exc).__name__}).", 500))
            raise
        finally:
            if api:
                self._api_running = False
                self.jobEnded.emit()

    def _switch_to(self, path: str) -> bool:
        """Load another library model for an API request (the person allowed it); the window
        follows, as when the model is picked there."""
        entry = next((e for e in self._catalog if e.path == path and e.load is not None), None)
        if entry is not None and entry.load is not None:
            self.load(entry.load)  # with the model's own defaults, as the window loads it
        else:
            base = self._model or p.Load(path)
            self.load(default_load_options(replace(base, model_path=path, remote=None, chat_template=None, loras=())))
        return self._loaded_path() == path

    def _run_generation(self, job: Job) -> None:
        request = job.request
        backend = self._active
        info = self._info
        if info is not None and isinstance(request.settings.get("max_tokens"), int):
            # As in the window: more new tokens than the context holds is clamped, not refused
            # (a client that leaves max_tokens out gets the server's generous default).
            if request.settings["max_tokens"] > info.n_ctx:
                request = replace(request, settings={**request.settings, "max_tokens": info.n_ctx})
        if request.kind == "complete":
            if not isinstance(backend, EngineClient):
                job.put(JobFailed("Plain completions are not available for models on other servers.", 400))
                return
            stream: Iterator[p.PromptInfo | p.Waiting | p.Delta | p.Done | None] = backend.chat(
                p.Complete(request.prompt or "", request.settings), tick=self.flush_interval
            )
        else:
            stream = backend.chat(p.Chat(list(request.messages or []), request.settings), tick=self.flush_interval)
        asked_to_stop = False
        try:
            for event in stream:
                if job.cancelled.is_set() and not asked_to_stop:
                    backend.cancel()  # only this job is running: its client went away
                    asked_to_stop = True
                if event is None or isinstance(event, p.Waiting):
                    continue
                if isinstance(event, p.PromptInfo) and backend is not self._client and self._info is not None:
                    event = replace(event, model_path=self._info.model_path)
                job.put(event)
                if isinstance(event, p.Done):
                    return
        except EngineCrashed as exc:
            job.put(JobFailed("The model engine stopped unexpectedly; try again.", 503))
            self.crashed.emit(str(exc))
        except EngineError as exc:
            job.put(JobFailed(str(exc), _status_for(str(exc))))

    def _run_embed(self, job: Job) -> None:
        """Vectors from the embedding model, or the chat model in embedding mode when none is set."""
        texts = list(job.request.texts or [])
        try:
            path = self._embedder_path
            if path is None:
                model = self._model
                if model is None or model.remote is not None:
                    job.put(JobFailed("No local model is loaded to make embeddings with.", 503))
                    return
                self._client.load_embedder(model.model_path)
                path = self._embedder_path = model.model_path
            vectors = self._client.embed(texts) if texts else []
        except EngineCrashed as exc:
            job.put(JobFailed("The model engine stopped unexpectedly; try again.", 503))
            self.crashed.emit(str(exc))
            return
        except EngineError as exc:
            job.put(JobFailed(str(exc), 500))
            return
        entry = next((e for e in self._catalog if e.path == path), None)
        job.put(Embedded(vectors, entry.id if entry else Path(path).stem))


def _status_for(message: str) -> int:
    """The HTTP status that fits an engine refusal: bad input is the client's (400)."""
    if message.startswith("Generation failed"):
        return 500
    if message.startswith("No model is loaded"):
        return 503
    return 400
