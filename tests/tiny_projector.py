"""A tiny random-weight vision projector (``mmproj``) for tests.

This is a helper module, not a test file. It writes, with ``gguf.GGUFWriter``, a
LLaVA-style projector in the layout llama.cpp's libmtmd (tools/mtmd/clip.cpp) loads:
``general.architecture = clip``, ``clip.projector_type = mlp``, a one-block ViT
(n_embd 32, 2 heads) over 32x32 images in 8x8 patches, so every image becomes
(32/8)**2 = 16 tokens, and the two-layer MLP (``mm.0``, ``mm.2``) that maps them to the
text model's embedding size (``projection_dim``: 64 for tests/tiny_model.py's model).
About 90 KB, F32, weights from numpy's seeded RNG: the text it leads to is nonsense, but
each image's embeddings really reach the model.

Also ``png(width, height, seed)``: a PNG of random pixels, written with zlib alone.
"""

from __future__ import annotations

import pathlib
import struct
import zlib

import numpy as np
from gguf import GGUFWriter

IMAGE_SIZE = 32
PATCH_SIZE = 8
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2  # 16


def write_tiny_projector(
    path: pathlib.Path | str, *, projection_dim: int = 64, seed: int = 1, n_embd: int = 32, n_ff: int = 64
) -> pathlib.Path:
    rng = np.random.default_rng(seed)
    w = GGUFWriter(str(path), "clip")
    w.add_string("general.type", "mmproj")
    w.add_string("general.name", "tiny projector")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.projector_type", "mlp")
    w.add_uint32("clip.vision.embedding_length", n_embd)
    w.add_uint32("clip.vision.attention.head_count", 2)
    w.add_uint32("clip.vision.feed_forward_length", n_ff)
    w.add_uint32("clip.vision.block_count", 1)
    w.add_uint32("clip.vision.projection_dim", projection_dim)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    w.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    w.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    w.add_bool("clip.use_gelu", True)

    def rand(name: str, *shape: int) -> None:  # numpy order: the reverse of ggml's ne
        w.add_tensor(name, (rng.standard_normal(shape) * 0.2).astype(np.float32))

    def const(name: str, n: int, value: float) -> None:
        w.add_tensor(name, np.full(n, value, dtype=np.float32))

    rand("v.patch_embd.weight", n_embd, 3, PATCH_SIZE, PATCH_SIZE)
    rand("v.position_embd.weight", IMAGE_TOKENS, n_embd)
    for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
        rand(f"v.blk.0.{name}.weight", n_embd, n_embd)
        const(f"v.blk.0.{name}.bias", n_embd, 0.0)
    for name in ("ln1", "ln2"):
        const(f"v.blk.0.{name}.weight", n_embd, 1.0)
        const(f"v.blk.0.{name}.bias", n_embd, 0.0)
    rand("v.blk.0.ffn_up.weight", n_ff, n_embd)
    const("v.blk.0.ffn_up.bias", n_ff, 0.0)
    rand("v.blk.0.ffn_down.weight", n_embd, n_ff)
    const("v.blk.0.ffn_down.bias", n_embd, 0.0)
    rand("mm.0.weight", projection_dim, n_embd)
    const("mm.0.bias", projection_dim, 0.0)
    rand("mm.2.weight", projection_dim, projection_dim)
    const("mm.2.bias", projection_dim, 0.0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return pathlib.Path(path)


def png(width: int, height: int, seed: int) -> bytes:
    """A PNG (8-bit RGB) of random pixels."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
