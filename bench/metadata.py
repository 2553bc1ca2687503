"""Reading a GGUF header must not depend on the size of the weights.

Writes a GGUF whose header is shaped like Llama-3-8B's (128k-token vocabulary, 280k merges,
291 tensors) and whose tensor data is a 20 GB sparse hole, then times Hearth's header reader
on it, and, as a baseline in the same run, on the tiny demo model. With ``--gguf-reader`` it
also times the ``gguf`` package's GGUFReader on the big header (slow: tens of seconds).

    python bench/metadata.py [--runs 5] [--gguf-reader]
Target (issue 3): under 50 ms per file.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.demo import find_demo_model  # noqa: E402
from app.core.gguf import read_gguf  # noqa: E402

HOLE = 20 * 1000**3


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def write_llama3_shaped(path: Path) -> None:
    """A valid GGUF v3 header (string KV, token and merge arrays, tensor infos) + a sparse hole."""
    kv: list[bytes] = []

    def put(key: str, vtype: int, payload: bytes) -> None:
        kv.append(_string(key) + struct.pack("<I", vtype) + payload)

    put("general.architecture", 8, _string("llama"))
    put("general.name", 8, _string("Bench Llama 3 8B"))
    put("general.file_type", 4, struct.pack("<I", 15))
    put("llama.context_length", 4, struct.pack("<I", 8192))
    put("llama.block_count", 4, struct.pack("<I", 32))
    put("llama.embedding_length", 4, struct.pack("<I", 4096))
    put("llama.attention.head_count", 4, struct.pack("<I", 32))
    put("llama.attention.head_count_kv", 4, struct.pack("<I", 8))
    tokens = b"".join(_string(f"tok{i}") for i in range(128_256))
    put("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 128_256) + tokens)
    put("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, 128_256) + b"\x01\x00\x00\x00" * 128_256)
    merges = b"".join(_string(f"a{i} b{i}") for i in range(280_147))
    put("tokenizer.ggml.merges", 9, struct.pack("<IQ", 8, 280_147) + merges)
    put("tokenizer.chat_template", 8, _string("{% for m in messages %}{{ m['content'] }}{% endfor %}"))

    tensors: list[bytes] = []
    offset = 0
    shapes = (
        [("token_embd.weight", (4096, 128_256))]
        + [
            (f"blk.{b}.{name}.weight", shape)
            for b in range(32)
            for name, shape in (
                ("attn_q", (4096, 4096)),
                ("attn_k", (4096, 1024)),
                ("attn_v", (4096, 1024)),
                ("attn_output", (4096, 4096)),
                ("ffn_gate", (4096, 14336)),
                ("ffn_up", (4096, 14336)),
                ("ffn_down", (14336, 4096)),
                ("attn_norm", (4096,)),
                ("ffn_norm", (4096,)),
            )
        ]
        + [("output_norm.weight", (4096,)), ("output.weight", (4096, 128_256))]
    )
    for name, shape in shapes:
        ggml_type = 0 if len(shape) == 1 else 12  # F32 norms, Q4_K matrices
        tensors.append(
            _string(name)
            + struct.pack("<I", len(shape))
            + b"".join(struct.pack("<Q", d) for d in shape)
            + struct.pack("<IQ", ggml_type, offset)
        )
        n = 1
        for d in shape:
            n *= d
        size = n * 4 if ggml_type == 0 else n // 256 * 144
        offset += (size + 31) // 32 * 32
    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv)) + b"".join(kv) + b"".join(tensors)
    with path.open("wb") as fh:
        fh.write(header)
        fh.write(b"\0" * ((-len(header)) % 32))
        fh.truncate(fh.tell() + max(offset, HOLE))  # a hole: no disk space used


def timed(path: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        read_gguf(path)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gguf-reader", action="store_true", help="also time gguf.GGUFReader (slow)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "llama3-shaped.gguf"
        write_llama3_shaped(big)
        meta = read_gguf(big)
        print(
            f"file: {big.stat().st_size / 1e9:.1f} GB apparent, header {meta.parameter_count / 1e9:.1f}B parameters, "
            f"{meta.quantization}, {len(meta.tensors)} tensors"
        )
        big_ms = timed(big, args.runs)
        demo = find_demo_model()
        demo_ms = timed(demo, args.runs) if demo else float("nan")
        print(
            f"Hearth header reader: {big_ms:.1f} ms on the 8B-shaped header (target < 50 ms), "
            f"{demo_ms:.1f} ms on the 135M demo model; ratio {big_ms / demo_ms:.2f}"
        )
        if args.gguf_reader:
            import gguf

            started = time.perf_counter()
            gguf.GGUFReader(str(big))
            print(f"gguf.GGUFReader baseline: {(time.perf_counter() - started) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
