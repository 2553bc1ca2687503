"""Vision models (issue 16, point 4): a model's projector pairs with it — found beside it by
name and header, or chosen by hand in Manage models > Defaults (checked before it is kept)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tiny_projector import write_tiny_projector

from app import paths
from app.core.library import ModelLibrary, read_model
from app.core.vision import find_projector
from app.ui.models_dialog import ModelsDialog


def test_a_projector_beside_the_model_pairs_by_header(tmp_path: Path, tiny_model: Path) -> None:
    folder = tmp_path / "vision"
    folder.mkdir()
    model = folder / "tiny-llama-q8.gguf"
    shutil.copyfile(tiny_model, model)
    assert read_model(model).projector is None  # nothing beside it: a text model
    write_tiny_projector(folder / "mmproj-other-model-f16.gguf", projection_dim=576)  # for another size
    assert find_projector(model, 64) is None
    fits = write_tiny_projector(folder / "mmproj-tiny-llama-f16.gguf", projection_dim=64)
    (folder / "mmproj-broken.gguf").write_bytes(b"GGUF junk")
    assert read_model(model).projector == str(fits.resolve())


def test_projectors_in_the_models_folder_are_not_listed_as_models(tiny_model: Path) -> None:
    folder = paths.models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tiny_model, folder / "tiny-llama.gguf")
    write_tiny_projector(folder / "mmproj-tiny-llama-f32.gguf")
    library = ModelLibrary()
    library.refresh()
    names = [Path(m.path).name for m in library.models()]
    assert "tiny-llama.gguf" in names and not any("mmproj" in n for n in names)
    [model] = [m for m in library.models() if Path(m.path).name == "tiny-llama.gguf"]
    assert model.projector and model.projector.endswith("mmproj-tiny-llama-f32.gguf")


def test_choosing_a_projector_by_hand(qtbot, tiny: Path, tmp_path: Path) -> None:
    library = ModelLibrary()
    info = library.add_file(tiny)
    dialog = ModelsDialog(library)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.select_path(info.path)
    picker = dialog.projector_picker
    assert "text only" in picker.field.text()
    wrong = write_tiny_projector(tmp_path / "mmproj-big.gguf", projection_dim=576)
    assert not picker.choose(str(wrong))
    assert "576" in picker.problem.text() and "64" in picker.problem.text() and picker.value() is None
    right = write_tiny_projector(tmp_path / "mmproj-small.gguf", projection_dim=64)
    assert picker.choose(str(right))
    dialog.save_defaults_button.click()
    assert ModelLibrary().get(info.path).defaults.mmproj == str(right)
