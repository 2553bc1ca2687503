"""A GGUF header read has a total budget, and any input gives metadata or GGUFError.

Each count in a header is capped on its own; these files stay under every single cap and
add up to far more than a real model (issue 13, point 4).  They are written sparse (holes
of zeros, which parse as empty names, 0-dimension tensors, empty arrays), so a 24 MB
header costs no disk.  The hypothesis tests feed arbitrary bytes and structure-aware
mutations of a valid header (point 8).  Bounds are memory (tracemalloc) and a generous
wall-clock ceiling that no machine should come near: the budget is counted in work, not
seconds, so the answer is the same everywhere.
"""

from __future__ import annotations

import importlib.util
import struct
import time
import tracemalloc
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.gguf import MAX_HEADER_MEMORY, GGUFError, GGUFMetadata, read_gguf
from app.core.library import ModelInfo, read_model

MiB = 1024 * 1024
#: Peak Python memory a rejected oversized header may take: the 1 MiB read window and change.
FAIL_FAST_PEAK = 4 * MiB
#: Any read at all: the header budget plus the read window and a string being decoded.
ANY_READ_PEAK = MAX_HEADER_MEMORY + 24 * MiB
#: A ceiling only a hang would reach (the budgeted work is about a second at worst).
GENEROUS_SECONDS = 30.0


