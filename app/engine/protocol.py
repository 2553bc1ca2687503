"""Messages between the GUI process and the engine child.

Plain picklable dataclasses so that the same narrow interface (load, chat stream,
cancel, tokenize, unload, status) could later be served by a remote OpenAI-compatible
server instead of the child process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# --- requests -------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteTarget:
    """Where a remote model is served: a saved connection (its key is read from the keyring
    by the engine worker, never carried in a request) and the server's own model id."""

    connection: str
    base_url: str
    model_id: str


@dataclass(frozen=True)
class Load:
    model_path: str
    n_ctx: int = 4096
    n_threads: int | None = None
    n_gpu_layers: int = 0
    n_batch: int = 512
    # A known chat template (core.chat_templates key) to use instead of the GGUF's own.
    chat_template: str | None = None
    # LoRA adapters to apply, (adapter file, scale) in order; a change means a reload.
    loras: tuple[tuple[str, float], ...] = ()
    # Set for a model served by another program: the worker talks to that server instead of
    # the local engine process (model_path is then the model's "remote://…" reference).
    remote: RemoteTarget | None = None
    # A vision model's projector (mmproj*.gguf): images in chat go through it (engine.vision).
    mmproj_path: str | None = None
    # Speed and memory options (core.load_options): flash attention "auto"/"on"/"off", KV
    # cache "f16"/"q8_0"/"q4_0", mmap/mlock, prompt-lookup (n-gram) speculative decoding.
    # A load that fails with any of them not at its default is retried with the defaults.
    flash_attn: str = "auto"
    kv_cache_type: str = "f16"
    use_mmap: bool = True
    use_mlock: bool = False
    prompt_lookup: bool = False


@dataclass(frozen=True)
class Chat:
    # content is a string, or (a user's message with images) OpenAI content parts:
    # [{"type": "text", "text": ...}, {"type": "image_url", "image_url": {"url": "data:..."}}]
    messages: list[dict[str, Any]]
    settings: dict[str, Any]


@dataclass(frozen=True)
class Complete:
    """Continue ``prompt`` as plain text, with no chat template (answered like a Chat)."""

    prompt: str
    settings: dict[str, Any]


@dataclass(frozen=True)
class Tokenize:
    text: str


@dataclass(frozen=True)
class CountPrompt:
    """How many tokens these messages take through the model's chat template."""

    messages: list[dict[str, Any]]  # as Chat's


@dataclass(frozen=True)
class LoadEmbedder:
    """A second model, in embedding mode, for document retrieval (None: unload it)."""

    model_path: str | None
    n_threads: int | None = None


@dataclass(frozen=True)
class Embed:
    texts: list[str]


@dataclass(frozen=True)
class Benchmark:
    """Load ``load`` and measure it: a prompt of ``prompt_tokens`` tokens, then ``gen_tokens``
    generated one at a time. Answered with BenchStage events, then BenchDone (or an Error).
    Meant for a fresh engine process, whose peak memory is then this model's alone."""

    load: Load
    prompt_tokens: int = 512
    gen_tokens: int = 128


@dataclass(frozen=True)
class Unload:
    pass


@dataclass(frozen=True)
class Status:
    pass


@dataclass(frozen=True)
class Shutdown:
    pass


# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    pid: int
    llama_cpp_version: str
    gpu_offload: bool = False  # whether this llama.cpp build can put layers on a GPU


@dataclass(frozen=True)
class Loaded:
    model_path: str
    n_ctx: int
    n_ctx_train: int
    chat_format: str
    template_from_gguf: bool
    load_seconds: float
    loras: tuple[tuple[str, float], ...] = ()  # the LoRA adapters applied (Load.loras)
    # SamplingSettings fields the backend would ignore (a remote server that has no such knob)
    ignored_settings: frozenset[str] = frozenset()
    # Whether images can be sent (the projector loaded); a sentence when it could not be.
    vision: bool = False
    vision_notice: str = ""
    # Set when the load's speed/memory options failed and the defaults were used instead:
    # a sentence for the window saying so.
    fallback_notice: str = ""


@dataclass(frozen=True)
class Unloaded:
    pass


@dataclass(frozen=True)
class PromptInfo:
    """Sent before the first Delta: the prompt's size after fitting it into the context."""

    prompt_tokens: int
    n_ctx: int
    dropped_turns: int  # oldest turns left out so the prompt fits (the system prompt is kept)
    model_path: str = ""  # the model that is answering: the reply is recorded as its
    # False: prompt_tokens is an estimate (a remote server that cannot count); the UI shows ≈.
    # A remote backend may send a second, exact PromptInfo before Done when the server's usage says.
    counted_exactly: bool = True


@dataclass(frozen=True)
class Waiting:
    """A remote server asked us to wait (HTTP 429 Retry-After): the request is retried after
    ``seconds``; ``reason`` is a plain sentence for the status line."""

    seconds: float
    reason: str


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Done:
    reason: str  # "stop", "length", "cancelled" or "context_full"
    # stats also carry "stop_sequence" when one of the user's stop sequences ended the reply
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EmbedderLoaded:
    model_path: str | None
    dimensions: int


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]  # one unit-length vector per text


@dataclass(frozen=True)
class TokenCount:
    count: int


@dataclass(frozen=True)
class BenchStage:
    stage: str  # "load", "prompt", "generate"


@dataclass(frozen=True)
class BenchDone:
    cancelled: bool
    load_seconds: float = 0.0
    prompt_tokens: int = 0
    prompt_seconds: float = 0.0
    gen_tokens: int = 0
    gen_seconds: float = 0.0
    peak_rss: int = 0  # bytes, the process's peak resident memory so far
    n_ctx: int = 0


@dataclass(frozen=True)
class StatusInfo:
    model_path: str | None
    n_ctx: int | None


@dataclass(frozen=True)
class Error:
    kind: str  # "load", "chat", "request"
    message: str
