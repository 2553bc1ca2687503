"""Vision models from the Hub (issue 16, point 4): a repo with an image projector offers it with
the model, fetches it first into the same folder, and the model pairs with it; a projector that
lands after its model pairs then. Against the local fake Hub (tests/fake_hub.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_hub import FakeHub
from test_downloads_ui import MEMORY, Manager, download, downloads_row, isolated, open_repo, state
from tiny_model import write_tiny_llama
from tiny_projector import write_tiny_projector

from app import paths
from app.core.library import ModelLibrary, read_model
from app.session.models import ModelCatalog
from app.ui.downloads_dialog import DownloadsDialog

__all__ = ["isolated"]  # the autouse fixture: no real keyring, no real Hugging Face cache
VISION = "vera/Tiny-Vision-GGUF"
MODEL = "tiny-vision.Q8_0.gguf"
PROJECTOR = "mmproj-tiny-vision-f16.gguf"


@pytest.fixture
def hub(tmp_path: Path):
    model = write_tiny_llama(tmp_path / "model.gguf").read_bytes()
    projector = write_tiny_projector(tmp_path / "proj.gguf", projection_dim=64).read_bytes()
    with FakeHub() as server:
        server.add_repo(VISION, {MODEL: model, PROJECTOR: projector}, downloads=10)
        server.add_repo("tom/Text-GGUF", {"text.Q4_0.gguf": model}, downloads=5)
        yield server


@pytest.fixture
def dialog(qtbot, hub: FakeHub, tmp_path: Path):
    manager = Manager(hub, tmp_path / "downloads.json")
    window = DownloadsDialog(manager.queue, manager.client, bridge=manager.bridge, memory=MEMORY)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.tasks.busy() == 0)
    yield window
    manager.queue.close(timeout=2)


def test_the_projector_comes_with_the_model_and_pairs(qtbot, dialog: DownloadsDialog) -> None:
    open_repo(qtbot, dialog, "tom/Text-GGUF")
    assert not dialog.projectorCheck.isVisibleTo(dialog)  # a text repo: nothing to offer
    open_repo(qtbot, dialog, VISION)
    assert dialog.projectorCheck.isVisibleTo(dialog) and dialog.projectorCheck.isChecked()
    download(qtbot, dialog, MODEL)
    qtbot.waitUntil(
        lambda: state(dialog, MODEL) == "complete" and state(dialog, PROJECTOR) == "complete", timeout=15000
    )
    folder = paths.models_dir() / "vera" / "Tiny-Vision-GGUF"
    assert read_model(folder / MODEL).projector == str((folder / PROJECTOR).resolve())


def test_unticked_only_the_model_is_fetched(qtbot, dialog: DownloadsDialog) -> None:
    open_repo(qtbot, dialog, VISION)
    dialog.projectorCheck.setChecked(False)
    download(qtbot, dialog, MODEL)
    qtbot.waitUntil(lambda: state(dialog, MODEL) == "complete", timeout=15000)
    assert downloads_row(dialog, PROJECTOR) < 0


def test_a_projector_that_lands_later_pairs_with_its_model(qtbot, tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    model = write_tiny_llama(folder / MODEL)
    library = ModelLibrary()
    info = library.add_file(model)
    assert info.projector is None
    catalog = ModelCatalog(library)
    projector = write_tiny_projector(folder / PROJECTOR, projection_dim=64)
    with qtbot.waitSignal(catalog.infoMessage, timeout=5000) as said:
        catalog.model_downloaded(str(projector))
    assert "can now see images" in said.args[0]
    assert ModelLibrary().get(info.path).projector == str(projector.resolve())
    assert [m.path for m in library.models() if "mmproj" in m.path] == []  # never a model
