"""Jobs: what any client (the chat window, the local API server, a compare view) asks the
engine to run, and the handle it gets back.

The engine runs one job at a time (one model in memory, every core busy). Jobs wait in one
queue; interactive chat goes before API requests; each job is cancellable on its own, from
any thread, and its events are read from any thread (the API server reads them from its
asyncio loop). No Qt here: the engine worker implements :class:`EngineGateway`.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from app.engine import protocol as p

if TYPE_CHECKING:
    # asyncio (~30 ms to import) only for the API server's reader: not before the window's
    # first frame (tests/test_startup.py)
    import asyncio

INTERACTIVE = 0  # the person at the window: before anything else
API = 1  # requests from the local API server

JobKind = Literal["chat", "complete", "embed"]


@dataclass(frozen=True)
class JobRequest:
    kind: JobKind
    model: str | None = None  # a library model's path or name; None: the model in use
    messages: list[dict[str, Any]] | None = None  # "chat" (content may be content parts with images)
    prompt: str | None = None  # "complete": plain continuation, no chat template
    texts: list[str] | None = None  # "embed"
    settings: dict[str, Any] = field(default_factory=dict)  # SamplingSettings.to_dict() shaped
    response_format: dict[str, Any] | None = None  # OpenAI's response_format, once supported
    priority: int = API
    client: str = ""  # who asked, for the request log
    switch_model: bool = False  # may load ``model`` when another is in use (the compare view)


@dataclass(frozen=True)
class Embedded:
    """The result of an "embed" job: one vector per text, and the model that made them."""

    vectors: list[list[float]]
    model: str
    tokens: int = 0


@dataclass(frozen=True)
class JobFailed:
    """The job did not run or stopped with an error; ``status`` is the HTTP status that fits."""

    message: str
    status: int = 500


JobEvent = p.PromptInfo | p.Delta | p.Done | Embedded | JobFailed


class QueueFull(Exception):
    """Too many jobs are waiting; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: float, message: str = "The engine is busy; try again shortly.") -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnknownModel(Exception):
    """No such model (or it may not be loaded on request); ``available`` lists what there is."""

    def __init__(self, model: str, available: list[str]) -> None:
        super().__init__(f"The model “{model}” does not exist or cannot be loaded here.")
        self.model = model
        self.available = available


@dataclass(frozen=True)
class ModelEntry:
    id: str  # what a client puts in "model"
    name: str
    loaded: bool
    owned_by: str = "hearth"


_ids = itertools.count(1)


class Job:
    """A handle on one submitted job: its events, in order, readable from any thread; ends
    with exactly one Done, Embedded or JobFailed. ``cancel`` is safe from any thread."""

    def __init__(self, request: JobRequest) -> None:
        self.request = request
        self.id = f"job-{next(_ids)}"
        self.cancelled = threading.Event()
        self.target = ""  # the library model the engine will use (set when it is queued)
        self._events: queue.SimpleQueue[JobEvent] = queue.SimpleQueue()
        self.finished = threading.Event()
        self._lock = threading.Lock()
        self._wake: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None  # an asyncio reader

    # -- the engine's side ---------------------------------------------------------------

    def put(self, event: JobEvent) -> None:
        self._events.put(event)
        if isinstance(event, (p.Done, Embedded, JobFailed)):
            self.finished.set()
        with self._lock:
            wake = self._wake
        if wake is not None:
            loop, ready = wake
            try:
                loop.call_soon_threadsafe(ready.set)
            except RuntimeError:  # the reader's loop has closed (its client went away)
                pass

    # -- the client's side ---------------------------------------------------------------

    def cancel(self) -> None:
        self.cancelled.set()

    def events(self, timeout: float | None = None) -> Iterator[JobEvent]:
        """Events until the last one; raises TimeoutError when none comes for ``timeout`` s."""
        while True:
            try:
                event = self._events.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no event from {self.id} for {timeout} s") from None
            yield event
            if isinstance(event, (p.Done, Embedded, JobFailed)):
                return

    async def aevents(self) -> AsyncIterator[JobEvent]:
        """The same, for an asyncio loop: the engine thread wakes the loop for each event
        (no polling, so a token reaches the client as soon as it exists)."""
        import asyncio  # noqa: PLC0415

        ready = asyncio.Event()
        with self._lock:
            self._wake = (asyncio.get_running_loop(), ready)
        try:
            while True:
                try:
                    event = self._events.get_nowait()
                except queue.Empty:
                    ready.clear()
                    if self._events.empty():  # an event may have come between get and clear
                        await ready.wait()
                    continue
                yield event
                if isinstance(event, (p.Done, Embedded, JobFailed)):
                    return
        finally:
            with self._lock:
                self._wake = None


class EngineGateway(Protocol):
    """What the API server needs from the engine (the engine worker provides it)."""

    def models(self) -> list[ModelEntry]: ...

    def submit(self, request: JobRequest) -> Job:
        """Queue a job; raises QueueFull or UnknownModel at once when it cannot be queued."""
        ...
