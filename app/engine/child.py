"""The engine child process: the only code that imports llama_cpp and owns a ``Llama``.

It runs in its own process so that a native crash (a GGML_ASSERT abort on a crafted file,
SIGILL, out of memory) ends this process only; the window survives and reports it.
"""

from __future__ import annotations

import os
import signal
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

from app.core.settings import SamplingSettings
from app.engine import protocol as p
from app.engine.params import apply_sampler_attributes, completion_kwargs, llama_kwargs


def main(conn: Connection, cancel: Event) -> None:
    """Serve requests until Shutdown or until the parent goes away."""
    # Ctrl+C in a terminal belongs to the GUI process, which shuts us down in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import llama_cpp  # noqa: PLC0415 - deliberately imported only in the child

    conn.send(p.Ready(pid=os.getpid(), llama_cpp_version=llama_cpp.__version__))
    server = _Server(conn, cancel)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            break  # the parent died or closed the pipe: nothing left to serve
        if isinstance(request, p.Shutdown):
            break
        try:
            server.handle(request)
        except (BrokenPipeError, EOFError, OSError):
            break
    server.close()


class _Server:
    def __init__(self, conn: Connection, cancel: Event) -> None:
        self.conn = conn
        self.cancel = cancel
        self.llm: Any = None
        self.model_path: str | None = None

    def close(self) -> None:
        if self.llm is not None:
            self.llm.close()
            self.llm = None
            self.model_path = None

    def handle(self, request: object) -> None:
        if isinstance(request, p.Load):
            self.load(request)
        elif isinstance(request, p.Chat):
            self.chat(request)
        elif isinstance(request, p.Tokenize):
            self.tokenize(request)
        elif isinstance(request, p.Unload):
            self.close()
            self.conn.send(p.Unloaded())
        elif isinstance(request, p.Status):
            n_ctx = self.llm.n_ctx() if self.llm is not None else None
            self.conn.send(p.StatusInfo(self.model_path, n_ctx))
        else:
            self.conn.send(p.Error("request", f"Unknown request {type(request).__name__}"))

    def load(self, request: p.Load) -> None:
        from llama_cpp import Llama  # noqa: PLC0415

        self.close()  # free the old model first: two large models may not fit in RAM
        started = time.perf_counter()
        try:
            llm = Llama(**llama_kwargs(request))
        except Exception as exc:  # llama-cpp-python raises ValueError/RuntimeError with terse text
            name = os.path.basename(request.model_path)
            self.conn.send(p.Error("load", f"{name}: llama.cpp could not load this model ({exc})."))
            return
        self.llm = llm
        self.model_path = request.model_path
        from_gguf = "tokenizer.chat_template" in llm.metadata
        self.conn.send(
            p.Loaded(
                model_path=request.model_path,
                n_ctx=llm.n_ctx(),
                n_ctx_train=llm.n_ctx_train() if hasattr(llm, "n_ctx_train") else llm.n_ctx(),
                chat_format=llm.chat_format or ("gguf template" if from_gguf else "unknown"),
                template_from_gguf=from_gguf,
                load_seconds=time.perf_counter() - started,
            )
        )

    def chat(self, request: p.Chat) -> None:
        if self.llm is None:
            self.conn.send(p.Error("chat", "No model is loaded."))
            return
        settings = SamplingSettings.from_dict(request.settings)
        problems = settings.validate(self.llm.n_ctx())
        if problems:
            self.conn.send(p.Error("chat", " ".join(pr.message for pr in problems)))
            return
        kwargs = completion_kwargs(settings)
        apply_sampler_attributes(self.llm, settings)
        started = time.perf_counter()
        first: float | None = None
        pieces: list[str] = []
        reason = "stop"
        try:
            stream = self.llm.create_chat_completion(messages=request.messages, stream=True, **kwargs)
            for chunk in stream:
                if self.cancel.is_set():
                    reason = "cancelled"
                    break
                choice = chunk["choices"][0]
                text = choice.get("delta", {}).get("content")
                if text:
                    if first is None:
                        first = time.perf_counter()
                    pieces.append(text)
                    self.conn.send(p.Delta(text))
                if choice.get("finish_reason"):
                    reason = choice["finish_reason"]
            stream.close()
        except (BrokenPipeError, EOFError):
            raise
        except Exception as exc:
            if pieces and self.llm.n_tokens >= self.llm.n_ctx() - 1:
                reason = "context_full"  # llama_decode has no room left: the reply is over
            else:
                self.conn.send(p.Error("chat", f"Generation failed: {exc}"))
                return
        elapsed = time.perf_counter() - started
        text = "".join(pieces)
        n_tokens = len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)) if text else 0
        gen_time = elapsed - ((first - started) if first else 0.0)
        stats = {
            "tokens": n_tokens,
            "seconds": round(elapsed, 3),
            "ttft": round(first - started, 3) if first else None,
            "tokens_per_s": round(n_tokens / gen_time, 2) if n_tokens > 1 and gen_time > 0 else None,
            "seed": kwargs["seed"],
        }
        self.conn.send(p.Done(reason, stats))

    def tokenize(self, request: p.Tokenize) -> None:
        if self.llm is None:
            self.conn.send(p.Error("request", "No model is loaded."))
            return
        tokens = self.llm.tokenize(request.text.encode("utf-8"), add_bos=False, special=True)
        self.conn.send(p.TokenCount(len(tokens)))
