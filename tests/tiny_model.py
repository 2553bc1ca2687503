"""Tiny random-weight GGUF models (and broken files) for tests.

This is a helper module, not a test file.  It writes, with ``gguf.GGUFWriter``,
a llama-architecture model small enough (~450 KB) to be created on the fly in
``tmp_path`` and loaded by llama.cpp in milliseconds:

* 2 layers, n_embd 64, 4 heads (4 or 2 KV heads), feed-forward 128,
  trained context 512, F32 (or F16) weights from numpy's seeded RNG;
* an SPM ("llama") tokenizer whose vocabulary is ``<unk>``, ``<s>``, ``</s>``
  followed by the 256 byte tokens ``<0x00>`` ... ``<0xFF>``, so every UTF-8
  text (newlines included, via ``<0x0A>``) tokenizes through byte fallback;
* the ChatML chat template in ``tokenizer.chat_template``.

The output of such a model is random text, which is all a test of the chat
plumbing needs.

Usage::

    from tests.tiny_model import write_tiny_llama
    path = write_tiny_llama(tmp_path / "tiny.gguf")

    # crafted metadata: only the stored value changes, tensors stay for 2 layers
    write_tiny_llama(tmp_path / "evil.gguf", block_count=100000)
    # drop a key entirely
    write_tiny_llama(tmp_path / "nohead.gguf", head_count=None)
    # any key by its full GGUF name
    write_tiny_llama(tmp_path / "x.gguf", **{"general.architecture": "nope"})
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import numpy as np
from gguf import GGUFValueType, GGUFWriter, Keys, LlamaFileType, TokenType

__all__ = [
    "CHATML_TEMPLATE",
    "N_VOCAB",
    "BOS_ID",
    "EOS_ID",
    "UNK_ID",
    "write_tiny_llama",
    "write_truncated",
    "write_random_bytes",
]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
_SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]
_BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]
N_VOCAB = len(_SPECIAL_TOKENS) + len(_BYTE_TOKENS)  # 259

_ARCH = "llama"

# Short names accepted in ``overrides`` -> full GGUF key.  A name not listed here
# and without a dot is taken as ``llama.<name>``; a name with a dot is used as is.
_ALIASES: dict[str, str] = {
    "architecture": Keys.General.ARCHITECTURE,
    "name": Keys.General.NAME,
    "file_type": Keys.General.FILE_TYPE,
    "context_length": Keys.LLM.CONTEXT_LENGTH.format(arch=_ARCH),
    "embedding_length": Keys.LLM.EMBEDDING_LENGTH.format(arch=_ARCH),
    "block_count": Keys.LLM.BLOCK_COUNT.format(arch=_ARCH),
    "feed_forward_length": Keys.LLM.FEED_FORWARD_LENGTH.format(arch=_ARCH),
    "vocab_size": Keys.LLM.VOCAB_SIZE.format(arch=_ARCH),
    "head_count": Keys.Attention.HEAD_COUNT.format(arch=_ARCH),
    "head_count_kv": Keys.Attention.HEAD_COUNT_KV.format(arch=_ARCH),
    "layer_norm_rms_eps": Keys.Attention.LAYERNORM_RMS_EPS.format(arch=_ARCH),
    "rope_dimension_count": Keys.Rope.DIMENSION_COUNT.format(arch=_ARCH),
    "rope_freq_base": Keys.Rope.FREQ_BASE.format(arch=_ARCH),
    "tokenizer_model": Keys.Tokenizer.MODEL,
    "tokens": Keys.Tokenizer.LIST,
    "token_scores": Keys.Tokenizer.SCORES,
    "token_types": Keys.Tokenizer.TOKEN_TYPE,
    "bos_token_id": Keys.Tokenizer.BOS_ID,
    "eos_token_id": Keys.Tokenizer.EOS_ID,
    "unk_token_id": Keys.Tokenizer.UNK_ID,
    "add_bos_token": Keys.Tokenizer.ADD_BOS,
    "add_eos_token": Keys.Tokenizer.ADD_EOS,
    "add_space_prefix": Keys.Tokenizer.ADD_PREFIX,
    "chat_template": Keys.Tokenizer.CHAT_TEMPLATE,
}


def _key_for(name: str) -> str:
    if name in _ALIASES:
        return _ALIASES[name]
    if "." in name:
        return name
    return f"{_ARCH}.{name}"


def _infer_type(value: Any) -> tuple[GGUFValueType, GGUFValueType | None]:
    if isinstance(value, bool):
        return GGUFValueType.BOOL, None
    if isinstance(value, (int, np.integer)):
        return (GGUFValueType.UINT32 if 0 <= value < 2**32 else GGUFValueType.INT64), None
    if isinstance(value, (float, np.floating)):
        return GGUFValueType.FLOAT32, None
    if isinstance(value, (str, bytes)):
        return GGUFValueType.STRING, None
    if isinstance(value, (list, tuple)):
        return GGUFValueType.ARRAY, None  # element type inferred by GGUFWriter
    raise TypeError(f"cannot store {value!r} ({type(value).__name__}) in GGUF metadata")


def _fits(value: Any, vtype: GGUFValueType) -> bool:
    """Whether ``value`` can be stored with the default type ``vtype`` of its key."""
    ints = {
        GGUFValueType.UINT8: (0, 2**8),
        GGUFValueType.INT8: (-(2**7), 2**7),
        GGUFValueType.UINT16: (0, 2**16),
        GGUFValueType.INT16: (-(2**15), 2**15),
        GGUFValueType.UINT32: (0, 2**32),
        GGUFValueType.INT32: (-(2**31), 2**31),
        GGUFValueType.UINT64: (0, 2**64),
        GGUFValueType.INT64: (-(2**63), 2**63),
    }
    if vtype in ints:
        lo, hi = ints[vtype]
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and lo <= value < hi
    if vtype in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        return isinstance(value, (float, int, np.floating, np.integer)) and not isinstance(value, bool)
    if vtype == GGUFValueType.BOOL:
        return isinstance(value, bool)
    if vtype == GGUFValueType.STRING:
        return isinstance(value, (str, bytes))
    if vtype == GGUFValueType.ARRAY:
        return isinstance(value, (list, tuple))
    return False


def write_tiny_llama(
    path: pathlib.Path | str,
    *,
    seed: int = 0,
    chat_template: str | None = CHATML_TEMPLATE,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_head_kv: int = 4,
    n_ff: int = 128,
    n_ctx_train: int = 512,
    dtype: str = "f32",
    **overrides: Any,
) -> pathlib.Path:
    """Write a tiny random-weight llama GGUF model to ``path`` and return the path.

    The keyword arguments ``n_layer`` ... ``n_ctx_train`` and ``dtype`` ("f32" or
    "f16"; norms stay F32) shape the real model: tensors and metadata agree.

    ``overrides`` only change the *stored metadata*, never the tensors, which is
    what crafted/corrupt files need (``block_count=100000`` stores 100000 in
    ``llama.block_count`` while the file still holds 2 layers of tensors).  Keys
    are short names (``block_count``, ``context_length``, ``head_count``,
    ``head_count_kv``, ``embedding_length``, ``feed_forward_length``,
    ``layer_norm_rms_eps``, ``rope_dimension_count``, ``architecture``, ``name``,
    ``tokenizer_model``, ``bos_token_id``, ...), any other dot-less name meaning
    ``llama.<name>``, or full GGUF keys passed as ``**{"general.name": "x"}``.
    A value of ``None`` removes the key.  A value keeps the key's usual GGUF type
    when it fits (``block_count`` stays UINT32); otherwise its type is inferred
    from the Python value, so ``block_count="many"`` stores a string.

    ``chat_template=None`` writes no ``tokenizer.chat_template``.
    """
    path = pathlib.Path(path)
    if dtype not in ("f32", "f16"):
        raise ValueError(f"dtype must be 'f32' or 'f16', not {dtype!r}")
    if n_embd % n_head or n_head % n_head_kv:
        raise ValueError("n_embd must divide by n_head, and n_head by n_head_kv")
    head_dim = n_embd // n_head
    wtype = np.float32 if dtype == "f32" else np.float16

    U32, F32, STR, BOOL, ARR = (
        GGUFValueType.UINT32,
        GGUFValueType.FLOAT32,
        GGUFValueType.STRING,
        GGUFValueType.BOOL,
        GGUFValueType.ARRAY,
    )
    tokens = _SPECIAL_TOKENS + _BYTE_TOKENS
    token_types = [int(TokenType.UNKNOWN), int(TokenType.CONTROL), int(TokenType.CONTROL)]
    token_types += [int(TokenType.BYTE)] * len(_BYTE_TOKENS)
    scores = [0.0] * N_VOCAB

    kv: dict[str, tuple[Any, GGUFValueType, GGUFValueType | None]] = {
        Keys.General.ARCHITECTURE: (_ARCH, STR, None),
        Keys.General.NAME: ("hearth-tiny-llama", STR, None),
        Keys.General.FILE_TYPE: (int(LlamaFileType.ALL_F32 if dtype == "f32" else LlamaFileType.MOSTLY_F16), U32, None),
        _key_for("context_length"): (n_ctx_train, U32, None),
        _key_for("embedding_length"): (n_embd, U32, None),
        _key_for("block_count"): (n_layer, U32, None),
        _key_for("feed_forward_length"): (n_ff, U32, None),
        _key_for("head_count"): (n_head, U32, None),
        _key_for("head_count_kv"): (n_head_kv, U32, None),
        _key_for("layer_norm_rms_eps"): (1e-5, F32, None),
        _key_for("rope_dimension_count"): (head_dim, U32, None),
        _key_for("rope_freq_base"): (10000.0, F32, None),
        Keys.Tokenizer.MODEL: ("llama", STR, None),
        Keys.Tokenizer.LIST: (tokens, ARR, STR),
        Keys.Tokenizer.SCORES: (scores, ARR, F32),
        Keys.Tokenizer.TOKEN_TYPE: (token_types, ARR, GGUFValueType.INT32),
        Keys.Tokenizer.BOS_ID: (BOS_ID, U32, None),
        Keys.Tokenizer.EOS_ID: (EOS_ID, U32, None),
        Keys.Tokenizer.UNK_ID: (UNK_ID, U32, None),
        Keys.Tokenizer.ADD_BOS: (True, BOOL, None),
        Keys.Tokenizer.ADD_EOS: (False, BOOL, None),
        # no leading "\u2581": with only byte tokens it would detokenize as b"\xe2\x96\x81", not b" "
        Keys.Tokenizer.ADD_PREFIX: (False, BOOL, None),
    }
    if chat_template is not None:
        kv[Keys.Tokenizer.CHAT_TEMPLATE] = (chat_template, STR, None)

    for name, value in overrides.items():
        key = _key_for(name)
        if value is None:
            kv.pop(key, None)
            continue
        if key in kv and _fits(value, kv[key][1]):
            _, vtype, sub = kv[key]
            if vtype == ARR:
                value = list(value)
        else:
            vtype, sub = _infer_type(value)
            if vtype == ARR:
                value = list(value)
        kv[key] = (value, vtype, sub)

    # --- tensors (numpy shape = (out, in); gguf stores it reversed, as ggml's ne) ---
    rng = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(wtype)

    def norm() -> np.ndarray:
        return np.ones(n_embd, dtype=np.float32)

    tensors: list[tuple[str, np.ndarray]] = [("token_embd.weight", w(N_VOCAB, n_embd))]
    for i in range(n_layer):
        p = f"blk.{i}."
        tensors += [
            (p + "attn_norm.weight", norm()),
            (p + "attn_q.weight", w(n_head * head_dim, n_embd)),
            (p + "attn_k.weight", w(n_head_kv * head_dim, n_embd)),
            (p + "attn_v.weight", w(n_head_kv * head_dim, n_embd)),
            (p + "attn_output.weight", w(n_embd, n_head * head_dim)),
            (p + "ffn_norm.weight", norm()),
            (p + "ffn_gate.weight", w(n_ff, n_embd)),
            (p + "ffn_up.weight", w(n_ff, n_embd)),
            (p + "ffn_down.weight", w(n_embd, n_ff)),
        ]
    tensors += [("output_norm.weight", norm()), ("output.weight", w(N_VOCAB, n_embd))]

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(path, _ARCH)
    writer.kv_data[0].clear()  # drop the architecture key the constructor adds; ours is in kv
    for key, (value, vtype, sub) in kv.items():
        writer.add_key_value(key, value, vtype, sub_type=sub)
    for name, arr in tensors:
        writer.add_tensor(name, arr)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return path


def write_truncated(src: pathlib.Path | str, dst: pathlib.Path | str, fraction: float) -> pathlib.Path:
    """Copy the first ``fraction`` (0..1) of ``src``'s bytes to ``dst``; return ``dst``."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within [0, 1], not {fraction!r}")
    data = pathlib.Path(src).read_bytes()
    dst = pathlib.Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def write_random_bytes(dst: pathlib.Path | str, n: int, *, seed: int = 0) -> pathlib.Path:
    """Write ``n`` seeded random bytes (not a GGUF file: no magic) to ``dst``; return ``dst``."""
    dst = pathlib.Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes()
    if data[:4] == b"GGUF":  # astronomically unlikely, but keep the promise
        data = b"XXXX" + data[4:]
    dst.write_bytes(data)
    return dst


if __name__ == "__main__":  # python -m tests.tiny_model OUT.gguf
    import sys

    out = write_tiny_llama(sys.argv[1] if len(sys.argv) > 1 else "tiny.gguf")
    print(out, os.path.getsize(out), "bytes")
