"""The engine's state as the window shows it (values are emitted as strings: keep them)."""

from __future__ import annotations

import enum


class EngineState(str, enum.Enum):
    STARTING = "starting"
    NO_MODEL = "no_model"
    LOADING = "loading"
    READY = "ready"
    GENERATING = "generating"
    CRASHED = "crashed"
    CLOSED = "closed"
