"""App preferences: the store, validation, the Preferences dialog and live theming."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QWidget,
)

from app import paths
from app.core import preferences as prefs_module
from app.core.preferences import Preferences, PreferencesError, PreferencesStore
from app.ui import theme as theme_module
from app.ui.preferences_dialog import PreferencesDialog
from app.ui.theme import apply_chat_font, apply_theme

FIELDS = (
    "theme",
    "chat_font_size",
    "send_with",
    "default_model",
    "default_preset",
    "models_dir",
    "max_parallel_downloads",
)
MODELS = [("Alpha 1B Q4", "/models/alpha.gguf"), ("Beta 3B Q8", "/models/beta.gguf")]
PRESETS = ["General assistant", "Summarize", "Write code"]


def fields_with_problems(prefs: Preferences) -> dict[str, str]:
    return {p.field: p.message for p in prefs.validate()}


def make_unwritable(folder: Path, monkeypatch) -> None:
    """Take write permission away; root ignores modes, so then pretend through os.access."""
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):
        real = os.access

        def access(path, mode, *args, **kwargs):
            if Path(path) == folder and mode & os.W_OK:
                return False
            return real(path, mode, *args, **kwargs)

        monkeypatch.setattr(prefs_module.os, "access", access)


# -- the store ---------------------------------------------------------------------------------


def test_round_trip_in_the_config_folder(tmp_path: Path) -> None:
    store = PreferencesStore()
    assert store.path == paths.config_dir() / "preferences.json"
    assert store.load() == Preferences()  # no file yet: defaults

    folder = tmp_path / "my models"
    folder.mkdir()
    chosen = Preferences(
        theme="dark",
        chat_font_size=16,
        send_with="ctrl+enter",
        default_model="/models/beta.gguf",
        default_preset="Summarize",
        models_dir=str(folder),
        max_parallel_downloads=3,
    )
    assert chosen.validate() == []
    store.save(chosen)
    assert store.path.is_file()
    assert PreferencesStore().load() == chosen
    assert json.loads(store.path.read_text(encoding="utf-8"))["theme"] == "dark"
    assert not list(store.path.parent.glob("*.tmp"))  # the atomic write left nothing behind


@pytest.mark.parametrize("content", [b"", b"{not json", b"\xff\xfe\x00garbage", b"[1, 2, 3]", b"null", b'"dark"'])
def test_a_damaged_file_gives_defaults(content: bytes) -> None:
    store = PreferencesStore()
    store.path.write_bytes(content)
    assert store.load() == Preferences()
    store.save(Preferences(theme="light"))  # and it can be replaced
    assert store.load().theme == "light"


def test_each_bad_or_missing_value_falls_back_on_its_own() -> None:
    store = PreferencesStore()
    store.path.write_text(
        json.dumps(
            {
                "version": 99,  # a newer version's file
                "theme": "purple",
                "chat_font_size": 14,
                "send_with": 7,
                "default_model": "/models/alpha.gguf",
                "default_preset": "",
                "max_parallel_downloads": 9,
                "a_setting_from_the_future": True,
            }
        ),
        encoding="utf-8",
    )
    loaded = store.load()
    assert loaded == Preferences(chat_font_size=14, default_model="/models/alpha.gguf")


@pytest.mark.parametrize("value", [True, 12.5, "12", None, 7, 33])
def test_a_font_size_that_is_not_a_valid_whole_number_is_not_loaded(value) -> None:
    assert Preferences.from_dict({"chat_font_size": value}).chat_font_size == 11


def test_an_unavailable_models_folder_is_kept_but_not_used(tmp_path: Path) -> None:
    """An unplugged drive must not lose the choice; it is reported and the default is used."""
    gone = tmp_path / "external" / "models"
    store = PreferencesStore()
    store.path.write_text(json.dumps({"models_dir": str(gone)}), encoding="utf-8")
    loaded = store.load()
    assert loaded.models_dir == str(gone)
    assert "does not exist" in fields_with_problems(loaded)["models_dir"]
    assert loaded.usable_models_dir() is None
    gone.mkdir(parents=True)
    assert loaded.usable_models_dir() == gone


def test_save_refuses_values_that_could_not_be_read_back() -> None:
    store = PreferencesStore()
    with pytest.raises(PreferencesError, match="between 8 and 32"):
        store.save(Preferences(chat_font_size=40))
    assert not store.path.exists()


def test_save_turns_a_disk_error_into_plain_words(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(PreferencesError, match="could not save your preferences"):
        PreferencesStore(blocker / "preferences.json").save(Preferences())


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(JSON, st.fixed_dictionaries({}, optional={name: JSON for name in FIELDS})))
def test_any_stored_data_loads_to_well_formed_preferences(data) -> None:
    loaded = Preferences.from_dict(data)
    # Only the disk-dependent folder check may still complain; every value has the right shape.
    assert {p.field for p in loaded.validate()} <= {"models_dir"}
    if isinstance(data, dict):
        for name in FIELDS:
            if name in data and getattr(loaded, name) != getattr(Preferences(), name):
                assert getattr(loaded, name) == data[name]


# -- validation ------------------------------------------------------------------------------


def test_defaults_are_valid() -> None:
    assert Preferences().validate() == []


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"theme": "neon"}, "theme", "System, Light or Dark"),
        ({"chat_font_size": 7}, "chat_font_size", "between 8 and 32"),
        ({"chat_font_size": 33}, "chat_font_size", "between 8 and 32"),
        ({"chat_font_size": 11.5}, "chat_font_size", "whole number"),
        ({"send_with": "shift+enter"}, "send_with", "Enter or Ctrl+Enter"),
        ({"default_model": ""}, "default_model", "model file"),
        ({"default_preset": "  "}, "default_preset", "preset"),
        ({"max_parallel_downloads": 0}, "max_parallel_downloads", "between 1 and 4"),
        ({"max_parallel_downloads": 5}, "max_parallel_downloads", "between 1 and 4"),
        ({"models_dir": "models"}, "models_dir", "full path"),
        ({"models_dir": " "}, "models_dir", "leave it empty"),
    ],
)
def test_invalid_values_are_explained(changes, field, words) -> None:
    problems = fields_with_problems(Preferences(**changes))
    assert list(problems) == [field]
    assert words in problems[field]


@pytest.mark.parametrize("size", [8, 32])
def test_font_size_limits_are_valid(size: int) -> None:
    assert Preferences(chat_font_size=size).validate() == []


def test_models_folder_problems_are_explained(tmp_path: Path, monkeypatch) -> None:
    missing = tmp_path / "nowhere"
    assert (
        "“" + str(missing) + "” does not exist"
        in fields_with_problems(Preferences(models_dir=str(missing)))["models_dir"]
    )
    a_file = tmp_path / "model.gguf"
    a_file.write_bytes(b"GGUF")
    assert "is a file, not a folder" in fields_with_problems(Preferences(models_dir=str(a_file)))["models_dir"]
    locked = tmp_path / "locked"
    locked.mkdir()
    assert Preferences(models_dir=str(locked)).validate() == []
    make_unwritable(locked, monkeypatch)
    message = fields_with_problems(Preferences(models_dir=str(locked)))["models_dir"]
    assert "not allowed to save files" in message and str(locked) in message


# -- the dialog ------------------------------------------------------------------------------


@pytest.fixture
def dialog(qtbot) -> PreferencesDialog:
    widget = PreferencesDialog(Preferences(), MODELS, PRESETS, default_models_dir="/home/me/models")
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def control(dialog: PreferencesDialog, name: str) -> QWidget:
    widget = dialog.findChild(QWidget, f"pref_{name}")
    assert widget is not None, name
    return widget


def problem(dialog: PreferencesDialog, name: str) -> QLabel:
    label = dialog.findChild(QLabel, f"problem_{name}")
    assert label is not None, name
    return label


def button(dialog: PreferencesDialog, which: QDialogButtonBox.StandardButton) -> QPushButton:
    return dialog.findChild(QDialogButtonBox, "preferencesButtons").button(which)


def choose(combo: QComboBox, text: str) -> None:
    index = combo.findText(text, Qt.MatchFlag.MatchStartsWith)
    assert index >= 0, text
    combo.setCurrentIndex(index)


def type_into(qtbot, spin: QSpinBox, text: str) -> None:
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, text)
    qtbot.keyClick(spin, Qt.Key.Key_Tab)  # focus leaves: the value is committed


def test_every_preference_has_a_named_control_with_help(dialog: PreferencesDialog) -> None:
    assert dialog.objectName() == "preferencesDialog"
    for name in FIELDS:
        assert len(control(dialog, name).toolTip()) > 20, name
        assert problem(dialog, name).isHidden(), name
    assert isinstance(dialog.findChild(QPushButton, "pref_models_dir_browse"), QPushButton)
    assert control(dialog, "models_dir").placeholderText() == "Default: /home/me/models"
    assert dialog.preferences() == Preferences()  # shows what it was given


def test_edits_are_emitted_by_apply_and_ok(qtbot, dialog: PreferencesDialog, tmp_path: Path) -> None:
    choose(control(dialog, "theme"), "Dark")
    type_into(qtbot, control(dialog, "chat_font_size"), "14")
    choose(control(dialog, "send_with"), "Ctrl+Enter")
    choose(control(dialog, "default_model"), "Beta 3B")
    choose(control(dialog, "default_preset"), "Summarize")
    control(dialog, "models_dir").setText(str(tmp_path))
    type_into(qtbot, control(dialog, "max_parallel_downloads"), "3")
    expected = Preferences(
        theme="dark",
        chat_font_size=14,
        send_with="ctrl+enter",
        default_model="/models/beta.gguf",
        default_preset="Summarize",
        models_dir=str(tmp_path),
        max_parallel_downloads=3,
    )

    with qtbot.waitSignal(dialog.applied, timeout=1000) as blocker:
        qtbot.mouseClick(button(dialog, QDialogButtonBox.StandardButton.Apply), Qt.MouseButton.LeftButton)
    assert blocker.args == [expected]
    assert dialog.isVisible()  # Apply keeps the dialog open

    choose(control(dialog, "theme"), "Light")
    with qtbot.waitSignal(dialog.applied, timeout=1000) as blocker:
        qtbot.mouseClick(button(dialog, QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    assert blocker.args[0].theme == "light" and blocker.args[0].chat_font_size == 14
    assert dialog.result() == dialog.DialogCode.Accepted and not dialog.isVisible()


def test_ok_without_changes_emits_nothing(qtbot, dialog: PreferencesDialog) -> None:
    with qtbot.assertNotEmitted(dialog.applied):
        qtbot.mouseClick(button(dialog, QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    assert dialog.result() == dialog.DialogCode.Accepted


def test_an_invalid_models_folder_blocks_ok_and_explains(qtbot, dialog: PreferencesDialog, tmp_path: Path) -> None:
    folder = tmp_path / "not yet"
    field = control(dialog, "models_dir")
    field.setText(str(folder))
    label = problem(dialog, "models_dir")
    assert label.isVisibleTo(dialog) and "does not exist" in label.text()
    assert field.property("invalid") is True
    assert "does not exist" in field.accessibleDescription()

    with qtbot.assertNotEmitted(dialog.applied):
        qtbot.mouseClick(button(dialog, QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
        qtbot.mouseClick(button(dialog, QDialogButtonBox.StandardButton.Apply), Qt.MouseButton.LeftButton)
        field.setFocus()
        qtbot.keyClick(field, Qt.Key.Key_Return)  # Enter presses the default (OK) button
    assert dialog.isVisible() and dialog.result() != dialog.DialogCode.Accepted
    assert QApplication.focusWidget() is field  # OK pointed at the problem

    folder.mkdir()  # made meanwhile in a file manager: OK checks again, no retyping needed
    with qtbot.waitSignal(dialog.applied, timeout=1000) as blocker:
        qtbot.mouseClick(button(dialog, QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    assert blocker.args[0].models_dir == str(folder)
    assert not dialog.isVisible()


def test_an_unwritable_models_folder_is_explained(
    qtbot, dialog: PreferencesDialog, tmp_path: Path, monkeypatch
) -> None:
    make_unwritable(tmp_path, monkeypatch)
    control(dialog, "models_dir").setText(str(tmp_path))
    assert "not allowed to save files" in problem(dialog, "models_dir").text()
    with qtbot.assertNotEmitted(dialog.applied):
        assert dialog.apply() is False


def test_clearing_the_folder_means_the_default(qtbot, tmp_path: Path) -> None:
    widget = PreferencesDialog(Preferences(models_dir=str(tmp_path / "gone")), MODELS, PRESETS)
    qtbot.addWidget(widget)
    assert not problem(widget, "models_dir").isHidden()  # an unavailable saved folder is flagged
    field = widget.findChild(QLineEdit, "pref_models_dir")
    field.clear()
    assert problem(widget, "models_dir").isHidden()
    with qtbot.waitSignal(widget.applied, timeout=1000) as blocker:
        assert widget.apply()
    assert blocker.args[0].models_dir is None


def test_out_of_range_numbers_are_explained_and_never_emitted(qtbot, dialog: PreferencesDialog) -> None:
    type_into(qtbot, control(dialog, "chat_font_size"), "40")
    assert "between 8 and 32" in problem(dialog, "chat_font_size").text()
    type_into(qtbot, control(dialog, "max_parallel_downloads"), "9")
    assert "between 1 and 4" in problem(dialog, "max_parallel_downloads").text()
    with qtbot.assertNotEmitted(dialog.applied):
        assert dialog.apply() is False
    type_into(qtbot, control(dialog, "chat_font_size"), "20")
    type_into(qtbot, control(dialog, "max_parallel_downloads"), "2")
    assert problem(dialog, "chat_font_size").isHidden()
    with qtbot.waitSignal(dialog.applied, timeout=1000) as blocker:
        assert dialog.apply()
    assert (blocker.args[0].chat_font_size, blocker.args[0].max_parallel_downloads) == (20, 2)


def test_cancel_emits_nothing(qtbot, dialog: PreferencesDialog) -> None:
    choose(control(dialog, "theme"), "Dark")
    with qtbot.assertNotEmitted(dialog.applied):
        qtbot.mouseClick(button(dialog, QDialogButtonBox.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    assert dialog.result() == dialog.DialogCode.Rejected


def test_a_default_model_or_preset_no_longer_listed_is_kept(qtbot) -> None:
    given = Preferences(default_model="/media/usb/gamma.gguf", default_preset="Old preset")
    widget = PreferencesDialog(given, MODELS, PRESETS)
    qtbot.addWidget(widget)
    assert "not in the library" in control(widget, "default_model").currentText()
    assert widget.preferences() == given
    choose(control(widget, "default_model"), "The last one used")
    choose(control(widget, "default_preset"), "None")
    assert widget.preferences() == Preferences()


def test_browse_fills_the_folder(qtbot, dialog: PreferencesDialog, tmp_path: Path, monkeypatch) -> None:
    asked = []

    def pick(parent, caption, start):
        asked.append(start)
        return str(tmp_path)

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(pick))
    qtbot.mouseClick(dialog.findChild(QPushButton, "pref_models_dir_browse"), Qt.MouseButton.LeftButton)
    assert control(dialog, "models_dir").text() == str(tmp_path) and asked == [""]
    assert problem(dialog, "models_dir").isHidden()


# -- the theme -------------------------------------------------------------------------------


@pytest.fixture
def app(qapp: QApplication):
    """The shared QApplication, put back exactly as found: other tests draw with it."""
    style, font = qapp.style().name(), QFont(qapp.font())
    window = qapp.palette().color(QPalette.ColorRole.Window)
    theme_module._platform.clear()
    yield qapp
    apply_theme(qapp, "system")
    if qapp.style().name() != style:
        qapp.setStyle(style)
    qapp.setPalette(QPalette())
    qapp.setFont(font)
    theme_module._platform.clear()
    assert qapp.palette().color(QPalette.ColorRole.Window) == window


def test_dark_is_dark_everywhere_and_system_restores(qtbot, app: QApplication) -> None:
    app.setStyle("Windows")  # stands in for a native platform style
    system_window = app.palette().color(QPalette.ColorRole.Window)
    assert system_window.lightness() > 128
    widget = QLineEdit("already open")
    qtbot.addWidget(widget)
    widget.show()

    apply_theme(app, "dark")
    palette = app.palette()
    assert palette.color(QPalette.ColorRole.Window).lightness() < 80
    assert palette.color(QPalette.ColorRole.Base).lightness() < 80
    for role in (
        QPalette.ColorRole.WindowText,
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.ToolTipText,
        QPalette.ColorRole.HighlightedText,
    ):
        assert palette.color(role).lightness() > 180, role
    assert palette.color(QPalette.ColorRole.Link).lightness() > 128  # links readable on dark
    assert app.style().name().lower() == "fusion"
    # Live, no restart: the widget already open turns dark with the next event loop pass.
    qtbot.waitUntil(lambda: widget.palette().color(QPalette.ColorRole.Base).lightness() < 80, timeout=1000)

    apply_theme(app, "light")
    assert app.palette().color(QPalette.ColorRole.Window).lightness() > 200
    assert app.palette().color(QPalette.ColorRole.Text).lightness() < 60

    apply_theme(app, "system")
    assert app.style().name().lower() == "windows"
    assert app.palette().color(QPalette.ColorRole.Window) == system_window
    qtbot.waitUntil(lambda: widget.palette().color(QPalette.ColorRole.Base).lightness() > 128, timeout=1000)


def test_unknown_theme_is_refused(app: QApplication) -> None:
    with pytest.raises(ValueError):
        apply_theme(app, "neon")


def test_font_size_is_applied_and_restored(qtbot, app: QApplication) -> None:
    platform_size = app.font().pointSize()
    apply_theme(app, "dark", 17)
    assert app.font().pointSize() == 17
    widget = QLabel("text")
    qtbot.addWidget(widget)
    assert widget.font().pointSize() == 17
    apply_theme(app, "system")
    assert app.font().pointSize() == platform_size


def test_chat_font_resizes_text_already_shown(qtbot, app: QApplication) -> None:
    view = QTextBrowser()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.setHtml("<p>Hello there, <b>friend</b></p><p style='font-size: small'>stats</p>")
    view.show()
    qtbot.waitExposed(view)
    qtbot.waitUntil(lambda: view.document().size().height() > 0, timeout=1000)
    before = view.document().size().height()
    apply_chat_font(view, 24)
    assert view.font().pointSize() == 24
    assert view.document().defaultFont().pointSize() == 24
    qtbot.waitUntil(lambda: view.document().size().height() > before * 1.5, timeout=1000)
    assert app.font().pointSize() != 24  # only the chat, not the whole app


def test_dialog_problem_text_stays_readable_in_dark(qtbot, app: QApplication) -> None:
    widget = PreferencesDialog(Preferences(), MODELS, PRESETS)
    qtbot.addWidget(widget)
    assert "#b71c1c" in widget.styleSheet()
    apply_theme(app, "dark")
    qtbot.waitUntil(lambda: "#ef9a9a" in widget.styleSheet(), timeout=1000)
    apply_theme(app, "system")
    qtbot.waitUntil(lambda: "#b71c1c" in widget.styleSheet(), timeout=1000)
