"""A fake EngineGateway for the API server's tests: no model, canned replies with controllable
timing, and a record of what was asked and what was cancelled.

``FakeGateway(models=[...], reply=[...], delay=0.0)``: each chat/complete job streams ``reply``
(a list of text pieces) as Delta events, ``delay`` seconds apart, from a thread of its own, then
Done("stop"). It honours the request like an engine would: a stop sequence in the settings ends
the reply (reason "stop", "stop_sequence" in stats) and max_tokens counts pieces (reason
"length"). Knobs: ``queue_full`` (raise QueueFull(retry_after)), ``fail`` (a JobFailed to send
instead of a reply), ``hold`` (an Event each job waits for before its first event: a busy engine).
``requests`` lists every JobRequest submitted; ``cancelled`` the ids of jobs whose cancel was
seen (``cancel_seen[id]`` is when); ``embedding_model`` names the model an embed job reports.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from app.engine import protocol as p
from app.engine.jobs import Embedded, Job, JobFailed, JobRequest, ModelEntry, QueueFull, UnknownModel


@dataclass
class FakeGateway:
    entries: list[ModelEntry] = field(
        default_factory=lambda: [
            ModelEntry("smol-chat", "Smol Chat", loaded=True),
            ModelEntry("tiny-base", "Tiny Base", loaded=False),
        ]
    )
    reply: list[str] = field(default_factory=lambda: ["Hello", ",", " world", "!"])
    delay: float = 0.0
    queue_full: float | None = None  # retry_after seconds
    fail: JobFailed | None = None
    hold: threading.Event | None = None
    embedding_model: str = "/home/someone/models/nomic-embed.gguf"
    prompt_tokens: int = 7
    model_path: str = "/home/someone/models/smol-chat.gguf"
    requests: list[JobRequest] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    cancel_seen: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    # -- EngineGateway -------------------------------------------------------------------

    def models(self) -> list[ModelEntry]:
        return list(self.entries)

    def submit(self, request: JobRequest) -> Job:
        if self.queue_full is not None:
            raise QueueFull(self.queue_full)
        if request.model is not None and request.model not in {e.id for e in self.entries}:
            raise UnknownModel(request.model, [e.id for e in self.entries])
        job = Job(request)
        with self._lock:
            self.requests.append(request)
            self.jobs.append(job)
        threading.Thread(target=self._run, args=(job,), daemon=True, name=f"fake-{job.id}").start()
        return job

    # -- the fake engine -----------------------------------------------------------------

    def _cancelled(self, job: Job) -> bool:
        if job.cancelled.is_set():
            with self._lock:
                if job.id not in self.cancel_seen:
                    self.cancel_seen[job.id] = time.monotonic()
                    self.cancelled.append(job.id)
            return True
        return False

    def _wait(self, job: Job, seconds: float) -> bool:
        """Sleep ``seconds`` unless cancelled first (woken by the cancel itself); True when
        cancelled."""
        if seconds > 0:
            job.cancelled.wait(seconds)
        return self._cancelled(job)

    def _run(self, job: Job) -> None:
        request = job.request
        if self.hold is not None:
            while not self.hold.wait(0.001):
                if self._cancelled(job):
                    job.put(p.Done("cancelled", {"tokens": 0}))
                    return
        if self.fail is not None:
            job.put(self.fail)
            return
        if request.kind == "embed":
            texts = request.texts or []
            vectors = [[float(len(t)), 0.5, -0.25, 1.0] for t in texts]
            job.put(Embedded(vectors, self.embedding_model, tokens=sum(len(t.split()) for t in texts)))
            return
        job.put(p.PromptInfo(self.prompt_tokens, 4096, 0, self.model_path))
        settings = request.settings
        stops: list[str] = list(settings.get("stop") or [])
        max_tokens = int(settings.get("max_tokens") or 10**9)
        text = ""
        sent = 0
        for piece in self.reply:
            if self._wait(job, self.delay):
                job.put(p.Done("cancelled", {"tokens": sent, "prompt_tokens": self.prompt_tokens}))
                return
            if sent >= max_tokens:
                job.put(p.Done("length", {"tokens": sent, "prompt_tokens": self.prompt_tokens}))
                return
            candidate = text + piece
            hit = min(((candidate.find(s), s) for s in stops if s in candidate), default=None)
            if hit is not None:
                at, stop = hit
                rest = candidate[len(text) : at]
                if rest:
                    job.put(p.Delta(rest))
                job.put(p.Done("stop", {"tokens": sent + 1, "stop_sequence": stop, "prompt_tokens": 7}))
                return
            text = candidate
            sent += 1
            job.put(p.Delta(piece))
        job.put(p.Done("stop", {"tokens": sent, "tokens_per_s": 123.4, "prompt_tokens": self.prompt_tokens}))
