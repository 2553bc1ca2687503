"""The engine child process: the only code that imports llama_cpp and owns a ``Llama``.

It runs in its own process so that a native crash (a GGML_ASSERT abort on a crafted file,
SIGILL, out of memory) ends this process only; the window survives and reports it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

from app.core import response_format as rf
from app.core.chat_templates import known_template
from app.core.load_options import PROMPT_LOOKUP_NGRAM, PROMPT_LOOKUP_TOKENS
from app.core.settings import SamplingSettings
from app.engine import protocol as p
from app.engine.params import (
    apply_sampler_attributes,
    completion_kwargs,
    default_load_options,
    describe_load_options,
    grammar_spec,
    llama_kwargs,
    thread_kwargs,
)
from app.engine.stops import StopMatcher
from app.engine.vision import NO_VISION, has_images, text_only, with_markers


def main(conn: Connection, cancel: Event) -> None:
    """Serve requests until Shutdown or until the parent goes away."""
    # Ctrl+C in a terminal belongs to the GUI process, which shuts us down in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import llama_cpp  # noqa: PLC0415 - deliberately imported only in the child

    try:
        gpu = bool(llama_cpp.llama_supports_gpu_offload())
    except Exception:
        gpu = False
    conn.send(p.Ready(pid=os.getpid(), llama_cpp_version=llama_cpp.__version__, gpu_offload=gpu))
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
    server.shutdown()


class _Server:
    def __init__(self, conn: Connection, cancel: Event) -> None:
        self.conn = conn
        self.cancel = cancel
        self.llm: Any = None
        self.model_path: str | None = None
        self.formatter: Any = None  # the chat template in use, to count prompt tokens
        self.template_stops: tuple[str, ...] = ()  # turn markers of a chosen known template
        self.embedder: Any = None  # a second Llama in embedding mode (document retrieval)
        self.projector: Any = None  # the model's projector in libmtmd (engine.vision): images

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """Tokens the messages take with the chat template and the generation prompt."""
        if self.formatter is not None:
            try:
                prompt = self.formatter(messages=messages).prompt
                return len(self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))
            except Exception:  # a template that fails here fails loudly at generation anyway
                pass
        text = sum(len(self.llm.tokenize(m["content"].encode("utf-8"), add_bos=False)) for m in messages)
        return text + 4 * len(messages) + 3  # role markers per turn, generation prompt

    def fit_messages(self, messages: list[dict[str, str]], max_tokens: int) -> tuple[list[dict[str, str]], int, int]:
        """Leave out the oldest turns (never the system prompt or the newest message) until the
        prompt leaves room for the reply. Returns (messages, prompt tokens, turns dropped)."""
        n_ctx = self.llm.n_ctx()
        room = min(max_tokens, max(n_ctx // 4, 32))
        messages = list(messages)
        first = 1 if messages and messages[0]["role"] == "system" else 0
        dropped = 0
        count = self.prompt_tokens(messages)
        while count > n_ctx - room and len(messages) - first > 1:
            del messages[first]
            dropped += 1
            count = self.prompt_tokens(messages)
        return messages, count, dropped

    def shutdown(self) -> None:
        if self.embedder is not None:
            self.embedder.close()
            self.embedder = None
        self.close()

    def close(self) -> None:
        """Free the chat model (the embedding model stays: it serves documents)."""
        if self.projector is not None:  # before the model it points into
            self.projector.close()
            self.projector = None
        if self.llm is not None:
            self.llm.close()
            self.llm = None
            self.model_path = None
            self.formatter = None
            self.template_stops = ()

    def handle(self, request: object) -> None:
        if isinstance(request, p.Load):
            self.load(request)
        elif isinstance(request, p.Chat):
            self.chat(request)
        elif isinstance(request, p.Complete):
            self.complete(request)
        elif isinstance(request, p.Tokenize):
            self.tokenize(request)
        elif isinstance(request, p.LoadEmbedder):
            self.load_embedder(request)
        elif isinstance(request, p.Benchmark):
            self.benchmark(request)
        elif isinstance(request, p.Embed):
            self.embed(request)
        elif isinstance(request, p.CountPrompt):
            if self.llm is None:
                self.conn.send(p.Error("request", "No model is loaded."))
            elif has_images(request.messages):
                self.count_with_images(request.messages)
            else:
                self.conn.send(p.TokenCount(self.prompt_tokens(request.messages)))
        elif isinstance(request, p.Unload):
            self.close()
            self.conn.send(p.Unloaded())
        elif isinstance(request, p.Status):
            n_ctx = self.llm.n_ctx() if self.llm is not None else None
            self.conn.send(p.StatusInfo(self.model_path, n_ctx))
        else:
            self.conn.send(p.Error("request", f"Unknown request {type(request).__name__}"))

    def load(self, request: p.Load) -> None:
        self.close()  # free the old model first: two large models may not fit in RAM
        started = time.perf_counter()
        fallback_notice = ""
        try:
            llm = _new_llama(request)
        except Exception as exc:  # llama-cpp-python raises ValueError/RuntimeError with terse text
            name = os.path.basename(request.model_path)
            plain = default_load_options(request)
            if plain == request:
                self.conn.send(p.Error("load", f"{name}: llama.cpp could not load this model ({exc})."))
                return
            try:  # the speed/memory options may be what failed: the defaults, once
                llm = _new_llama(plain)
            except Exception:
                self.conn.send(p.Error("load", f"{name}: llama.cpp could not load this model ({exc})."))
                return
            fallback_notice = (
                f"{name} could not load with {describe_load_options(request)} ({_first_line(exc)}); "
                "it was loaded with the default speed and memory settings instead."
            )
        self.llm = llm
        self.model_path = request.model_path
        problem = _apply_loras(llm, request.loras, os.path.basename(request.model_path))
        if problem:
            self.close()
            self.conn.send(p.Error("load", problem))
            return
        chosen = known_template(request.chat_template)
        from_gguf = chosen is None and "tokenizer.chat_template" in llm.metadata
        if chosen is not None:
            # The person picked a template for this model (a base model has none): render it
            # with the same Jinja formatter llama-cpp-python uses for GGUF templates.
            self.formatter = _formatter(llm, chosen.template)
            if self.formatter is not None:
                llm.chat_handler = self.formatter.to_chat_handler()
                self.template_stops = chosen.stop
        else:
            self.formatter = _formatter(llm, llm.metadata["tokenizer.chat_template"]) if from_gguf else None
        chat_format = chosen.key if chosen is not None and self.formatter is not None else llm.chat_format
        self.conn.send(
            p.Loaded(
                model_path=request.model_path,
                loras=request.loras,
                n_ctx=llm.n_ctx(),
                n_ctx_train=llm.n_ctx_train() if hasattr(llm, "n_ctx_train") else llm.n_ctx(),
                chat_format=chat_format or ("gguf template" if from_gguf else "unknown"),
                template_from_gguf=from_gguf,
                load_seconds=time.perf_counter() - started,
                **self._load_projector(request),
                fallback_notice=fallback_notice,
            )
        )

    def chat(self, request: p.Chat) -> None:
        if has_images(request.messages):
            self.chat_with_images(request)
            return
        prepared = self._prepare(request.settings)
        if prepared is None:
            return
        settings, kwargs, stops = prepared
        messages, prompt_tokens, dropped = self.fit_messages(request.messages, settings.max_tokens)
        if not self._fits(prompt_tokens, "This message"):
            return
        self._stream(
            lambda: self.llm.create_chat_completion(messages=messages, stream=True, **kwargs),
            lambda choice: choice.get("delta", {}).get("content"),
            stops,
            kwargs["seed"],
            prompt_tokens,
            dropped,
        )

    def complete(self, request: p.Complete) -> None:
        """Plain continuation of the text, with no chat template (base models, /v1/completions)."""
        prepared = self._prepare(request.settings)
        if prepared is None:
            return
        _settings, kwargs, stops = prepared
        prompt_tokens = len(self.llm.tokenize(request.prompt.encode("utf-8"), add_bos=True, special=False))
        if not self._fits(prompt_tokens, "This text"):
            return
        self._stream(
            lambda: self.llm.create_completion(prompt=request.prompt, stream=True, **kwargs),
            lambda choice: choice.get("text"),
            stops,
            kwargs["seed"],
            prompt_tokens,
            0,
        )

    def chat_with_images(self, request: p.Chat) -> None:
        """A chat whose messages carry images: through the model's projector (libmtmd), or
        refused in plain words when the model has none."""
        if self.llm is not None and self.projector is None:
            self.conn.send(p.Error("chat", NO_VISION))
            return
        prepared = self._prepare(request.settings)
        if prepared is None:
            return
        settings, kwargs, stops = prepared
        try:
            prompt, images, add_special, prompt_tokens, dropped = self._fit_with_images(
                request.messages, settings.max_tokens
            )
        except ValueError as exc:
            self.conn.send(p.Error("chat", str(exc)))
            return
        if not self._fits(prompt_tokens, "This message with its images"):
            return

        def create() -> Any:
            tokens = self.projector.evaluate(self.llm, prompt, images, add_special)
            return self.llm.create_completion(prompt=tokens, stream=True, **kwargs)

        try:
            self._stream(create, lambda choice: choice.get("text"), stops, kwargs["seed"], prompt_tokens, dropped)
        finally:
            if self.llm is not None:
                self.llm.reset()  # image positions hold no real tokens: never reuse them

    def count_with_images(self, messages: list[dict[str, Any]]) -> None:
        """CountPrompt for messages with images: each image as the tokens it takes."""
        if self.projector is None:  # refused when sent; count what would be read
            self.conn.send(p.TokenCount(self.prompt_tokens(text_only(messages))))
            return
        try:
            prompt, images, add_special = self._image_prompt(messages)
            self.conn.send(p.TokenCount(self.projector.count(prompt, images, add_special)))
        except ValueError as exc:
            self.conn.send(p.Error("request", str(exc)))

    def _image_prompt(self, messages: list[dict[str, Any]]) -> tuple[str, list[bytes], bool]:
        """The prompt through the chat template with a media marker for each image, the
        images' bytes, and whether libmtmd should add the BOS token (as for text prompts)."""
        if self.formatter is None:
            raise ValueError(
                "This model has no chat template to place images in; choose one under "
                "Models > Manage models > Defaults."
            )
        marked, images = with_markers(messages)
        rendered = self.formatter(messages=marked)
        return rendered.prompt, images, not rendered.added_special

    def _fit_with_images(
        self, messages: list[dict[str, Any]], max_tokens: int
    ) -> tuple[str, list[bytes], bool, int, int]:
        """As fit_messages, for messages with images (an image leaves with its turn)."""
        n_ctx = self.llm.n_ctx()
        room = min(max_tokens, max(n_ctx // 4, 32))
        messages = list(messages)
        first = 1 if messages and messages[0].get("role") == "system" else 0
        dropped = 0
        while True:
            prompt, images, add_special = self._image_prompt(messages)
            count = self.projector.count(prompt, images, add_special)
            if count <= n_ctx - room or len(messages) - first <= 1:
                return prompt, images, add_special, count, dropped
            del messages[first]
            dropped += 1

    def _load_projector(self, request: p.Load) -> dict[str, Any]:
        """Load the model's projector, if it has one: Loaded's vision fields. A projector
        that cannot be used leaves the model loaded for text, with a notice saying so."""
        if not request.mmproj_path:
            return {}
        from app.engine.vision import Projector  # noqa: PLC0415 - imports llama_cpp

        threads = thread_kwargs(request.n_threads)["n_threads"]
        try:
            self.projector = Projector(request.mmproj_path, self.llm, threads, use_gpu=request.n_gpu_layers != 0)
        except Exception as exc:
            name = os.path.basename(request.mmproj_path)
            return {
                "vision_notice": f"The image projector {name} could not be used ({_first_line(exc)}); "
                "this model will read text only."
            }
        return {"vision": True}

    def _prepare(self, raw: dict[str, Any]) -> tuple[SamplingSettings, dict[str, Any], StopMatcher] | None:
        """Validated settings, llama-cpp-python's arguments and the stop matcher; None (and an
        Error sent) when no model is loaded or a setting is invalid."""
        if self.llm is None:
            self.conn.send(p.Error("chat", "No model is loaded."))
            return None
        settings = SamplingSettings.from_dict(raw)
        problems = settings.validate(self.llm.n_ctx())
        if problems:
            self.conn.send(p.Error("chat", " ".join(pr.message for pr in problems)))
            return None
        kwargs = completion_kwargs(settings)
        spec = grammar_spec(settings)
        if spec is not None:
            try:
                kwargs["grammar"] = self._grammar(*spec)
            except ValueError as exc:  # said, and nothing is generated
                self.conn.send(p.Error("chat", str(exc)))
                return None
        # The user's stop sequences are matched here (to know which one ended a reply); the
        # chosen template's turn markers go to llama-cpp-python with its own.
        stops = StopMatcher(kwargs.pop("stop") or [])
        kwargs["stop"] = list(self.template_stops) or None
        apply_sampler_attributes(self.llm, settings)
        return settings, kwargs, stops

    def _grammar(self, kind: str, text: str) -> Any:
        """A ``LlamaGrammar`` for the response format, once llama.cpp's own parser has accepted
        it; raises ValueError in plain words otherwise. (llama-cpp-python adds whatever
        ``llama_sampler_init_grammar`` returns to the sampler chain, and a grammar it cannot
        parse returns NULL, so an unchecked one would crash this process mid-request.)"""
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar, json_schema_to_gbnf  # noqa: PLC0415

        if kind == "json":
            gbnf = JSON_GBNF
        elif kind == "json_schema":
            try:
                rf.load_schema(text)  # checked in the GUI too; a request may come from elsewhere
                gbnf = json_schema_to_gbnf(text)
            except Exception as exc:  # the converter raises on what it does not support
                raise ValueError(f"This JSON Schema cannot be used for the reply: {_first_line(exc)}") from exc
        else:
            problem = rf.grammar_problem(text)
            if problem is not None:
                raise ValueError(f"This grammar cannot be used: {problem}")
            gbnf = text
        problem = _grammar_error(self.llm, gbnf)
        if problem is not None:
            what = "grammar" if kind == "gbnf" else "grammar made from this schema"
            raise ValueError(f"llama.cpp cannot use this {what}: {problem}")
        return LlamaGrammar.from_string(gbnf, verbose=False)

    def _fits(self, prompt_tokens: int, what: str) -> bool:
        n_ctx = self.llm.n_ctx()
        if prompt_tokens < n_ctx - 4:
            return True
        self.conn.send(
            p.Error(
                "chat",
                f"{what} is longer than the model's context ({prompt_tokens:,} of "
                f"{n_ctx:,} tokens). Shorten it, or raise the context length in the settings.",
            )
        )
        return False

    def _stream(
        self,
        create: Callable[[], Any],
        text_of: Callable[[dict[str, Any]], str | None],
        stops: StopMatcher,
        seed: int,
        prompt_tokens: int,
        dropped: int,
    ) -> None:
        """Stream one completion: PromptInfo, Deltas, then Done with the reply's stats."""
        self.conn.send(p.PromptInfo(prompt_tokens, self.llm.n_ctx(), dropped, self.model_path or ""))
        started = time.perf_counter()
        first: float | None = None
        pieces: list[str] = []
        reason = "stop"
        try:
            stream = create()
            for chunk in stream:
                if self.cancel.is_set():
                    reason = "cancelled"
                    break
                choice = chunk["choices"][0]
                text = text_of(choice)
                if text:
                    if first is None:
                        first = time.perf_counter()
                    self._send_text(stops.feed(text), pieces)
                    if stops.matched is not None:
                        reason = "stop"
                        break
                if choice.get("finish_reason"):
                    reason = choice["finish_reason"]
            stream.close()
            self._send_text(stops.flush(), pieces)
            if reason == "length" and self.llm.n_tokens >= self.llm.n_ctx() - 1:
                # llama-cpp-python shortens max_tokens to what the context has left: the reply
                # ran into the end of the context, not into the person's limit
                reason = "context_full"
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
        stats: dict[str, Any] = {
            "tokens": n_tokens,
            "seconds": round(elapsed, 3),
            "ttft": round(first - started, 3) if first else None,
            "tokens_per_s": round(n_tokens / gen_time, 2) if n_tokens > 1 and gen_time > 0 else None,
            "seed": seed,
            "prompt_tokens": prompt_tokens,
            "dropped_turns": dropped,
        }
        if stops.matched is not None:
            stats["stop_sequence"] = stops.matched
        self.conn.send(p.Done(reason, stats))

    def _send_text(self, text: str, pieces: list[str]) -> None:
        if text:
            pieces.append(text)
            self.conn.send(p.Delta(text))

    def benchmark(self, request: p.Benchmark) -> None:
        """Load a model of its own (the chat model stays as it is), process a fixed prompt in
        batches, then decode tokens one at a time, as llama-bench's pp and tg tests do. The
        cancel event is checked between batches and between tokens."""
        from llama_cpp import Llama  # noqa: PLC0415

        self.conn.send(p.BenchStage("load"))
        started = time.perf_counter()
        try:
            llm = Llama(**llama_kwargs(request.load))
        except Exception as exc:
            name = os.path.basename(request.load.model_path)
            self.conn.send(p.Error("load", f"{name}: llama.cpp could not load this model ({exc})."))
            return
        load_seconds = time.perf_counter() - started
        try:
            n_ctx = llm.n_ctx()
            gen = max(1, min(request.gen_tokens, n_ctx // 4))
            n_prompt = max(1, min(request.prompt_tokens, n_ctx - gen - 1))
            text = _BENCH_TEXT.encode("utf-8")
            tokens: list[int] = llm.tokenize(text, add_bos=True)
            while len(tokens) < n_prompt:
                tokens += llm.tokenize(text, add_bos=False)
            tokens = tokens[:n_prompt]
            done = p.BenchDone(cancelled=True, load_seconds=load_seconds, n_ctx=n_ctx)
            if self.cancel.is_set():
                self.conn.send(done)
                return
            self.conn.send(p.BenchStage("prompt"))
            llm.reset()  # type: ignore[no-untyped-call]
            batch = max(1, llm.n_batch)
            started = time.perf_counter()
            for i in range(0, n_prompt, batch):
                if self.cancel.is_set():
                    self.conn.send(done)
                    return
                llm.eval(tokens[i : i + batch])
            prompt_seconds = time.perf_counter() - started
            self.conn.send(p.BenchStage("generate"))
            started = time.perf_counter()
            for i in range(gen):
                if self.cancel.is_set():
                    self.conn.send(done)
                    return
                llm.eval([tokens[i % n_prompt]])
            gen_seconds = time.perf_counter() - started
        except Exception as exc:
            self.conn.send(p.Error("request", f"The benchmark failed: {_first_line(exc)}"))
            return
        finally:
            llm.close()
        self.conn.send(
            p.BenchDone(
                cancelled=False,
                load_seconds=load_seconds,
                prompt_tokens=n_prompt,
                prompt_seconds=prompt_seconds,
                gen_tokens=gen,
                gen_seconds=gen_seconds,
                peak_rss=_peak_rss(),
                n_ctx=n_ctx,
            )
        )

    def load_embedder(self, request: p.LoadEmbedder) -> None:
        from llama_cpp import Llama  # noqa: PLC0415

        if self.embedder is not None:
            self.embedder.close()
            self.embedder = None
        if request.model_path is None:
            self.conn.send(p.EmbedderLoaded(None, 0))
            return
        kwargs: dict[str, Any] = {
            "model_path": request.model_path,
            "embedding": True,
            "n_ctx": 512,
            "n_batch": 512,
            "verbose": False,
            **thread_kwargs(request.n_threads),
        }
        try:
            self.embedder = Llama(**kwargs)
            dims = len(self._embed(["dimension probe"])[0])
        except Exception as exc:
            self.embedder = None
            name = os.path.basename(request.model_path)
            self.conn.send(p.Error("load", f"{name}: could not be used for embeddings ({exc})."))
            return
        self.conn.send(p.EmbedderLoaded(request.model_path, dims))

    def _embed(self, texts: list[str]) -> list[list[float]]:
        """Unit vectors; a model without its own pooling gives one vector per token, which
        are averaged here (mean pooling)."""
        import numpy as np  # noqa: PLC0415

        out = []
        for raw in self.embedder.embed(texts, normalize=False, truncate=True):
            vec = np.asarray(raw, dtype=np.float32)
            if vec.ndim == 2:
                vec = vec.mean(axis=0)
            norm = float(np.linalg.norm(vec)) or 1.0
            out.append((vec / norm).tolist())
        return out

    def embed(self, request: p.Embed) -> None:
        if self.embedder is None:
            self.conn.send(p.Error("request", "No embedding model is loaded."))
            return
        try:
            self.conn.send(p.Embeddings(self._embed(request.texts)))
        except Exception as exc:
            self.conn.send(p.Error("request", f"Embedding failed: {exc}"))

    def tokenize(self, request: p.Tokenize) -> None:
        if self.llm is None:
            self.conn.send(p.Error("request", "No model is loaded."))
            return
        tokens = self.llm.tokenize(request.text.encode("utf-8"), add_bos=False, special=True)
        self.conn.send(p.TokenCount(len(tokens)))


def _grammar_error(llm: Any, gbnf: str) -> str | None:
    """What llama.cpp's grammar parser says about ``gbnf`` (None: it parses). The parser
    writes its reason to stderr, so that is caught for the length of the call."""
    import tempfile  # noqa: PLC0415

    import llama_cpp  # noqa: PLC0415

    with tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            sampler = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, gbnf.encode("utf-8"), b"root")
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        if sampler:
            llama_cpp.llama_sampler_free(sampler)
            return None
        caught.seek(0)
        said = caught.read(4000).decode("utf-8", "replace")
    for line in said.splitlines():
        if "error parsing grammar:" in line:
            return line.split("error parsing grammar:", 1)[1].strip() or "it does not parse."
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    return lines[0] if lines else "it does not parse."


_BENCH_TEXT = (
    "The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a "
    "single step. In the beginning was the word, and the word was measured on this computer. "
)


def _peak_rss() -> int:
    """This process's peak resident memory in bytes (0 when the system cannot say)."""
    try:
        import resource  # noqa: PLC0415 - not on Windows

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # macOS: bytes, Linux: KiB
    except ImportError:
        try:
            import psutil  # noqa: PLC0415

            info = psutil.Process().memory_info()
            return int(getattr(info, "peak_wset", info.rss))
        except Exception:
            return 0


def _new_llama(request: p.Load) -> Any:
    """A ``Llama`` for this load request, with its speed and memory options."""
    from app.engine.llama_ext import HearthLlama  # noqa: PLC0415 - imports llama_cpp

    kwargs = llama_kwargs(request)
    if request.prompt_lookup:
        from llama_cpp.llama_speculative import LlamaPromptLookupDecoding  # noqa: PLC0415

        kwargs["draft_model"] = LlamaPromptLookupDecoding(
            max_ngram_size=PROMPT_LOOKUP_NGRAM, num_pred_tokens=PROMPT_LOOKUP_TOKENS
        )
    return HearthLlama(**kwargs)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _apply_loras(llm: Any, loras: tuple[tuple[str, float], ...], model: str) -> str:
    """Load each LoRA adapter and set them all, with their scales, on the model's context;
    "" when done, else why not, in words. llama-cpp-python's ``Llama`` takes one ``lora_path``;
    llama.cpp's own API takes any number, so this does what ``Llama.__init__`` does for one.
    Each adapter is freed with the model (``llm.close()``), before it."""
    if not loras:
        return ""
    import ctypes  # noqa: PLC0415

    import llama_cpp  # noqa: PLC0415

    handles = []
    for path, _scale in loras:
        adapter = llama_cpp.llama_adapter_lora_init(llm._model.model, os.fsencode(path))
        if not adapter:
            return (
                f"{os.path.basename(path)}: llama.cpp could not load this LoRA adapter for {model} "
                "(it is missing, damaged, or made for another model)."
            )
        llm._stack.callback(llama_cpp.llama_adapter_lora_free, adapter)
        handles.append(adapter)
    adapters = (llama_cpp.llama_adapter_lora_p_ctypes * len(handles))(*handles)
    scales = (ctypes.c_float * len(loras))(*(scale for _path, scale in loras))
    if llama_cpp.llama_set_adapters_lora(llm._ctx.ctx, adapters, len(handles), scales):
        return f"llama.cpp could not apply the LoRA adapters to {model}."
    return ""


def _formatter(llm: Any, template: str) -> Any:
    """A renderer of a chat template: the GGUF's own (for counting; generation uses
    llama-cpp-python's copy), or a chosen known one (for counting and generation)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter  # noqa: PLC0415

    def text(token: int) -> str:
        try:
            return llm._model.token_get_text(token) if token != -1 else ""
        except Exception:
            return ""

    try:
        return Jinja2ChatFormatter(template=template, eos_token=text(llm.token_eos()), bos_token=text(llm.token_bos()))
    except Exception:  # a template Jinja cannot compile: count without it
        return None
