"""The model library: which GGUF files the user has, with what their headers say.

Stored as one small JSON file in the data folder (written atomically); each record is keyed
by the model's resolved path (the first part, for a split model) so importing the same file
twice keeps one entry.  Records written by older versions load with defaults for the fields
they lack, and :meth:`ModelLibrary.refresh` re-reads their headers to fill them in.

Two ways in, because model files are large:

* *linked* (the default): the user's file stays where it is; removing the model only
  forgets it.
* *copied*: the file (every part of a split model) is copied into ``paths.models_dir()``;
  removing the model deletes the copy.  Any GGUF file found in that folder belongs to the
  library in the same way, whether Hearth copied it or the user dropped it there.

Reading headers and copying are plain blocking functions without shared state
(:func:`read_model`, :func:`copy_into_library`, :func:`scan_models_dir`) so the UI can run
them on a worker thread and apply the result to the library on its own thread.

API::

    ModelInfo, ModelDefaults, RefreshResult, ScanResult, DamagedFile, LibraryError, CopyCancelled, Fit
    ModelLibrary(path=None)
        .models() -> list[ModelInfo]              .get(path) -> ModelInfo | None
        .find(path) -> ModelInfo | None           (also matches the source of a copy)
        .add_file(path, name=None, linked=True) -> ModelInfo
        .add_info(info) -> ModelInfo              .remove(path) -> int (bytes freed)
        .reclaimable_bytes(path) -> int           .rename(path, name) -> ModelInfo
        .set_defaults(path, ModelDefaults) -> ModelInfo
        .refresh() -> RefreshResult               (= apply_scan(scan_models_dir(*refresh_plan())))
        .damaged() -> list[DamagedFile]           (unreadable files the last scan found)
        .add_demo(read_demo_model()) -> ModelInfo | None
        .metadata(path) -> GGUFMetadata           .ensure_demo_model() -> ModelInfo | None
        .models_dir -> Path
    read_model(path, name=None, linked=True) -> ModelInfo
    copy_into_library(path, progress=None, cancel=None) -> Path
    scan_models_dir(known, stale) -> ScanResult
    effective_context(model, n_ctx=None) -> int
    ram_estimate(model, n_ctx=None) -> int
    fit(model, n_ctx, memory) -> Fit
    human_size(n) -> str
"""

from __future__ import annotations

import enum
import os
import shutil
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from app import paths
from app.core import load_options, vision
from app.core.adapters import AdapterInfo, is_adapter
from app.core.chat_templates import known_template, template_problem
from app.core.demo import DEMO_NAME, find_demo_model
from app.core.gguf import (
    _OVERHEAD_BASE_BYTES,
    _OVERHEAD_WEIGHT_FRACTION,
    ArraySummary,
    GGUFError,
    GGUFMetadata,
    format_params,
    read_gguf,
    resolve_path,
    split_parts,
)
from app.core.jsonfile import read_json, write_json
from app.core.settings import Problem
from app.core.sysinfo import MemoryInfo

STORE_VERSION = 2  # 1: no kv_bytes_per_token/parameter_count/source/defaults


class LibraryError(Exception):
    """A library operation failed; ``str()`` is a plain sentence fit to show to a person."""


class CopyCancelled(LibraryError):
    """The user cancelled a copy; nothing was left behind in the models folder."""

    def __init__(self) -> None:
        super().__init__("The copy was cancelled; nothing was added.")


