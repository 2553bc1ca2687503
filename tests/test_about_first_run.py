"""The About dialog, the first-run screen, the log file and the "Something went wrong" dialog."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer, QUrl
from PySide6.QtGui import QGuiApplication

from app import __version__, logs, paths
from app.core.demo import find_demo_model
from app.ui.about_dialog import AboutDialog, AboutInfo, Component, collect_about_info, spdx
from app.ui.error_dialog import ErrorDialog, ErrorReporter
from app.ui.first_run import FirstRunWidget

FAKE_TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567"


# -- About ---------------------------------------------------------------------------------


def test_about_info_lists_licenses_versions_and_folders(hearth_home: Path) -> None:
    info = collect_about_info()
    by_name = {c.name: c for c in info.components}
    assert info.version == __version__
    assert by_name["Qt"].license == "LGPL-3.0-only" and by_name["Qt"].version == info.qt_version
    assert by_name["PySide6 (Qt for Python)"].license == "LGPL-3.0-only"
    assert by_name["PySide6 (Qt for Python)"].version.startswith(info.qt_version.rsplit(".", 1)[0])
    assert by_name["llama.cpp and ggml"].license == "MIT"
    assert by_name["llama-cpp-python"].license == "MIT" and by_name["llama-cpp-python"].version == "0.3.36"
    assert by_name["huggingface_hub"].license == "Apache-2.0"
    assert by_name["markdown-it-py"].license == "MIT"
    assert by_name["Pygments"].license == "BSD-2-Clause"
    folders = dict(info.folders)
    assert info.folders[0][1] == paths.data_dir()
    assert all(path.is_relative_to(hearth_home) for path in folders.values())
    assert paths.log_dir() in folders.values() and paths.models_dir() in folders.values()


def test_demo_model_license_comes_from_its_gguf_header(demo_model: Path) -> None:
    demo = collect_about_info().demo_model
    assert demo is not None
    assert demo.license == "Apache-2.0"  # general.license = "apache-2.0" in the file
    assert spdx("apache-2.0") == "Apache-2.0" and spdx("Some Custom License") == "Some Custom License"


def test_about_dialog_shows_version_licenses_and_opens_the_data_folder(qtbot, hearth_home: Path, demo_model) -> None:
    opened: list[QUrl] = []
    dialog = AboutDialog(open_url=lambda url: opened.append(url) or True)
    qtbot.addWidget(dialog)
    assert dialog.objectName() == "aboutDialog"
    assert __version__ in dialog.title_label.text()
    text = dialog.licenses_text()
    for expected in (
        "PySide6",
        "LGPL-3.0-only",
        "llama.cpp",
        "MIT",
        "huggingface_hub",
        "Apache-2.0",
        "markdown-it-py",
        "Pygments",
        "BSD-2-Clause",
        "SmolLM2",
    ):
        assert expected in text, expected
    assert "Demo model: SmolLM2 135M Instruct (demo) — license Apache-2.0" in text
    shown_paths = [label.text() for label in dialog.folder_labels.values()]
    assert str(paths.data_dir()) in shown_paths and str(paths.log_dir()) in shown_paths

    dialog.open_data_button.click()
    assert opened == [QUrl.fromLocalFile(str(paths.data_dir()))]
    assert dialog.notice.isHidden()


def test_about_dialog_says_so_when_no_file_manager_opens(qtbot, tmp_path: Path) -> None:
    info = AboutInfo("9.9", "6.0", [Component("Thing", "1", "MIT")], [("Data", tmp_path / "d")], None)
    dialog = AboutDialog(info, open_url=lambda url: False)
    qtbot.addWidget(dialog)
    assert "demo model is not installed" in dialog.licenses_text()
    dialog.open_data_button.click()
    assert not dialog.notice.isHidden()
    assert str(tmp_path / "d") in dialog.notice.text()


# -- first run -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signal_name, button_name",
    [
        ("useDemo", "useDemoButton"),
        ("addModel", "addModelFileButton"),
        ("download", "downloadModelButton"),
    ],
)
def test_first_run_buttons_emit_their_intents(qtbot, signal_name: str, button_name: str) -> None:
    widget = FirstRunWidget(demo_available=True)
    qtbot.addWidget(widget)
    widget.show()
    assert widget.objectName() == "firstRun"
    button = widget.findChild(type(widget.demo_button), button_name)
    assert button is not None and button.isVisible() and button.isEnabled()
    others = {"useDemo", "addModel", "download"} - {signal_name}
    fired: list[str] = []
    for name in others:
        getattr(widget, name).connect(lambda name=name: fired.append(name))
    with qtbot.waitSignal(getattr(widget, signal_name), timeout=1000):
        button.click()
    assert fired == []


def test_first_run_explains_hearth_and_hides_the_demo_without_it(qtbot) -> None:
    widget = FirstRunWidget(demo_available=False, download_available=False)
    qtbot.addWidget(widget)
    widget.show()
    assert "your own computer" in widget.intro.text()
    assert not widget.demo_button.isVisible()
    assert widget.add_button.isVisible() and widget.add_button.isEnabled()
    assert not widget.download_button.isEnabled()
    widget.set_demo_available(True)
    assert widget.demo_button.isVisible()


def test_first_run_finds_the_installed_demo_model_itself(qtbot, demo_model) -> None:
    widget = FirstRunWidget()
    qtbot.addWidget(widget)
    widget.show()  # looked up off the GUI thread: the button comes when the answer does
    qtbot.waitUntil(lambda: widget.demo_button.isVisible() == (find_demo_model() is not None))
    qtbot.wait(100)
    assert widget.demo_button.isVisible()  # the demo model is installed here (the fixture)


# -- log file ------------------------------------------------------------------------------


@pytest.fixture
def hearth_logging():
    level = logging.getLogger().level
    yield
    logs.uninstall_excepthook()
    logs.shutdown_logging()
    logging.getLogger().setLevel(level)


def test_log_file_is_in_the_log_dir_rotates_and_keeps_five(hearth_logging) -> None:
    path = logs.setup_logging(max_bytes=2000, backup_count=5)
    assert path == paths.log_dir() / "hearth.log" and path.exists()
    log = logging.getLogger("app.test")
    for i in range(400):
        log.info("line %d %s", i, "x" * 40)
    logs.shutdown_logging()
    files = sorted(p.name for p in paths.log_dir().iterdir())
    assert files == ["hearth.log", *(f"hearth.log.{n}" for n in range(1, 6))]
    assert all(p.stat().st_size <= 2000 + 200 for p in paths.log_dir().iterdir())
    assert "line 399" in path.read_text()


def test_secrets_never_reach_the_log(hearth_logging) -> None:
    path = logs.setup_logging()
    logs.add_secret("correct-horse-battery")
    log = logging.getLogger("app.test")
    log.warning("request headers %r", {"authorization": f"Bearer {FAKE_TOKEN}"})
    log.info("token=%s and the user typed correct-horse-battery", FAKE_TOKEN)
    try:
        raise RuntimeError(f"refused: {FAKE_TOKEN}")
    except RuntimeError:
        log.exception("download failed")
    logs.shutdown_logging()
    text = path.read_text()
    assert "download failed" in text and "RuntimeError: refused" in text
    assert FAKE_TOKEN not in text and FAKE_TOKEN[3:] not in text
    assert "correct-horse-battery" not in text
    assert "n_tokens=5" in logs.redact("n_tokens=5")  # ordinary words stay readable


# -- errors that escape everything ---------------------------------------------------------


def test_uncaught_error_in_a_slot_is_logged_and_shown_in_a_friendly_dialog(qtbot, hearth_logging) -> None:
    path = logs.setup_logging()
    reporter = ErrorReporter(path)
    logs.install_excepthook(reporter.report.emit)

    def broken_slot() -> None:
        raise ValueError(f"the widget fell over ({FAKE_TOKEN})")

    with qtbot.waitSignal(reporter.shown, timeout=3000) as shown:
        # PySide6 reports an exception escaping a slot through sys.excepthook (ours now,
        # installed over pytest-qt's capture hook, which comes back at teardown).
        QTimer.singleShot(0, broken_slot)
    dialog: ErrorDialog = shown.args[0]
    qtbot.addWidget(dialog)
    assert dialog.objectName() == "errorDialog" and dialog.isVisible()
    assert dialog.headline.text() == "Something went wrong"
    assert "Traceback" not in dialog.message.text() and "ValueError" not in dialog.message.text()
    assert dialog.details.isHidden()  # collapsed until asked for
    assert str(path) in dialog.log_label.text()
    dialog.toggle.click()
    assert dialog.details.isVisible()
    dialog.copy_button.click()
    copied = QGuiApplication.clipboard().text()
    assert "ValueError: the widget fell over" in copied and "broken_slot" in copied
    assert str(path) in copied and __version__ in copied
    assert FAKE_TOKEN not in copied
    logs.shutdown_logging()
    text = path.read_text()
    assert "Unhandled error in the main thread" in text and "ValueError: the widget fell over" in text
    assert FAKE_TOKEN not in text


def test_uncaught_error_in_a_thread_reaches_the_gui_once(qtbot, hearth_logging) -> None:
    path = logs.setup_logging()
    reporter = ErrorReporter(path)
    logs.install_excepthook(reporter.report.emit)

    def worker(n: int) -> None:
        raise OSError(f"disk {n} vanished")

    with qtbot.waitSignal(reporter.shown, timeout=3000) as shown:
        for n in range(2):
            thread = threading.Thread(target=worker, args=(n,), name=f"copier-{n}")
            thread.start()
            thread.join()
    dialog = shown.args[0]
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: "disk 1 vanished" in dialog.details.toPlainText(), timeout=3000)
    assert "disk 0 vanished" in dialog.details.toPlainText()
    assert "(2 errors)" in dialog.headline.text()  # one dialog, not two
    logs.shutdown_logging()
    text = path.read_text()
    assert "Unhandled error in thread 'copier-0'" in text and "OSError: disk 1 vanished" in text


def test_a_failing_dialog_callback_is_logged_not_raised(hearth_logging) -> None:
    path = logs.setup_logging()

    def broken_dialog(details: str) -> None:
        raise RuntimeError("no display")

    logs.install_excepthook(broken_dialog)
    try:
        raise KeyError("lost")
    except KeyError:
        sys.excepthook(*sys.exc_info())  # must not raise
    logs.shutdown_logging()
    text = path.read_text()
    assert "KeyError: 'lost'" in text and "Could not show the error dialog" in text
