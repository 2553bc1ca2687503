"""Read the header (metadata and tensor list) of a GGUF model file.

Hearth shows people what a model file is before they load it (its
architecture, size, quantization, context length, how much memory it will
need) and must refuse broken downloads with a message a person can act on,
instead of letting llama.cpp crash or fill the memory.  This module does that
with the Python standard library only, so it can run in the GUI process without
importing numpy, the ``gguf`` package or llama.cpp.

Format (all integers little-endian, see the GGUF spec in ggml's docs)::

    magic b"GGUF" | uint32 version (2 or 3) | uint64 tensor_count | uint64 kv_count
    kv_count x  (string key, uint32 value_type, value)
    tensor_count x (string name, uint32 n_dims, n_dims x uint64 ne,
                    uint32 ggml_type, uint64 offset)
    padding to general.alignment (default 32) | tensor data

    string = uint64 byte length + UTF-8 bytes
    array  = uint32 item_type + uint64 length + items

The file is untrusted input (downloaded from anywhere, possibly cut short or
deliberately hostile), so every length and count is checked against hard
limits and against the bytes actually left in the file *before* anything is
allocated, and the file is read through a small window instead of being loaded
whole (model files are many gigabytes).  Every problem surfaces as one
exception type, :class:`GGUFError`, whose text names the file and says what is
wrong in plain English.
"""

from __future__ import annotations

import math
import os
import re
import stat
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "ArraySummary",
    "GGUFError",
    "GGUFMetadata",
    "TensorInfo",
    "format_params",
    "read_gguf",
    "split_parts",
]

# --------------------------------------------------------------------------
# Limits.  Generous for every real model, small enough that a hostile file
# cannot make us allocate gigabytes or loop for minutes.
# --------------------------------------------------------------------------

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)

#: Longest text value we accept (chat templates are a few KiB, the longest
#: real ones under 100 KiB; 16 MiB is far beyond any real one and still fits
#: the header's memory budget below).
MAX_STRING_BYTES = 16 * 1024 * 1024
#: Longest metadata key or tensor name (real ones are < 100 bytes; llama.cpp
#: itself rejects tensor names of 64 bytes or more).
MAX_NAME_BYTES = 64 * 1024
#: Arrays longer than this are summarised as :class:`ArraySummary` instead of
#: being decoded into Python lists (tokenizer vocabularies have 50k-250k items
#: that nobody needs in the GUI).
SMALL_ARRAY_MAX = 64
#: Arrays whose items have to be walked one by one (strings, nested arrays)
#: may not be longer than this: the biggest real vocabularies / merge lists
#: are well under a million entries.
MAX_WALKED_ARRAY_ITEMS = 1 << 24
#: Arrays nested deeper than this are refused (real files nest at most once).
MAX_ARRAY_DEPTH = 4
MAX_KV_COUNT = 1 << 20
MAX_TENSOR_COUNT = 1 << 22
#: GGML_MAX_DIMS in ggml.h; llama.cpp refuses tensors with more dimensions.
MAX_DIMS = 4

# Budget for one whole header read.  Every count above is capped on its own, but a
# hostile file can stay under each cap and still add up (a 24 MB header with a million
# tiny tensors cost +166 MB and 7 s), so a read also has a total budget, charged before
# anything is walked or allocated, so an oversized header fails at once.  Both budgets
# count work and bytes, not seconds: the same file gives the same answer on every
# machine, and the time follows from the work (about 0.1 µs per skipped vocabulary
# string, a few µs per decoded item).

#: Work units for one header.  A vocabulary string skipped in the hot loop costs 1, and
#: anything handled one Python step at a time (a metadata entry, a decoded value, a
#: walked nested array, a tensor) costs ``_WORK_ITEM``.  A Llama-3-8B header needs about
#: 0.41 M units (128k tokens + 280k merges + 291 tensors); the biggest real vocabularies
#: (256k tokens + 253k merges) about 0.52 M.  4 M leaves 8x headroom and bounds a hostile
#: header to about a second.
MAX_HEADER_WORK = 4_000_000
_WORK_ITEM = 20
#: Bytes of Python objects one header may keep (an estimate charged before allocating:
#: ``_MEM_TENSOR`` per tensor, ``_MEM_VALUE`` per decoded value plus the text of strings,
#: names and keys).  A Llama-3-8B header keeps about 0.1 MiB; 32 MiB holds any real one,
#: with its chat templates, and a file can never make the reader hold more.
MAX_HEADER_MEMORY = 32 * 1024 * 1024
_MEM_TENSOR = 256
_MEM_VALUE = 64
_TOO_BIG = "the header is far larger than any real model's ({what}) — the file is corrupt"
_INT64_MAX = (1 << 63) - 1

