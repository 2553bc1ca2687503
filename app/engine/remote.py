"""A remote backend: chat with a model served by llama.cpp's server, vLLM, Ollama, LM Studio,
llama-cpp-python's server or any OpenAI-compatible endpoint, with the same streaming contract
as :class:`app.engine.client.EngineClient` so the worker can drive either.

Plain Python, no Qt. ``chat`` runs on the caller's (worker) thread and yields what a reader
thread receives; :meth:`RemoteBackend.cancel` may be called from any thread: it wakes ``chat``
at once (it returns ``Done("cancelled")`` even while the server is silent) and shuts the
stream's socket down, so the server sees the client leave and stops generating.

API::

    ServerKind (str Enum)  RemoteModel(id, context_length)  ProbeResult(kind, version, latency_ms, models)
    RemoteError(EngineError)       plain words for the user; never contains the API key
    RemoteInterrupted(RemoteError) the stream broke after text arrived (keep it, mark it interrupted)
    RemoteBackend(base_url, api_key=None, *, kind=None, connect_timeout=5.0, read_timeout=60.0)
        .probe() -> ProbeResult            .models() -> list[RemoteModel]
        .load(p.Load) -> p.Loaded          .chat(p.Chat, tick=None) -> Iterator[event | None]
        .count_prompt(messages) -> int     .count_prompt_info(messages) -> (int, exact)
        .cancel()                          .ignored_settings() -> frozenset[str]
        .close()                           .kind, .host, .model (the loaded model id)

Where sampling settings go, per server kind (:func:`request_body`): the OpenAI fields
(temperature, top_p, max_tokens, presence/frequency penalty, stop, seed) for every kind;
llama.cpp server also takes top_k, min_p, repeat_penalty and repeat_last_n in the body;
llama-cpp-python's server top_k, min_p, repeat_penalty; vLLM top_k, min_p and
repetition_penalty as extra body fields; LM Studio top_k and repeat_penalty; Ollama is driven
through its native ``/api/chat`` (NDJSON), whose ``options`` take every setting Hearth has,
including the repetition window (repeat_last_n) and the context length (num_ctx; Ollama's
OpenAI route would silently run a 2-4k context and drop top_k/min_p). A generic endpoint gets the
OpenAI fields only (hosted APIs refuse unknown ones). :meth:`RemoteBackend.ignored_settings`
names what a kind ignores, for the settings panel to mark.
"""

from __future__ import annotations

import email.utils
import json
import math
import queue
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import httpcore2
import httpx2

from app import logs
from app.core import response_format as rf
from app.core.settings import SamplingSettings
from app.engine import protocol as p
from app.engine.client import EngineError
from app.engine.sse import SSEParser, iter_lines
from app.engine.vision import content_text, image_urls


class ServerKind(str, Enum):
    # Values are shown in the UI and may be stored with a connection: never reuse one.
    LLAMA_CPP = "llama.cpp server"
    LLAMA_CPP_PYTHON = "llama-cpp-python server"
    VLLM = "vLLM"
    OLLAMA = "Ollama"
    LM_STUDIO = "LM Studio"
    OPENAI = "OpenAI-compatible"


@dataclass(frozen=True)
class RemoteModel:
    id: str
    context_length: int | None = None


@dataclass(frozen=True)
class ProbeResult:
    kind: ServerKind
    version: str | None
    latency_ms: float
    models: list[RemoteModel]


