"""LoRA adapters (issue 16, point 3): small GGUF files that change a model's behaviour.

A GGUF LoRA adapter (``general.type = "adapter"``, ``adapter.type = "lora"``) holds, for some of
the base model's weight matrices ``W`` (ggml shape ``[n_in, n_out]``), two thin matrices
``W.lora_a`` (``[n_in, rank]``) and ``W.lora_b`` (``[rank, n_out]``); llama.cpp adds
``scale × alpha / rank × B·A`` to ``W``'s output. An adapter only fits the architecture and the
sizes it was trained for: llama.cpp refuses any other (with a terse log line), so Hearth reads
both headers first and says in plain words what does not match (:func:`check_adapter`).

Where things live: each model's adapters are kept in its library record
(``ModelInfo.adapters``, :class:`AdapterInfo`); which of them are on, and at what scale, is a
per-conversation and per-preset setting (``SamplingSettings.adapters``: ``[{"path", "scale"}]``)
applied when the model loads (``protocol.Load.loras``); a reply's stats name the adapters that
were on (``stats["adapters"]``: ``[{"name", "path", "scale"}]``).

API: ``AdapterInfo`` (+ ``to_dict``, ``from_dict``); ``AdapterError``; ``is_adapter(meta)``;
``check_adapter(adapter_path, model_path, model_name=None) -> AdapterInfo`` (blocking: reads two
headers; for a worker thread); ``enabled_for(settings_adapters, model_adapters)`` → the
``(path, scale)`` pairs to load; ``describe(stats_adapters)`` → "style ×0.5, …".
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.core.gguf import GGUFMetadata, TensorInfo, read_gguf, resolve_path, split_parts

__all__ = [
    "MAX_SCALE",
    "AdapterError",
    "AdapterInfo",
    "check_adapter",
    "describe",
    "enabled_for",
    "is_adapter",
]

#: Scales the settings accept (llama.cpp takes any float; past these the output is noise).
MAX_SCALE = 10.0

_LAYER = re.compile(r"^blk\.(\d+)\.")


class AdapterError(Exception):
    """Why an adapter cannot be used with a model, in plain words (names the file)."""


@dataclass(frozen=True)
class AdapterInfo:
    path: str  # resolved
    name: str
    architecture: str | None = None
    rank: int | None = None
    alpha: float | None = None
    tensors: int = 0  # how many weight matrices it changes
    size: int = 0  # bytes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> AdapterInfo | None:
        """A stored record, or None when it is too damaged to use (a wrong optional field
        counts as unknown)."""
        if not isinstance(raw, dict) or not isinstance(raw.get("path"), str) or not raw["path"]:
            return None
        name = raw.get("name")
        arch = raw.get("architecture")
        rank = raw.get("rank")
        alpha = raw.get("alpha")
        tensors = raw.get("tensors")
        size = raw.get("size")

        def whole(v: Any) -> int | None:
            return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None

        return cls(
            path=raw["path"],
            name=name if isinstance(name, str) and name else Path(raw["path"]).stem,
            architecture=arch if isinstance(arch, str) else None,
            rank=whole(rank),
            alpha=float(alpha)
            if isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and math.isfinite(alpha)
            else None,
            tensors=whole(tensors) or 0,
            size=whole(size) or 0,
        )


def is_adapter(meta: GGUFMetadata) -> bool:
    """Whether a GGUF file is an adapter (LoRA or a control vector), not a model."""
    return meta.kv.get("general.type") == "adapter"


def _dims(shape: tuple[int, ...]) -> str:
    return "×".join(str(n) for n in shape)


def check_adapter(
    adapter_path: str | os.PathLike[str], model_path: str | os.PathLike[str], model_name: str | None = None
) -> AdapterInfo:
    """Read the adapter's and the model's headers and check that the adapter fits the model:
    the same architecture, only layers the model has, and every ``lora_a``/``lora_b`` pair
    shaped for the model's matrix (as llama.cpp checks when it loads it). Raises
    :class:`AdapterError` (or ``GGUFError`` for a file that is not a readable GGUF)."""
    apath = resolve_path(adapter_path)
    file = apath.name
    meta = read_gguf(apath)
    model = model_name or Path(model_path).stem
    if not is_adapter(meta):
        raise AdapterError(f"{file} is a model, not an adapter: add it with “Add model file…” instead.")
    kind = meta.kv.get("adapter.type")
    if kind != "lora":
        what = f"a {kind} adapter" if isinstance(kind, str) and kind else "an adapter of unknown type"
        raise AdapterError(f"{file} is {what}; Hearth can use LoRA adapters only.")
    model_metas = [read_gguf(part) for part in split_parts(resolve_path(model_path))]
    base = model_metas[0]
    arch, base_arch = meta.architecture, base.architecture
    if arch != base_arch:
        raise AdapterError(
            f"{file} is an adapter for {arch or 'an unknown kind of'} models, but {model} is a "
            f"{base_arch or 'model of unknown kind'} model: it cannot be used with it."
        )
    weights: dict[str, TensorInfo] = {t.name: t for m in model_metas for t in m.tensors}
    pairs: dict[str, dict[str, TensorInfo]] = {}
    for t in meta.tensors:
        for suffix in (".lora_a", ".lora_b"):
            if t.name.endswith(suffix):
                pairs.setdefault(t.name[: -len(suffix)], {})[suffix[1:]] = t
    if not pairs:
        raise AdapterError(f"{file} holds no LoRA weights (no .lora_a/.lora_b tensors).")
    layers = base.block_count
    ranks: set[int] = set()
    for target, pair in sorted(pairs.items()):
        if set(pair) != {"lora_a", "lora_b"}:
            missing = "lora_b" if "lora_a" in pair else "lora_a"
            raise AdapterError(f"{file} is incomplete: {target} has no {missing} part.")
        found = _LAYER.match(target)
        if found and layers is not None and int(found.group(1)) >= layers:
            raise AdapterError(
                f"{file} was made for a model with more layers: it changes layer {int(found.group(1)) + 1}, "
                f"but {model} has {layers}."
            )
        w = weights.get(target)
        if w is None:
            raise AdapterError(f"{file} changes {target}, which {model} does not have: it was made for another model.")
        a, b = pair["lora_a"].shape, pair["lora_b"].shape
        if len(a) < 2 or len(b) < 2 or len(w.shape) < 2:
            raise AdapterError(f"{file}: {target}'s LoRA parts are not matrices.")
        if a[0] != w.shape[0] or b[1] != w.shape[1]:
            raise AdapterError(
                f"{file} was made for a model of other sizes: it expects {target} to be {a[0]}×{b[1]}, "
                f"but in {model} it is {_dims(w.shape[:2])}."
            )
        if a[1] != b[0]:
            raise AdapterError(f"{file} is damaged: {target}'s two LoRA parts have different ranks ({a[1]}, {b[0]}).")
        ranks.add(a[1])
    alpha = meta.kv.get("adapter.lora.alpha")
    name = meta.name or apath.stem
    return AdapterInfo(
        path=str(apath),
        name=name,
        architecture=arch,
        rank=max(ranks) if ranks else None,
        alpha=float(alpha) if isinstance(alpha, (int, float)) and not isinstance(alpha, bool) else None,
        tensors=len(pairs),
        size=meta.file_size,
    )


def _scale(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def enabled_for(settings_adapters: Any, model_adapters: list[AdapterInfo]) -> tuple[tuple[str, float], ...]:
    """The ``(path, scale)`` pairs to load: the settings' enabled adapters that belong to this
    model (a preset or conversation may name adapters of other models; those are skipped), in
    the model's order."""
    wanted: dict[str, float] = {}
    for item in settings_adapters if isinstance(settings_adapters, list) else []:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            scale = _scale(item.get("scale"))
            if scale is not None:
                wanted[item["path"]] = scale
    return tuple((a.path, wanted[a.path]) for a in model_adapters if a.path in wanted)


def describe(stats_adapters: Any) -> str:
    """“style ×0.5, tone ×1” for a reply's ``stats["adapters"]``; "" when none."""
    parts: list[str] = []
    for item in stats_adapters if isinstance(stats_adapters, list) else []:
        if isinstance(item, dict):
            name = item.get("name") if isinstance(item.get("name"), str) else None
            path = item.get("path") if isinstance(item.get("path"), str) else None
            scale = _scale(item.get("scale"))
            label = name or (Path(path).stem if path else "adapter")
            parts.append(f"{label} ×{scale:g}" if scale is not None else label)
    return ", ".join(parts)