#: How much of the file is pulled into memory at a time.
_CHUNK = 1 << 20

_TRUNCATED = "the file is truncated — was the download interrupted?"

# --------------------------------------------------------------------------
# Enumerations (checked against gguf-py's constants.py from llama.cpp).
# --------------------------------------------------------------------------

# GGUF metadata value types.
_T_UINT8, _T_INT8, _T_UINT16, _T_INT16, _T_UINT32, _T_INT32 = 0, 1, 2, 3, 4, 5
_T_FLOAT32, _T_BOOL, _T_STRING, _T_ARRAY = 6, 7, 8, 9
_T_UINT64, _T_INT64, _T_FLOAT64 = 10, 11, 12

VALUE_TYPE_NAMES: dict[int, str] = {
    _T_UINT8: "UINT8",
    _T_INT8: "INT8",
    _T_UINT16: "UINT16",
    _T_INT16: "INT16",
    _T_UINT32: "UINT32",
    _T_INT32: "INT32",
    _T_FLOAT32: "FLOAT32",
    _T_BOOL: "BOOL",
    _T_STRING: "STRING",
    _T_ARRAY: "ARRAY",
    _T_UINT64: "UINT64",
    _T_INT64: "INT64",
    _T_FLOAT64: "FLOAT64",
}

# Fixed-size value types: struct format character per type.
_SCALAR_FORMATS: dict[int, str] = {
    _T_UINT8: "B",
    _T_INT8: "b",
    _T_UINT16: "H",
    _T_INT16: "h",
    _T_UINT32: "I",
    _T_INT32: "i",
    _T_FLOAT32: "f",
    _T_BOOL: "B",
    _T_UINT64: "Q",
    _T_INT64: "q",
    _T_FLOAT64: "d",
}
_SCALAR_STRUCTS: dict[int, struct.Struct] = {t: struct.Struct("<" + f) for t, f in _SCALAR_FORMATS.items()}

#: ``enum ggml_type`` (ggml.h).  Gaps are types removed from ggml.
GGML_TYPE_NAMES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    6: "Q5_0",
    7: "Q5_1",
    8: "Q8_0",
    9: "Q8_1",
    10: "Q2_K",
    11: "Q3_K",
    12: "Q4_K",
    13: "Q5_K",
    14: "Q6_K",
    15: "Q8_K",
    16: "IQ2_XXS",
    17: "IQ2_XS",
    18: "IQ3_XXS",
    19: "IQ1_S",
    20: "IQ4_NL",
    21: "IQ3_S",
    22: "IQ2_S",
    23: "IQ4_XS",
    24: "I8",
    25: "I16",
    26: "I32",
    27: "I64",
    28: "F64",
    29: "IQ1_M",
    30: "BF16",
    34: "TQ1_0",
    35: "TQ2_0",
    39: "MXFP4",
}

