"""Benchmark a model on this computer (issue 17 point 4): real llama.cpp runs in an engine
process of its own; the figures are stored, shown in the Models table and the picker, and
survive a restart; a benchmark can be cancelled; a damaged figures file never breaks start."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app import paths
from app.core.library import ModelDefaults, ModelLibrary
from app.core.model_bench import BenchResult, BenchStore, file_stamp
from app.core.sysinfo import MemoryInfo
from app.session.bench import ModelBenchmark
from app.ui.model_table import Column
from app.ui.models_dialog import ModelsDialog

BIG_MACHINE = MemoryInfo(16 * 10**9, 8 * 10**9)
SUMMARY = re.compile(r"^pp [\d,.]+ · tg [\d,.]+ tok/s · \d+\.\d GB$")


def _dialog(qtbot, library: ModelLibrary) -> ModelsDialog:
    dialog = ModelsDialog(library, memory=BIG_MACHINE)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def _speed(dialog: ModelsDialog, path: str) -> str:
    return dialog.model.index(dialog.model.row_of(path), Column.SPEED).data()


def _library_with(model: Path, threads: int = 1) -> tuple[ModelLibrary, str]:
    library = ModelLibrary()
    info = library.add_file(model)
    library.set_defaults(info.path, ModelDefaults(n_threads=threads))
    return library, info.path


@pytest.mark.model
def test_benchmark_measures_stores_and_shows_after_restart(qtbot, tiny: Path) -> None:
    library, path = _library_with(tiny)
    dialog = _dialog(qtbot, library)
    assert dialog.select_path(path)
    assert _speed(dialog, path) == "—"
    stages: list[str] = []
    dialog.bench.stage.connect(lambda _p, words: stages.append(words))
    with qtbot.waitSignal(dialog.bench.finished, timeout=60_000) as done:
        qtbot.mouseClick(dialog.bench_button, Qt.MouseButton.LeftButton)
        assert dialog.bench_button.text() == "Cancel benchmark"  # the window stays usable meanwhile
    result = done.args[1]
    assert isinstance(result, BenchResult)
    assert result.prompt_tokens > 0 and result.gen_tokens > 0
    assert result.prompt_tok_s > 0 and result.gen_tok_s > 0 and result.peak_rss > 10**6 and result.load_seconds > 0
    assert any("loading" in s for s in stages) and any("writing" in s for s in stages)
    assert SUMMARY.match(_speed(dialog, path)), _speed(dialog, path)
    assert dialog.bench_button.text() == "Benchmark"
    assert "tok/s" in dialog.message.text()

    stored = json.loads((paths.data_dir() / "model_bench.json").read_text())
    entry = stored["models"][path]
    assert entry["result"]["gen_tok_s"] == result.gen_tok_s and entry["size"] == tiny.stat().st_size

    # a restart: a new library object, store and dialog read the figures back
    dialog.close()
    again = _dialog(qtbot, ModelLibrary())
    assert _speed(again, path) == result.summary()
    assert "Measured on this computer" in again.model.index(again.model.row_of(path), Column.SPEED).data(
        Qt.ItemDataRole.ToolTipRole
    )


@pytest.mark.model
def test_benchmark_can_be_cancelled_and_saves_nothing(qtbot, tiny: Path) -> None:
    library, path = _library_with(tiny)
    dialog = _dialog(qtbot, library)
    dialog.select_path(path)
    with qtbot.waitSignal(dialog.bench.cancelled, timeout=30_000):
        dialog.toggle_benchmark()
        assert dialog.bench.running == path
        dialog.toggle_benchmark()  # the same button cancels
    assert dialog.bench.running is None
    assert _speed(dialog, path) == "—"
    assert not (paths.data_dir() / "model_bench.json").exists()
    assert "cancelled" in dialog.message.text()
    assert dialog.bench_button.text() == "Benchmark" and dialog.bench_button.isEnabled()


@pytest.mark.model
def test_cancel_mid_run_stops_between_tokens(qtbot, demo_model: Path) -> None:
    """On the demo model (seconds of work here): cancel once it processes the prompt."""
    library, path = _library_with(demo_model)
    bench = ModelBenchmark()
    stages: list[str] = []
    bench.stage.connect(lambda _p, words: stages.append(words))
    finished: list[object] = []
    bench.finished.connect(lambda *a: finished.append(a))
    info = library.get(path)
    assert info is not None
    assert bench.start(info)
    qtbot.waitUntil(lambda: any("prompt" in s for s in stages), timeout=60_000)
    with qtbot.waitSignal(bench.cancelled, timeout=30_000):
        bench.cancel()
    assert not finished and bench.store.get(path) is None


def test_damaged_figures_file_does_not_break_start(qtbot, tiny: Path) -> None:
    library, path = _library_with(tiny)
    figures = paths.data_dir() / "model_bench.json"
    for damage in (b"\x00\xffnot json", b"[1, 2]", b'{"models": {"x": 1}}'):
        figures.write_bytes(damage)
        dialog = _dialog(qtbot, library)
        assert _speed(dialog, path) == "—"
        dialog.close()
    # an entry with nonsense figures, and one measured on a file that has since changed
    figures.write_text(
        json.dumps(
            {
                "models": {
                    path: {"result": {"prompt_tokens": "many", "gen_tokens": 1}},
                    "/gone.gguf": {"result": {}},
                }
            }
        )
    )
    assert BenchStore().get(path) is None
    good = BenchResult(512, 850.0, 128, 78.0, 0.5, 400_000_000)
    store = BenchStore()
    store.put(path, good, (1, 2))  # not this file's size and time
    assert store.get(path, file_stamp(path)) is None
    store.put(path, good, file_stamp(path))
    assert BenchStore().get(path, file_stamp(path)) == good
    assert good.summary() == "pp 850 · tg 78 tok/s · 0.4 GB"


@pytest.mark.model
def test_picker_shows_measured_figures(open_main_window, demo_model: Path) -> None:
    """Figures stored earlier label the model in the picker (after a restart: read at start)."""
    store = BenchStore()
    path = str(demo_model.resolve())
    store.put(path, BenchResult(512, 850.0, 128, 78.0, 0.5, 400_000_000), file_stamp(path))
    window = open_main_window()
    labels = [window.model_picker.itemText(i) for i in range(window.model_picker.count())]
    assert any(label.endswith("— pp 850 · tg 78 tok/s · 0.4 GB") for label in labels), labels
