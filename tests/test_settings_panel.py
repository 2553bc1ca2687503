"""The settings panel: editing, validation marks, resets, presets and load-time changes."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QWidget,
)

from app.core.presets import BUILTIN_PRESETS, Preset, PresetStore
from app.core.settings import LoadSettings, SamplingSettings
from app.ui.settings_panel import SettingsPanel

NATIVE_CTX = 8192


@pytest.fixture
def store(tmp_path: Path) -> PresetStore:
    return PresetStore(tmp_path / "presets.json")


@pytest.fixture
def panel(qtbot, store: PresetStore) -> SettingsPanel:
    widget = SettingsPanel(store)
    qtbot.addWidget(widget)
    widget.set_settings(SamplingSettings(), LoadSettings(), NATIVE_CTX)
    widget.resize(420, 900)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def control(panel: SettingsPanel, name: str):
    widget = panel.findChild(QWidget, f"setting_{name}")
    assert widget is not None, name
    return widget


def problem_label(panel: SettingsPanel, name: str) -> QLabel:
    return panel.findChild(QLabel, f"problem_{name}")


def type_value(qtbot, spin: QAbstractSpinBox, text: str) -> None:
    """Type into a spin box as a user would: select all, type, press Enter."""
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, text)
    qtbot.keyClick(spin, Qt.Key.Key_Return)


def choose_preset(panel: SettingsPanel, name: str) -> None:
    picker = panel.findChild(QComboBox, "presetPicker")
    index = picker.findText(name)
    assert index >= 0, name
    picker.setCurrentIndex(index)
    picker.activated.emit(index)  # what a click on the entry sends


def test_every_setting_has_a_control_tooltip_reset_and_problem_line(panel: SettingsPanel) -> None:
    assert panel.objectName() == "settingsPanel" and panel.accessibleName() == "Settings"
    for name in [f.name for f in fields(SamplingSettings)] + [f.name for f in fields(LoadSettings)]:
        widget = control(panel, name)
        assert len(widget.toolTip()) > 30, name
        assert panel.findChild(QToolButton, f"reset_{name}") is not None, name
        assert problem_label(panel, name) is not None and problem_label(panel, name).isHidden(), name
    note = panel.findChild(QLabel, "loadNote")
    assert "reloads the model" in note.text()
    assert "8,192" in panel.findChild(QLabel, "nativeContext").text()


def test_shown_settings_read_back_unchanged_and_set_settings_emits_nothing(qtbot, panel: SettingsPanel) -> None:
    sampling = SamplingSettings(
        temperature=1.25,
        top_p=0.5,
        top_k=7,
        min_p=0.1,
        repeat_penalty=1.3,
        presence_penalty=0.4,
        frequency_penalty=-0.6,
        max_tokens=300,
        stop=["\n\n", "END"],
        seed=4_000_000_000,
        system_prompt="Be brief.\nReally.",
        last_n_tokens=256,
        chain_of_thought=True,
    )
    load = LoadSettings(n_ctx=2048, n_threads=1, n_gpu_layers=3, n_batch=128)
    with qtbot.assertNotEmitted(panel.settingsChanged), qtbot.assertNotEmitted(panel.loadSettingsChanged):
        panel.set_settings(sampling, load, NATIVE_CTX)
    assert panel.settings() == sampling
    assert panel.load_settings() == load
    assert control(panel, "stop").item(0).text() == r"\n\n"  # the newline is visible


def test_editing_a_control_updates_and_emits_settings(qtbot, panel: SettingsPanel) -> None:
    with qtbot.waitSignal(panel.settingsChanged) as blocker:
        type_value(qtbot, control(panel, "temperature"), "2")
    assert blocker.args[0].temperature == 2.0
    assert panel.settings().temperature == 2.0

    with qtbot.waitSignal(panel.settingsChanged) as blocker:
        type_value(qtbot, control(panel, "top_k"), "12")
    assert blocker.args[0].top_k == 12 and blocker.args[0].temperature == 2.0

    with qtbot.waitSignal(panel.settingsChanged) as blocker:
        control(panel, "system_prompt").setFocus()
        qtbot.keyClicks(control(panel, "system_prompt"), "Hi")
    assert panel.settings().system_prompt == "Hi"

    with qtbot.waitSignal(panel.settingsChanged) as blocker:
        qtbot.mouseClick(control(panel, "chain_of_thought"), Qt.MouseButton.LeftButton)
    assert blocker.args[0].chain_of_thought is True


def test_fixed_and_random_seed(qtbot, panel: SettingsPanel) -> None:
    random_box = panel.findChild(QCheckBox, "setting_seed_random")
    seed = control(panel, "seed")
    assert random_box.isChecked() and not seed.isEnabled() and panel.settings().seed is None
    with qtbot.waitSignal(panel.settingsChanged) as blocker:
        random_box.click()
    assert seed.isEnabled() and blocker.args[0].seed == 0
    with qtbot.waitSignal(panel.settingsChanged) as blocker:
        type_value(qtbot, seed, "4294967295")
    assert blocker.args[0].seed == 4294967295
    with qtbot.waitSignal(panel.settingsChanged) as blocker:
        qtbot.mouseClick(panel.findChild(QToolButton, "reset_seed"), Qt.MouseButton.LeftButton)
    assert blocker.args[0].seed is None and random_box.isChecked()


def test_invalid_top_p_is_marked_explained_and_not_emitted(qtbot, panel: SettingsPanel) -> None:
    top_p = control(panel, "top_p")
    with qtbot.assertNotEmitted(panel.settingsChanged):
        type_value(qtbot, top_p, "0")
        # another, valid, edit while top_p is still wrong is not sent either
        type_value(qtbot, control(panel, "top_k"), "3")
    assert panel.settings().top_p == 0.0
    assert top_p.property("invalid") is True
    label = problem_label(panel, "top_p")
    assert label.isVisible() and "Top-p must be greater than 0" in label.text()
    assert "Top-p" in top_p.accessibleDescription()
    assert [p.field for p in panel.problems()] == ["top_p"]
    assert not panel.findChild(QPushButton, "presetSaveAs").isEnabled()

    with qtbot.waitSignal(panel.settingsChanged) as blocker:
        type_value(qtbot, top_p, "1")
    assert blocker.args[0].top_p == 1.0 and blocker.args[0].top_k == 3
    assert not top_p.property("invalid") and label.isHidden()


def test_max_tokens_must_fit_the_context(qtbot, panel: SettingsPanel) -> None:
    with qtbot.assertNotEmitted(panel.settingsChanged):
        type_value(qtbot, control(panel, "max_tokens"), "5000")
    assert "context length (4096)" in problem_label(panel, "max_tokens").text()
    # a larger context (still to be applied) makes room for it
    with qtbot.waitSignal(panel.settingsChanged) as blocker:
        type_value(qtbot, control(panel, "n_ctx"), "8192")
    assert blocker.args[0].max_tokens == 5000


def test_stop_sequences_add_escape_remove_and_reject_empty(qtbot, panel: SettingsPanel) -> None:
    stop_list: QListWidget = control(panel, "stop")
    qtmodel = stop_list.model()
    entry = panel.findChild(QLineEdit, "stop_input")
    add = panel.findChild(QPushButton, "stop_add")
    assert not add.isEnabled()
    with qtbot.waitSignal(panel.settingsChanged) as blocker:
        qtbot.keyClicks(entry, r"\n\nUser:")
        qtbot.mouseClick(add, Qt.MouseButton.LeftButton)
    assert blocker.args[0].stop == ["\n\nUser:"]
    assert stop_list.item(0).text() == r"\n\nUser:" and entry.text() == ""
    with qtbot.waitSignal(panel.settingsChanged) as blocker:
        qtbot.keyClicks(entry, "###")
        qtbot.keyClick(entry, Qt.Key.Key_Return)
    assert blocker.args[0].stop == ["\n\nUser:", "###"]

    # editing an entry down to nothing is marked and not sent
    with qtbot.assertNotEmitted(panel.settingsChanged):
        stop_list.item(1).setText("")
    assert stop_list.property("invalid") is True
    assert problem_label(panel, "stop").text() == "A stop sequence cannot be empty."
    assert problem_label(panel, "stop").isVisible()

    remove = panel.findChild(QPushButton, "stop_remove")
    assert not remove.isEnabled()
    second = stop_list.visualItemRect(stop_list.item(1)).center()
    qtbot.mouseClick(stop_list.viewport(), Qt.MouseButton.LeftButton, pos=second)
    assert stop_list.selectedItems() == [stop_list.item(1)] and remove.isEnabled()
    with qtbot.waitSignal(panel.settingsChanged) as blocker:
        qtbot.mouseClick(remove, Qt.MouseButton.LeftButton)
    assert blocker.args[0].stop == ["\n\nUser:"] and not stop_list.property("invalid")
    assert qtmodel.rowCount() == 1


def test_stop_list_and_preset_models_are_sound(qtmodeltester, panel: SettingsPanel, store: PresetStore) -> None:
    store.save(Preset("Mine"))
    panel.refresh_presets()
    panel.set_settings(SamplingSettings(stop=["a", "\t"]), LoadSettings(), None)
    qtmodeltester.check(control(panel, "stop").model())
    qtmodeltester.check(panel.findChild(QComboBox, "presetPicker").model())


def test_reset_to_default(qtbot, panel: SettingsPanel) -> None:
    panel.set_settings(
        SamplingSettings(temperature=1.5, stop=["x"], system_prompt="S", last_n_tokens=8),
        LoadSettings(n_ctx=2048),
        NATIVE_CTX,
    )
    for name, default in (("temperature", 0.7), ("last_n_tokens", 64), ("stop", []), ("system_prompt", "")):
        with qtbot.waitSignal(panel.settingsChanged) as blocker:
            qtbot.mouseClick(panel.findChild(QToolButton, f"reset_{name}"), Qt.MouseButton.LeftButton)
        assert getattr(blocker.args[0], name) == default
    assert panel.settings() == SamplingSettings()
    # an invalid value is cleared by its reset; what was last sent is then current again,
    # so there is nothing new to send
    type_value(qtbot, control(panel, "top_p"), "0")
    assert panel.problems()
    with qtbot.assertNotEmitted(panel.settingsChanged):
        qtbot.mouseClick(panel.findChild(QToolButton, "reset_top_p"), Qt.MouseButton.LeftButton)
    assert panel.settings().top_p == 0.95 and problem_label(panel, "top_p").isHidden() and not panel.problems()
    # load fields reset within what this model allows
    panel.set_settings(SamplingSettings(), LoadSettings(n_ctx=512, n_batch=256), 2048)
    qtbot.mouseClick(panel.findChild(QToolButton, "reset_n_ctx"), Qt.MouseButton.LeftButton)
    assert panel.load_settings().n_ctx == 2048


def test_choosing_a_preset_applies_it(qtbot, panel: SettingsPanel) -> None:
    creative = next(p for p in BUILTIN_PRESETS if p.name == "Creative writing")
    with qtbot.waitSignal(panel.presetApplied) as applied, qtbot.waitSignal(panel.settingsChanged) as changed:
        choose_preset(panel, "Creative writing")
    assert applied.args[0] is creative
    assert changed.args[0].temperature == 1.0 and changed.args[0].presence_penalty == 0.3
    assert panel.settings().system_prompt == creative.system_prompt
    assert control(panel, "system_prompt").toPlainText() == creative.system_prompt
    assert panel.findChild(QLabel, "presetDescription").text() == creative.description
    assert panel.current_preset() is creative

    # a second preset starts from the defaults, not from the first preset's values
    with qtbot.waitSignal(panel.presetApplied) as applied:
        choose_preset(panel, "Translate")
    assert applied.args[0].few_shot  # the lead sends these with requests
    assert panel.settings().presence_penalty == 0.0 and panel.settings().temperature == 0.2
    assert not panel.findChild(QPushButton, "presetDelete").isEnabled()


def test_chain_of_thought_survives_a_preset_change(qtbot, panel: SettingsPanel) -> None:
    control(panel, "chain_of_thought").setChecked(True)
    choose_preset(panel, "Precise answers")
    assert panel.settings().chain_of_thought is True and panel.settings().temperature == 0.1


def test_save_as_and_delete_a_user_preset(qtbot, panel: SettingsPanel, store: PresetStore, monkeypatch) -> None:
    choose_preset(panel, "Translate")
    type_value(qtbot, control(panel, "temperature"), "1")
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: ("  My translator ", True)))
    qtbot.mouseClick(panel.findChild(QPushButton, "presetSaveAs"), Qt.MouseButton.LeftButton)
    saved = store.get("My translator")
    assert saved is not None and saved.settings["temperature"] == 1.0
    assert saved.system_prompt == panel.settings().system_prompt and saved.few_shot == store.get("Translate").few_shot
    picker = panel.findChild(QComboBox, "presetPicker")
    assert picker.currentText() == "My translator"
    assert PresetStore(store.path).get("My translator") is not None  # written to disk

    delete = panel.findChild(QPushButton, "presetDelete")
    assert delete.isEnabled()
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.No))
    qtbot.mouseClick(delete, Qt.MouseButton.LeftButton)
    assert store.get("My translator") is not None  # the user said no
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Yes))
    with qtbot.assertNotEmitted(panel.settingsChanged):
        qtbot.mouseClick(delete, Qt.MouseButton.LeftButton)
    assert store.get("My translator") is None
    assert picker.findText("My translator") < 0


def test_saving_over_a_builtin_shows_a_message(qtbot, panel: SettingsPanel, store: PresetStore, monkeypatch) -> None:
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: ("summarize", True)))
    qtbot.mouseClick(panel.findChild(QPushButton, "presetSaveAs"), Qt.MouseButton.LeftButton)
    message = panel.findChild(QLabel, "presetMessage")
    assert message.isVisible() and "built-in" in message.text()
    assert store.list() == list(BUILTIN_PRESETS)
    # cancelling the dialog does nothing
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: ("Whatever", False)))
    qtbot.mouseClick(panel.findChild(QPushButton, "presetSaveAs"), Qt.MouseButton.LeftButton)
    assert store.get("Whatever") is None


def test_load_change_is_sent_only_when_applied_and_really_changed(qtbot, panel: SettingsPanel) -> None:
    apply = panel.findChild(QPushButton, "applyLoadSettings")
    assert not apply.isEnabled()
    with qtbot.assertNotEmitted(panel.loadSettingsChanged):
        type_value(qtbot, control(panel, "n_ctx"), "2048")
        type_value(qtbot, control(panel, "n_threads"), "1")
    assert apply.isEnabled()
    with qtbot.waitSignal(panel.loadSettingsChanged) as blocker:
        qtbot.mouseClick(apply, Qt.MouseButton.LeftButton)
    assert blocker.args[0] == LoadSettings(n_ctx=2048, n_threads=1, n_gpu_layers=0, n_batch=512)
    assert not apply.isEnabled()

    # changed and changed back: nothing to reload
    type_value(qtbot, control(panel, "n_gpu_layers"), "4")
    assert apply.isEnabled()
    type_value(qtbot, control(panel, "n_gpu_layers"), "0")
    assert not apply.isEnabled()
    with qtbot.assertNotEmitted(panel.loadSettingsChanged):
        panel._send_load_settings()  # even a stray click sends nothing
    # "Auto" threads is None
    type_value(qtbot, control(panel, "n_threads"), "0")
    assert panel.load_settings().n_threads is None and control(panel, "n_threads").text() == "Auto"
    # -1 GPU layers (every layer, as a model's saved defaults may say) shows as "All"
    panel.set_settings(SamplingSettings(), LoadSettings(n_gpu_layers=-1), NATIVE_CTX)
    assert control(panel, "n_gpu_layers").text() == "All" and panel.load_settings().n_gpu_layers == -1
    assert not panel.problems()


def test_invalid_load_values_block_everything(qtbot, panel: SettingsPanel) -> None:
    apply = panel.findChild(QPushButton, "applyLoadSettings")
    type_value(qtbot, control(panel, "n_ctx"), "100000")
    assert control(panel, "n_ctx").property("invalid") is True
    assert "8,192" in problem_label(panel, "n_ctx").text()
    assert not apply.isEnabled()
    with qtbot.assertNotEmitted(panel.settingsChanged), qtbot.assertNotEmitted(panel.loadSettingsChanged):
        type_value(qtbot, control(panel, "temperature"), "1")
        qtbot.mouseClick(apply, Qt.MouseButton.LeftButton)
    type_value(qtbot, control(panel, "n_batch"), "0")
    assert "Batch size" in problem_label(panel, "n_batch").text()
    with qtbot.waitSignal(panel.settingsChanged) as blocker:
        qtbot.mouseClick(panel.findChild(QToolButton, "reset_n_ctx"), Qt.MouseButton.LeftButton)
        qtbot.mouseClick(panel.findChild(QToolButton, "reset_n_batch"), Qt.MouseButton.LeftButton)
    assert blocker.args[0].temperature == 1.0  # the held-back edit goes out once all is valid
    assert not apply.isEnabled()  # and the load values are back to those in use


def test_system_prompt_is_plain_multiline_text(panel: SettingsPanel) -> None:
    assert isinstance(control(panel, "system_prompt"), QPlainTextEdit)