def gstr(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def header(tensor_count: int = 0, kv_count: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, tensor_count, kv_count)


def measured(path: Path) -> tuple[GGUFMetadata | GGUFError, int, float]:
    """Read ``path``; return the result or the GGUFError, the peak traced memory, seconds."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result: GGUFMetadata | GGUFError = read_gguf(path)
    except GGUFError as exc:
        result = exc
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, peak, elapsed


def sparse(path: Path, head: bytes, size: int) -> Path:
    with path.open("wb") as f:
        f.write(head)
        f.truncate(size)
    return path


# ---------------------------------------------------------------------------
# Headers under every single cap, over the total
# ---------------------------------------------------------------------------


def test_a_million_tiny_tensors_fail_fast(tmp_path: Path) -> None:
    """The issue's file: a 24 MB header of a million 1-element tensors (+166 MB, 7 s before)."""
    path = sparse(tmp_path / "million.gguf", header(tensor_count=1_000_000), 24_000_000 + 64)
    result, peak, elapsed = measured(path)
    assert isinstance(result, GGUFError), "the whole header was read"
    assert "far larger than any real model" in result.reason and "1,000,000 tensors" in result.reason
    assert peak < FAIL_FAST_PEAK, peak
    assert elapsed < GENEROUS_SECONDS


def test_a_million_empty_nested_arrays_fail_fast(tmp_path: Path) -> None:
    """One metadata array of a million (empty) arrays: each would be walked one by one."""
    head = header(kv_count=1) + gstr("x.nested") + struct.pack("<IIQ", 9, 9, 1_000_000)
    path = sparse(tmp_path / "nested.gguf", head, len(head) + 12 * 1_000_000)
    result, peak, _ = measured(path)
    assert isinstance(result, GGUFError) and "far larger" in result.reason and "x.nested" in result.reason
    assert peak < FAIL_FAST_PEAK, peak


def test_many_long_strings_add_up_to_the_memory_budget(tmp_path: Path) -> None:
    """64 values of 1 MiB each: every one is allowed, all together are not."""
    path = tmp_path / "strings.gguf"
    count = 64
    with path.open("wb") as f:
        f.write(header(kv_count=count))
        for i in range(count):
            f.write(gstr(f"x.s{i}") + struct.pack("<IQ", 8, MiB))
            f.seek(MiB, 1)  # a hole: a MiB of NUL characters, valid UTF-8
        f.truncate(f.tell())
    result, peak, _ = measured(path)
    assert isinstance(result, GGUFError) and "far larger" in result.reason
    assert peak < ANY_READ_PEAK, peak


def test_a_llama3_8b_shaped_header_still_reads(tmp_path: Path) -> None:
    """bench/metadata.py's real-model case: 128k vocabulary, 280k merges, 291 tensors."""
    spec = importlib.util.spec_from_file_location(
        "bench_metadata", Path(__file__).parent.parent / "bench" / "metadata.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = tmp_path / "llama3.gguf"
    bench.write_llama3_shaped(path)
    result, peak, _ = measured(path)
    assert isinstance(result, GGUFMetadata), result
    assert len(result.tensors) == 291 and result.kv["tokenizer.ggml.tokens"].length == 128_256
    assert peak < 8 * MiB, peak


# ---------------------------------------------------------------------------
# Property-based: any bytes, and mutations of a valid header
# ---------------------------------------------------------------------------

_VALUE = st.one_of(
    st.tuples(st.just(4), st.integers(0, 2**32 - 1).map(lambda v: struct.pack("<I", v))),
    st.tuples(st.just(6), st.floats(width=32, allow_nan=True).map(lambda v: struct.pack("<f", v))),
    st.tuples(st.just(7), st.booleans().map(lambda v: struct.pack("<B", v))),
    st.tuples(st.just(8), st.text(max_size=40).map(gstr)),
    st.tuples(
        st.just(9),
        st.lists(st.integers(-(2**31), 2**31 - 1), max_size=80).map(
            lambda xs: struct.pack("<IQ", 5, len(xs)) + struct.pack(f"<{len(xs)}i", *xs)
        ),
    ),
    st.tuples(
        st.just(9),
        st.lists(st.text(max_size=8), max_size=80).map(
            lambda xs: struct.pack("<IQ", 8, len(xs)) + b"".join(gstr(x) for x in xs)
        ),
    ),
)
_KEY = st.sampled_from(
    [
        "general.architecture",
        "general.name",
        "llama.context_length",
        "llama.block_count",
        "general.alignment",
        "tokenizer.chat_template",
        "split.count",
        "general.file_type",
    ]
)
_KVS = st.lists(st.tuples(_KEY, _VALUE), max_size=8, unique_by=lambda kv: kv[0])
_TENSOR = st.tuples(st.text(max_size=12), st.lists(st.integers(0, 64), max_size=4), st.sampled_from([0, 1, 8, 12, 99]))


def _build(kvs: list, tensors: list) -> bytes:
    body = b"".join(gstr(k) + struct.pack("<I", t) + v for k, (t, v) in kvs)
    infos, offset = b"", 0
    for name, shape, ggml_type in tensors:
        infos += gstr(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
        infos += struct.pack("<IQ", ggml_type, offset)
        offset += 4096
    data = header(len(tensors), len(kvs)) + body + infos
    return data + bytes((-len(data)) % 32) + bytes(offset)


_MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("u64"), st.integers(0, 10_000), st.sampled_from([0, 1, 2**20, 2**31, 2**63, 2**64 - 1])),
)


def _mutate(data: bytes, mutations: list) -> bytes:
    out = bytearray(data)
    for kind, pos, value in mutations:
        if not out:
            break
        pos %= len(out)
        if kind == "flip":
            out[pos] = value
        elif kind == "cut":
            del out[pos:]
        else:
            out[pos : pos + 8] = struct.pack("<Q", value)
    return bytes(out)


def _check(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    result, peak, elapsed = measured(path)
    if isinstance(result, GGUFError):
        assert result.reason and str(result).startswith(f"{path.name}: ")
    else:
        assert isinstance(result, GGUFMetadata)
        ModelInfo.from_metadata(result)  # every derived field works on whatever was read
        result.estimate_ram_bytes()
    assert peak < ANY_READ_PEAK, peak
    assert elapsed < GENEROUS_SECONDS


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048), gguf_prefix=st.booleans())
def test_any_bytes_give_metadata_or_gguf_error(tmp_path: Path, data: bytes, gguf_prefix: bool) -> None:
    _check(tmp_path / "any.gguf", (b"GGUF\x03\x00\x00\x00" + data) if gguf_prefix else data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kvs=_KVS, tensors=st.lists(_TENSOR, max_size=5), mutations=st.lists(_MUTATION, max_size=4))
def test_mutated_headers_give_metadata_or_gguf_error(tmp_path: Path, kvs: list, tensors: list, mutations: list) -> None:
    _check(tmp_path / "mutated.gguf", _mutate(_build(kvs, tensors), mutations))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kvs=_KVS, tensors=st.lists(_TENSOR, max_size=5))
def test_unmutated_headers_read_through_the_library(tmp_path: Path, kvs: list, tensors: list) -> None:
    """A well-formed header (whatever its values) becomes a library record or a GGUFError."""
    path = tmp_path / "valid.gguf"
    path.write_bytes(_build(kvs, tensors))
    try:
        info = read_model(path)
    except GGUFError as exc:
        assert exc.reason
    else:
        assert isinstance(info, ModelInfo) and info.size == path.stat().st_size