@dataclass
class ModelDefaults:
    """Load options and a system prompt that apply when this model is picked.

    ``None`` means "use the app's setting"; a conversation's own settings (the sampling
    panel) still override these.
    """

    n_ctx: int | None = None
    n_gpu_layers: int | None = None  # -1: every layer on the GPU
    n_threads: int | None = None
    system_prompt: str | None = None
    # A known chat template (core.chat_templates key) used instead of the GGUF's own: for a
    # base model without one, or one whose template is broken.
    chat_template: str | None = None
    # A vision model's image projector (mmproj .gguf) chosen by hand; None: the one found
    # beside the model (ModelInfo.projector), if any.
    mmproj: str | None = None
    # Speed and memory options (core.load_options; None: its default there).
    flash_attn: str | None = None  # "auto", "on", "off"
    kv_cache_type: str | None = None  # "f16", "q8_0", "q4_0"
    use_mmap: bool | None = None
    use_mlock: bool | None = None
    prompt_lookup: bool | None = None

    MIN_CTX = 16
    MAX_CTX = 1 << 24
    MAX_THREADS = 1024

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def validate(self, context_length: int | None = None) -> list[Problem]:
        problems: list[Problem] = []
        if self.n_ctx is not None:
            if not self.MIN_CTX <= self.n_ctx <= self.MAX_CTX:
                problems.append(
                    Problem("n_ctx", f"Context length must be between {self.MIN_CTX} and {self.MAX_CTX:,}.")
                )
            elif context_length and self.n_ctx > context_length:
                problems.append(
                    Problem(
                        "n_ctx",
                        f"Context length cannot exceed what the model was trained for ({context_length:,} tokens).",
                    )
                )
        if self.n_gpu_layers is not None and self.n_gpu_layers < -1:
            problems.append(Problem("n_gpu_layers", "GPU layers must be 0 or more (-1 puts every layer on the GPU)."))
        if self.n_threads is not None and not 1 <= self.n_threads <= self.MAX_THREADS:
            problems.append(Problem("n_threads", f"Threads must be between 1 and {self.MAX_THREADS}."))
        clash = load_options.conflict(self.flash_attn, self.kv_cache_type)
        if clash:
            problems.append(Problem("kv_cache_type", clash))
        return problems

    def load_options(self) -> dict[str, Any]:
        """The speed and memory options as ``protocol.Load`` fields, unset ones at their
        defaults (core.load_options)."""
        return {
            "flash_attn": self.flash_attn or load_options.FLASH_AUTO,
            "kv_cache_type": self.kv_cache_type or load_options.KV_F16,
            "use_mmap": True if self.use_mmap is None else self.use_mmap,
            "use_mlock": bool(self.use_mlock),
            "prompt_lookup": bool(self.prompt_lookup),
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ModelDefaults:
        """Build from stored data; a wrongly typed value counts as unset, not as an error."""
        if not isinstance(data, dict):
            return cls()
        values: dict[str, Any] = {}
        for name in ("n_ctx", "n_gpu_layers", "n_threads"):
            value = data.get(name)
            values[name] = value if isinstance(value, int) and not isinstance(value, bool) else None
        prompt = data.get("system_prompt")
        values["system_prompt"] = prompt if isinstance(prompt, str) and prompt else None
        template = data.get("chat_template")
        values["chat_template"] = template if known_template(template) is not None else None
        mmproj = data.get("mmproj")
        values["mmproj"] = mmproj if isinstance(mmproj, str) and mmproj else None
        flash = data.get("flash_attn")
        values["flash_attn"] = flash if flash in dict(load_options.FLASH_ATTN_CHOICES) else None
        kv = data.get("kv_cache_type")
        values["kv_cache_type"] = kv if kv in dict(load_options.KV_CACHE_CHOICES) else None
        for name in ("use_mmap", "use_mlock", "prompt_lookup"):
            value = data.get(name)
            values[name] = value if isinstance(value, bool) else None
        return cls(**values)


@dataclass
class ModelInfo:
    path: str
    name: str
    size: int  # bytes on disk, all parts of a split model together
    architecture: str | None = None
    parameters: str | None = None  # label: general.size_label ("8x7B") or the computed count ("135M")
    quantization: str | None = None
    context_length: int | None = None
    has_chat_template: bool = False
    # Why the GGUF's chat template cannot be used ("no chat template", "…does not compile"),
    # None when it can: such a model is a base model to chat with until a template is chosen.
    template_problem: str | None = None
    linked: bool = True  # True: the user's file stays where it is; delete only forgets it
    added: float = field(default_factory=time.time)
    parameter_count: int | None = None  # summed over the tensors of every part
    kv_bytes_per_token: int | None = None  # f16 KV cache bytes per token of context
    vocab_size: int | None = None  # tokens in the vocabulary (prompt lookup keeps logits for each)
    source: str | None = None  # for a copy: the file it was copied from
    defaults: ModelDefaults = field(default_factory=ModelDefaults)
    # LoRA adapters added to this model (core.adapters); which are on is a chat setting
    adapters: list[AdapterInfo] = field(default_factory=list)
    # A vision model's image projector found beside it (core.vision.find_projector); the
    # person's own choice, defaults.mmproj, wins over it.
    projector: str | None = None
    # For a model served by another program: the connection's name (path is then a
    # "remote://connection/model" reference, see core.remote_models). Never stored in the library.
    remote: str | None = None

    @property
    def file_name(self) -> str:
        return Path(self.path).name

    @property
    def parts(self) -> list[Path]:
        """Every file of the model: ``[path]``, or all parts of a split model."""
        return split_parts(self.path)

    @property
    def exists(self) -> bool:
        return self.remote is not None or all(p.is_file() for p in self.parts)

    @property
    def status(self) -> str:
        """``"missing"``, ``"linked"`` or ``"copied"`` (the file lives in the library folder)."""
        if not self.exists:
            return "missing"
        return "linked" if self.linked else "copied"

    @property
    def needs_template(self) -> bool:
        """A base model (or a broken template) with no known template chosen for it: chat
        messages would reach it in a guessed shape, and it would likely answer with nothing."""
        return bool(self.template_problem) and known_template(self.defaults.chat_template) is None

    def label(self) -> str:
        """What the model picker shows: name, quantization and size, and when the model has no
        usable chat template, that it is a base model."""
        if self.remote is not None:
            return self.name  # “model · connection”: no file, no size
        extra = ", ".join(x for x in (self.quantization, human_size(self.size)) if x)
        text = f"{self.name} ({extra})" if extra else self.name
        if self.needs_template:
            text += f" — base model, {self.template_problem}"
        return text

    @classmethod
    def from_metadata(cls, meta: GGUFMetadata, name: str | None = None, linked: bool = True) -> ModelInfo:
        count = meta.parameter_count
        params = meta.size_label or (format_params(count) if count else None)
        per_token = meta.kv_cache_bytes(1)
        return cls(
            path=str(meta.path.resolve()),
            name=name or meta.name or meta.path.stem,
            size=meta.file_size,
            architecture=meta.architecture,
            parameters=params,
            quantization=meta.quantization,
            context_length=meta.context_length,
            has_chat_template=meta.chat_template is not None,
            template_problem=template_problem(meta.chat_template),
            linked=linked,
            parameter_count=count,
            kv_bytes_per_token=per_token or None,
            vocab_size=_vocab_size(meta),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> ModelInfo | None:
        """A stored record, or ``None`` when it is too damaged to use (others still load)."""
        if not isinstance(raw, dict) or not isinstance(raw.get("path"), str):
            return None
        names = {f.name for f in fields(cls)} - {"defaults", "remote", "adapters"}  # the library holds files only
        try:
            info = cls(**{k: v for k, v in raw.items() if k in names})
        except TypeError:
            return None
        if not isinstance(info.name, str) or not info.name:
            info.name = Path(info.path).stem
        if not isinstance(info.size, int) or isinstance(info.size, bool):
            info.size = 0
        if not isinstance(info.added, (int, float)) or isinstance(info.added, bool):
            info.added = 0.0  # models() sorts by it
        if not isinstance(info.linked, bool):
            info.linked = True  # when in doubt, never delete the file
        if not isinstance(info.projector, str) or not info.projector:
            info.projector = None
        if not isinstance(info.has_chat_template, bool):
            info.has_chat_template = True  # unknown: the engine says so when the model loads
        if not isinstance(info.template_problem, str) or not info.template_problem:
            # records from before the field existed: no template is the one problem they knew
            info.template_problem = None if info.has_chat_template else "no chat template"
        info.defaults = ModelDefaults.from_dict(raw.get("defaults"))
        stored = raw.get("adapters")
        adapters = [AdapterInfo.from_dict(a) for a in (stored if isinstance(stored, list) else [])]
        info.adapters = [a for a in adapters if a is not None]
        return info


def human_size(n: int) -> str:
    """Decimal units, as file managers and download pages show model sizes."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


_human_size = human_size  # the old private name


# --------------------------------------------------------------------------
# Memory estimate and fit
# --------------------------------------------------------------------------


class Fit(str, enum.Enum):
    FITS = "fits"
    TIGHT = "tight"
    WONT_FIT = "won't fit"
    UNKNOWN = "unknown"  # this machine's memory could not be read


#: "fits": the estimate leaves at least a fifth of the memory available right now free,
#: for the app itself, the prompt's growth and whatever else the user opens meanwhile.
FITS_SHARE_OF_AVAILABLE = 0.8
#: "tight": it does not fit in what is available now but in 90 % of the total (so closing
#: other programs would make room; the OS keeps the rest).  Above that: "won't fit".
TIGHT_SHARE_OF_TOTAL = 0.9


def effective_context(model: ModelInfo, n_ctx: int | None = None) -> int:
    """The context the model would get: the model's own default, else ``n_ctx`` (the app's
    setting), else its trained length; never more than the trained length, as the session
    clamps it the same way."""
    chosen = model.defaults.n_ctx or n_ctx or model.context_length or 0
    if model.context_length:
        chosen = min(chosen, model.context_length)
    return max(chosen, 0)


def ram_estimate(model: ModelInfo, n_ctx: int | None = None) -> int:
    """Bytes needed to run ``model`` at the context :func:`effective_context` gives.

    Same formula as :meth:`GGUFMetadata.estimate_ram_bytes`: weights (the file size) + KV
    cache (f16, or smaller for the model's quantized KV cache type) + 80 MiB + 5 % of the
    weights for compute buffers and the runtime.  Offloading layers to a GPU moves part of it
    to video memory; this is the all-CPU figure (bench/memory.py measures it).
    """
    weights = max(model.size, 0)
    kv_f16 = (model.kv_bytes_per_token or 0) * effective_context(model, n_ctx)
    kv = int(kv_f16 * load_options.kv_factor(model.defaults.kv_cache_type))
    # prompt lookup makes llama-cpp-python keep float32 logits for every token of the context
    vocab = model.vocab_size if isinstance(model.vocab_size, int) and model.vocab_size > 0 else 0
    logits = effective_context(model, n_ctx) * vocab * 4 if model.defaults.prompt_lookup else 0
    return weights + kv + logits + _OVERHEAD_BASE_BYTES + int(weights * _OVERHEAD_WEIGHT_FRACTION)


def _vocab_size(meta: GGUFMetadata) -> int | None:
    tokens = meta.kv.get("tokenizer.ggml.tokens")
    if isinstance(tokens, ArraySummary):
        return tokens.length
    return len(tokens) if isinstance(tokens, list) else None


def fit_bytes(need: int, memory: MemoryInfo) -> Fit:
    """Classify ``need`` bytes against this machine (thresholds documented above)."""
    total = memory.total
    if not total:
        return Fit.UNKNOWN
    available = memory.available if memory.available is not None else total
    available = min(available, total)
    if need <= available * FITS_SHARE_OF_AVAILABLE:
        return Fit.FITS
    if need <= total * TIGHT_SHARE_OF_TOTAL:
        return Fit.TIGHT
    return Fit.WONT_FIT


def fit(model: ModelInfo, n_ctx: int | None, memory: MemoryInfo) -> Fit:
    """Whether ``model`` at context ``n_ctx`` fits this machine: fits, tight or won't fit."""
    return fit_bytes(ram_estimate(model, n_ctx), memory)


# --------------------------------------------------------------------------
# File work, free of library state (safe on a worker thread)
# --------------------------------------------------------------------------


def model_key(path: str | os.PathLike[str]) -> str:
    """The library key of the model a file belongs to (its first part, resolved)."""
    return str(resolve_path(split_parts(resolve_path(path))[0]))


def _inside(path: str | os.PathLike[str], folder: Path) -> bool:
    return resolve_path(path).is_relative_to(resolve_path(folder))


def read_model(path: str | os.PathLike[str], name: str | None = None, linked: bool = True) -> ModelInfo:
    """Read the header(s) of the model ``path`` belongs to, without touching the library.

    Any part of a split model names the whole model: the record points at the first part,
    its size and parameter count cover every part.  Raises :class:`GGUFError` for a bad or
    unreadable file and for a split model with a part missing.
    """
    parts = split_parts(resolve_path(path))
    for i, part in enumerate(parts if len(parts) > 1 else [], 1):
        if not part.exists():
            raise GGUFError(
                part, f"part {i} of {len(parts)} of this split model is missing — all parts must be in the same folder"
            )
    metas = [read_gguf(part) for part in parts]
    if is_adapter(metas[0]):
        raise GGUFError(
            parts[0], "this is a LoRA adapter, not a model: add it to its model under Models > Manage models > Adapters"
        )
    if vision.is_projector(metas[0]):
        raise GGUFError(
            parts[0],
            "this is an image projector (mmproj), not a model: it pairs with its vision model in the same "
            "folder, or set it under Models > Manage models > Defaults",
        )
    info = ModelInfo.from_metadata(metas[0], name=name, linked=linked)
    info.path = str(resolve_path(parts[0]))
    info.projector = vision.find_projector(parts[0], metas[0].embedding_length)
    if len(metas) > 1:
        info.size = sum(m.file_size for m in metas)
        counts = [m.parameter_count or 0 for m in metas]
        info.parameter_count = sum(counts) or None
        if not metas[0].size_label and info.parameter_count:
            info.parameters = format_params(info.parameter_count)
    return info


def read_demo_model() -> ModelInfo | None:
    """The bundled demo model's record, or None when it is not installed or unreadable.
    Blocking (reads its header): for a worker thread, then :meth:`ModelLibrary.add_demo`."""
    demo = find_demo_model()
    if demo is None:
        return None
    try:
        return read_model(demo, name=DEMO_NAME, linked=True)
    except (GGUFError, OSError):
        return None


#: Copy granularity: small enough that progress and cancel respond within a fraction of a
#: second on a slow disk, big enough that the per-chunk overhead does not matter.
COPY_CHUNK_BYTES = 8 * 1024 * 1024
_TEMP_PREFIX = ".hearth-copy-"


def _destinations(parts: list[Path], folder: Path) -> tuple[list[Path], bool]:
    """Where the parts go in ``folder``, and whether identical copies are already there.

    Keeps the file names (a split model's parts must keep their ``-0000N-of-0000M``
    suffix for llama.cpp to find them); a different file of the same name makes a
    ``-2``, ``-3``… variant instead of overwriting it.  "Identical" means the same size,
    which for model files of the same name is as good as the same content.
    """
    first = parts[0]
    split = len(parts) > 1
    for attempt in range(1, 10_000):
        if attempt == 1:
            dests = [folder / p.name for p in parts]
        elif split:
            stem = first.name[: -len("-00001-of-00000.gguf")]
            tail = [p.name[len(stem) :] for p in parts]
            dests = [folder / f"{stem}-{attempt}{t}" for t in tail]
        else:
            dests = [folder / f"{first.stem}-{attempt}{first.suffix}"]
        existing = [d for d in dests if d.exists()]
        if not existing:
            return dests, False
        if len(existing) == len(dests) and all(
            d.is_file() and d.stat().st_size == p.stat().st_size for d, p in zip(dests, parts)
        ):
            return dests, True
    raise LibraryError(f"Could not find a free file name for {first.name} in {folder}.")


def copy_into_library(
    path: str | os.PathLike[str],
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path:
    """Copy a model (every part) into the models folder and return the first part's new path.

    Blocking and free of library state: the UI runs it on a worker thread and registers the
    result with ``library.add_info(read_model(dest, linked=False))``.  The header is checked
    first (a 20 GB file that is not a model should fail at once, not after the copy), then
    the free space.  ``progress(done, total)`` is called after every chunk; ``cancel()``
    returning True stops the copy and raises :class:`CopyCancelled`.  Parts are written
    under hidden temporary names and renamed only when all are complete, so a cancelled or
    failed copy leaves nothing behind and :func:`scan_models_dir` never sees half a file.
    A file already in the models folder is returned as it is.
    """
    folder = paths.models_dir()
    src = resolve_path(path)
    if _inside(src, folder):
        read_model(src)
        return Path(model_key(src))
    read_model(src)  # raises GGUFError for a bad file or a missing part
    parts = split_parts(src)
    dests, already = _destinations(parts, folder)
    if already:
        return dests[0]
    sizes = [p.stat().st_size for p in parts]
    total = sum(sizes)
    free = shutil.disk_usage(folder).free
    if total > free:
        raise LibraryError(
            f"Not enough free space to copy {parts[0].name}: it needs {human_size(total)} and "
            f"{folder} has {human_size(free)} free. Link the file in place instead, or free some space."
        )
    token = uuid.uuid4().hex[:8]
    temps = [folder / f"{_TEMP_PREFIX}{token}-{d.name}.part" for d in dests]
    done = 0
    try:
        for src_part, temp in zip(parts, temps):
            done = _copy_file(src_part, temp, done, total, progress, cancel)
        for temp, dest in zip(temps, dests):
            os.replace(temp, dest)
    except BaseException:
        for temp in temps:
            temp.unlink(missing_ok=True)
        raise
    return dests[0]


def _copy_file(
    src: Path,
    dst: Path,
    done: int,
    total: int,
    progress: Callable[[int, int], None] | None,
    cancel: Callable[[], bool] | None,
) -> int:
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        fast = hasattr(os, "copy_file_range")  # in-kernel copy; reflinks on btrfs/XFS
        while True:
            if cancel is not None and cancel():
                raise CopyCancelled()
            n = 0
            if fast:
                try:
                    n = os.copy_file_range(fin.fileno(), fout.fileno(), COPY_CHUNK_BYTES)
                except OSError:  # e.g. EXDEV on older kernels: plain reads from here on
                    fast = False
                    fin.seek(fout.tell())
            if not fast:
                chunk = fin.read(COPY_CHUNK_BYTES)
                fout.write(chunk)
                n = len(chunk)
            if n == 0:
                break
            done += n
            if progress is not None:
                progress(done, total)
        fout.flush()
        os.fsync(fout.fileno())
    return done


@dataclass(frozen=True)
class DamagedFile:
    """A file in the models folder whose header cannot be read, and why in plain words.

    Kept apart from the models (never loaded, never saved): the table and the picker show
    it as damaged, so a bad file is visible instead of silently missing, and the next scan
    finds it again, fixed or not.
    """

    path: str
    reason: str

    @property
    def file_name(self) -> str:
        return Path(self.path).name


@dataclass
class ScanResult:
    """What :func:`scan_models_dir` read; applied to the library by ``apply_scan``."""

    found: list[ModelInfo] = field(default_factory=list)  # new files in the models folder
    reread: list[ModelInfo] = field(default_factory=list)  # fresh headers of old records
    errors: list[str] = field(default_factory=list)  # plain-words problems, one per file
    damaged: list[DamagedFile] = field(default_factory=list)  # the files behind ``errors``


def _gguf_files(folder: Path) -> Iterable[Path]:
    """GGUF files under ``folder`` (sub-folders too, not following links out of it)."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.lower().endswith(".gguf") and not vision.looks_like_projector(name):
                yield Path(dirpath) / name


def scan_models_dir(known: Collection[str], stale: Collection[str] = ()) -> ScanResult:
    """Read the headers of models in the models folder that ``known`` (library keys) lacks,
    and of the ``stale`` records (written by an older version) whose files exist.

    A bad file becomes a line in ``errors`` and does not stop the scan.
    """
    result = ScanResult()
    seen: set[str] = set(known)
    for file in _gguf_files(paths.models_dir()):
        key = model_key(file)
        if key in seen:
            continue
        seen.add(key)
        try:
            result.found.append(read_model(key, linked=False))
        except GGUFError as exc:
            result.errors.append(str(exc))
            result.damaged.append(DamagedFile(key, exc.reason))
        except OSError as exc:
            result.errors.append(f"{file.name}: {exc.strerror or exc}")
            result.damaged.append(DamagedFile(key, str(exc.strerror or exc)))
    for key in stale:
        try:
            if Path(key).is_file():
                result.reread.append(read_model(key))
        except (GGUFError, OSError):
            pass  # keep the old record as it is; the file may be back later
    return result


@dataclass
class RefreshResult:
    added: list[ModelInfo] = field(default_factory=list)
    updated: list[ModelInfo] = field(default_factory=list)
    missing: list[ModelInfo] = field(default_factory=list)  # every record whose file is gone now
    newly_missing: list[ModelInfo] = field(default_factory=list)  # gone since the last refresh
    errors: list[str] = field(default_factory=list)
    damaged_changed: bool = False  # the set of damaged files in the models folder changed

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.newly_missing or self.damaged_changed)


# --------------------------------------------------------------------------
# The library
# --------------------------------------------------------------------------


class ModelLibrary:
    """The user's models.  Not thread-safe: use it from one thread (the GUI's) and give
    worker threads only the free functions above."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.data_dir() / "models.json"
        self._models: dict[str, ModelInfo] = {}
        self._stale: set[str] = set()  # records from an older version, to re-read
        self._missing: set[str] = set()  # missing at the last refresh
        self._damaged: dict[str, DamagedFile] = {}  # unreadable files found by the last scan
        self._load()

    # -- storage -----------------------------------------------------------------------------

    def _load(self) -> None:
        data = read_json(self.path, {"models": []})
        raws = data.get("models", []) if isinstance(data, dict) else []
        for raw in raws if isinstance(raws, list) else []:
            info = ModelInfo.from_dict(raw)
            if info is None:
                continue  # a damaged record must not hide the others
            self._models[info.path] = info
            if "kv_bytes_per_token" not in raw or "vocab_size" not in raw:  # older records: re-read
                self._stale.add(info.path)

    def save(self) -> None:
        write_json(self.path, {"version": STORE_VERSION, "models": [m.to_dict() for m in self._models.values()]})

    # -- queries -----------------------------------------------------------------------------

    @property
    def models_dir(self) -> Path:
        """Where copies go, and where files dropped by the user are found by refresh."""
        return paths.models_dir()

    def models(self) -> list[ModelInfo]:
        return sorted(self._models.values(), key=lambda m: m.added)

    def damaged(self) -> list[DamagedFile]:
        """Files in the models folder that the last scan could not read, by file name."""
        return sorted(self._damaged.values(), key=lambda d: d.file_name.casefold())

    def get(self, path: str | Path) -> ModelInfo | None:
        """The record of the model ``path`` (any part of it) belongs to."""
        info = self._models.get(str(path))
        return info if info is not None else self._models.get(model_key(path))

    def find(self, path: str | Path) -> ModelInfo | None:
        """Like :meth:`get`, but also finds an existing copy made from ``path``: importing a
        file that is already in the library, either way, must not make a second entry."""
        info = self.get(path)
        if info is not None:
            return info
        key = model_key(path)
        return next((m for m in self._models.values() if m.source == key and m.exists), None)

    def metadata(self, path: str | Path) -> GGUFMetadata:
        """The full header of the model's (first) file; raises GGUFError. Blocking I/O: the UI
        calls it on a worker thread."""
        return read_gguf(split_parts(resolve_path(path))[0])

    def reclaimable_bytes(self, path: str | Path) -> int:
        """Disk space :meth:`remove` would free: the copy's files, or 0 for a linked model."""
        info = self.get(path)
        if info is None or not self._owns_files(info):
            return 0
        total = 0
        for part in info.parts:
            try:
                total += part.stat().st_size
            except OSError:
                pass
        return total

    def _owns_files(self, info: ModelInfo) -> bool:
        """Only a copy inside the models folder is ever deleted, whatever a (possibly
        hand-edited) record says: deleting a user's own file would be unforgivable."""
        return not info.linked and _inside(info.path, self.models_dir)

    # -- changes -----------------------------------------------------------------------------

    def add_info(self, info: ModelInfo) -> ModelInfo:
        """Register a record made by :func:`read_model`; an existing entry wins."""
        existing = self._models.get(info.path)
        if existing is not None:
            return existing
        if _inside(info.path, self.models_dir):
            info.linked = False  # files in the library folder belong to the library
        self._models[info.path] = info
        self._stale.discard(info.path)
        self._missing.discard(info.path)
        self._damaged.pop(info.path, None)
        self.save()
        return info

    def add_file(self, path: str | Path, name: str | None = None, linked: bool = True) -> ModelInfo:
        """Read the header (raises GGUFError for a bad file) and remember the model.

        ``linked=False`` copies the file into the models folder first (blocking; the UI uses
        :func:`copy_into_library` on a worker thread instead).  A file that is already in the
        library (or was copied into it) returns the existing entry.
        """
        existing = self.find(path)
        if existing is not None:
            return existing
        if linked or _inside(path, self.models_dir):
            return self.add_info(read_model(path, name=name, linked=linked))
        dest = copy_into_library(path)
        info = read_model(dest, name=name, linked=False)
        info.source = model_key(path)
        return self.add_info(info)

    def remove(self, path: str | Path) -> int:
        """Forget the model; delete its files if they are a copy. Returns the bytes freed.

        Raises LibraryError (and keeps the record) when a file cannot be deleted.
        """
        info = self.get(path)
        if info is None:
            return 0
        freed = 0
        if self._owns_files(info):
            problems: list[str] = []
            for part in info.parts:
                try:
                    size = part.stat().st_size
                    part.unlink()
                    freed += size
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    problems.append(f"{part.name}: {exc.strerror or exc}")
            if problems:
                raise LibraryError("Could not delete the model file: " + "; ".join(problems))
        del self._models[info.path]
        self._stale.discard(info.path)
        self._missing.discard(info.path)
        self.save()
        return freed

    def rename(self, path: str | Path, name: str) -> ModelInfo:
        info = self._require(path)
        name = " ".join(name.split())
        if not name:
            raise LibraryError("A model needs a name.")
        if name != info.name:
            info.name = name
            self.save()
        return info

    def set_defaults(self, path: str | Path, defaults: ModelDefaults) -> ModelInfo:
        """Store per-model defaults; raises LibraryError naming what is wrong."""
        info = self._require(path)
        defaults = ModelDefaults.from_dict(defaults.to_dict())  # normalise "" to None
        problems = defaults.validate(info.context_length)
        if problems:
            raise LibraryError(" ".join(p.message for p in problems))
        info.defaults = defaults
        self.save()
        return info

    def add_adapter(self, path: str | Path, adapter: AdapterInfo) -> ModelInfo:
        """Keep an adapter checked by :func:`core.adapters.check_adapter` with its model (once)."""
        info = self._require(path)
        if all(a.path != adapter.path for a in info.adapters):
            info.adapters.append(adapter)
            self.save()
        return info

    def remove_adapter(self, path: str | Path, adapter_path: str) -> ModelInfo:
        """Forget an adapter (its file is never deleted)."""
        info = self._require(path)
        info.adapters = [a for a in info.adapters if a.path != adapter_path]
        self.save()
        return info

    def _require(self, path: str | Path) -> ModelInfo:
        info = self.get(path)
        if info is None:
            raise LibraryError(f"{Path(path).name} is no longer in the library.")
        return info

    # -- refresh -----------------------------------------------------------------------------

    def refresh_plan(self) -> tuple[frozenset[str], frozenset[str]]:
        """The arguments for :func:`scan_models_dir` (a snapshot, safe to hand to a thread)."""
        return frozenset(self._models), frozenset(k for k in self._stale if k in self._models)

    def apply_scan(self, scan: ScanResult) -> RefreshResult:
        """Register what a scan found and update old records; report what is missing."""
        result = RefreshResult(errors=list(scan.errors))
        damaged = {d.path: d for d in scan.damaged if d.path not in self._models}
        result.damaged_changed = damaged != self._damaged
        self._damaged = damaged
        for info in scan.found:
            if info.path not in self._models:
                result.added.append(self.add_info(info))
        for fresh in scan.reread:
            old = self._models.get(fresh.path)
            if old is None:
                continue
            for name in (
                "size",
                "architecture",
                "parameters",
                "quantization",
                "context_length",
                "has_chat_template",
                "template_problem",
                "parameter_count",
                "kv_bytes_per_token",
                "vocab_size",
            ):
                setattr(old, name, getattr(fresh, name))
            self._stale.discard(old.path)
            result.updated.append(old)
        if result.updated:
            self.save()
        result.missing = [m for m in self.models() if not m.exists]
        missing = {m.path for m in result.missing}
        result.newly_missing = [m for m in result.missing if m.path not in self._missing]
        self._missing = missing
        return result

    def refresh(self) -> RefreshResult:
        """Pick up models the user put in the models folder and fill in old records.

        Records whose file vanished stay (``exists`` is False) so the user sees them as
        missing and their defaults survive the file coming back.  Blocking I/O.
        """
        return self.apply_scan(scan_models_dir(*self.refresh_plan()))

    def ensure_demo_model(self) -> ModelInfo | None:
        """On first start (empty library) register the bundled demo model, if installed."""
        if self._models:
            return None
        demo = find_demo_model()
        if demo is None:
            return None
        return self.add_file(demo, name=DEMO_NAME, linked=True)

    def add_demo(self, info: ModelInfo | None) -> ModelInfo | None:
        """Register a demo record read by :func:`read_demo_model` on a worker thread, if the
        library is still empty (what :meth:`ensure_demo_model` does, minus the reading)."""
        if info is None or self._models:
            return None
        return self.add_info(info)

    def as_dict(self) -> dict[str, Any]:
        return {p: m.to_dict() for p, m in self._models.items()}

    # The estimate helpers are also reachable from the library object.
    ram_estimate = staticmethod(ram_estimate)
    fit = staticmethod(fit)
