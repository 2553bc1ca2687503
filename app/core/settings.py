"""Sampling and load settings, and the one validation used by both the UI and the engine.

An invalid value must never reach llama.cpp (some crash it), so every request is checked
with :func:`SamplingSettings.validate` before it leaves the GUI process, and again in the
engine child.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Problem:
    """A value the user must fix: which field, and why in plain words."""

    field: str
    message: str


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

    def validate(self, n_ctx: int | None = None) -> list[Problem]:
        problems: list[Problem] = []

        def bad(name: str, message: str) -> None:
            problems.append(Problem(name, message))

        if not 0.0 <= self.temperature <= 5.0:
            bad("temperature", "Temperature must be between 0 and 5 (0 always picks the likeliest word).")
        if not 0.0 < self.top_p <= 1.0:
            bad("top_p", "Top-p must be greater than 0 and at most 1.")
        if self.top_k < 0:
            bad("top_k", "Top-k cannot be negative (0 turns it off).")
        if not 0.0 <= self.min_p <= 1.0:
            bad("min_p", "Min-p must be between 0 and 1.")
        if not 0.0 < self.repeat_penalty <= 5.0:
            bad("repeat_penalty", "Repetition penalty must be above 0 and at most 5 (1 turns it off).")
        for name in ("presence_penalty", "frequency_penalty"):
            if not -2.0 <= getattr(self, name) <= 2.0:
                bad(name, f"{name.replace('_', ' ').capitalize()} must be between -2 and 2.")
        if self.max_tokens < 1:
            bad("max_tokens", "Max new tokens must be at least 1.")
        elif n_ctx is not None and self.max_tokens > n_ctx:
            bad("max_tokens", f"Max new tokens ({self.max_tokens}) cannot exceed the context length ({n_ctx}).")
        if any(s == "" for s in self.stop):
            bad("stop", "A stop sequence cannot be empty.")
        if self.seed is not None and not 0 <= self.seed < 2**32:
            bad("seed", "Seed must be between 0 and 4294967295.")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SamplingSettings":
        """Build from stored data, ignoring keys a newer or older version wrote."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class LoadSettings:
    """Load-time options: changing one means reloading the model."""

    n_ctx: int = 4096
    n_threads: int | None = None  # None: llama.cpp's default for this machine
    n_gpu_layers: int = 0
    n_batch: int = 512

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
