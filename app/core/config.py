"""App preferences that outlive a session (last model, window layout), in the config dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app import paths
from app.core.jsonfile import read_json, write_json


class AppConfig:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.config_dir() / "config.json"
        self._data: dict[str, Any] = read_json(self.path, {})
        if not isinstance(self._data, dict):
            self._data = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        if self._data.get(key) != value:
            self._data[key] = value
            write_json(self.path, self._data)
