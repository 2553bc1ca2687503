"""A small OpenAI-compatible server on 127.0.0.1 that misbehaves on command, and impersonates
the kinds of server Hearth recognises (for kind detection and their native routes).

``FakeOpenAI(kind="openai"|"llama.cpp"|"vllm"|"ollama"|"lmstudio", api_key=None)``; set
``mode`` before a chat request:

* ``"ok"``           streams ``pieces`` then ``[DONE]`` (with usage when stream_options asks)
* ``"keepalive"``    the same with comments, CRLF line ends and a two-line data event between
* ``"cut"``          streams two pieces then closes the connection mid-reply
* ``"bad_sse"``      streams a piece then an event that is not JSON
* ``"429"``          answers 429 with ``Retry-After: retry_after`` ``fail_times`` times, then "ok"
* ``"silent"``       reads the request and never answers (not even headers)
* ``"silent_stream"`` sends headers and one piece, then nothing
* ``"slow"``         a piece every 50 ms for ever, until the client leaves (``disconnected`` is set)
* ``"500"``          an internal error
* ``"strict"``       400 when the body has ``stream_options`` (then "ok")

Every request is logged in ``requests`` as (method, path, headers, json body or None).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self, kind: str = "openai", api_key: str | None = None, tls: ssl.SSLContext | None = None) -> None:
        """``tls``: a server-side context (a test CA's certificate): the fake then speaks HTTPS."""
        self.kind = kind
        self.api_key = api_key
        self.models = ["fake-model"]
        self.context_length = 2048
        self.pieces = ["Hello", ",", " world", "!"]
        self.mode = "ok"
        self.retry_after = "1"
        self.fail_times = 1
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.disconnected = threading.Event()
        self.release = threading.Event()  # ends "silent" handlers when the test is over
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def chat_bodies(self) -> list[Any]:
        return [body for _, path, _, body in self.requests if path in ("/v1/chat/completions", "/api/chat")]

    # -- routes ------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        path = h.path.split("?")[0]
        self.requests.append((method, path, dict(h.headers), body))
        if self.api_key is not None and h.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _json(h, 401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
        kind = self.kind
        if method == "GET" and path == "/v1/models":
            data = [{"id": m, "object": "model"} for m in self.models]
            if kind == "vllm":
                data = [dict(d, max_model_len=self.context_length) for d in data]
            return _json(h, 200, {"object": "list", "data": data})
        if method == "POST" and path == "/v1/chat/completions":
            return self._chat(h, body)
        if kind == "llama.cpp":
            if path == "/props":
                return _json(
                    h, 200, {"default_generation_settings": {"n_ctx": self.context_length}, "build_info": "b1234-abc"}
                )
            if path == "/apply-template":
                text = "".join(f"<|{m['role']}|>{m['content']}" for m in body["messages"]) + "<|assistant|>"
                return _json(h, 200, {"prompt": text})
            if path == "/tokenize":
                # a token per word and per role marker: enough to fill a small context
                pieces = body["content"].replace("|", " | ").split()
                return _json(h, 200, {"tokens": list(range(len(pieces)))})
        if kind == "vllm":
            if path == "/version":
                return _json(h, 200, {"version": "0.9.1"})
            if path == "/tokenize":
                return _json(h, 200, {"count": 42, "max_model_len": self.context_length, "tokens": [1] * 42})
        if kind == "lmstudio" and path.startswith("/api/v0/models"):
            entries = [{"id": m, "type": "llm", "max_context_length": self.context_length} for m in self.models]
            if path == "/api/v0/models":
                return _json(h, 200, {"object": "list", "data": entries})
            return _json(h, 200, entries[0])
        if kind == "ollama":
            if path == "/api/version":
                return _json(h, 200, {"version": "0.6.2"})
            if path == "/api/tags":
                return _json(h, 200, {"models": [{"name": m, "model": m} for m in self.models]})
            if path == "/api/show":
                if body.get("model") not in self.models:
                    return _json(h, 404, {"error": f"model '{body.get('model')}' not found"})
                return _json(h, 200, {"model_info": {"llama.context_length": self.context_length}})
            if path == "/api/chat":
                return self._ollama_chat(h, body)
        return _json(h, 404, {"error": {"message": f"no route {path}"}})

    def _chat(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        mode = self.mode
        if body.get("model") not in self.models:
            return _json(h, 404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
        if mode == "429":
            if self.fail_times > 0:
                self.fail_times -= 1
                return _json(h, 429, {"error": {"message": "Rate limit"}}, {"Retry-After": self.retry_after})
            mode = "ok"
        if mode == "strict":
            if "stream_options" in body:
                return _json(h, 400, {"error": {"message": "Unrecognized request argument: stream_options"}})
            mode = "ok"
        if mode == "500":
            return _json(h, 500, {"error": {"message": "CUDA out of memory"}})
        if mode == "silent":
            self.release.wait(30)
            return
        _start_stream(h, "text/event-stream")
        try:
            if mode == "slow":
                while not self.release.is_set():
                    _chunk(h, _sse(_delta("tok ")))
                    time.sleep(0.05)
                return
            for i, piece in enumerate(self.pieces):
                if mode == "cut" and i == 2:
                    h.wfile.flush()
                    h.close_connection = True
                    h.connection.shutdown(socket.SHUT_RDWR)  # close() would wait for rfile/wfile
                    return
                if mode == "keepalive":
                    _chunk(h, b": keep-alive\r\n\r\n")
                    line = json.dumps(_delta(piece))
                    _chunk(h, b"data: " + line[:1].encode() + b"\r\ndata:" + line[1:].encode() + b"\r\n\r\n")
                    continue
                if mode == "bad_sse" and i == 1:
                    _chunk(h, b"data: {this is not json\n\n")
                    continue
                _chunk(h, _sse(_delta(piece)))
                if mode == "silent_stream":
                    self.release.wait(30)
                    return
            _chunk(h, _sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {
                    "prompt_tokens": 17,
                    "completion_tokens": len(self.pieces),
                    "total_tokens": 17 + len(self.pieces),
                }
                _chunk(h, _sse({"choices": [], "usage": usage}))
            _chunk(h, b"data: [DONE]\n\n")
            _chunk(h, b"")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):  # SSLEOFError under TLS
            self.disconnected.set()

    def _ollama_chat(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        if body.get("model") not in self.models:
            return _json(h, 404, {"error": f"model '{body.get('model')}' not found"})
        _start_stream(h, "application/x-ndjson")
        for piece in self.pieces:
            _chunk(h, json.dumps({"message": {"role": "assistant", "content": piece}, "done": False}).encode() + b"\n")
        final = {"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"}
        final.update(prompt_eval_count=11, eval_count=len(self.pieces))
        _chunk(h, json.dumps(final).encode() + b"\n")
        _chunk(h, b"")


def _delta(text: str) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _json(h: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
    data = json.dumps(payload).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        h.send_header(name, value)
    h.end_headers()
    h.wfile.write(data)


def _start_stream(h: BaseHTTPRequestHandler, content_type: str) -> None:
    h.send_response(200)
    h.send_header("Content-Type", content_type)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    h.wfile.flush()


def _chunk(h: BaseHTTPRequestHandler, data: bytes) -> None:
    """One HTTP chunk (empty: the last one)."""
    h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    h.wfile.flush()
