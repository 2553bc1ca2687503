"""The one place where Hearth's settings become llama-cpp-python arguments.

Kept free of llama_cpp imports so tests can check the mapping without the native library.

Where each :class:`SamplingSettings` field goes:
temperature, top_p, top_k, min_p, repeat_penalty, presence_penalty, frequency_penalty,
max_tokens, stop, seed → ``create_chat_completion`` keyword arguments (:func:`completion_kwargs`);
last_n_tokens → the ``Llama.last_n_tokens_size`` attribute (:func:`apply_sampler_attributes`),
because llama-cpp-python only takes it in the constructor yet reads the attribute afresh when
it builds the sampler for every completion, so setting it per request needs no reload;
system_prompt, chain_of_thought → the messages (the session builds them; see
``core.presets.effective_system_prompt``), not llama.cpp arguments;
response_format, json_schema, grammar → the ``grammar`` argument, a ``LlamaGrammar`` the child
builds from :func:`grammar_spec` (any JSON: llama.cpp's JSON grammar; a schema: compiled with
``LlamaGrammar.from_json_schema``'s converter; a custom grammar: as written), after asking
llama.cpp's parser whether it can use it.

Threads: "Auto" (``n_threads`` None) is resolved here, in the engine child, to
``core.sysinfo.default_threads()`` and always passed explicitly, for generation and for
prompt batches (:func:`thread_kwargs`). Passing nothing would leave llama-cpp-python's
``cpu_count() // 2``, which assumes hyperthreading: one thread on a 2-core VM, half the speed.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from app.core import load_options as lo
from app.core import response_format as rf
from app.core import sysinfo
from app.core.library import ModelInfo
from app.core.settings import LoadSettings, SamplingSettings
from app.engine.protocol import Load, RemoteTarget


def completion_kwargs(settings: SamplingSettings) -> dict[str, Any]:
    """Arguments for ``Llama.create_chat_completion``; a random seed is drawn when none is set
    so that the reply can still be reproduced from the seed recorded in its stats."""
    seed = settings.seed if settings.seed is not None else random.randrange(2**31)
    return {
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "top_k": settings.top_k,
        "min_p": settings.min_p,
        "repeat_penalty": settings.repeat_penalty,
        "presence_penalty": settings.presence_penalty,
        "frequency_penalty": settings.frequency_penalty,
        "max_tokens": settings.max_tokens,
        "stop": list(settings.stop) or None,
        "seed": seed,
    }


def grammar_spec(settings: SamplingSettings) -> tuple[str, str] | None:
    """What the reply is held to: ``("json", "")``, ``("json_schema", schema text)`` or
    ``("gbnf", grammar text)``; None for free text."""
    if settings.response_format == rf.JSON:
        return ("json", "")
    if settings.response_format == rf.JSON_SCHEMA:
        return ("json_schema", settings.json_schema)
    if settings.response_format == rf.GRAMMAR:
        return ("gbnf", settings.grammar)
    return None


def sampler_attributes(settings: SamplingSettings) -> dict[str, Any]:
    """``Llama`` attributes that carry per-request sampling settings which
    ``create_chat_completion`` has no argument for."""
    return {"last_n_tokens_size": settings.last_n_tokens}


def apply_sampler_attributes(llm: Any, settings: SamplingSettings) -> None:
    """Set :func:`sampler_attributes` on a loaded ``Llama`` just before a completion."""
    for name, value in sampler_attributes(settings).items():
        setattr(llm, name, value)


def llama_kwargs(load: Load) -> dict[str, Any]:
    """Arguments for ``Llama(...)``."""
    kwargs: dict[str, Any] = {
        "model_path": load.model_path,
        "n_ctx": load.n_ctx,
        "n_gpu_layers": load.n_gpu_layers,
        "n_batch": min(load.n_batch, load.n_ctx),
        # Our default repetition window; each request then sets its own through
        # apply_sampler_attributes.
        "last_n_tokens_size": SamplingSettings().last_n_tokens,
        "verbose": False,
    }
    kwargs.update(thread_kwargs(load.n_threads))
    kwargs.update(load_option_kwargs(load))
    return kwargs


def load_option_kwargs(load: Load) -> dict[str, Any]:
    """The speed and memory options (core.load_options) as ``Llama(...)`` arguments.

    Flash attention "auto" is ``flash_attn_type=-1`` (LLAMA_FLASH_ATTN_TYPE_AUTO), which
    llama-cpp-python's own ``flash_attn`` bool cannot say: the child's ``Llama`` subclass
    (engine/llama_ext.py) takes it. A quantized KV cache is sent only with flash attention
    on or auto (llama.cpp refuses a quantized V cache without it); prompt lookup becomes the
    child's ``draft_model``. Values at llama.cpp's defaults are still passed explicitly.
    """
    flash = load.flash_attn if load.flash_attn in (lo.FLASH_ON, lo.FLASH_OFF) else lo.FLASH_AUTO
    kwargs: dict[str, Any] = {
        "flash_attn_type": FLASH_ATTN_TYPE[flash],
        "flash_attn": flash == lo.FLASH_ON,
        "use_mmap": bool(load.use_mmap),
        "use_mlock": bool(load.use_mlock),
    }
    kv = load.kv_cache_type if load.kv_cache_type in lo.GGML_TYPE else lo.KV_F16
    if lo.conflict(flash, kv) is None:
        kwargs["type_k"] = kwargs["type_v"] = lo.GGML_TYPE[kv]
    else:
        kwargs["type_k"] = kwargs["type_v"] = lo.GGML_TYPE[lo.KV_F16]
    return kwargs


def load_request(
    model: ModelInfo,
    settings: LoadSettings | None = None,
    *,
    loras: tuple[tuple[str, float], ...] = (),
    remote: RemoteTarget | None = None,
) -> Load:
    """The engine's Load for a library model: the app's load settings, with the model's own
    defaults winning (context, threads, GPU layers, chat template, projector, speed and
    memory options) and the context capped at what it was trained for. The window, the
    compare view's and the API's model switches and ``hearth serve`` all load through it, so
    a model loads the same way wherever it is asked for."""
    load = LoadSettings(**(settings or LoadSettings()).to_dict())
    defaults = model.defaults
    if defaults.n_ctx:
        load.n_ctx = defaults.n_ctx
    if defaults.n_threads:
        load.n_threads = defaults.n_threads
    if defaults.n_gpu_layers is not None:
        load.n_gpu_layers = defaults.n_gpu_layers
    if model.context_length:
        load.n_ctx = min(load.n_ctx, model.context_length)
    local = model.remote is None
    return Load(
        model.path,
        load.n_ctx,
        load.n_threads,
        load.n_gpu_layers,
        load.n_batch,
        loras=loras if local else (),
        chat_template=defaults.chat_template,
        remote=remote,
        mmproj_path=(defaults.mmproj or model.projector) if local else None,
        **defaults.load_options(),
    )


def default_load_options(load: Load) -> Load:
    """``load`` with every speed and memory option at its default (what a failed load with
    non-default options is retried with)."""
    return replace(
        load,
        flash_attn=lo.FLASH_AUTO,
        kv_cache_type=lo.KV_F16,
        use_mmap=True,
        use_mlock=False,
        prompt_lookup=False,
    )


def describe_load_options(load: Load) -> str:
    """The options of ``load`` that differ from the defaults, in words ("flash attention on,
    KV cache q8_0")."""
    parts = []
    if load.flash_attn != lo.FLASH_AUTO:
        parts.append(f"flash attention {load.flash_attn}")
    if load.kv_cache_type != lo.KV_F16:
        parts.append(f"KV cache {load.kv_cache_type}")
    if not load.use_mmap:
        parts.append("mmap off")
    if load.use_mlock:
        parts.append("mlock on")
    if load.prompt_lookup:
        parts.append("prompt-lookup decoding")
    return ", ".join(parts) or "the default settings"


#: llama.h's ``enum llama_flash_attn_type``.
FLASH_ATTN_TYPE = {lo.FLASH_AUTO: -1, lo.FLASH_OFF: 0, lo.FLASH_ON: 1}


def thread_kwargs(n_threads: int | None) -> dict[str, int]:
    """``n_threads`` and ``n_threads_batch`` for ``Llama(...)``: the user's number, or for
    Auto (None or 0) the count that is fastest on this machine."""
    threads = n_threads if n_threads else sysinfo.default_threads()
    return {"n_threads": threads, "n_threads_batch": threads}
