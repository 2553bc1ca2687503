"""The one place where Hearth's settings become llama-cpp-python arguments.

Kept free of llama_cpp imports so tests can check the mapping without the native library.
"""

from __future__ import annotations

import random
from typing import Any

from app.core.settings import SamplingSettings
from app.engine.protocol import Load


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


def llama_kwargs(load: Load) -> dict[str, Any]:
    """Arguments for ``Llama(...)``."""
    kwargs: dict[str, Any] = {
        "model_path": load.model_path,
        "n_ctx": load.n_ctx,
        "n_gpu_layers": load.n_gpu_layers,
        "n_batch": min(load.n_batch, load.n_ctx),
        "verbose": False,
    }
    if load.n_threads:
        kwargs["n_threads"] = load.n_threads
        kwargs["n_threads_batch"] = load.n_threads
    return kwargs