_QK_K = 256
#: (elements per block, bytes per block) per ggml type, as GGML_QUANT_SIZES in
#: gguf-py.  Used to check that the tensor data the header promises is really
#: in the file, which is how an interrupted download is usually noticed.
_GGML_BLOCK_SIZES: dict[int, tuple[int, int]] = {
    0: (1, 4),
    1: (1, 2),
    2: (32, 18),
    3: (32, 20),
    6: (32, 22),
    7: (32, 24),
    8: (32, 34),
    9: (32, 40),
    10: (_QK_K, 2 + 2 + _QK_K // 16 + _QK_K // 4),
    11: (_QK_K, 2 + _QK_K // 4 + _QK_K // 8 + 12),
    12: (_QK_K, 2 + 2 + _QK_K // 2 + 12),
    13: (_QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 8 + 12),
    14: (_QK_K, 2 + _QK_K // 2 + _QK_K // 4 + _QK_K // 16),
    15: (_QK_K, 4 + _QK_K + _QK_K // 8),
    16: (_QK_K, 2 + _QK_K // 4),
    17: (_QK_K, 2 + _QK_K // 4 + _QK_K // 32),
    18: (_QK_K, 2 + _QK_K // 4 + _QK_K // 8),
    19: (_QK_K, 2 + _QK_K // 8 + _QK_K // 16),
    20: (32, 18),
    21: (_QK_K, 2 + _QK_K // 4 + _QK_K // 8 + _QK_K // 32 + 4),
    22: (_QK_K, 2 + _QK_K // 4 + _QK_K // 16),
    23: (_QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 64),
    24: (1, 1),
    25: (1, 2),
    26: (1, 4),
    27: (1, 8),
    28: (1, 8),
    29: (_QK_K, _QK_K // 8 + _QK_K // 16 + _QK_K // 32),
    30: (1, 2),
    34: (_QK_K, 2 + 4 * 13),
    35: (_QK_K, 2 + 64),
    39: (32, 17),
}

#: ``enum llama_ftype`` (llama.h), stored as ``general.file_type``: the
#: quantization the whole file was produced with.
LLAMA_FTYPE_NAMES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}

# --------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------


class GGUFError(Exception):
    """A GGUF file could not be read; ``str()`` is fit to show to a person.

    One exception type for every failure (corrupt, truncated, not GGUF, not
    readable) so the UI needs a single ``except`` and always gets a message
    that names the file and says what is wrong.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(path, reason)  # keeps the exception picklable
        self.path = Path(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path.name}: {self.reason}"


@dataclass(frozen=True)
class ArraySummary:
    """Stand-in for a long metadata array that was skipped, not decoded.

    Decoding e.g. a 150k-entry vocabulary into Python objects would cost time
    and memory for data the app never shows; the type and length are enough
    to describe it.
    """

    item_type: str  # GGUF value type name of the items, e.g. "STRING"
    length: int


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the file's tensor table (the data itself is not read)."""

    name: str
    #: Dimensions in ggml order (``ne[0]`` first, i.e. the row length first).
    shape: tuple[int, ...]
    ggml_type: int
    n_elements: int

    @property
    def type_name(self) -> str:
        """ggml type name such as ``"Q4_K"``, or ``"type N"`` if unknown."""
        return GGML_TYPE_NAMES.get(self.ggml_type, f"type {self.ggml_type}")


# Fixed memory the runtime needs besides weights and KV cache (the engine process
# itself with Python and llama.cpp, ~50 MiB, and the compute buffers a prompt batch
# touches), and the extra share of the weight size that compute buffers grow by for
# bigger models. Checked against the engine child's measured RSS by bench/memory.py
# (CPU build; a GPU runtime's own context comes on top).
_OVERHEAD_BASE_BYTES = 80 * 1024 * 1024
_OVERHEAD_WEIGHT_FRACTION = 0.05


@dataclass(frozen=True)
class GGUFMetadata:
    """Everything in a GGUF header, plus the facts the app derives from it."""

    path: Path
    file_size: int
    version: int
    #: Metadata key -> value.  Scalars become int/float/bool/str, arrays of at
    #: most ``SMALL_ARRAY_MAX`` items become lists, longer ones ArraySummary.
    kv: dict[str, object]
    tensors: tuple[TensorInfo, ...]

    # -- small typed accessors; a wrongly typed value counts as missing, so a
    #    crafted file cannot make the UI crash on e.g. a string block_count.

    def _str(self, key: str) -> str | None:
        value = self.kv.get(key)
        return value if isinstance(value, str) else None

    def _int(self, key: str) -> int | None:
        """Integer value of ``key``; for per-layer arrays, the largest item.

        Some architectures store e.g. head counts per layer; the largest one
        gives an upper bound, which is what memory estimates need.
        """
        value = self.kv.get(key)
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return max(v for v in value if isinstance(v, int))
        return None

    def _arch_int(self, suffix: str) -> int | None:
        arch = self.architecture
        return self._int(f"{arch}.{suffix}") if arch else None

    @property
    def architecture(self) -> str | None:
        """``general.architecture``, e.g. ``"llama"``; prefixes the model keys."""
        return self._str("general.architecture")

    @property
    def name(self) -> str | None:
        """``general.name``: the human-readable model name, if the file has one."""
        return self._str("general.name")

    @property
    def size_label(self) -> str | None:
        """``general.size_label`` such as ``"135M"`` or ``"8x7B"``."""
        return self._str("general.size_label")

    @property
    def context_length(self) -> int | None:
        """Context length the model was trained for (``{arch}.context_length``)."""
        return self._arch_int("context_length")

    @property
    def block_count(self) -> int | None:
        """Number of transformer layers (``{arch}.block_count``)."""
        return self._arch_int("block_count")

    @property
    def embedding_length(self) -> int | None:
        """Hidden size (``{arch}.embedding_length``)."""
        return self._arch_int("embedding_length")

    @property
    def head_count(self) -> int | None:
        """Attention heads (``{arch}.attention.head_count``)."""
        return self._arch_int("attention.head_count")

    @property
    def head_count_kv(self) -> int | None:
        """Key/value heads; without the key there is no GQA, so it equals head_count."""
        value = self._arch_int("attention.head_count_kv")
        return value if value is not None else self.head_count

    @property
    def chat_template(self) -> str | None:
        """Jinja chat template (``tokenizer.chat_template``), if embedded."""
        return self._str("tokenizer.chat_template")

    @property
    def file_type(self) -> int | None:
        """``general.file_type``: a ``llama_ftype`` value, see :attr:`quantization`."""
        return self._int("general.file_type")

    @property
    def quantization(self) -> str | None:
        """Quantization name such as ``"Q4_K_M"``.

        Taken from ``general.file_type`` when it is a known ``llama_ftype``;
        otherwise (older converters, unknown or "guessed" values) the most
        common ggml type among the 2-D tensors, i.e. the weight matrices
        that make up the bulk of the file.  ``None`` if neither is available.
        """
        file_type = self.file_type
        if file_type is not None and file_type in LLAMA_FTYPE_NAMES:
            return LLAMA_FTYPE_NAMES[file_type]
        counts = Counter(t.ggml_type for t in self.tensors if len(t.shape) == 2)
        if not counts:
            return None
        ggml_type = counts.most_common(1)[0][0]
        return GGML_TYPE_NAMES.get(ggml_type, f"type {ggml_type}")

    @property
    def parameter_count(self) -> int | None:
        """Sum of the elements of all tensors in *this* file (None if it has none).

        For a split model this counts only the tensors stored in this part.
        """
        if not self.tensors:
            return None
        return sum(t.n_elements for t in self.tensors)

    @property
    def split_count(self) -> int:
        """Number of files the model is split into (``split.count``), 1 if not split."""
        for key in ("split.count", "general.split.count"):
            value = self._int(key)
            if value is not None and value >= 1:
                return value
        return 1

    def kv_cache_bytes(self, n_ctx: int) -> int:
        """Bytes llama.cpp's default (f16) KV cache takes for ``n_ctx`` tokens.

        ``block_count * n_ctx * head_count_kv * (key_length + value_length) * 2``
        where key/value_length default to ``embedding_length / head_count``;
        for ordinary models that is
        ``2 * block_count * n_ctx * (embedding_length / head_count * head_count_kv) * 2``.
        Returns 0 when the file lacks what the formula needs (e.g. models
        without attention), since nothing better can be said from the header.
        """
        n_layers = self.block_count
        n_head = self.head_count
        n_head_kv = self.head_count_kv
        n_embd = self.embedding_length
        if n_ctx <= 0 or not n_layers or not n_head_kv or n_layers < 0 or n_head_kv < 0:
            return 0
        head_dim = n_embd // n_head if n_embd and n_head and n_embd > 0 and n_head > 0 else None
        key_len = self._arch_int("attention.key_length") or head_dim
        value_len = self._arch_int("attention.value_length") or head_dim
        if not key_len or not value_len or key_len < 0 or value_len < 0:
            return 0
        return n_layers * n_ctx * n_head_kv * (key_len + value_len) * 2

    def estimate_ram_bytes(self, n_ctx: int | None = None) -> int:
        """Rough memory needed to run the model with a context of ``n_ctx`` tokens.

        ``weights + kv_cache_bytes(n_ctx) + 80 MiB + 5 % of weights``, where

        * *weights* is the size of the file, or of all its parts for a split
          model (parts that are missing are assumed as big as this one);
        * ``n_ctx`` defaults to the trained :attr:`context_length` (0 if
          unknown), which is what llama.cpp allocates when asked for "the
          model's context";
        * the last two terms stand for compute buffers and runtime overhead,
          which grow mildly with model size.

        It is meant to warn before loading a model that cannot fit, not to be
        exact to the megabyte.
        """
        if n_ctx is None:
            n_ctx = self.context_length or 0
        weights = self._weights_bytes()
        overhead = _OVERHEAD_BASE_BYTES + int(weights * _OVERHEAD_WEIGHT_FRACTION)
        return weights + self.kv_cache_bytes(n_ctx) + overhead

    def _weights_bytes(self) -> int:
        parts = split_parts(self.path)
        if len(parts) <= 1:
            count = self.split_count
            return self.file_size * count if count > 1 else self.file_size
        total = 0
        for part in parts:
            try:
                total += part.stat().st_size if part != self.path else self.file_size
            except OSError:
                total += self.file_size
        return total


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_HEADER = struct.Struct("<4sI")
_COUNTS = struct.Struct("<QQ")
_TYPE_OFFSET = struct.Struct("<IQ")
_MIN_KV_BYTES = 8 + 4 + 1  # empty key, type, smallest value
_MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8  # empty name, n_dims 0, type, offset


class _Cursor:
    """Forward-only reader over a window of the file, with bounds checks.

    Keeps at most about ``_CHUNK`` bytes (or one long string) in memory and
    knows how many bytes remain in the file, so every claimed length can be
    checked before it is read or allocated.
    """

    __slots__ = ("_f", "_path", "_size", "_buf", "_pos", "_base", "work_left", "memory_left")

    def __init__(self, f: BinaryIO, path: Path, size: int) -> None:
        self._f = f
        self._path = path
        self._size = size
        self._buf = b""
        self._pos = 0  # read position inside _buf
        self._base = 0  # file offset of _buf[0]; the file is at _base + len(_buf)
        self.work_left = MAX_HEADER_WORK
        self.memory_left = MAX_HEADER_MEMORY

    def charge(self, work: int, memory: int, what: str) -> None:
        """Take ``work`` units and ``memory`` bytes from this read's budget *before* doing
        the work, so a header too big to read fails without walking or allocating it."""
        self.work_left -= work
        self.memory_left -= memory
        if self.work_left < 0 or self.memory_left < 0:
            raise self.error(_TOO_BIG.format(what=what))

    @property
    def offset(self) -> int:
        return self._base + self._pos

    @property
    def remaining(self) -> int:
        return self._size - self._base - self._pos

    def error(self, reason: str) -> GGUFError:
        return GGUFError(self._path, reason)

    def _ensure(self, n: int) -> None:
        """Make ``n`` bytes available in the buffer at the read position."""
        available = len(self._buf) - self._pos
        if available >= n:
            return
        if n > self.remaining:
            raise self.error(_TRUNCATED)
        want = max(n - available, _CHUNK)
        data = self._f.read(want)
        if len(data) < n - available:  # file shrank while we read it
            raise self.error(_TRUNCATED)
        self._base += self._pos
        self._buf = self._buf[self._pos :] + data
        self._pos = 0

    def unpack(self, s: struct.Struct) -> tuple[Any, ...]:
        self._ensure(s.size)
        values = s.unpack_from(self._buf, self._pos)
        self._pos += s.size
        return values

    def u32(self) -> int:
        return int(self.unpack(_U32)[0])

    def u64(self) -> int:
        return int(self.unpack(_U64)[0])

    def read(self, n: int) -> bytes:
        self._ensure(n)
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data

    def skip(self, n: int) -> None:
        if n <= len(self._buf) - self._pos:
            self._pos += n
            return
        if n > self.remaining:
            raise self.error(_TRUNCATED)
        target = self.offset + n
        self._f.seek(target)
        self._buf = b""
        self._pos = 0
        self._base = target

    def string_length(self, limit: int, what: str) -> int:
        n = self.u64()
        if n > limit:
            raise self.error(f"{what} claims to be {n:,} bytes long, which no real model has — the file is corrupt")
        if n > self.remaining:
            raise self.error(_TRUNCATED)
        return n

    def string(self, limit: int, what: str) -> str:
        n = self.string_length(limit, what)
        self.charge(0, _MEM_VALUE + n, f"{n:,} bytes of text")
        raw = self.read(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(f"{what} is not valid UTF-8 text — the file is corrupt") from None

    def skip_strings(self, count: int, what: str) -> None:
        """Skip ``count`` GGUF strings, checking each length.

        This is the hot loop for vocabularies (hundreds of thousands of strings), so it walks
        batches of strings with no per-string checks: lengths only ever move forward, and a
        batch is accepted only if it ended inside the buffer (a bad or huge length overshoots
        it, or makes ``unpack_from`` fail). A batch that overshoots is retried in smaller
        steps, down to one string on the careful path, which gives the precise error or
        crosses into the next window. About three times faster than checking every string.
        """
        unpack_from = _U64.unpack_from
        batch = 4096
        while count:
            available = len(self._buf) - self._pos
            if available < _CHUNK // 2 and self.remaining > available:
                self._ensure(min(_CHUNK, self.remaining))  # a full window from here
            buf = self._buf
            n = min(count, batch)
            p = self._pos
            try:
                quads, rest = divmod(n, 4)
                for _ in range(quads):  # unrolled: the loop itself is a good part of the cost
                    p += 8 + unpack_from(buf, p)[0]
                    p += 8 + unpack_from(buf, p)[0]
                    p += 8 + unpack_from(buf, p)[0]
                    p += 8 + unpack_from(buf, p)[0]
                for _ in range(rest):
                    p += 8 + unpack_from(buf, p)[0]
            except struct.error:
                p = len(buf) + 1
            if p <= len(buf):
                self._pos = p
                count -= n
                batch = 4096
            elif n > 1:
                batch = max(1, n // 16)  # near the end of the window: smaller steps
            else:
                self.skip(self.string_length(MAX_STRING_BYTES, what))
                count -= 1
                batch = 4096


def _value_type(cur: _Cursor, raw: int, key: str) -> int:
    if raw not in VALUE_TYPE_NAMES:
        raise cur.error(
            f"metadata entry {key!r} has an unknown value type ({raw}) — "
            "the file is corrupt or uses a newer format than this app knows"
        )
    return raw


def _read_value(cur: _Cursor, vtype: int, key: str, depth: int = 0) -> object:
    """Read one metadata value of (already validated) type ``vtype``."""
    s = _SCALAR_STRUCTS.get(vtype)
    if s is not None:
        value = cur.unpack(s)[0]
        return bool(value) if vtype == _T_BOOL else value
    if vtype == _T_STRING:
        return cur.string(MAX_STRING_BYTES, f"the value of {key!r}")
    return _read_array(cur, key, depth)


def _read_array(cur: _Cursor, key: str, depth: int) -> list[object] | ArraySummary:
    if depth >= MAX_ARRAY_DEPTH:
        raise cur.error(f"metadata entry {key!r} nests arrays too deeply — the file is corrupt")
    item_type = _value_type(cur, cur.u32(), key)
    length = cur.u64()
    s = _SCALAR_STRUCTS.get(item_type)
    min_item = s.size if s is not None else (8 if item_type == _T_STRING else 12)
    if s is None and length > MAX_WALKED_ARRAY_ITEMS:
        raise cur.error(
            f"metadata entry {key!r} claims {length:,} items, which no real model has — the file is corrupt"
        )
    if length * min_item > cur.remaining:
        raise cur.error(_TRUNCATED)

    what = f"{length:,} items in {key!r}"
    if length <= SMALL_ARRAY_MAX:
        cur.charge(length * _WORK_ITEM, _MEM_VALUE + length * _MEM_VALUE, what)
        if s is not None:  # one unpack for the whole run of scalars
            values = list(struct.unpack_from(f"<{length}{_SCALAR_FORMATS[item_type]}", cur.read(length * s.size)))
            return [bool(v) for v in values] if item_type == _T_BOOL else values
        return [_read_value(cur, item_type, key, depth + 1) for _ in range(length)]

    if s is not None:
        cur.skip(length * s.size)
    elif item_type == _T_STRING:
        cur.charge(length, 0, what)
        cur.skip_strings(length, f"an item of {key!r}")
    else:
        cur.charge(length * _WORK_ITEM, 0, what)
        for _ in range(length):
            _read_array(cur, key, depth + 1)  # nested arrays: rare, walk and drop
    return ArraySummary(VALUE_TYPE_NAMES[item_type], length)


def _read_tensor_info(cur: _Cursor) -> tuple[TensorInfo, int]:
    name = cur.string(MAX_NAME_BYTES, "a tensor name")
    n_dims = cur.u32()
    if n_dims > MAX_DIMS:
        raise cur.error(f"tensor {name!r} claims {n_dims:,} dimensions (at most {MAX_DIMS}) — the file is corrupt")
    shape = cur.unpack(struct.Struct(f"<{n_dims}Q")) if n_dims else ()
    n_elements = math.prod(shape)
    if any(d > _INT64_MAX for d in shape) or n_elements > _INT64_MAX:
        raise cur.error(f"tensor {name!r} has an impossible shape {shape} — the file is corrupt")
    ggml_type, offset = cur.unpack(_TYPE_OFFSET)
    return TensorInfo(name, tuple(shape), ggml_type, n_elements), offset


def _tensor_nbytes(info: TensorInfo) -> int | None:
    block = _GGML_BLOCK_SIZES.get(info.ggml_type)
    if block is None:
        return None
    elements_per_block, bytes_per_block = block
    return -(-info.n_elements // elements_per_block) * bytes_per_block


def _check_counts(cur: _Cursor, tensor_count: int, kv_count: int) -> None:
    for count, limit, what in (
        (kv_count, MAX_KV_COUNT, "metadata entries"),
        (tensor_count, MAX_TENSOR_COUNT, "tensors"),
    ):
        if count > limit:
            raise cur.error(f"the header claims {count:,} {what}, which no real model has — the file is corrupt")
    if kv_count * _MIN_KV_BYTES + tensor_count * _MIN_TENSOR_INFO_BYTES > cur.remaining:
        raise cur.error(_TRUNCATED)
    cur.charge(
        (kv_count + tensor_count) * _WORK_ITEM,
        kv_count * _MEM_VALUE + tensor_count * _MEM_TENSOR,
        f"{kv_count:,} metadata entries and {tensor_count:,} tensors",
    )


def _read_header(cur: _Cursor) -> tuple[int, dict[str, object], list[TensorInfo]]:
    size = cur.remaining
    if size == 0:
        raise cur.error("the file is empty")
    if size < _HEADER.size:
        head = cur.read(size)[: len(GGUF_MAGIC)]
        if GGUF_MAGIC.startswith(head):  # the start of a GGUF file, cut short
            raise cur.error(_TRUNCATED)
        raise cur.error("not a GGUF file")
    magic, version = cur.unpack(_HEADER)
    if magic != GGUF_MAGIC:
        raise cur.error("not a GGUF file")
    if version not in SUPPORTED_VERSIONS:
        if version == 1:
            raise cur.error("GGUF version 1 is too old for this app; download a newer conversion of the model")
        if version & 0xFFFF == 0 and (version >> 16) in (0x100, 0x200, 0x300):
            raise cur.error("this is a big-endian GGUF file, which this app cannot read")
        raise cur.error(f"unsupported GGUF version {version} (this app reads versions 2 and 3)")
    tensor_count, kv_count = cur.unpack(_COUNTS)
    _check_counts(cur, tensor_count, kv_count)

    kv: dict[str, object] = {}
    for _ in range(kv_count):
        key = cur.string(MAX_NAME_BYTES, "a metadata key")
        vtype = _value_type(cur, cur.u32(), key)
        value = _read_value(cur, vtype, key)
        if key in kv:
            raise cur.error(f"metadata key {key!r} appears twice — the file is corrupt")
        kv[key] = value

    infos: list[tuple[TensorInfo, int]] = [_read_tensor_info(cur) for _ in range(tensor_count)]
    _check_tensor_data(cur, kv, infos)
    return version, kv, [info for info, _ in infos]


def _check_tensor_data(cur: _Cursor, kv: dict[str, object], infos: list[tuple[TensorInfo, int]]) -> None:
    """Check the tensor data the header describes is all present in the file.

    An interrupted download almost always cuts into the tensor data, which
    lies after the header, so reading the header alone would not notice it.
    """
    if not infos:
        return
    alignment = kv.get("general.alignment", 32)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 or alignment & (alignment - 1):
        raise cur.error(f"invalid data alignment {alignment!r} — the file is corrupt")
    data_start = -(-cur.offset // alignment) * alignment
    size = cur.offset + cur.remaining
    for info, offset in infos:
        nbytes = _tensor_nbytes(info)
        end = data_start + offset + (nbytes if nbytes is not None else 0)
        if end > size:
            raise cur.error(_TRUNCATED)


def read_gguf(path: str | os.PathLike[str]) -> GGUFMetadata:
    """Read the metadata and tensor table of the GGUF file at ``path``.

    Only the header is read (for a typical model a few MB out of GBs), and
    the file size is checked against the tensor table.  Raises
    :class:`GGUFError` for anything that is not a complete, well-formed GGUF
    file, including files that cannot be opened.
    """
    p = Path(path)
    try:
        st = os.stat(p)
        if stat.S_ISDIR(st.st_mode):
            raise GGUFError(p, "this is a folder, not a model file")
        if not stat.S_ISREG(st.st_mode):  # e.g. a FIFO, which would block
            raise GGUFError(p, "this is not a regular file")
        with open(p, "rb", buffering=0) as f:  # _Cursor does its own buffering
            size = os.fstat(f.fileno()).st_size
            cur = _Cursor(f, p, size)
            version, kv, tensors = _read_header(cur)
    except GGUFError:
        raise
    except FileNotFoundError:
        raise GGUFError(p, "the file does not exist") from None
    except PermissionError:
        raise GGUFError(p, "permission denied — the file cannot be read") from None
    except OSError as exc:
        raise GGUFError(p, f"the file could not be read ({exc.strerror or exc})") from exc
    except MemoryError:
        raise GGUFError(p, "the file's header is too large to read") from None
    return GGUFMetadata(path=p, file_size=size, version=version, kv=kv, tensors=tuple(tensors))


# --------------------------------------------------------------------------
# Helpers for presentation and split models
# --------------------------------------------------------------------------


def format_params(n: int) -> str:
    """Short parameter count with at least two significant digits.

    ``134_515_008 -> "135M"``, ``6_700_000_000 -> "6.7B"``, ``1_500 -> "1.5K"``;
    the same style as the ``general.size_label`` written by llama.cpp's
    converters, so computed and stored labels look alike.
    """
    if n < 0:
        raise ValueError(f"parameter count cannot be negative: {n}")
    if n < 1000:
        return str(n)
    units = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))
    index = next(i for i, (scale, _) in enumerate(units) if n >= scale)
    while True:
        scale, suffix = units[index]
        scaled = n / scale
        digits = len(str(round(scaled)))
        text = f"{scaled:.{max(2 - digits, 0)}f}"
        if float(text) >= 1000 and index > 0:  # 999.6M rounds to 1000M: say 1.0B
            index -= 1
            continue
        return text + suffix


_SPLIT_RE = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})(?P<ext>\.gguf)$", re.IGNORECASE)


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """The file's absolute, resolved path (``~`` expanded); when it cannot be resolved (a
    loop of links, a vanished folder), the absolute path as given."""
    p = Path(path).expanduser()
    try:
        return p.resolve()
    except (OSError, RuntimeError):
        return p.absolute()


def split_parts(path: str | os.PathLike[str]) -> list[Path]:
    """All part paths of a split model, in order, whether they exist or not.

    llama.cpp's ``gguf-split`` names parts ``<prefix>-00001-of-00003.gguf``;
    given any of them this returns every sibling (so the app can tell which
    parts are missing).  Any other name gives ``[path]``.
    """
    p = Path(path)
    m = _SPLIT_RE.match(p.name)
    if not m:
        return [p]
    number, count = int(m["no"]), int(m["count"])
    if count < 1 or not 1 <= number <= count:
        return [p]
    return [p.with_name(f"{m['prefix']}-{i:05d}-of-{m['count']}{m['ext']}") for i in range(1, count + 1)]
