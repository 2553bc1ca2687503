"""Locating files shipped in resources/ (icons), in a checkout, a wheel or a frozen app."""

from __future__ import annotations

import sys
from pathlib import Path


def resources_dir() -> Path:
    frozen = getattr(sys, "_MEIPASS", None)
    candidates = [Path(frozen) / "resources"] if frozen else []
    candidates += [Path(__file__).resolve().parent / "resources", Path(__file__).resolve().parent.parent / "resources"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[-1]


def icon_path() -> Path | None:
    for name in ("hearth.svg", "hearth-256.png"):
        path = resources_dir() / name
        if path.is_file():
            return path
    return None
