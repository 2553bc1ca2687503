"""The Models dialog and its table (pytest-qt): contents, import by file dialog and by drag &
drop, copy with cancel, remove, rename, details, defaults, refresh, choosing a model."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QModelIndex, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QApplication, QDialog, QFileDialog, QLineEdit, QMessageBox, QProgressDialog
from tiny_model import write_random_bytes, write_tiny_llama

import app.ui.models_dialog as models_dialog
from app import paths
from app.core.library import ModelLibrary
from app.core.sysinfo import MemoryInfo
from app.ui.model_table import FIT_ROLE, PATH_ROLE, SORT_ROLE, Column, ModelTableModel
from app.ui.models_dialog import ModelsDialog, gguf_paths_from_mime

GB = 10**9
BIG_MACHINE = MemoryInfo(16 * GB, 8 * GB)
JOB_TIMEOUT = 10_000


@pytest.fixture
def make_dialog(qtbot):
    def make(library: ModelLibrary, memory: MemoryInfo = BIG_MACHINE, **kwargs) -> ModelsDialog:
        dialog = ModelsDialog(library, memory=memory, **kwargs)
        qtbot.addWidget(dialog)
        dialog.show()
        return dialog

    return make


def _cells(dialog: ModelsDialog, path: str | Path) -> dict[Column, str]:
    row = dialog.model.row_of(str(Path(path).resolve()))
    assert row >= 0
    return {c: dialog.model.index(row, c).data() for c in Column}


def _row_index(dialog: ModelsDialog, path: str | Path, column: Column = Column.NAME) -> QModelIndex:
    row = dialog.model.row_of(str(Path(path).resolve()))
    return dialog.proxy.mapFromSource(dialog.model.index(row, column))


def _wait_idle(qtbot, dialog: ModelsDialog) -> None:
    qtbot.waitUntil(lambda: not dialog.busy, timeout=JOB_TIMEOUT)


def _mime(*files: Path | str) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(f)) if not str(f).startswith("http") else QUrl(str(f)) for f in files])
    return mime


def _drop(dialog: ModelsDialog, mime: QMimeData) -> tuple[bool, bool]:
    """Send a synthetic drag-enter and drop; return whether each was accepted."""
    actions = Qt.DropAction.CopyAction | Qt.DropAction.LinkAction
    enter = QDragEnterEvent(QPoint(20, 20), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(dialog, enter)
    if not enter.isAccepted():
        return False, False
    drop = QDropEvent(QPointF(20, 20), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(dialog, drop)
    return True, drop.isAccepted()


# -- table -----------------------------------------------------------------------------------------


def test_table_shows_the_demo_model_and_a_tiny_model(
    qtmodeltester, make_dialog, demo_model: Path, tmp_path: Path
) -> None:
    library = ModelLibrary()
    library.ensure_demo_model()
    plain = write_tiny_llama(tmp_path / "plain.gguf", chat_template=None, n_ctx_train=256)
    library.add_file(plain)
    dialog = make_dialog(library, current_model_path=str(demo_model))
    qtmodeltester.check(dialog.model)
    qtmodeltester.check(dialog.proxy)
    assert dialog.objectName() == "modelsDialog" and dialog.table.objectName() == "modelTable"

    demo = _cells(dialog, demo_model)
    assert demo[Column.NAME] == "SmolLM2 135M Instruct (demo)"
    assert demo[Column.FILE] == demo_model.name
    assert demo[Column.SIZE] == "98.4 MB"
    assert demo[Column.ARCHITECTURE] == "llama" and demo[Column.PARAMETERS] == "135M"
    assert demo[Column.QUANTIZATION] == "Q4_1" and demo[Column.CONTEXT] == "8,192"
    assert demo[Column.TEMPLATE] == "yes" and demo[Column.STATUS] == "linked"
    assert demo[Column.RAM].endswith("· fits")

    tiny = _cells(dialog, plain)
    assert tiny[Column.TEMPLATE] == "none — base model" and tiny[Column.QUANTIZATION] == "F32"
    assert tiny[Column.CONTEXT] == "256" and tiny[Column.SIZE].endswith("KB")

    # the chat's model is bold; the RAM cell explains itself against this machine
    row = dialog.model.row_of(str(demo_model))
    assert dialog.model.index(row, Column.NAME).data(Qt.ItemDataRole.FontRole).bold()
    tip = dialog.model.index(row, Column.RAM).data(Qt.ItemDataRole.ToolTipRole)
    assert "16.0 GB of memory" in tip and "8.0 GB available" in tip and "8,192 tokens" in tip
    assert "16.0 GB" in dialog.memory_label.text()

    # sorting by size puts the tiny model first; the sort role is numeric
    assert dialog.model.index(row, Column.SIZE).data(SORT_ROLE) == demo_model.stat().st_size
    dialog.table.sortByColumn(Column.SIZE, Qt.SortOrder.AscendingOrder)
    assert dialog.proxy.index(0, 0).data(PATH_ROLE) == str(plain.resolve())
    dialog.table.sortByColumn(Column.SIZE, Qt.SortOrder.DescendingOrder)
    assert dialog.proxy.index(0, 0).data(PATH_ROLE) == str(demo_model)


def test_fit_flag_follows_memory_and_context(qtmodeltester, demo_model: Path) -> None:
    library = ModelLibrary()
    library.add_file(demo_model)
    # the demo needs ~375 MB at 8k context, ~200 MB at 512
    model = ModelTableModel(library, MemoryInfo(300 * 10**6, 200 * 10**6))
    qtmodeltester.check(model)
    ram = model.index(0, Column.RAM)
    assert ram.data(FIT_ROLE) == "won't fit" and "won't fit" in ram.data()
    assert ram.data(Qt.ItemDataRole.ForegroundRole).name() == "#c62828"
    model.set_context(512)
    assert model.index(0, Column.RAM).data(FIT_ROLE) == "tight"
    model.set_memory(MemoryInfo(2 * GB, 2 * GB))
    assert model.index(0, Column.RAM).data(FIT_ROLE) == "fits"
    model.set_memory(MemoryInfo(None, None))
    assert model.index(0, Column.RAM).data(FIT_ROLE) == "unknown"
    assert "could not be read" in model.index(0, Column.RAM).data(Qt.ItemDataRole.ToolTipRole)


# -- import ----------------------------------------------------------------------------------------


def test_add_model_files_links_by_default(qtbot, make_dialog, tiny: Path, tmp_path: Path, monkeypatch) -> None:
    second = write_tiny_llama(tmp_path / "other.gguf", n_layer=1)
    library = ModelLibrary()
    dialog = make_dialog(library)
    assert dialog.link_radio.isChecked() and "stay where they are" in dialog.mode_hint.text()
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(tiny), str(second)], ""))
    with qtbot.waitSignal(dialog.modelsChanged, timeout=JOB_TIMEOUT):
        dialog.add_button.click()
    _wait_idle(qtbot, dialog)
    assert {m.path for m in library.models()} == {str(tiny.resolve()), str(second.resolve())}
    assert all(m.linked for m in library.models()) and list(paths.models_dir().iterdir()) == []
    assert dialog.model.rowCount() == 2
    assert "linked" in dialog.message.text()


def test_copy_into_library_and_duplicate_import(qtbot, make_dialog, tiny: Path, monkeypatch) -> None:
    library = ModelLibrary()
    dialog = make_dialog(library)
    dialog.copy_radio.setChecked(True)
    assert str(paths.models_dir()) in dialog.mode_hint.text()
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(tiny)], ""))
    with qtbot.waitSignal(dialog.modelsChanged, timeout=JOB_TIMEOUT):
        dialog.add_button.click()
    _wait_idle(qtbot, dialog)
    copied = paths.models_dir() / tiny.name
    assert copied.read_bytes() == tiny.read_bytes()
    assert _cells(dialog, copied)[Column.STATUS] == "copied"
    assert "copied into the library" in dialog.message.text()
    progress = dialog.findChild(QProgressDialog, "copyProgress")
    assert progress is None or not progress.isVisible()  # closed after the copy

    # again, by copy and by link: still one entry, no second copy
    assert not dialog.import_files([str(tiny)])
    assert not dialog.import_files([str(tiny)], copy=False)
    assert "already in the library" in dialog.message.text()
    assert len(library.models()) == 1 and [p.name for p in paths.models_dir().iterdir()] == [tiny.name]


def test_cancelling_a_copy_leaves_nothing(qtbot, make_dialog, tiny: Path, monkeypatch) -> None:
    started, gate = threading.Event(), threading.Event()
    real_copy = models_dialog.copy_into_library

    def gated_copy(path, progress=None, cancel=None):
        def held_cancel() -> bool:  # the first check waits until the test has pressed Cancel
            started.set()
            gate.wait(5)
            return cancel()

        return real_copy(path, progress, held_cancel)

    monkeypatch.setattr(models_dialog, "copy_into_library", gated_copy)
    library = ModelLibrary()
    dialog = make_dialog(library)
    assert dialog.import_files([str(tiny)], copy=True)
    qtbot.waitUntil(started.is_set, timeout=JOB_TIMEOUT)
    assert dialog.busy and not dialog.add_button.isEnabled()
    progress = dialog.findChild(QProgressDialog, "copyProgress")
    progress.canceled.emit()
    gate.set()
    _wait_idle(qtbot, dialog)
    assert library.models() == [] and list(paths.models_dir().iterdir()) == []
    assert "cancelled" in dialog.message.text() and dialog.add_button.isEnabled()


def test_drag_and_drop_imports_gguf_files(qtbot, make_dialog, tiny: Path, tmp_path: Path) -> None:
    library = ModelLibrary()
    dialog = make_dialog(library)
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    assert _drop(dialog, _mime(notes)) == (False, False)  # nothing to import: refused
    with qtbot.waitSignal(dialog.modelsChanged, timeout=JOB_TIMEOUT):
        assert _drop(dialog, _mime(notes, tiny)) == (True, True)
    _wait_idle(qtbot, dialog)
    assert [m.path for m in library.models()] == [str(tiny.resolve())]
    assert dialog.selected_path() == str(tiny.resolve())


def test_a_bad_file_gives_a_plain_message(qtbot, make_dialog, tmp_path: Path, tiny: Path) -> None:
    bad = write_random_bytes(tmp_path / "broken.gguf", 5000)
    library = ModelLibrary()
    dialog = make_dialog(library)
    _drop(dialog, _mime(bad, tiny))
    _wait_idle(qtbot, dialog)
    text = dialog.message.text()
    assert "broken.gguf: not a GGUF file" in text and "Traceback" not in text
    assert dialog.message.isVisible()
    assert [m.path for m in library.models()] == [str(tiny.resolve())]  # the good one still came in


def test_an_unexpected_failure_is_a_short_note_not_a_traceback(qtbot, make_dialog, tiny: Path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("internal detail")

    monkeypatch.setattr(models_dialog, "read_model", broken)
    dialog = make_dialog(ModelLibrary())
    dialog.import_files([str(tiny)])
    _wait_idle(qtbot, dialog)
    assert dialog.message.text() == "Something went wrong (RuntimeError); the details are in the log."


def test_gguf_paths_from_mime(tmp_path: Path) -> None:
    a, b = tmp_path / "a.gguf", tmp_path / "B.GGUF"
    mime = _mime(a, tmp_path / "c.bin", "https://example.com/x.gguf", a, b)
    assert gguf_paths_from_mime(mime) == [str(a), str(b)]
    assert gguf_paths_from_mime(QMimeData()) == [] and gguf_paths_from_mime(None) == []


# -- remove, rename, defaults ------------------------------------------------------------------------


def test_remove_a_linked_model_keeps_the_users_file(qtbot, make_dialog, tiny: Path, monkeypatch) -> None:
    library = ModelLibrary()
    info = library.add_file(tiny)
    dialog = make_dialog(library, current_model_path=info.path)
    asked: list[str] = []

    def answer(parent, title, text, *args):
        asked.append(text)
        return QMessageBox.StandardButton.No if len(asked) == 1 else QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    dialog.select_path(info.path)
    dialog.remove_button.click()  # answered No
    assert library.get(info.path) is not None
    assert "Your file is kept" in asked[0] and "unloaded first" in asked[0]

    order: list[str] = []
    dialog.aboutToRemove.connect(lambda p: order.append(("about", p, library.get(p) is not None)))
    dialog.modelRemoved.connect(lambda p: order.append(("removed", p, library.get(p) is not None)))
    with qtbot.waitSignal(dialog.modelsChanged):
        dialog.remove_button.click()
    assert order == [("about", info.path, True), ("removed", info.path, False)]
    assert tiny.exists() and library.models() == [] and dialog.model.rowCount() == 0
    assert "your file was kept" in dialog.message.text()


def test_remove_a_copied_model_says_how_much_space_is_freed(qtbot, make_dialog, tiny: Path, monkeypatch) -> None:
    library = ModelLibrary()
    info = library.add_file(tiny, linked=False)
    dialog = make_dialog(library)
    asked: list[str] = []
    monkeypatch.setattr(
        QMessageBox, "question", lambda parent, title, text, *a: asked.append(text) or QMessageBox.StandardButton.Yes
    )
    dialog.select_path(info.path)
    dialog.remove_button.click()
    assert "delete its file" in asked[0] and "frees 470 KB" in asked[0]
    assert not Path(info.path).exists() and tiny.exists()
    assert "470 KB freed" in dialog.message.text()


def test_rename_inline(qtbot, make_dialog, tiny: Path) -> None:
    library = ModelLibrary()
    info = library.add_file(tiny)
    dialog = make_dialog(library)
    dialog.select_path(info.path)
    dialog.rename_button.click()
    editor = dialog.table.findChild(QLineEdit)
    assert editor is not None and editor.text() == "hearth-tiny-llama"
    editor.selectAll()
    qtbot.keyClicks(editor, "Tiny one")
    with qtbot.waitSignal(dialog.modelsChanged):
        qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert ModelLibrary().get(info.path).name == "Tiny one"
    assert _cells(dialog, tiny)[Column.NAME] == "Tiny one"

    index = dialog.model.index(dialog.model.row_of(info.path), Column.NAME)
    assert not dialog.model.setData(index, "   ")
    assert "needs a name" in dialog.message.text() and library.get(info.path).name == "Tiny one"


def test_defaults_editor_saves_and_validates(qtbot, make_dialog, tiny: Path) -> None:
    library = ModelLibrary()
    info = library.add_file(tiny)
    dialog = make_dialog(library, n_ctx=4096)
    dialog.select_path(info.path)
    before = dialog.model.index(0, Column.RAM).data(SORT_ROLE)
    dialog.ctx_spin.setValue(128)
    dialog.gpu_spin.setValue(0)
    dialog.threads_spin.setValue(2)
    dialog.prompt_edit.setPlainText("You are terse.")
    with qtbot.waitSignal(dialog.modelsChanged):
        dialog.save_defaults_button.click()
    saved = ModelLibrary().get(info.path).defaults
    assert (saved.n_ctx, saved.n_gpu_layers, saved.n_threads, saved.system_prompt) == (128, 0, 2, "You are terse.")
    assert dialog.model.index(0, Column.RAM).data(SORT_ROLE) < before  # estimated at 128, not 512 tokens

    dialog.ctx_spin.setValue(100_000)  # more than the 512 tokens it was trained for
    dialog.save_defaults_button.click()
    assert "512 tokens" in dialog.message.text() and library.get(info.path).defaults.n_ctx == 128

    fresh = make_dialog(ModelLibrary())
    fresh.select_path(info.path)
    assert fresh.ctx_spin.value() == 128 and fresh.prompt_edit.toPlainText() == "You are terse."
    fresh.clear_defaults_button.click()
    fresh.save_defaults_button.click()
    assert ModelLibrary().get(info.path).defaults.is_empty()


# -- details, refresh, choose --------------------------------------------------------------------------


def test_details_show_every_key_and_the_template(qtbot, make_dialog, demo_model: Path) -> None:
    library = ModelLibrary()
    library.ensure_demo_model()
    dialog = make_dialog(library)
    dialog.select_path(str(demo_model))
    dialog.details_button.click()
    qtbot.waitUntil(
        lambda: (d := dialog.findChild(QDialog, "modelDetails")) is not None and d.isVisible(), timeout=JOB_TIMEOUT
    )
    details = dialog.findChild(QDialog, "modelDetails")
    text = details.text.toPlainText()
    meta = library.metadata(demo_model)
    for key in meta.kv:
        assert f"\n{key} = " in text
    assert 'general.architecture = "llama"' in text and "llama.context_length = 8192" in text
    assert "tokenizer.ggml.tokens = [49,152 STRING items — not shown]" in text
    assert "Tensors: 272 (Q4_1 × 210, F32 × 61, Q8_0 × 1)" in text
    assert text.endswith(meta.chat_template) and "<|im_start|>" in text
    assert details.text.isReadOnly()
    assert details.text.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByKeyboard
    details.copy_button.click()
    assert QGuiApplication.clipboard().text() == text


def test_refresh_finds_dropped_files_and_shows_missing_ones(qtbot, make_dialog, tiny: Path) -> None:
    library = ModelLibrary()
    linked = library.add_file(tiny)
    dialog = make_dialog(library)
    dropped = write_tiny_llama(paths.models_dir() / "dropped.gguf", n_layer=1)
    tiny.unlink()
    with qtbot.waitSignal(dialog.modelsChanged, timeout=JOB_TIMEOUT):
        dialog.refresh_button.click()
    _wait_idle(qtbot, dialog)
    assert _cells(dialog, dropped)[Column.STATUS] == "copied"
    assert _cells(dialog, linked.path)[Column.STATUS] == "missing"
    assert "Found hearth-tiny-llama" in dialog.message.text() and "Missing" in dialog.message.text()
    dialog.select_path(linked.path)
    assert not dialog.use_button.isEnabled() and not dialog.details_button.isEnabled()


def test_choosing_a_model(qtbot, make_dialog, tiny: Path) -> None:
    library = ModelLibrary()
    info = library.add_file(tiny)
    dialog = make_dialog(library)
    with qtbot.waitSignal(dialog.modelChosen) as chosen:
        dialog.table.doubleClicked.emit(_row_index(dialog, tiny, Column.SIZE))
    assert chosen.args == [info.path] and dialog.result() == QDialog.DialogCode.Accepted
