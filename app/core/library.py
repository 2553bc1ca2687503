"""The model library: which GGUF files the user has, with what their headers say.

Stored as one small JSON file in the data folder; each record is keyed by the model's
resolved path so importing the same file twice keeps one entry.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from app import paths
from app.core.demo import DEMO_NAME, find_demo_model
from app.core.gguf import GGUFMetadata, format_params, read_gguf
from app.core.jsonfile import read_json, write_json


@dataclass
class ModelInfo:
    path: str
    name: str
    size: int
    architecture: str | None = None
    parameters: str | None = None
    quantization: str | None = None
    context_length: int | None = None
    has_chat_template: bool = False
    linked: bool = True  # True: the user's file stays where it is; delete only forgets it
    added: float = field(default_factory=time.time)

    @property
    def file_name(self) -> str:
        return Path(self.path).name

    @property
    def exists(self) -> bool:
        return Path(self.path).is_file()

    def label(self) -> str:
        """What the model picker shows: name, quantization and size."""
        extra = ", ".join(x for x in (self.quantization, _human_size(self.size)) if x)
        return f"{self.name} ({extra})" if extra else self.name

    @classmethod
    def from_metadata(cls, meta: GGUFMetadata, name: str | None = None, linked: bool = True) -> "ModelInfo":
        params = meta.size_label or (format_params(meta.parameter_count) if meta.parameter_count else None)
        return cls(
            path=str(meta.path.resolve()),
            name=name or meta.name or meta.path.stem,
            size=meta.file_size,
            architecture=meta.architecture,
            parameters=params,
            quantization=meta.quantization,
            context_length=meta.context_length,
            has_chat_template=meta.chat_template is not None,
            linked=linked,
        )


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


class ModelLibrary:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.data_dir() / "models.json"
        self._models: dict[str, ModelInfo] = {}
        self._load()

    def _load(self) -> None:
        data = read_json(self.path, {"models": []})
        names = {f.name for f in fields(ModelInfo)}
        for raw in data.get("models", []):
            try:
                info = ModelInfo(**{k: v for k, v in raw.items() if k in names})
            except TypeError:
                continue  # a damaged record must not hide the others
            self._models[info.path] = info

    def save(self) -> None:
        write_json(self.path, {"version": 1, "models": [asdict(m) for m in self._models.values()]})

    def models(self) -> list[ModelInfo]:
        return sorted(self._models.values(), key=lambda m: m.added)

    def get(self, path: str | Path) -> ModelInfo | None:
        return self._models.get(str(Path(path).resolve()))

    def add_file(self, path: str | Path, name: str | None = None, linked: bool = True) -> ModelInfo:
        """Read the header (raises GGUFError for a bad file) and remember the model."""
        meta = read_gguf(path)
        existing = self.get(meta.path)
        if existing is not None:
            return existing
        info = ModelInfo.from_metadata(meta, name=name, linked=linked)
        self._models[info.path] = info
        self.save()
        return info

    def ensure_demo_model(self) -> ModelInfo | None:
        """On first start (empty library) register the bundled demo model, if installed."""
        if self._models:
            return None
        demo = find_demo_model()
        if demo is None:
            return None
        return self.add_file(demo, name=DEMO_NAME, linked=True)

    def as_dict(self) -> dict[str, Any]:
        return {p: asdict(m) for p, m in self._models.items()}
