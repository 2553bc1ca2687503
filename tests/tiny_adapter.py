"""Tiny random-weight GGUF LoRA adapters for the tiny test model (tests/tiny_model.py).

A helper module, not a test file. The layout is llama.cpp's (convert_lora_to_gguf.py,
llama-adapter.cpp): ``general.type = "adapter"``, ``adapter.type = "lora"``,
``adapter.lora.alpha``, and for each changed weight ``W`` (numpy shape ``(out, in)``)
``W.lora_a`` with numpy shape ``(rank, in)`` and ``W.lora_b`` with ``(out, rank)``.

Usage::

    from tests.tiny_adapter import write_tiny_lora
    write_tiny_lora(tmp_path / "style.gguf")                     # fits write_tiny_llama()
    write_tiny_lora(tmp_path / "big.gguf", n_embd=128)           # made for other sizes
    write_tiny_lora(tmp_path / "qwen.gguf", architecture="qwen2")  # for another architecture
"""

from __future__ import annotations

import pathlib

import numpy as np
from gguf import GGUFWriter


def write_tiny_lora(
    path: pathlib.Path | str,
    *,
    seed: int = 1,
    n_layer: int = 2,
    n_embd: int = 64,
    n_ff: int = 128,
    rank: int = 4,
    alpha: float = 4.0,
    strength: float = 0.5,
    architecture: str = "llama",
    name: str = "tiny-style",
    targets: tuple[str, ...] = ("attn_q", "attn_v", "ffn_up", "ffn_down"),
) -> pathlib.Path:
    """Write a LoRA adapter for the tiny llama (sizes must match its ``n_layer``/``n_embd``/
    ``n_ff`` to fit; anything else makes an adapter for another model). ``strength`` is the
    standard deviation of the random weights: large enough that scale 1 changes the greedy
    output of a random model."""
    path = pathlib.Path(path)
    rng = np.random.default_rng(seed)
    shapes = {  # numpy (out, in) of each weight, as write_tiny_llama writes it (4 heads of n_embd/4)
        "attn_q": (n_embd, n_embd),
        "attn_k": (n_embd, n_embd),
        "attn_v": (n_embd, n_embd),
        "attn_output": (n_embd, n_embd),
        "ffn_gate": (n_ff, n_embd),
        "ffn_up": (n_ff, n_embd),
        "ffn_down": (n_embd, n_ff),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(path, architecture)
    writer.add_string("general.type", "adapter")
    writer.add_string("general.name", name)
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    for i in range(n_layer):
        for target in targets:
            out, inp = shapes[target]
            a = (rng.standard_normal((rank, inp)) * strength).astype(np.float32)
            b = (rng.standard_normal((out, rank)) * strength).astype(np.float32)
            writer.add_tensor(f"blk.{i}.{target}.weight.lora_a", a)
            writer.add_tensor(f"blk.{i}.{target}.weight.lora_b", b)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return path
