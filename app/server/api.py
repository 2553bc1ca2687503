"""The OpenAI-compatible HTTP API as a Starlette app: requests become engine jobs.

Endpoints (OpenAI's shapes): ``GET /v1/models`` (``/v1/models/{id}``), ``POST
/v1/chat/completions`` and ``POST /v1/completions`` (streamed as server-sent events ending with
``data: [DONE]``, or whole), ``POST /v1/embeddings``. Errors are OpenAI's error JSON with the
status that fits; bad input is a 400, never a 500, and no response carries a file path, a
traceback or the engine's internal error text (those go to the log).

The app never owns a model: it submits :class:`~app.engine.jobs.JobRequest` to an
:class:`~app.engine.jobs.EngineGateway` and reads the job's events on its own asyncio loop.
A client that goes away (before the reply starts, while it streams, or while waiting for a
whole reply) has its job cancelled at once.

Safety: a key, when set, is required on every request but CORS preflights (compared with
``hmac.compare_digest``); a request from a browser origin that is not allowed is refused
(403), so a web page cannot make a local model work for it; bodies, max_tokens, messages and
embedding inputs have limits (see :class:`~app.server.schemas.Limits`).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import math
import re
import struct
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.engine import protocol as p
from app.engine.jobs import (
    Embedded,
    EngineGateway,
    Job,
    JobEvent,
    JobFailed,
    JobRequest,
    ModelEntry,
    QueueFull,
    UnknownModel,
)
from app.server import schemas
from app.server.schemas import ApiError, Limits

log = logging.getLogger(__name__)

T = TypeVar("T")

CLIENT_GONE = 499  # the log's status for a client that left before its reply was complete (nginx's)
PING_SECONDS = 15  # an SSE comment while the engine is busy elsewhere keeps proxies from timing out


@dataclass(frozen=True)
class RequestLogEntry:
    """One line of the request log (the server panel's table, ``hearth serve``'s stdout)."""

    time: float  # time.time() when the request came in
    client: str  # "host:port"
    method: str
    endpoint: str  # the path, e.g. /v1/chat/completions
    model: str  # the model that answered ("" when none did)
    status: int  # the HTTP status; 499: the client left before the end
    prompt_tokens: int = 0
    tokens: int = 0  # generated (or embedded) tokens
    tokens_per_s: float | None = None
    seconds: float = 0.0  # request in to reply out

    def line(self) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.time))
        rate = f"{self.tokens_per_s:.1f} tok/s" if self.tokens_per_s else "-"
        return (
            f"{stamp} {self.client} {self.method} {self.endpoint} {self.status} "
            f"model={self.model or '-'} tokens={self.tokens} {rate} {self.seconds:.2f}s"
        )


# -- errors ----------------------------------------------------------------------------------

_PATH = re.compile(r"""(?:[A-Za-z]:)?[\\/](?:[^\s\\/'"“”()<>]+[\\/])+([^\s\\/'"“”()<>]+)""")


def public_text(text: str) -> str:
    """``text`` with every file path shortened to its last part (a model's file name is
    public on /v1/models; the folders it lives in are not)."""
    return _PATH.sub(r"\1", text)


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def from_job_failed(failed: JobFailed) -> ApiError:
    if failed.status == 503:  # the engine is not ready (no model, crashed): the service's own words
        return ApiError(503, public_text(failed.message), type="server_error", code="engine_unavailable")
    if failed.status >= 500 or failed.status < 400:
        log.warning("API job failed: %s", failed.message)
        return ApiError(500, "The engine could not complete this request.", type="server_error", code="engine_error")
    kind = {429: "rate_limit_exceeded", 404: "model_not_found", 503: "engine_unavailable"}.get(failed.status)
    return ApiError(failed.status, public_text(failed.message), code=kind)


def queue_full(exc: QueueFull) -> ApiError:
    seconds = max(1, math.ceil(exc.retry_after))
    return ApiError(
        429,
        public_text(str(exc)) or "The engine is busy; try again shortly.",
        type="rate_limit_error",
        code="rate_limit_exceeded",
        headers={"Retry-After": str(seconds)},
    )


def unknown_model(exc: UnknownModel) -> ApiError:
    available = ", ".join(public_text(m) for m in exc.available) or "none"
    return ApiError(
        404,
        f"The model '{public_text(exc.model)[:200]}' does not exist or cannot be loaded here. Available: {available}.",
        param="model",
        code="model_not_found",
    )


# -- middleware ------------------------------------------------------------------------------


class Guard:
    """Key check and browser-origin check, before anything reads the body.

    CORS preflights (OPTIONS) pass without a key: browsers never send credentials on them,
    and the CORS middleware outside this one answers them. A request that carries an
    ``Origin`` not in the allowed list is refused: no CORS headers alone would stop a page
    from making the engine generate (a "simple" request is sent before the browser checks).
    """

    def __init__(
        self,
        app: ASGIApp,
        api_key: str | None,
        cors_origins: Sequence[str],
        on_request: Callable[[RequestLogEntry], None] | None = None,
    ) -> None:
        self.app = app
        self.key = api_key.encode("utf-8") if api_key else None
        self.origins = set(cors_origins)
        self.on_request = on_request

    async def _refuse(self, error: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
        if self.on_request is not None:  # refusals show in the log too: someone is knocking
            client = scope.get("client")
            entry = RequestLogEntry(
                time=time.time(),
                client=f"{client[0]}:{client[1]}" if client else "",
                method=scope["method"],
                endpoint=scope["path"],
                model="",
                status=error.status,
            )
            try:
                self.on_request(entry)
            except Exception:
                log.exception("request log callback failed")
        await error_response(error)(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        origin = headers.get("origin")
        if origin is not None and "*" not in self.origins and origin.decode("latin-1") not in self.origins:
            error = ApiError(403, "Requests from this web page are not allowed.", code="origin_not_allowed")
            await self._refuse(error, scope, receive, send)
            return
        if self.key is not None and scope["method"] != "OPTIONS" and not self._authorized(headers):
            error = ApiError(
                401,
                "Missing or wrong API key: send it as 'Authorization: Bearer <key>'.",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
            await self._refuse(error, scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorized(self, headers: dict[str, bytes]) -> bool:
        assert self.key is not None
        given = headers.get("authorization", b"")
        scheme, _, token = given.partition(b" ")
        if scheme.lower() != b"bearer":
            token = headers.get("x-api-key", b"")  # some clients send the key this way
        # compare_digest on equal-length digests would hide the length too; a key's length is
        # not the secret, and compare_digest already takes time independent of the content.
        return hmac.compare_digest(token.strip(), self.key)


# -- the app ---------------------------------------------------------------------------------


@dataclass
class _Call:
    """What one request did, for the log."""

    request: Request
    started: float = field(default_factory=time.perf_counter)
    wall: float = field(default_factory=time.time)
    model: str = ""
    status: int = 200
    prompt_tokens: int = 0
    tokens: int = 0
    tokens_per_s: float | None = None

    def entry(self) -> RequestLogEntry:
        client = self.request.client
        return RequestLogEntry(
            time=self.wall,
            client=f"{client.host}:{client.port}" if client else "",
            method=self.request.method,
            endpoint=self.request.url.path,
            model=self.model,
            status=self.status,
            prompt_tokens=self.prompt_tokens,
            tokens=self.tokens,
            tokens_per_s=self.tokens_per_s,
            seconds=round(time.perf_counter() - self.started, 3),
        )


class _ClientGone(Exception):
    pass


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class EventStream(Response):
    """Server-sent events from an async iterator of JSON texts, each sent as ``data: …``.

    Sends each event as it comes (no buffering) and, at the same time, listens for the
    client's disconnect: when it goes, the iterator is cancelled at once (its ``finally``
    cancels the engine job) even while it waits for the engine. A comment line every
    ``ping`` seconds of silence keeps proxies from closing a stream that waits in the queue.
    Written here rather than taken from sse-starlette: per event it costs about half as
    much CPU, which matters on a machine whose cores are all generating.
    """

    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[str], ping: float | None = None) -> None:
        super().__init__(
            None,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            media_type=self.media_type,
        )
        # no Content-Length: the body is chunked, and it ends when the reply does
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.events = events
        self.ping = PING_SECONDS if ping is None else ping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lock = asyncio.Lock()
        last = [time.monotonic()]

        async def pump() -> None:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for text in self.events:
                async with lock:
                    await send(
                        {"type": "http.response.body", "body": b"data: " + text.encode() + b"\n\n", "more_body": True}
                    )
                    last[0] = time.monotonic()
            async with lock:
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def keep_alive() -> None:
            while True:
                await asyncio.sleep(max(0.05, self.ping - (time.monotonic() - last[0])))
                if time.monotonic() - last[0] >= self.ping:
                    async with lock:
                        await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
                        last[0] = time.monotonic()

        tasks = [asyncio.ensure_future(pump()), asyncio.ensure_future(_wait_disconnect(receive))]
        if self.ping > 0:
            tasks.append(asyncio.ensure_future(keep_alive()))
        try:
            done, _ = await asyncio.wait(tasks[:2], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            close = getattr(self.events, "aclose", None)
            if close is not None:  # suspended at a yield when the client left: run its cleanup now
                await close()
        sender = tasks[0]
        if sender in done and not sender.cancelled() and (error := sender.exception()) is not None:
            raise error


class Api:
    def __init__(
        self,
        gateway: EngineGateway,
        limits: Limits,
        on_request: Callable[[RequestLogEntry], None] | None,
    ) -> None:
        self.gateway = gateway
        self.limits = limits
        self.on_request = on_request
        self.active: set[Job] = set()  # jobs of requests in progress (stop() cancels them)

    def cancel_all(self) -> None:
        """Cancel every job in progress (the server is stopping); thread-safe."""
        for job in list(self.active):
            job.cancel()

    # -- plumbing ----------------------------------------------------------------------------

    def _log(self, call: _Call) -> None:
        if self.on_request is None:
            return
        try:
            self.on_request(call.entry())
        except Exception:
            log.exception("request log callback failed")

    async def _json(self, request: Request) -> Any:
        length = request.headers.get("content-length")
        limit = self.limits.max_body
        too_large = ApiError(413, f"The request body is larger than {limit:,} bytes.", code="request_too_large")
        if length is not None:
            try:
                if int(length) > limit:
                    raise too_large
            except ValueError:
                raise schemas.invalid("Bad Content-Length header.") from None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            raise schemas.invalid("The request body is empty; send a JSON object.", None, "invalid_json")
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
            raise schemas.invalid(f"The request body is not valid JSON{where}.", None, "invalid_json") from None

    def _client(self, request: Request) -> str:
        return f"{request.client.host}:{request.client.port}" if request.client else ""

    async def _submit(self, job: JobRequest) -> Job:
        try:
            submitted = await run_in_threadpool(self.gateway.submit, job)
        except QueueFull as exc:
            raise queue_full(exc) from None
        except UnknownModel as exc:
            raise unknown_model(exc) from None
        self.active = {j for j in self.active if not j.finished.is_set()}
        self.active.add(submitted)
        return submitted

    async def _guarded(self, request: Request, job: Job, work: Awaitable[T]) -> T:
        """``work``'s result, unless the client disconnects first: then the job is cancelled
        at once and _ClientGone is raised."""
        task = asyncio.ensure_future(work)
        watcher = asyncio.ensure_future(_wait_disconnect(request.receive))
        try:
            await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            job.cancel()
            task.cancel()
            watcher.cancel()
            raise
        if task.done():
            watcher.cancel()
            return task.result()
        job.cancel()
        task.cancel()
        raise _ClientGone

    async def _model_name(self, requested: str | None, answered: str) -> str:
        """The name a response carries: the model the client asked for, else the one that
        answered as /v1/models lists it (never its folder)."""
        if requested:
            return requested
        try:
            entries: list[ModelEntry] = await run_in_threadpool(self.gateway.models)
        except Exception:
            entries = []
        if answered:
            base = public_text(answered)
            stem = base.rsplit(".", 1)[0] if base.lower().endswith(".gguf") else base
            for entry in entries:
                if answered in (entry.id, entry.name) or entry.id in (base, stem) or entry.name in (base, stem):
                    return entry.id
            return base
        for entry in entries:
            if entry.loaded:
                return entry.id
        return "hearth"

    async def _run(self, request: Request, call: _Call, handler: Callable[[], Awaitable[Response]]) -> Response:
        try:
            response = await handler()
        except ApiError as error:
            call.status = error.status
            self._log(call)
            return error_response(error)
        except _ClientGone:
            call.status = CLIENT_GONE
            self._log(call)
            return Response(status_code=CLIENT_GONE)
        if not isinstance(response, EventStream):  # a stream logs itself when it ends
            call.status = response.status_code
            self._log(call)
        return response

    # -- endpoints ---------------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        call = _Call(request)

        async def handle() -> Response:
            entries: list[ModelEntry] = await run_in_threadpool(self.gateway.models)
            return JSONResponse({"object": "list", "data": [self._model_json(e) for e in entries]})

        return await self._run(request, call, handle)

    async def model(self, request: Request) -> Response:
        call = _Call(request)
        wanted = request.path_params["model"]

        async def handle() -> Response:
            entries: list[ModelEntry] = await run_in_threadpool(self.gateway.models)
            for entry in entries:
                if entry.id == wanted:
                    return JSONResponse(self._model_json(entry))
            raise unknown_model(UnknownModel(wanted, [e.id for e in entries]))

        return await self._run(request, call, handle)

    @staticmethod
    def _model_json(entry: ModelEntry) -> dict[str, Any]:
        return {
            "id": public_text(entry.id),
            "object": "model",
            "created": 0,
            "owned_by": entry.owned_by,
            "name": public_text(entry.name),
            "loaded": entry.loaded,  # Hearth's extra: the model in memory now
        }

    async def chat_completions(self, request: Request) -> Response:
        return await self._generate(request, chat=True)

    async def completions(self, request: Request) -> Response:
        return await self._generate(request, chat=False)

    async def _generate(self, request: Request, *, chat: bool) -> Response:
        call = _Call(request)

        async def handle() -> Response:
            body = await self._json(request)
            parse = schemas.chat_request if chat else schemas.completion_request
            parsed = parse(body, self.limits, self._client(request))
            call.model = parsed.model or ""
            job = await self._submit(parsed.job)
            events = job.aevents()
            try:
                first = await self._guarded(request, job, anext(events))
            except StopAsyncIteration:
                raise ApiError(500, "The engine ended the job without a reply.", type="server_error") from None
            if isinstance(first, JobFailed):
                raise from_job_failed(first)
            reply = _Reply(chat=chat, requested=parsed.model, include_usage=parsed.include_usage)
            if isinstance(first, p.PromptInfo):
                reply.prompt_tokens = first.prompt_tokens
            call.model = reply.model = await self._model_name(
                parsed.model, first.model_path if isinstance(first, p.PromptInfo) else ""
            )
            if parsed.stream:
                return EventStream(self._stream(call, job, first, events, reply))
            return await self._guarded(request, job, self._whole(call, first, events, reply))

        return await self._run(request, call, handle)

    async def _whole(self, call: _Call, first: JobEvent, events: AsyncIterator[JobEvent], reply: _Reply) -> Response:
        event: JobEvent | None = first
        while event is not None:
            if isinstance(event, JobFailed):
                raise from_job_failed(event)
            reply.take(event)
            if isinstance(event, p.Done):
                break
            event = await anext(events, None)
        reply.fill(call)
        return JSONResponse(reply.whole())

    async def _stream(
        self, call: _Call, job: Job, first: JobEvent, events: AsyncIterator[JobEvent], reply: _Reply
    ) -> AsyncIterator[str]:
        call.status = 200
        try:
            if reply.chat:
                yield json.dumps(reply.chunk_start(), ensure_ascii=False)
            event: JobEvent | None = first
            while event is not None:
                if isinstance(event, JobFailed):
                    error = from_job_failed(event)
                    call.status = error.status
                    yield json.dumps(error.body(), ensure_ascii=False)
                    break
                reply.take(event)
                if isinstance(event, p.Delta) and event.text:
                    yield json.dumps(reply.chunk(event.text), ensure_ascii=False)
                if isinstance(event, p.Done):
                    yield json.dumps(reply.chunk_end(), ensure_ascii=False)
                    if reply.include_usage:
                        yield json.dumps(reply.chunk_usage(), ensure_ascii=False)
                    break
                event = await anext(events, None)
            yield "[DONE]"
        except BaseException:  # cancelled: the client went away (or the server is stopping)
            call.status = CLIENT_GONE
            raise
        finally:
            if not job.finished.is_set():
                job.cancel()
            reply.fill(call)
            self._log(call)

    async def embeddings(self, request: Request) -> Response:
        call = _Call(request)

        async def handle() -> Response:
            body = await self._json(request)
            parsed = schemas.embedding_request(body, self.limits, self._client(request))
            call.model = parsed.model or ""
            job = await self._submit(parsed.job)

            async def result() -> JobEvent | None:
                event: JobEvent | None = None
                async for event in job.aevents():
                    if isinstance(event, (Embedded, JobFailed)):
                        return event
                return event

            event = await self._guarded(request, job, result())
            if isinstance(event, JobFailed):
                raise from_job_failed(event)
            if not isinstance(event, Embedded):
                raise ApiError(500, "The engine ended the job without vectors.", type="server_error")
            dimensions = parsed.extra.get("dimensions")
            if dimensions is not None and event.vectors and dimensions != len(event.vectors[0]):
                raise schemas.invalid(
                    f"This model makes {len(event.vectors[0])}-dimensional vectors; 'dimensions' must be that or absent.",
                    "dimensions",
                )
            model = await self._model_name(None, event.model) if event.model else (parsed.model or "")
            call.model = model
            call.tokens = event.tokens
            base64_ = parsed.extra.get("encoding_format") == "base64"
            data = [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": _b64(vector) if base64_ else [float(x) for x in vector],
                }
                for i, vector in enumerate(event.vectors)
            ]
            usage = {"prompt_tokens": event.tokens, "total_tokens": event.tokens}
            return JSONResponse({"object": "list", "data": data, "model": model, "usage": usage})

        return await self._run(request, call, handle)


def _b64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


FINISH = {"stop": "stop", "length": "length", "context_full": "length", "cancelled": "stop"}


@dataclass
class _Reply:
    """A reply being put together from a job's events, in OpenAI's shapes."""

    chat: bool
    requested: str | None
    include_usage: bool
    model: str = ""
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))
    parts: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    tokens: int | None = None
    deltas: int = 0
    tokens_per_s: float | None = None
    finish: str = "stop"

    def __post_init__(self) -> None:
        prefix = "chatcmpl-" if self.chat else "cmpl-"
        self.id = prefix + uuid.uuid4().hex[:24]

    def take(self, event: JobEvent) -> None:
        if isinstance(event, p.PromptInfo):
            self.prompt_tokens = event.prompt_tokens
        elif isinstance(event, p.Delta):
            self.parts.append(event.text)
            self.deltas += 1
        elif isinstance(event, p.Done):
            self.finish = FINISH.get(event.reason, "stop")
            stats = event.stats or {}
            if isinstance(stats.get("tokens"), int):
                self.tokens = stats["tokens"]
            if isinstance(stats.get("prompt_tokens"), int) and stats["prompt_tokens"]:
                self.prompt_tokens = stats["prompt_tokens"]
            rate = stats.get("tokens_per_s")
            self.tokens_per_s = float(rate) if isinstance(rate, (int, float)) else None

    @property
    def completion_tokens(self) -> int:
        # a job cut short may report 0 tokens; each delta held at least one
        return self.tokens if self.tokens else self.deltas

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def fill(self, call: _Call) -> None:
        call.prompt_tokens = self.prompt_tokens
        call.tokens = self.completion_tokens
        call.tokens_per_s = self.tokens_per_s

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def whole(self) -> dict[str, Any]:
        text = "".join(self.parts)
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": self.finish,
            }
            return {**self._head("chat.completion"), "choices": [choice], "usage": self.usage()}
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": self.finish}
        return {**self._head("text_completion"), "choices": [choice], "usage": self.usage()}

    def _chunk(self, delta: dict[str, Any] | None, text: str | None, finish: str | None) -> dict[str, Any]:
        if self.chat:
            choice: dict[str, Any] = {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}
            chunk = {**self._head("chat.completion.chunk"), "choices": [choice]}
        else:
            choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
            chunk = {**self._head("text_completion"), "choices": [choice]}
        if self.include_usage:
            chunk["usage"] = None  # as OpenAI: every chunk has it, null until the last
        return chunk

    def chunk_start(self) -> dict[str, Any]:
        return self._chunk({"role": "assistant", "content": ""}, None, None)

    def chunk(self, text: str) -> dict[str, Any]:
        return self._chunk({"content": text}, text, None)

    def chunk_end(self) -> dict[str, Any]:
        return self._chunk({}, "", self.finish)

    def chunk_usage(self) -> dict[str, Any]:
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        return {**self._head(kind), "choices": [], "usage": self.usage()}


def create_app(
    gateway: EngineGateway,
    *,
    api_key: str | None = None,
    cors_origins: Sequence[str] = (),
    max_body: int = Limits.max_body,
    max_tokens_cap: int = Limits.max_tokens_cap,
    max_messages: int = Limits.max_messages,
    on_request: Callable[[RequestLogEntry], None] | None = None,
) -> Starlette:
    """The API app. ``cors_origins``: browser origins allowed to call it (none by default;
    "*" for any). ``on_request`` is called on the server's thread after each request."""
    limits = Limits(max_body=max_body, max_tokens_cap=max_tokens_cap, max_messages=max_messages)
    api = Api(gateway, limits, on_request)
    origins = list(cors_origins)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        if status == 405:
            error = ApiError(405, f"{request.method} is not allowed on {request.url.path}.", code="method_not_allowed")
        elif status == 404:
            error = ApiError(404, f"There is no endpoint {request.url.path[:200]}.", code="unknown_url")
        else:
            error = ApiError(status, "The request could not be handled.")
        return error_response(error)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("API request %s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(ApiError(500, "The server could not handle this request.", type="server_error"))

    middleware = []
    if origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["*"],
                expose_headers=["Retry-After"],
                max_age=600,
            )
        )
    middleware.append(Middleware(Guard, api_key=api_key, cors_origins=origins, on_request=on_request))
    routes = [
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/v1/models/{model:path}", api.model, methods=["GET"]),
        Route("/v1/chat/completions", api.chat_completions, methods=["POST"]),
        Route("/v1/completions", api.completions, methods=["POST"]),
        Route("/v1/embeddings", api.embeddings, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: not_found, Exception: server_error},
    )
    app.state.api = api
    return app