class RemoteError(EngineError):
    """A remote request failed; ``str()`` is a plain sentence for the user (no API key)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RemoteInterrupted(RemoteError):
    """The stream broke after some of the reply arrived: the text already yielded is the
    partial reply, to be kept and marked interrupted."""


# SamplingSettings fields that are not sampler arguments (the session builds them into the
# messages), so no server can ignore them.
_MESSAGE_FIELDS = frozenset({"system_prompt", "chain_of_thought"})
_ALL_SAMPLING = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
        "max_tokens",
        "stop",
        "seed",
        "last_n_tokens",
        # a GBNF grammar (response format "grammar"); any JSON and JSON Schema every kind takes
        "grammar",
    }
)
_ACCEPTED: dict[ServerKind, frozenset[str]] = {
    ServerKind.LLAMA_CPP: _ALL_SAMPLING,
    # Ollama takes a JSON Schema ("format") but no grammar.
    ServerKind.OLLAMA: _ALL_SAMPLING - {"grammar"},
    # llama-cpp-python fixes the repetition window when it loads the model.
    ServerKind.LLAMA_CPP_PYTHON: _ALL_SAMPLING - {"last_n_tokens"},
    # vLLM's repetition_penalty looks at the whole text: it has no window.
    ServerKind.VLLM: _ALL_SAMPLING - {"last_n_tokens"},
    ServerKind.LM_STUDIO: _ALL_SAMPLING - {"min_p", "last_n_tokens", "grammar"},
    ServerKind.OPENAI: _ALL_SAMPLING - {"top_k", "min_p", "repeat_penalty", "last_n_tokens", "grammar"},
}

MAX_RETRIES_429 = 3
MAX_RETRY_AFTER = 60.0  # a longer wait is reported, not waited for
DEFAULT_RETRY_AFTER = 2.0
_ERROR_TEXT_LIMIT = 240


def ignored_settings_for(kind: ServerKind) -> frozenset[str]:
    return _ALL_SAMPLING - _ACCEPTED[kind]


def request_body(
    kind: ServerKind, model: str, messages: list[dict[str, str]], s: SamplingSettings, seed: int
) -> dict[str, Any]:
    """The JSON body of a streamed chat request for this kind of server (see the module doc)."""
    if kind is ServerKind.OLLAMA:
        options: dict[str, Any] = {
            "temperature": s.temperature,
            "top_p": s.top_p,
            "top_k": s.top_k,
            "min_p": s.min_p,
            "repeat_penalty": s.repeat_penalty,
            "repeat_last_n": s.last_n_tokens,
            "presence_penalty": s.presence_penalty,
            "frequency_penalty": s.frequency_penalty,
            "num_predict": s.max_tokens,
            "seed": seed,
        }
        if s.stop:
            options["stop"] = list(s.stop)
        native: dict[str, Any] = {
            "model": model,
            "messages": _ollama_messages(messages),
            "stream": True,
            "options": options,
        }
        if s.response_format == rf.JSON:
            native["format"] = "json"
        elif s.response_format == rf.JSON_SCHEMA:
            native["format"] = json.loads(s.json_schema)
        return native
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "max_tokens": s.max_tokens,
        "presence_penalty": s.presence_penalty,
        "frequency_penalty": s.frequency_penalty,
        "seed": seed,
    }
    if s.stop:
        body["stop"] = list(s.stop)
    if kind is not ServerKind.LLAMA_CPP_PYTHON:  # it ignores the field and never sends usage
        body["stream_options"] = {"include_usage": True}
    if kind is ServerKind.LLAMA_CPP:
        body.update(
            top_k=s.top_k,
            min_p=s.min_p,
            repeat_penalty=s.repeat_penalty,
            repeat_last_n=s.last_n_tokens,
            cache_prompt=True,
        )
    elif kind is ServerKind.LLAMA_CPP_PYTHON:
        body.update(top_k=s.top_k, min_p=s.min_p, repeat_penalty=s.repeat_penalty)
    elif kind is ServerKind.VLLM:
        body.update(top_k=s.top_k if s.top_k > 0 else -1, min_p=s.min_p, repetition_penalty=s.repeat_penalty)
    elif kind is ServerKind.LM_STUDIO:
        body.update(top_k=s.top_k, repeat_penalty=s.repeat_penalty)
    body.update(_structured_output(kind, s))
    return body


def _ollama_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama's native chat takes a message's images as bare base64 in an ``images`` list
    beside its text, not as OpenAI content parts."""
    out: list[dict[str, Any]] = []
    for message in messages:
        urls = image_urls(message.get("content"))
        if not urls:
            out.append(message)
            continue
        images = [url.split(",", 1)[1] for url in urls if url.startswith("data:") and "," in url]
        out.append({**message, "content": content_text(message.get("content")), "images": images})
    return out


def _structured_output(kind: ServerKind, s: SamplingSettings) -> dict[str, Any]:
    """The response format in the fields this kind of server reads (checked settings: the
    schema parses).  llama-cpp-python's server refuses OpenAI's json_schema form and takes the
    schema inside json_object; a grammar goes where llama.cpp, llama-cpp-python and vLLM read
    it, and nowhere for the others (the panel marks it ignored)."""
    if s.response_format == rf.JSON:
        return {"response_format": {"type": "json_object"}}
    if s.response_format == rf.JSON_SCHEMA:
        schema = json.loads(s.json_schema)
        if kind is ServerKind.LLAMA_CPP_PYTHON:
            return {"response_format": {"type": "json_object", "schema": schema}}
        return {"response_format": {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}}
    if s.response_format == rf.GRAMMAR and "grammar" in _ACCEPTED[kind]:
        if kind is ServerKind.VLLM:  # guided_grammar before vLLM 0.10, structured_outputs since
            return {"guided_grammar": s.grammar, "structured_outputs": {"grammar": s.grammar}}
        return {"grammar": s.grammar}
    return {}


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """A rough count when the server cannot count: ~3.5 characters a token plus the template's
    few tokens per message (shown with ≈); an image as IMAGE_TOKENS_ESTIMATE, not its base64."""
    return 2 + sum(
        4
        + math.ceil(len(content_text(m.get("content"))) / 3.5)
        + IMAGE_TOKENS_ESTIMATE * len(image_urls(m.get("content")))
        for m in messages
    )


