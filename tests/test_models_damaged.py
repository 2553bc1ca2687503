"""Damaged files in the models folder, and header reads kept off the GUI thread (issue 13, point 4).

A truncated, random or crafted (oversized) file in the models folder is listed as damaged
with the reason in plain words, in the library, the Models table and the picker, and never
stops a start.  Reading headers at start, after a download and when adding a file happens
on a worker thread: a read held on an Event shows the window up and running before the
read ends (no timing involved).
"""

from __future__ import annotations

import shutil
import struct
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from tiny_model import write_random_bytes

from app import paths
from app.core import library as library_module
from app.core.library import ModelLibrary
from app.ui.model_table import Column, ModelTableModel


def _write_damaged(folder: Path) -> dict[str, str]:
    """Three bad files in ``folder``; returns file name -> a words fragment of its reason."""
    folder.mkdir(parents=True, exist_ok=True)
    write_random_bytes(folder / "random.gguf", 4096)
    (folder / "cut.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + struct.pack("<QQ", 3, 5))
    with (folder / "huge.gguf").open("wb") as f:  # a million tiny tensors, sparse
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 1_000_000, 0))
        f.truncate(24_000_100)
    return {"random.gguf": "not a GGUF file", "cut.gguf": "truncated", "huge.gguf": "far larger"}


# -- core ------------------------------------------------------------------------------------------


def test_a_scan_lists_damaged_files_with_their_reason_until_they_are_fixed(tiny: Path) -> None:
    expected = _write_damaged(paths.models_dir())
    library = ModelLibrary()
    result = library.refresh()
    assert result.changed and result.added == []
    damaged = {d.file_name: d.reason for d in library.damaged()}
    assert damaged.keys() == expected.keys()
    for name, fragment in expected.items():
        assert fragment in damaged[name]
    assert not library.refresh().changed  # the same damaged files: nothing new to show

    shutil.copyfile(tiny, paths.models_dir() / "cut.gguf")  # the download is done again
    result = library.refresh()
    assert result.changed and [Path(m.path).name for m in result.added] == ["cut.gguf"]
    assert sorted(d.file_name for d in library.damaged()) == ["huge.gguf", "random.gguf"]
    assert library.models()[0].path == str((paths.models_dir() / "cut.gguf").resolve())


# -- the Models table ------------------------------------------------------------------------------


def test_the_models_table_shows_a_damaged_file_with_its_reason(qtbot, qtmodeltester, tiny: Path) -> None:
    _write_damaged(paths.models_dir())
    library = ModelLibrary()
    library.add_file(tiny)
    library.refresh()
    table = ModelTableModel(library)
    qtmodeltester.check(table)
    assert table.rowCount() == 4
    rows = {table.index(r, Column.FILE).data(): r for r in range(table.rowCount())}
    row = rows["cut.gguf"]
    status = table.index(row, Column.STATUS).data()
    assert status.startswith("damaged: ") and "truncated" in status
    assert table.is_damaged(row) and not table.is_damaged(rows["tiny-llama.gguf"])
    assert not table.flags(table.index(row, Column.NAME)) & Qt.ItemFlag.ItemIsEditable
    assert "cannot be used" in table.index(row, Column.NAME).data(Qt.ItemDataRole.ToolTipRole)


# -- the real window -------------------------------------------------------------------------------


def _open_window(qtbot):
    from app.core.config import AppConfig
    from app.core.presets import PresetStore
    from app.core.settings import LoadSettings, SamplingSettings
    from app.core.store import ConversationStore
    from app.session import ChatSession
    from app.ui.main_window import MainWindow

    store = ConversationStore(paths.data_dir() / "conversations.sqlite3")
    session = ChatSession(
        ModelLibrary(),
        AppConfig(),
        store,
        settings=SamplingSettings(temperature=0.0, max_tokens=4),
        load_settings=LoadSettings(n_ctx=256, n_threads=1),
    )
    window = MainWindow(session, PresetStore(paths.config_dir() / "presets.json"))
    qtbot.addWidget(window)
    window.show()
    session.start()
    return window, session


def _picker_texts(window) -> list[str]:
    return [window.model_picker.itemText(i) for i in range(window.model_picker.count())]


class _HeldReads:
    """Every model header read waits for ``release()``: a stand-in for a slow disk."""

    def __init__(self, monkeypatch) -> None:
        self.gate = threading.Event()
        self.done = threading.Event()
        real = library_module.read_gguf  # what every model read in the library goes through

        def held(*args, **kwargs):
            self.gate.wait(20)  # bounded, so code that reads on the GUI thread fails, not hangs
            try:
                return real(*args, **kwargs)
            finally:
                self.done.set()

        monkeypatch.setattr(library_module, "read_gguf", held)

    def release(self) -> None:
        self.gate.set()


