"""Speed and memory options applied when a model loads (issue 16, point 2).

Plain data and the explanations the defaults editor shows; ``app.engine.params`` turns them
into llama-cpp-python arguments. Values are stored in the model library (``ModelDefaults``):
they are strings and booleans that never change meaning; a new choice gets a new value.

Defaults, and why:

* flash attention **auto**: llama.cpp turns it on where the build and model support it
  (faster, and a smaller compute buffer), off otherwise;
* KV cache **f16**: llama.cpp's default, exact; q8_0 halves the cache's memory, q4_0 keeps about
  a quarter, with a small loss of accuracy. A quantized V cache needs flash attention, so
  "off" with a quantized cache is refused by the editor and never sent;
* **mmap on**: the weights are mapped from the file, so loading is fast and the pages are shared
  with the OS file cache; **mlock off**: locking needs permission (RLIMIT_MEMLOCK) and keeps
  the whole model in RAM;
* prompt-lookup decoding **off**: it guesses the next tokens from n-grams already in the prompt
  (fast when the reply repeats the prompt, e.g. editing code), but it makes llama.cpp keep the
  logits of every token: ``n_ctx × vocabulary × 4`` bytes more memory.
"""

from __future__ import annotations

FLASH_AUTO = "auto"
FLASH_ON = "on"
FLASH_OFF = "off"
FLASH_ATTN_CHOICES: tuple[tuple[str, str], ...] = ((FLASH_AUTO, "Auto"), (FLASH_ON, "On"), (FLASH_OFF, "Off"))

KV_F16 = "f16"
KV_Q8_0 = "q8_0"
KV_Q4_0 = "q4_0"
KV_CACHE_CHOICES: tuple[tuple[str, str], ...] = (
    (KV_F16, "f16 (exact)"),
    (KV_Q8_0, "q8_0 (about half the memory)"),
    (KV_Q4_0, "q4_0 (about a quarter)"),
)
#: GGML type numbers (ggml.h's ``enum ggml_type``; llama_cpp.GGML_TYPE_*), for type_k/type_v.
GGML_TYPE = {KV_F16: 1, KV_Q4_0: 2, KV_Q8_0: 8}
#: Bytes per cached number: f16 2; q8_0 34 bytes per block of 32; q4_0 18 per 32.
KV_BYTES_PER_ELEMENT = {KV_F16: 2.0, KV_Q8_0: 34 / 32, KV_Q4_0: 18 / 32}

FLASH_ATTN_HELP = (
    "Flash attention computes attention in tiles: faster and leaner where the build supports it. "
    "Auto lets llama.cpp decide; Off is always safe. A quantized KV cache needs it."
)
KV_CACHE_HELP = (
    "How the context's keys and values are stored. f16 is exact; q8_0 uses about half the memory "
    "and q4_0 about a quarter, at a small cost in accuracy. Needs flash attention (Auto or On)."
)
MMAP_HELP = (
    "Map the model file instead of reading it into memory: loads faster and shares memory with "
    "the system's file cache. Turn off only if the file sits on a slow or unreliable network drive."
)
MLOCK_HELP = (
    "Lock the whole model in RAM so the system never swaps it out. Needs permission to lock that "
    "much memory; loading takes longer."
)
PROMPT_LOOKUP_HELP = (
    "Prompt-lookup decoding guesses the next tokens from text already in the conversation and "
    "checks several at once: faster when the reply repeats the prompt (editing code, quoting). "
    "Costs context × vocabulary × 4 bytes more memory."
)
QUANTIZED_V_NEEDS_FLASH = "A quantized KV cache needs flash attention: choose Auto or On, or the f16 cache."

#: LlamaPromptLookupDecoding's arguments: draft this many tokens from n-grams up to this size.
PROMPT_LOOKUP_TOKENS = 10
PROMPT_LOOKUP_NGRAM = 2


def kv_factor(kv_type: str | None) -> float:
    """Size of a ``kv_type`` cache relative to f16 (1.0 for an unknown or unset type)."""
    return KV_BYTES_PER_ELEMENT.get(kv_type or KV_F16, 2.0) / 2.0


def conflict(flash_attn: str | None, kv_type: str | None) -> str | None:
    """Why this combination cannot load, or None."""
    if (flash_attn or FLASH_AUTO) == FLASH_OFF and (kv_type or KV_F16) != KV_F16:
        return QUANTIZED_V_NEEDS_FLASH
    return None


_CAP_IPC_LOCK = 14  # linux/capability.h: may lock any amount of memory


def mlock_problem(model_bytes: int) -> str | None:
    """Why locking a model of ``model_bytes`` in RAM would not work for this process, or None
    when it can (or this system cannot tell). llama.cpp only warns when mlock fails and loads
    the model unlocked, so the editor disables the choice instead of letting it silently fail.
    Reads RLIMIT_MEMLOCK and, on Linux, the CAP_IPC_LOCK capability (which lifts the limit)."""
    try:
        import resource  # noqa: PLC0415 - Unix only
    except ImportError:
        return None
    if _has_ipc_lock():
        return None
    limit = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]  # the engine child inherits it
    if limit == resource.RLIM_INFINITY or limit >= model_bytes:
        return None
    return (
        f"This system lets Hearth lock only {limit / 1024**2:,.0f} MiB of memory (RLIMIT_MEMLOCK) and "
        f"this model needs {model_bytes / 1024**2:,.0f} MiB; raise the limit (ulimit -l) to use mlock."
    )


def _has_ipc_lock() -> bool:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_IPC_LOCK & 1)
    except (OSError, ValueError):
        pass
    return False