#: What an image takes in a remote model's context when its server cannot say (most vision
#: encoders make 256-1,000 tokens of one image).
IMAGE_TOKENS_ESTIMATE = 768


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


# --- sockets that cancel can shut down -------------------------------------------------


class _TrackedStream(httpcore2.NetworkStream):
    def __init__(self, inner: httpcore2.NetworkStream, tracker: _SocketTracker) -> None:
        self._inner = inner
        self._tracker = tracker
        tracker.add(self)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._tracker.discard(self)
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.NetworkStream:
        self._tracker.discard(self)
        return _TrackedStream(self._inner.start_tls(ssl_context, server_hostname, timeout), self._tracker)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    def abort(self) -> None:
        """Shut the socket down from another thread: a blocked read returns at once and the
        server sees the connection end (closing alone would not wake the reader)."""
        sock = self._inner.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the raw socket, also under TLS
            except OSError:
                pass


class _SocketTracker(httpcore2.NetworkBackend):
    """httpcore's own network backend, remembering every open connection."""

    def __init__(self) -> None:
        self._inner = httpcore2.SyncBackend()
        self._lock = threading.Lock()
        self._open: set[_TrackedStream] = set()

    def add(self, stream: _TrackedStream) -> None:
        with self._lock:
            self._open.add(stream)

    def discard(self, stream: _TrackedStream) -> None:
        with self._lock:
            self._open.discard(stream)

    def abort_all(self) -> None:
        with self._lock:
            streams = list(self._open)
        for stream in streams:
            stream.abort()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        return _TrackedStream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options), self)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.NetworkStream:
        return _TrackedStream(self._inner.connect_unix_socket(path, timeout, socket_options), self)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _TrackingTransport(httpx2.HTTPTransport):
    def __init__(self, tracker: _SocketTracker, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__()
        # The same pool httpx2 builds, on a network backend whose sockets cancel can reach.
        self._pool = httpcore2.ConnectionPool(ssl_context=ssl_context, network_backend=tracker)


# --- the stream's reader thread ----------------------------------------------------------

_CANCELLED = object()  # put on the queue by cancel() to wake chat() at once


@dataclass
class _Job:
    queue: queue.SimpleQueue[Any]
    cancelled: threading.Event
    thread: threading.Thread | None = None


@dataclass(frozen=True)
class _Finish:
    reason: str
    usage: dict[str, Any] | None


@dataclass(frozen=True)
class _Usage:
    usage: dict[str, Any]


class RemoteBackend:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        kind: ServerKind | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        url = base_url.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteError(f"“{base_url}” is not a web address (it should start with http:// or https://).")
        if url.endswith("/v1"):
            url = url[: -len("/v1")]  # people paste the OpenAI base URL; the routes add /v1 themselves
        self.base_url = base_url  # as given (the connection's address)
        self.root = url  # without a trailing /v1: the routes below add it
        self.host = parts.hostname + (f":{parts.port}" if parts.port else "")
        self._key = api_key or None
        if self._key:
            logs.add_secret(self._key)
        self.kind = kind
        self.version: str | None = None
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.model: str | None = None  # the loaded model's id
        self.n_ctx: int | None = None  # its context length, when known
        self._contexts: dict[str, int] = {}
        headers = {"Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        timeout = httpx2.Timeout(read_timeout, connect=connect_timeout)
        self._http = httpx2.Client(headers=headers, timeout=timeout, verify=verify, follow_redirects=False)
        self._tracker = _SocketTracker()
        ssl_context = verify if isinstance(verify, ssl.SSLContext) else httpx2.create_ssl_context(verify=verify)
        self._stream_http = httpx2.Client(
            headers=headers, timeout=timeout, transport=_TrackingTransport(self._tracker, ssl_context)
        )
        self._lock = threading.Lock()
        self._job: _Job | None = None
        self._stream_options = True  # cleared if a server refuses stream_options

    def __repr__(self) -> str:  # never the key
        return f"RemoteBackend({self.root!r}, kind={self.kind}, key={'set' if self._key else 'none'})"

    # -- probing -----------------------------------------------------------------------

    def probe(self) -> ProbeResult:
        """What answers at this address, how fast, its version and its models."""
        started = time.perf_counter()
        self._get("/v1/models" if self.kind is not ServerKind.OLLAMA else "/api/tags", what="list its models")
        latency_ms = (time.perf_counter() - started) * 1000.0
        if self.kind is None or self.version is None:
            kind, version = self._detect()
            self.kind = self.kind or kind
            self.version = version
        return ProbeResult(self.kind, self.version, round(latency_ms, 1), self.models())

    def _detect(self) -> tuple[ServerKind, str | None]:
        data = self._try_json("GET", "/api/version")
        if isinstance(data, dict) and isinstance(data.get("version"), str) and len(data) <= 2:
            return ServerKind.OLLAMA, data["version"]
        data = self._try_json("GET", "/props")
        if isinstance(data, dict) and ("default_generation_settings" in data or "build_info" in data):
            build = data.get("build_info")
            return ServerKind.LLAMA_CPP, str(build) if build else None
        data = self._try_json("GET", "/version")
        if isinstance(data, dict) and isinstance(data.get("version"), str):
            return ServerKind.VLLM, data["version"]
        data = self._try_json("GET", "/api/v0/models")
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            return ServerKind.LM_STUDIO, None
        data = self._try_json("GET", "/openapi.json")
        if isinstance(data, dict) and isinstance(data.get("info"), dict):
            info = data["info"]
            if "llama.cpp Python" in str(info.get("title", "")):
                return ServerKind.LLAMA_CPP_PYTHON, str(info.get("version") or "") or None
        return ServerKind.OPENAI, None

    def _kind(self) -> ServerKind:
        if self.kind is None:
            self.kind, self.version = self._detect()
        return self.kind

    def models(self) -> list[RemoteModel]:
        kind = self._kind()
        found: dict[str, RemoteModel] = {}
        if kind is ServerKind.OLLAMA:
            tags = self._get("/api/tags", what="list its models")
            for entry in tags.get("models", []) if isinstance(tags, dict) else []:
                name = entry.get("name") or entry.get("model") if isinstance(entry, dict) else None
                if isinstance(name, str):
                    found[name] = RemoteModel(name)
            return list(found.values())
        data = self._get("/v1/models", what="list its models")
        for entry in data.get("data", []) if isinstance(data, dict) else []:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                found[entry["id"]] = RemoteModel(entry["id"], _context_of(entry))
        return list(found.values())

    def ignored_settings(self) -> frozenset[str]:
        return ignored_settings_for(self.kind or ServerKind.OPENAI)

    # -- load --------------------------------------------------------------------------

    def load(self, request: p.Load) -> p.Loaded:
        """Choose a model on the server (nothing moves) and find its context length."""
        started = time.perf_counter()
        kind = self._kind()
        model_id = request.model_path
        native: int | None = None
        if kind is ServerKind.OLLAMA:
            info = self._post("/api/show", {"model": model_id}, what=f"describe the model “{model_id}”", model=model_id)
            native = _ollama_context(info)
            n_ctx = min(request.n_ctx, native) if native else request.n_ctx  # sent as num_ctx
        else:
            listed = {m.id: m for m in self.models()}
            if model_id not in listed:
                names = ", ".join(sorted(listed)[:5]) or "none"
                raise RemoteError(f"The server at {self.host} has no model named “{model_id}” (it has: {names}).", 404)
            native = listed[model_id].context_length
            if native is None and kind is ServerKind.LLAMA_CPP:
                props = self._try_json("GET", "/props")
                native = _props_context(props)
            if native is None and kind is ServerKind.LM_STUDIO:
                native = _context_of(self._try_json("GET", f"/api/v0/models/{model_id}") or {})
            if native is None and kind is ServerKind.LLAMA_CPP_PYTHON:
                native = self._context_from_refusal(model_id)
            n_ctx = native or request.n_ctx
        self.model, self.n_ctx = model_id, n_ctx
        self._contexts[model_id] = n_ctx
        return p.Loaded(
            model_path=model_id,
            n_ctx=n_ctx,
            n_ctx_train=native or 0,  # 0: the server did not say (n_ctx is then the user's setting)
            chat_format=kind.value,
            template_from_gguf=True,
            load_seconds=time.perf_counter() - started,
        )

    def _context_from_refusal(self, model_id: str) -> int | None:
        """llama-cpp-python's server does not say its context length, but refuses an over-long
        prompt with "maximum context length is N tokens" before generating anything."""
        try:
            response = self._http.post(
                self.root + "/v1/completions",
                json={"model": model_id, "prompt": " a" * 140_000, "max_tokens": 1},
            )
        except httpx2.HTTPError:
            return None
        match = re.search(r"maximum context length is (\d+)", response.text)
        return int(match.group(1)) if match else None

    # -- counting ----------------------------------------------------------------------

    def count_prompt(self, messages: list[dict[str, str]]) -> int:
        return self.count_prompt_info(messages)[0]

    def count_prompt_info(self, messages: list[dict[str, str]]) -> tuple[int, bool]:
        """(tokens, exact): the server's count through its template where it can, else an
        estimate (exact False: show ≈)."""
        kind = self._kind()
        model = self.model or ""
        try:
            if kind is ServerKind.LLAMA_CPP:
                prompt = self._post("/apply-template", {"messages": messages}, what="apply the chat template")
                if isinstance(prompt, dict) and isinstance(prompt.get("prompt"), str):
                    tokens = self._post("/tokenize", {"content": prompt["prompt"], "add_special": True}, what="count")
                    if isinstance(tokens, dict) and isinstance(tokens.get("tokens"), list):
                        return len(tokens["tokens"]), True
            elif kind is ServerKind.VLLM:
                data = self._post(
                    "/tokenize", {"model": model, "messages": messages, "add_generation_prompt": True}, what="count"
                )
                if isinstance(data, dict) and isinstance(data.get("count"), int):
                    return data["count"], True
            elif kind is ServerKind.LLAMA_CPP_PYTHON:
                # Its tokenizer, but without the chat template: the text exactly, the template guessed.
                text = "".join(content_text(m.get("content")) for m in messages)
                data = self._post("/extras/tokenize/count", {"model": model or None, "input": text}, what="count")
                if isinstance(data, dict) and isinstance(data.get("count"), int):
                    return data["count"] + 5 * len(messages) + 2, False
        except RemoteError:
            pass
        return estimate_tokens(messages), False

    def _fit(
        self, messages: list[dict[str, Any]], n_ctx: int, max_tokens: int, job: _Job
    ) -> tuple[list[dict[str, Any]], int, bool, int]:
        """Leave out the oldest turns (never the system prompt or the newest message) until the
        prompt leaves room for the reply, as the local engine does: (messages, prompt tokens,
        counted exactly, turns dropped).  The estimate picks how many turns to drop so the
        server is asked to count again only a few times, not once per turn."""
        count, exact = self.count_prompt_info(messages)
        if not n_ctx:
            return messages, count, exact, 0
        room = min(max_tokens, max(n_ctx // 4, 32))
        kept = list(messages)
        first = 1 if kept and kept[0].get("role") == "system" else 0
        dropped = 0
        while count > n_ctx - room and len(kept) - first > 1 and not job.cancelled.is_set():
            excess = count - (n_ctx - room)
            while excess > 0 and len(kept) - first > 1:
                excess -= estimate_tokens([kept[first]]) - 2
                del kept[first]
                dropped += 1
            count, exact = self.count_prompt_info(kept)
        return kept, count, exact, dropped

    # -- chat --------------------------------------------------------------------------

    def chat(
        self, request: p.Chat, tick: float | None = None
    ) -> Iterator[p.PromptInfo | p.Waiting | p.Delta | p.Done | None]:
        """PromptInfo, then Deltas, then one Done (see EngineClient.chat); Waiting while a 429
        is honoured; None every ``tick`` seconds without an event. Raises RemoteError, or
        RemoteInterrupted when the stream breaks after text arrived."""
        job = _Job(queue.SimpleQueue(), threading.Event())
        with self._lock:
            self._job = job
        started = time.perf_counter()
        try:
            kind = self._kind()
            if self.model is None:
                raise RemoteError("Choose a model on this server first.")
            model = self.model
            settings = SamplingSettings.from_dict(request.settings)
            n_ctx = self._contexts.get(model) or 0
            problems = settings.validate(n_ctx or None)
            if problems:
                raise RemoteError(" ".join(pr.message for pr in problems))
            messages, prompt_tokens, exact, dropped = self._fit(request.messages, n_ctx, settings.max_tokens, job)
            if job.cancelled.is_set():
                yield p.Done("cancelled", {"tokens": 0, "endpoint": self.root, "remote_model": model})
                return
            if n_ctx and exact and prompt_tokens >= n_ctx - 4:
                raise RemoteError(
                    f"This message is longer than the model's context ({prompt_tokens:,} of {n_ctx:,} tokens). "
                    "Shorten it, or start a new chat."
                )
            if n_ctx and prompt_tokens + settings.max_tokens > n_ctx:
                settings.max_tokens = max(1, n_ctx - prompt_tokens)  # clamped, as the local engine does
            seed = settings.seed if settings.seed is not None else random.randrange(2**31)
            yield p.PromptInfo(prompt_tokens, n_ctx, dropped, model, counted_exactly=exact)
            body = request_body(kind, model, messages, settings, seed)
            if kind is ServerKind.OLLAMA and n_ctx:
                body["options"]["num_ctx"] = n_ctx
            job.thread = threading.Thread(
                target=self._read_stream, args=(job, kind, body), name="hearth-remote-stream", daemon=True
            )
            job.thread.start()
            yield from self._consume(job, tick, started, model, prompt_tokens, exact, n_ctx, seed, dropped)
        finally:
            job.cancelled.set()
            self._tracker.abort_all()  # no-op when the reader finished; else the server must stop
            with self._lock:
                if self._job is job:
                    self._job = None

    def _consume(
        self,
        job: _Job,
        tick: float | None,
        started: float,
        model: str,
        prompt_tokens: int,
        exact: bool,
        n_ctx: int,
        seed: int,
        dropped: int = 0,
    ) -> Iterator[p.PromptInfo | p.Waiting | p.Delta | p.Done | None]:
        first: float | None = None
        last = started
        count = 0
        usage: dict[str, Any] | None = None

        def stats(reason_usage: dict[str, Any] | None) -> dict[str, Any]:
            now = time.perf_counter()
            tokens = count
            prompt = prompt_tokens
            if reason_usage:
                tokens = int(reason_usage.get("completion_tokens") or tokens)
                prompt = int(reason_usage.get("prompt_tokens") or prompt)
            gen_time = (last - first) if first is not None else 0.0
            return {
                "tokens": tokens,
                "seconds": round(now - started, 3),
                "ttft": round(first - started, 3) if first is not None else None,
                # tokens after the first, over the time after the first: the streaming rate
                "tokens_per_s": round((tokens - 1) / gen_time, 2) if tokens > 1 and gen_time > 0 else None,
                "prompt_tokens": prompt,
                "prompt_counted_exactly": exact or bool(reason_usage and reason_usage.get("prompt_tokens")),
                "seed": seed,
                "dropped_turns": dropped,
                "endpoint": self.root,
                "remote_model": model,
            }

        while True:
            try:
                item = job.queue.get(timeout=tick) if tick is not None else job.queue.get()
            except queue.Empty:
                yield None
                continue
            if item is _CANCELLED or (job.cancelled.is_set() and not isinstance(item, _Finish)):
                yield p.Done("cancelled", stats(usage))
                return
            if isinstance(item, str):
                last = time.perf_counter()
                if first is None:
                    first = last
                count += 1
                yield p.Delta(item)
            elif isinstance(item, _Usage):
                usage = item.usage
            elif isinstance(item, p.Waiting):
                yield item
            elif isinstance(item, _Finish):
                usage = item.usage or usage
                if usage and usage.get("prompt_tokens") and (not exact or usage["prompt_tokens"] != prompt_tokens):
                    yield p.PromptInfo(int(usage["prompt_tokens"]), n_ctx, dropped, model, counted_exactly=True)
                yield p.Done(item.reason, stats(usage))
                return
            elif isinstance(item, RemoteError):
                if count and not isinstance(item, RemoteInterrupted):
                    raise RemoteInterrupted(
                        f"The reply from {self.host} was interrupted: {item} The text received so far is kept.",
                        item.status,
                    )
                raise item

    def _read_stream(self, job: _Job, kind: ServerKind, body: dict[str, Any]) -> None:
        """The reader thread: send the request (retrying 429s), parse the stream, queue what
        arrives: str deltas, _Usage, Waiting, then one _Finish or a RemoteError."""
        put = job.queue.put
        path = "/api/chat" if kind is ServerKind.OLLAMA else "/v1/chat/completions"
        model = str(body.get("model"))
        try:
            attempt = 0
            while True:
                if job.cancelled.is_set():
                    return
                if kind is not ServerKind.OLLAMA and not self._stream_options:
                    body.pop("stream_options", None)
                request = self._stream_http.build_request(
                    "POST", self.root + path, json=body, headers={"Accept": "text/event-stream"}
                )
                response = self._stream_http.send(request, stream=True)
                try:
                    if response.status_code == 429 and attempt < MAX_RETRIES_429:
                        response.read()
                        wait = parse_retry_after(response.headers.get("retry-after"))
                        wait = DEFAULT_RETRY_AFTER * (attempt + 1) if wait is None else wait
                        if wait > MAX_RETRY_AFTER:
                            put(
                                RemoteError(
                                    f"The server at {self.host} is busy and asks to wait {wait:.0f} s; try again later.",
                                    429,
                                )
                            )
                            return
                        attempt += 1
                        put(p.Waiting(wait, f"The server at {self.host} is busy; trying again in {wait:.0f} s."))
                        if job.cancelled.wait(wait):
                            return
                        continue
                    if response.status_code >= 400:
                        response.read()
                        if (
                            response.status_code in (400, 422)
                            and "stream_options" in body
                            and "stream_options" in response.text
                        ):
                            self._stream_options = False  # a strict server: ask again without it
                            continue
                        put(self._status_error(response, "answer", model=model))
                        return
                    if kind is ServerKind.OLLAMA:
                        self._read_ndjson(job, response)
                    else:
                        self._read_sse(job, response)
                    return
                finally:
                    response.close()
        except httpx2.HTTPError as exc:
            if not job.cancelled.is_set():
                put(self._transport_error(exc, "answer", streaming=True))
        except RemoteError as exc:
            put(exc)
        except Exception as exc:  # never die silently: chat() would wait forever
            if not job.cancelled.is_set():
                put(RemoteError(f"Talking to {self.host} failed: {self._clean(str(exc))}"))

    def _read_sse(self, job: _Job, response: httpx2.Response) -> None:
        put = job.queue.put
        parser = SSEParser()
        finish: str | None = None
        usage: dict[str, Any] | None = None
        for chunk in response.iter_bytes():
            for event in parser.feed(chunk):
                data = event.data.strip()
                if data == "[DONE]":
                    put(_Finish(finish or "stop", usage))
                    return
                try:
                    payload = json.loads(data)
                except ValueError:
                    raise RemoteError(
                        f"The server at {self.host} sent a reply Hearth cannot read (malformed event stream)."
                    ) from None
                if not isinstance(payload, dict):
                    raise RemoteError(
                        f"The server at {self.host} sent a reply Hearth cannot read (malformed event stream)."
                    )
                if "error" in payload:
                    raise RemoteError(f"The server at {self.host} stopped with an error: {self._error_text(payload)}")
                if isinstance(payload.get("usage"), dict):
                    usage = payload["usage"]
                    put(_Usage(usage))
                for choice in payload.get("choices") or []:
                    if not isinstance(choice, dict):
                        continue
                    delta = choice.get("delta") or {}
                    text = delta.get("content") if isinstance(delta, dict) else None
                    if isinstance(text, str) and text:
                        put(text)
                    if choice.get("finish_reason"):
                        finish = str(choice["finish_reason"])
            if job.cancelled.is_set():
                return
        parser.close()
        if finish is not None:  # some servers end without [DONE]
            put(_Finish(finish, usage))
            return
        raise RemoteError(f"The connection to {self.host} closed before the reply was finished.")

    def _read_ndjson(self, job: _Job, response: httpx2.Response) -> None:
        put = job.queue.put
        pending = bytearray()
        for chunk in response.iter_bytes():
            for line in iter_lines(chunk, pending):
                try:
                    payload = json.loads(line)
                except ValueError:
                    raise RemoteError(
                        f"The server at {self.host} sent a reply Hearth cannot read (malformed stream)."
                    ) from None
                if not isinstance(payload, dict):
                    raise RemoteError(f"The server at {self.host} sent a reply Hearth cannot read (malformed stream).")
                if "error" in payload:
                    raise RemoteError(f"The server at {self.host} stopped with an error: {self._error_text(payload)}")
                message = payload.get("message")
                text = message.get("content") if isinstance(message, dict) else None
                if isinstance(text, str) and text:
                    put(text)
                if payload.get("done"):
                    usage = {
                        "prompt_tokens": payload.get("prompt_eval_count"),
                        "completion_tokens": payload.get("eval_count"),
                    }
                    put(_Finish(str(payload.get("done_reason") or "stop"), usage))
                    return
            if job.cancelled.is_set():
                return
        raise RemoteError(f"The connection to {self.host} closed before the reply was finished.")

    # -- cancel and close --------------------------------------------------------------

    def cancel(self) -> None:
        """From any thread: the running chat returns Done("cancelled") at once and its
        connection is shut down so the server stops generating."""
        with self._lock:
            job = self._job
        if job is not None:
            job.cancelled.set()
            job.queue.put(_CANCELLED)
        self._tracker.abort_all()

    def close(self) -> None:
        self.cancel()
        self._http.close()
        self._stream_http.close()

    # -- plumbing ----------------------------------------------------------------------

    def _get(self, path: str, *, what: str, model: str | None = None) -> Any:
        return self._request("GET", path, None, what=what, model=model)

    def _post(self, path: str, body: dict[str, Any], *, what: str, model: str | None = None) -> Any:
        return self._request("POST", path, body, what=what, model=model)

    def _request(self, method: str, path: str, body: dict[str, Any] | None, *, what: str, model: str | None) -> Any:
        try:
            response = self._http.request(method, self.root + path, json=body)
        except httpx2.HTTPError as exc:
            raise self._transport_error(exc, what) from None
        if response.status_code >= 400:
            raise self._status_error(response, what, model=model)
        try:
            return response.json()
        except ValueError:
            raise RemoteError(
                f"The server at {self.host} sent a reply Hearth cannot read when asked to {what}."
            ) from None

    def _try_json(self, method: str, path: str) -> Any:
        """A detection request: its JSON, or None for any failure."""
        try:
            response = self._http.request(method, self.root + path)
            if response.status_code != 200:
                return None
            return response.json()
        except (httpx2.HTTPError, ValueError):
            return None

    def _status_error(self, response: httpx2.Response, what: str, *, model: str | None = None) -> RemoteError:
        code = response.status_code
        detail = self._error_text(_json_or_text(response))
        host = self.host
        if code in (401, 403):
            if self._key:
                message = (
                    f"The server at {host} refused the API key (HTTP {code}). Check the key in Models > Connections."
                )
            else:
                message = f"The server at {host} needs an API key (HTTP {code}). Add one in Models > Connections."
        elif code == 404:
            if model:
                message = f"The server at {host} has no model named “{model}” (HTTP 404)."
            else:
                message = (
                    f"The server at {host} could not {what}: it has no such address (HTTP 404). Is this the right URL?"
                )
        elif code == 429:
            message = f"The server at {host} is busy (HTTP 429) and did not free up after {MAX_RETRIES_429} tries; try again later."
        elif code >= 500:
            message = f"The server at {host} failed with an internal error (HTTP {code})" + (
                f": {detail}" if detail else "."
            )
        else:
            message = f"The server at {host} refused to {what} (HTTP {code})" + (f": {detail}" if detail else ".")
        return RemoteError(message, code)

    def _transport_error(self, exc: httpx2.HTTPError, what: str, streaming: bool = False) -> RemoteError:
        host = self.host
        if _is_tls_error(exc):
            return RemoteError(
                f"A secure connection to {host} could not be made (TLS: {self._clean(_root_cause(exc))}). "
                "Check the address (http or https) and the server's certificate."
            )
        if isinstance(exc, httpx2.ConnectTimeout):
            return RemoteError(f"{host} did not answer within {self.connect_timeout:g} s. Is the server running?")
        if isinstance(exc, httpx2.ConnectError):
            return RemoteError(
                f"Cannot reach {host} ({self._clean(_root_cause(exc))}). Is the server running and the address right?"
            )
        if isinstance(exc, httpx2.ReadTimeout):
            return RemoteError(
                f"{host} accepted the request but sent nothing for {self.read_timeout:g} s, so Hearth stopped waiting."
            )
        if isinstance(exc, (httpx2.RemoteProtocolError, httpx2.ReadError)) and streaming:
            return RemoteError(f"The connection to {host} broke ({self._clean(_root_cause(exc))}).")
        return RemoteError(f"Talking to {host} failed while trying to {what} ({self._clean(_root_cause(exc))}).")

    def _error_text(self, payload: Any) -> str:
        if isinstance(payload, dict):
            error = payload.get("error", payload.get("detail", payload.get("message")))
            if isinstance(error, dict):
                error = error.get("message") or error.get("msg") or json.dumps(error)
            elif isinstance(error, list):  # FastAPI's validation detail
                error = "; ".join(str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in error)
            text = str(error) if error is not None else ""
        else:
            text = str(payload or "")
        return self._clean(text)

    def _clean(self, text: str) -> str:
        """Server or library text made safe to show: no key, no control characters, short."""
        if self._key:
            text = text.replace(self._key, "***")
        text = logs.redact(" ".join(text.split()))
        return text if len(text) <= _ERROR_TEXT_LIMIT else text[: _ERROR_TEXT_LIMIT - 1] + "…"


def _json_or_text(response: httpx2.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:1000]


def _context_of(entry: Any) -> int | None:
    if not isinstance(entry, dict):
        return None
    for key in ("max_model_len", "loaded_context_length", "context_length", "max_context_length"):
        value = entry.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    meta = entry.get("meta")
    if isinstance(meta, dict):
        value = meta.get("n_ctx") or meta.get("n_ctx_train")
        if isinstance(value, int) and value > 0:
            return value
    return None


def _props_context(props: Any) -> int | None:
    if not isinstance(props, dict):
        return None
    for source in (props.get("default_generation_settings"), props):
        if isinstance(source, dict):
            value = source.get("n_ctx")
            if isinstance(value, int) and value > 0:
                return value
    return None


def _ollama_context(info: Any) -> int | None:
    if not isinstance(info, dict):
        return None
    model_info = info.get("model_info")
    if isinstance(model_info, dict):
        for key, value in model_info.items():
            if key.endswith(".context_length") and isinstance(value, int) and value > 0:
                return value
    return None


def _root_cause(exc: BaseException) -> str:
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        nxt = cause.__cause__ or cause.__context__
        assert nxt is not None
        cause = nxt
    if isinstance(cause, ssl.SSLError):
        return cause.reason or str(cause)
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(cause) or type(cause).__name__


def _is_tls_error(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError) or "SSL" in str(cause) or "CERTIFICATE" in str(cause):
            return True
        cause = cause.__cause__ or cause.__context__
    return False
