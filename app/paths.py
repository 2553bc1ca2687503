"""Where Hearth keeps its files.

The only module that calls platformdirs. ``--data-dir DIR`` or ``HEARTH_HOME`` puts
everything (data, config, models, logs, cache) under one folder: portable installs and
tests rely on that, so every other module asks here instead of building paths itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

_APP = "hearth"
_root: Path | None = None
_models_dir: Path | None = None  # the user's Preferences choice


def set_root(root: str | os.PathLike[str] | None) -> None:
    """Put all app files under ``root`` (``None`` returns to the platform folders)."""
    global _root
    _root = Path(root).expanduser().resolve() if root is not None else None
    set_models_dir(None)


def root() -> Path | None:
    if _root is not None:
        return _root
    env = os.environ.get("HEARTH_HOME")
    return Path(env).expanduser().resolve() if env else None


def _dir(sub: str, platform_dir: str) -> Path:
    base = root()
    path = base / sub if base is not None else Path(platform_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    return _dir("data", platformdirs.user_data_dir(_APP, appauthor=False))


def config_dir() -> Path:
    return _dir("config", platformdirs.user_config_dir(_APP, appauthor=False))


def cache_dir() -> Path:
    return _dir("cache", platformdirs.user_cache_dir(_APP, appauthor=False))


def log_dir() -> Path:
    return _dir("logs", platformdirs.user_log_dir(_APP, appauthor=False))


def set_models_dir(path: str | os.PathLike[str] | None) -> None:
    """Keep models in ``path`` (Preferences); None: the data folder's "models"."""
    global _models_dir
    _models_dir = Path(path).expanduser().resolve() if path is not None else None


def default_models_dir() -> Path:
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    return _models_dir if _models_dir is not None else default_models_dir()
