"""Sampling and load settings, and the one validation used by both the UI and the engine.

An invalid value must never reach llama.cpp (some crash it), so every request is checked
with :func:`SamplingSettings.validate` before it leaves the GUI process, and again in the
engine child. Load-time settings are checked with :func:`LoadSettings.validate` before a
model is (re)loaded.

API: ``Problem(field, message)``; ``SamplingSettings`` (+ ``validate(n_ctx) -> list[Problem]``,
``to_dict``, ``from_dict``); ``LoadSettings`` (+ ``validate(native_ctx) -> list[Problem]``,
``to_dict``, ``from_dict``); ``escape_visible(text)`` / ``unescape_visible(text)`` for
showing stop sequences with invisible characters as ``\\n``/``\\t``.

Documented ranges (what ``validate`` accepts):
temperature 0–5; top_p (0, 1]; top_k ≥ 0 (0 = off); min_p 0–1; repeat_penalty (0, 5]
(1 = off); last_n_tokens 0–n_ctx (0 = off); presence/frequency penalty −2–2;
max_tokens 1–n_ctx; stop: non-empty strings; seed None or 0–2³²−1; response_format one of
``core.response_format.FORMATS``, with a usable ``json_schema`` or ``grammar`` when it needs one;
adapters: ``[{"path": text, "scale": −10–10}]``.
n_ctx 256–native context; n_threads None or 1–2×CPU cores; n_batch 1–n_ctx; n_gpu_layers ≥ 0
or −1 (every layer).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

MIN_CONTEXT = 256
SEED_LIMIT = 2**32


@dataclass(frozen=True)
class Problem:
    """A value the user must fix: which field, and why in plain words."""

    field: str
    message: str


def _is_number(value: Any) -> bool:
    """A real, finite number; bool is excluded because JSON ``true`` is not a temperature."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class SamplingSettings:
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    max_tokens: int = 512
    stop: list[str] = field(default_factory=list)
    seed: int | None = None  # None: a new random seed each reply
    system_prompt: str = ""
    # How many recent tokens the repetition penalties look back over (llama.cpp's
    # penalty_last_n; llama-cpp-python's default is 64). 0 turns the window off.
    last_n_tokens: int = 64
    # Ask the model to reason inside <think>…</think> before answering (see core.presets).
    chain_of_thought: bool = False
    # Structured output (core.response_format): "text", "json", "json_schema" or "grammar" —
    # stored values, never reuse one. The schema and grammar are kept as typed, also while
    # another format is chosen, so switching back loses nothing.
    response_format: str = "text"
    json_schema: str = ""
    grammar: str = ""
    # LoRA adapters that are on (core.adapters): [{"path": adapter file, "scale": number}];
    # applied when the model loads, so a change reloads it. Adapters of other models are skipped.
    adapters: list[dict[str, Any]] = field(default_factory=list)

    def validate(self, n_ctx: int | None = None) -> list[Problem]:
        """Every problem at once, so the UI can mark all bad fields together.

        Values of the wrong type (possible in hand-edited or imported files) are reported
        as problems rather than raising, because stored data must never crash the app.
        """
        problems: list[Problem] = []

        def bad(name: str, message: str) -> None:
            problems.append(Problem(name, message))

        def number(name: str, label: str) -> bool:
            if _is_number(getattr(self, name)):
                return True
            bad(name, f"{label} must be a number.")
            return False

        def whole(name: str, label: str) -> bool:
            if _is_int(getattr(self, name)):
                return True
            bad(name, f"{label} must be a whole number.")
            return False

        if number("temperature", "Temperature") and not 0.0 <= self.temperature <= 5.0:
            bad("temperature", "Temperature must be between 0 and 5 (0 always picks the likeliest word).")
        if number("top_p", "Top-p") and not 0.0 < self.top_p <= 1.0:
            bad("top_p", "Top-p must be greater than 0 and at most 1.")
        if whole("top_k", "Top-k") and self.top_k < 0:
            bad("top_k", "Top-k cannot be negative (0 turns it off).")
        if number("min_p", "Min-p") and not 0.0 <= self.min_p <= 1.0:
            bad("min_p", "Min-p must be between 0 and 1.")
        if number("repeat_penalty", "Repetition penalty") and not 0.0 < self.repeat_penalty <= 5.0:
            bad("repeat_penalty", "Repetition penalty must be above 0 and at most 5 (1 turns it off).")
        if whole("last_n_tokens", "Repetition window"):
            if self.last_n_tokens < 0:
                bad("last_n_tokens", "Repetition window cannot be negative (0 turns it off).")
            elif n_ctx is not None and self.last_n_tokens > n_ctx:
                bad(
                    "last_n_tokens",
                    f"Repetition window ({self.last_n_tokens}) cannot exceed the context length ({n_ctx}).",
                )
        for name in ("presence_penalty", "frequency_penalty"):
            label = name.replace("_", " ").capitalize()
            if number(name, label) and not -2.0 <= getattr(self, name) <= 2.0:
                bad(name, f"{label} must be between -2 and 2.")
        if whole("max_tokens", "Max new tokens"):
            if self.max_tokens < 1:
                bad("max_tokens", "Max new tokens must be at least 1.")
            elif n_ctx is not None and self.max_tokens > n_ctx:
                bad("max_tokens", f"Max new tokens ({self.max_tokens}) cannot exceed the context length ({n_ctx}).")
        if not isinstance(self.stop, list) or not all(isinstance(s, str) for s in self.stop):
            bad("stop", "Stop sequences must be a list of text.")
        elif any(s == "" for s in self.stop):
            bad("stop", "A stop sequence cannot be empty.")
        if self.seed is not None:
            if not _is_int(self.seed):
                bad("seed", "Seed must be a whole number.")
            elif not 0 <= self.seed < SEED_LIMIT:
                bad("seed", "Seed must be between 0 and 4294967295.")
        if not isinstance(self.system_prompt, str):
            bad("system_prompt", "The system prompt must be text.")
        if not isinstance(self.chain_of_thought, bool):
            bad("chain_of_thought", "Chain-of-thought must be on or off.")
        self._validate_format(bad)
        self._validate_adapters(bad)
        return problems

    def _validate_adapters(self, bad: Any) -> None:
        from app.core.adapters import MAX_SCALE  # noqa: PLC0415

        items = self.adapters
        if not isinstance(items, list) or not all(
            isinstance(a, dict) and isinstance(a.get("path"), str) and a["path"] for a in items
        ):
            bad("adapters", "Adapters must be a list of {path, scale} entries.")
            return
        for a in items:
            scale = a.get("scale")
            if not _is_number(scale) or not -MAX_SCALE <= float(scale or 0) <= MAX_SCALE:
                bad("adapters", f"An adapter's scale must be a number between -{MAX_SCALE:g} and {MAX_SCALE:g}.")
                return

    def _validate_format(self, bad: Any) -> None:
        """The response format, and the schema or grammar it uses (only the one in use is
        checked: a half-written grammar must not block free-text replies)."""
        from app.core import response_format as rf  # noqa: PLC0415 - jsonschema loads on use

        for name in ("json_schema", "grammar"):
            if not isinstance(getattr(self, name), str):
                bad(name, f"The {'JSON Schema' if name == 'json_schema' else 'grammar'} must be text.")
        if not isinstance(self.response_format, str) or self.response_format not in rf.FORMATS:
            bad("response_format", "Response format must be free text, any JSON, JSON matching a schema or a grammar.")
        elif self.response_format == rf.JSON_SCHEMA and isinstance(self.json_schema, str):
            problem = rf.schema_problem(self.json_schema)
            if problem:
                bad("json_schema", problem)
        elif self.response_format == rf.GRAMMAR and isinstance(self.grammar, str):
            problem = rf.grammar_problem(self.grammar)
            if problem:
                bad("grammar", problem)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingSettings:
        """Build from stored data, ignoring keys a newer or older version wrote."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class LoadSettings:
    """Load-time options: changing one means reloading the model."""

    n_ctx: int = 4096
    n_threads: int | None = None  # None: llama.cpp's default for this machine
    n_gpu_layers: int = 0  # -1: every layer on the GPU
    n_batch: int = 512

    def validate(self, native_ctx: int | None = None) -> list[Problem]:
        """Problems with these values for a model trained on ``native_ctx`` tokens (None:
        unknown). Checked before a reload because llama.cpp fails late and tersely (or
        allocates far too much memory) on nonsense here."""
        problems: list[Problem] = []

        def bad(name: str, message: str) -> None:
            problems.append(Problem(name, message))

        ctx_ok = _is_int(self.n_ctx)
        if not ctx_ok:
            bad("n_ctx", "Context length must be a whole number.")
        elif self.n_ctx < MIN_CONTEXT:
            bad("n_ctx", f"Context length must be at least {MIN_CONTEXT} tokens.")
        elif native_ctx and self.n_ctx > native_ctx:
            bad("n_ctx", f"Context length cannot exceed what this model was trained for ({native_ctx:,} tokens).")
        if self.n_threads is not None:
            cores = os.cpu_count() or 1
            if not _is_int(self.n_threads):
                bad("n_threads", "Threads must be a whole number.")
            elif self.n_threads < 1:
                bad("n_threads", "Threads must be at least 1 (or Auto).")
            elif self.n_threads > 2 * cores:
                bad("n_threads", f"Threads cannot be more than {2 * cores} (twice this computer's {cores} cores).")
        if not _is_int(self.n_batch):
            bad("n_batch", "Batch size must be a whole number.")
        elif self.n_batch < 1 or (ctx_ok and self.n_batch > self.n_ctx):
            limit = f"the context length ({self.n_ctx})" if ctx_ok else "the context length"
            bad("n_batch", f"Batch size must be between 1 and {limit}.")
        if not _is_int(self.n_gpu_layers):
            bad("n_gpu_layers", "GPU layers must be a whole number.")
        elif self.n_gpu_layers < -1:
            # -1 is llama.cpp's "every layer", also used by the library's per-model defaults.
            bad("n_gpu_layers", "GPU layers must be 0 or more (-1 puts every layer on the GPU).")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadSettings:
        """Build from stored data, ignoring keys a newer or older version wrote."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# Shown as the two characters backslash + letter so invisible characters can be seen and typed.
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", "n": "\n", "t": "\t", "r": "\r"}


def escape_visible(text: str) -> str:
    """``text`` with newlines, tabs, carriage returns and backslashes written as escapes,
    so a stop sequence of one newline is visible (``\\n``) instead of a blank row."""
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def unescape_visible(text: str) -> str:
    """The inverse of :func:`escape_visible`; an unknown escape such as ``\\q`` and a
    trailing lone backslash are kept as typed, since the user probably meant them."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in _UNESCAPES:
            out.append(_UNESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)