def _event_loop_runs(qtbot) -> None:
    ticked: list[bool] = []
    QTimer.singleShot(0, lambda: ticked.append(True))
    qtbot.waitUntil(lambda: bool(ticked), timeout=5_000)


@pytest.mark.model
def test_damaged_files_in_the_models_folder_never_stop_a_start(qtbot, monkeypatch, tiny: Path) -> None:
    from app.session import EngineState

    monkeypatch.setattr("app.core.library.find_demo_model", lambda: None)
    expected = _write_damaged(paths.models_dir())
    shutil.copyfile(tiny, paths.models_dir() / "good.gguf")
    window, session = _open_window(qtbot)
    try:
        qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=60_000)  # the good one loads
        texts = _picker_texts(window)
        assert len(texts) == 4 and session.current_model.file_name == "good.gguf"
        for name, fragment in expected.items():
            index = next(i for i, t in enumerate(texts) if t.startswith(f"{name} (damaged: "))
            assert fragment in texts[index]
            assert not window.model_picker.model().item(index).isEnabled()
        window.findChild(object, "manageModelsAction").trigger()
        table = window.models_dialog.findChild(object, "modelTable").model()
        statuses = [table.index(r, Column.STATUS).data() for r in range(table.rowCount())]
        assert sum(s.startswith("damaged: ") for s in statuses) == 3
    finally:
        window.close()


@pytest.mark.model
def test_the_window_is_up_before_the_models_folder_is_read(qtbot, monkeypatch, tiny: Path) -> None:
    from app.session import EngineState

    monkeypatch.setattr("app.core.library.find_demo_model", lambda: None)
    shutil.copyfile(tiny, paths.models_dir() / "slow.gguf")
    reads = _HeldReads(monkeypatch)
    window, session = _open_window(qtbot)
    try:
        assert not reads.done.is_set(), "session.start() waited for a header read"
        _event_loop_runs(qtbot)
        assert window.isVisible() and window.model_picker.count() == 0
        assert session.state is not EngineState.NO_MODEL  # not "no model" while still looking
        reads.release()
        qtbot.waitUntil(lambda: window.model_picker.count() == 1, timeout=20_000)
        qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=60_000)
        assert session.current_model.file_name == "slow.gguf"
    finally:
        reads.release()
        window.close()


@pytest.mark.model
def test_a_download_and_an_added_file_are_read_off_the_gui_thread(qtbot, monkeypatch, tiny: Path) -> None:
    from app.session import EngineState

    monkeypatch.setattr("app.core.library.find_demo_model", lambda: None)
    window, session = _open_window(qtbot)
    try:
        qtbot.waitUntil(lambda: session.state is EngineState.NO_MODEL, timeout=60_000)  # the folder was read
        reads = _HeldReads(monkeypatch)
        downloaded = paths.models_dir() / "downloaded.gguf"
        shutil.copyfile(tiny, downloaded)
        session.models.model_downloaded(str(downloaded))
        monkeypatch.setattr("app.ui.main_window.QFileDialog.getOpenFileNames", lambda *a, **k: ([str(tiny)], ""))
        window.first_run.addModel.emit()
        assert not reads.done.is_set(), "a header was read on the GUI thread"
        _event_loop_runs(qtbot)
        assert window.model_picker.count() == 0, _picker_texts(window)
        reads.release()
        qtbot.waitUntil(lambda: window.model_picker.count() == 2, timeout=20_000)
        assert window.info_bar.isVisible()  # "… is downloaded and ready in the model picker."
    finally:
        window.close()


@pytest.mark.model
def test_use_the_demo_model_reads_it_off_the_gui_thread(qtbot, monkeypatch, demo_model: Path) -> None:
    from app.session import EngineState

    real_find = library_module.find_demo_model
    monkeypatch.setattr("app.core.library.find_demo_model", lambda: None)
    window, session = _open_window(qtbot)
    try:
        qtbot.waitUntil(lambda: session.state is EngineState.NO_MODEL, timeout=60_000)
        monkeypatch.setattr("app.core.library.find_demo_model", real_find)
        reads = _HeldReads(monkeypatch)
        window.first_run.useDemo.emit()
        assert not reads.done.is_set(), "the demo's header was read on the GUI thread"
        _event_loop_runs(qtbot)
        reads.release()
        qtbot.waitUntil(lambda: window.model_picker.count() == 1, timeout=20_000)
        qtbot.waitUntil(lambda: session.current_model is not None, timeout=20_000)
        assert session.current_model.path == str(demo_model)
    finally:
        window.close()
