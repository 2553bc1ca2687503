"""Vision models: finding a model's image projector (``mmproj*.gguf``) and the images a
person attaches to a message. Plain Python, no Qt.

A projector is the GGUF that turns an image into embeddings the text model reads
(llama.cpp's libmtmd loads it next to the model). It pairs with a model when it sits in
the same folder, its header says it is a vision projector (``general.architecture`` =
``clip`` with ``clip.has_vision_encoder``) and its output size
(``clip.vision.projection_dim``) is the model's embedding size. Several candidates: the
one whose file name shares the longest beginning with the model's wins.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from app.core.gguf import GGUFError, GGUFMetadata, read_gguf

__all__ = [
    "MAX_IMAGE_BYTES",
    "IMAGE_TYPES",
    "Attachment",
    "find_projector",
    "is_projector",
    "looks_like_projector",
    "projector_problem",
    "sniff_image",
]

#: The largest image a message may carry (after any conversion), in bytes.
MAX_IMAGE_BYTES = 20 * 1024 * 1024

#: Image formats llama.cpp's loader (stb_image) reads, by their first bytes.
IMAGE_TYPES: dict[bytes, str] = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
    b"BM": "image/bmp",
}


def sniff_image(data: bytes) -> str | None:
    """The MIME type of an image llama.cpp can read, from its first bytes; None otherwise."""
    for magic, mime in IMAGE_TYPES.items():
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class Attachment:
    """An image attached to a message: its bytes as the person gave them."""

    mime: str
    data: bytes
    name: str = ""

    def data_url(self) -> str:
        return f"data:{self.mime};base64," + base64.b64encode(self.data).decode("ascii")

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "") -> Attachment:
        """ValueError, in plain words, for what cannot be sent to a model."""
        if len(data) > MAX_IMAGE_BYTES:
            raise ValueError(f"{name or 'This image'} is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB.")
        mime = sniff_image(data)
        if mime is None:
            raise ValueError(f"{name or 'This file'} is not an image Hearth can send (PNG, JPEG, GIF, BMP or WebP).")
        return cls(mime, data, name)


def looks_like_projector(path: str | os.PathLike[str]) -> bool:
    """By name only: ``mmproj`` in a .gguf file's name (how every converter names them)."""
    name = Path(path).name.lower()
    return name.endswith(".gguf") and "mmproj" in name


def is_projector(meta: GGUFMetadata) -> bool:
    return meta.architecture == "clip" or meta.kv.get("general.type") == "mmproj"


def projector_problem(meta: GGUFMetadata, embedding_length: int | None) -> str | None:
    """Why this GGUF cannot be this model's image projector; None when it can."""
    if not is_projector(meta):
        return "it is not an image projector (mmproj) file"
    if meta.kv.get("clip.has_vision_encoder") is not True:
        return "it has no vision encoder (an audio-only projector?)"
    dim = meta.kv.get("clip.vision.projection_dim")
    if embedding_length and isinstance(dim, int) and not isinstance(dim, bool) and dim != embedding_length:
        return f"it makes embeddings of size {dim:,}, and this model reads {embedding_length:,}"
    return None


def find_projector(model_path: str | os.PathLike[str], embedding_length: int | None) -> str | None:
    """The projector in the model's folder that fits it, or None. Blocking (reads headers):
    call it where the library reads the model's own header."""
    model = Path(model_path)
    try:
        candidates = sorted(p for p in model.parent.iterdir() if looks_like_projector(p) and p.is_file())
    except OSError:
        return None
    fitting: list[tuple[int, str]] = []
    for candidate in candidates[:20]:
        try:
            meta = read_gguf(candidate)
        except (GGUFError, OSError):
            continue
        if projector_problem(meta, embedding_length) is None:
            stem = candidate.name.lower().replace("mmproj-", "").replace("-mmproj", "").replace("mmproj", "")
            fitting.append((_common_prefix(stem, model.name.lower()), str(candidate.resolve())))
    if not fitting:
        return None
    return max(fitting, key=lambda item: item[0])[1]


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
