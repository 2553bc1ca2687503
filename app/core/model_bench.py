"""What a model measured on this computer: prompt and generation speed, load time, peak memory.

One small JSON file in the data folder (``model_bench.json``), keyed by the model's path; each
entry also keeps the file's size and modification time, so a file replaced by another one
(a new download under the same name) shows no stale figures. A damaged or foreign file is
read as "nothing measured yet" and is replaced by the next benchmark.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app import paths
from app.core.jsonfile import read_json, write_json

# The fixed workload, as llama-bench's default (pp512, tg128): the same for every model, so
# quantizations of one model compare. A model trained for a shorter context gets a shorter
# prompt (the figure says how long it was).
PROMPT_TOKENS = 512
GEN_TOKENS = 128
SCHEMA = 1


@dataclass(frozen=True)
class BenchResult:
    prompt_tokens: int
    prompt_tok_s: float  # prompt processing ("pp")
    gen_tokens: int
    gen_tok_s: float  # generation ("tg")
    load_seconds: float
    peak_rss: int  # bytes: the engine process's peak resident memory during load and run
    n_threads: int | None = None
    n_gpu_layers: int = 0
    n_ctx: int = 0
    llama_cpp: str = ""
    measured: float = 0.0  # time.time() when it was measured

    def summary(self) -> str:
        """'pp 850 · tg 78 tok/s · 0.4 GB' — what the library table and the picker show."""
        return f"pp {_rate(self.prompt_tok_s)} · tg {_rate(self.gen_tok_s)} tok/s · {self.peak_rss / 1e9:.1f} GB"

    def describe(self) -> str:
        """A few sentences for a tooltip."""
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.measured)) if self.measured else "earlier"
        threads = f"{self.n_threads} threads" if self.n_threads else "default threads"
        gpu = f", {self.n_gpu_layers} GPU layers" if self.n_gpu_layers else ""
        return (
            f"Measured on this computer ({when}, {threads}{gpu}):\n"
            f"prompt processing {self.prompt_tok_s:,.1f} tokens/s ({self.prompt_tokens} tokens),\n"
            f"generation {self.gen_tok_s:,.1f} tokens/s ({self.gen_tokens} tokens),\n"
            f"load {self.load_seconds:.2f} s, peak memory {self.peak_rss / 1e9:.2f} GB."
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: object) -> BenchResult | None:
        """None for anything that is not a complete, sensible entry (a damaged file)."""
        if not isinstance(raw, dict):
            return None
        try:
            ints = {k: raw[k] for k in ("prompt_tokens", "gen_tokens", "peak_rss")}
            floats = {k: raw[k] for k in ("prompt_tok_s", "gen_tok_s", "load_seconds")}
        except KeyError:
            return None
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints.values()):
            return None
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in floats.values()):
            return None
        threads = raw.get("n_threads")
        gpu = raw.get("n_gpu_layers", 0)
        n_ctx = raw.get("n_ctx", 0)
        version = raw.get("llama_cpp", "")
        measured = raw.get("measured", 0.0)
        return cls(
            prompt_tokens=ints["prompt_tokens"],
            prompt_tok_s=float(floats["prompt_tok_s"]),
            gen_tokens=ints["gen_tokens"],
            gen_tok_s=float(floats["gen_tok_s"]),
            load_seconds=float(floats["load_seconds"]),
            peak_rss=ints["peak_rss"],
            n_threads=threads if isinstance(threads, int) and not isinstance(threads, bool) else None,
            n_gpu_layers=gpu if isinstance(gpu, int) and not isinstance(gpu, bool) else 0,
            n_ctx=n_ctx if isinstance(n_ctx, int) and not isinstance(n_ctx, bool) else 0,
            llama_cpp=version if isinstance(version, str) else "",
            measured=float(measured) if isinstance(measured, (int, float)) and not isinstance(measured, bool) else 0.0,
        )


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def file_stamp(path: str) -> tuple[int, int] | None:
    """(size, mtime in ns) of a model file; None when it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class BenchStore:
    """Figures by model path. Read once (small); written atomically after each benchmark.
    Safe to call from a worker thread and the GUI thread."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.data_dir() / "model_bench.json"
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        raw = read_json(self.path, {})
        models = raw.get("models") if isinstance(raw, dict) else None
        if isinstance(models, dict):
            self._entries = {k: v for k, v in models.items() if isinstance(k, str) and isinstance(v, dict)}

    def get(self, path: str, stamp: tuple[int, int] | None = None) -> BenchResult | None:
        """The figures for ``path``; with ``stamp`` (see :func:`file_stamp`), only when they were
        measured on the same file (same size and modification time)."""
        with self._lock:
            entry = self._entries.get(path)
        if entry is None:
            return None
        if stamp is not None and (entry.get("size"), entry.get("mtime_ns")) != stamp:
            return None
        return BenchResult.from_dict(entry.get("result"))

    def put(self, path: str, result: BenchResult, stamp: tuple[int, int] | None) -> None:
        entry: dict[str, Any] = {"result": result.to_dict()}
        if stamp is not None:
            entry["size"], entry["mtime_ns"] = stamp
        with self._lock:
            self._entries[path] = entry
            data = {"schema": SCHEMA, "models": dict(self._entries)}
            write_json(self.path, data)

    def forget(self, path: str) -> None:
        with self._lock:
            if self._entries.pop(path, None) is not None:
                write_json(self.path, {"schema": SCHEMA, "models": dict(self._entries)})
