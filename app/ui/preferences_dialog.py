"""The Preferences dialog: theme, chat font size, how Enter sends, default model and preset,
models folder and how many downloads run at once.

Like the settings panel, it edits a copy and only ever hands out *valid* preferences: a bad
value is marked and explained under its field, and Apply/OK then do nothing but point at it
(the check is run again on the click, so a folder created meanwhile in a file manager is
accepted without retyping). The dialog applies nothing itself; whoever opens it reacts to
``applied``.

API: ``PreferencesDialog(prefs, models, presets, parent=None, *, default_models_dir="")``
where ``models`` is ``[(label, path)]`` and ``presets`` is preset names; ``preferences() ->
Preferences`` (as shown, valid or not); ``problems() -> list[Problem]``; ``apply() -> bool``;
signal ``applied(Preferences)``, emitted by Apply and by OK when the values differ from those
last applied (or given). Controls are named ``pref_<field>``, their reasons
``problem_<field>``; the folder picker button is ``pref_models_dir_browse``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.preferences import Preferences
from app.core.settings import Problem
from app.ui.theme import is_dark
from app.ui.validation import show_problems

_HELP = {
    "theme": "How Hearth looks: the same as the rest of your computer, or always light or dark.",
    "chat_font_size": "The size of the text in the conversation, in points; the rest of the window "
    "(menus, buttons, lists) grows and shrinks with it.",
    "send_with": "Which key sends your message. Shift+Enter always starts a new line.",
    "default_model": "The model loaded when Hearth starts. “The last one used” picks up where you left off.",
    "default_preset": "The preset a new conversation starts with (its instructions, sampling values and examples).",
    "models_dir": "Where downloaded and copied models are kept. Leave empty for the default folder.",
    "max_parallel_downloads": "How many model files download at the same time. More can be faster on a "
    "fast connection, but each one is slower.",
}

_THEMES = (("Same as the system", "system"), ("Light", "light"), ("Dark", "dark"))
_SEND_WITH = (("Enter (Shift+Enter adds a line)", "enter"), ("Ctrl+Enter (Enter adds a line)", "ctrl+enter"))

# The same marks as the settings panel; problem text gets a red readable on the background.
_STYLE = '*[invalid="true"] { border: 1px solid %s; border-radius: 3px; } QLabel[role="problem"] { color: %s; }'


class PreferencesDialog(QDialog):
    applied = Signal(object)  # a valid Preferences

    def __init__(
        self,
        prefs: Preferences,
        models: list[tuple[str, str]],
        presets: list[str],
        parent: QWidget | None = None,
        *,
        default_models_dir: str = "",
    ) -> None:
        """``default_models_dir`` is shown as the empty folder field's placeholder, so the
        user sees where "default" is (the dialog does no file I/O to find it out)."""
        super().__init__(parent)
        self.setObjectName("preferencesDialog")
        self.setAccessibleName("Preferences")
        self.setWindowTitle("Preferences")
        self.setMinimumWidth(460)
        self._last_applied = replace(prefs)
        self._controls: dict[str, QWidget] = {}
        self._problem_labels: dict[str, QLabel] = {}
        self._problems: list[Problem] = []
        self._restyle()

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)

        self._theme = self._combo(_THEMES, prefs.theme)
        self._add_row(form, "theme", "&Theme", self._theme)

        self._font_size = QSpinBox()
        # Wider than the valid range on purpose: a typed 40 is explained, not silently refused.
        self._font_size.setRange(1, 99)
        self._font_size.setSuffix(" pt")
        self._font_size.setKeyboardTracking(False)
        self._font_size.setValue(prefs.chat_font_size)
        self._font_size.valueChanged.connect(self._edited)
        self._add_row(form, "chat_font_size", "Te&xt size", self._font_size)

        self._send_with = self._combo(_SEND_WITH, prefs.send_with)
        self._add_row(form, "send_with", "&Send with", self._send_with)

        model_items = [("The last one used", None)] + [(label, path) for label, path in models]
        if prefs.default_model and all(path != prefs.default_model for _label, path in models):
            # Kept, not silently dropped: the file may be on a drive that is not plugged in.
            model_items.append((f"{prefs.default_model} (not in the library)", prefs.default_model))
        self._default_model = self._combo(model_items, prefs.default_model)
        self._add_row(form, "default_model", "Default &model", self._default_model)

        preset_items = [("None", None)] + [(name, name) for name in presets]
        if prefs.default_preset and prefs.default_preset not in presets:
            preset_items.append((f"{prefs.default_preset} (deleted)", prefs.default_preset))
        self._default_preset = self._combo(preset_items, prefs.default_preset)
        self._add_row(form, "default_preset", "Default &preset", self._default_preset)

        folder_row = QWidget()
        folder_layout = QHBoxLayout(folder_row)
        folder_layout.setContentsMargins(0, 0, 0, 0)
        self._models_dir = QLineEdit(prefs.models_dir or "")
        self._models_dir.setPlaceholderText(
            f"Default: {default_models_dir}" if default_models_dir else "Default folder"
        )
        self._models_dir.setClearButtonEnabled(True)
        self._models_dir.textChanged.connect(self._edited)
        folder_layout.addWidget(self._models_dir, 1)
        browse = QPushButton("Browse…")
        browse.setObjectName("pref_models_dir_browse")
        browse.setToolTip("Choose the models folder.")
        browse.setAutoDefault(False)
        browse.clicked.connect(self._browse)
        folder_layout.addWidget(browse)
        self._add_row(form, "models_dir", "Models f&older", self._models_dir, row_widget=folder_row)

        self._parallel = QSpinBox()
        self._parallel.setRange(0, 16)  # wider than valid, as for the font size
        self._parallel.setKeyboardTracking(False)
        self._parallel.setValue(prefs.max_parallel_downloads)
        self._parallel.valueChanged.connect(self._edited)
        self._add_row(form, "max_parallel_downloads", "&Downloads at once", self._parallel)

        self._buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.Apply
        )
        self._buttons.setObjectName("preferencesButtons")
        self._buttons.accepted.connect(self.accept)
        self._buttons.rejected.connect(self.reject)
        self._buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(self.apply)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self._buttons)
        self._revalidate()

    # -- public API --------------------------------------------------------------------------

    def preferences(self) -> Preferences:
        """The preferences as shown, valid or not (see :meth:`problems`)."""
        folder = self._models_dir.text().strip()
        return Preferences(
            theme=self._theme.currentData(),
            chat_font_size=self._font_size.value(),
            send_with=self._send_with.currentData(),
            default_model=self._default_model.currentData(),
            default_preset=self._default_preset.currentData(),
            models_dir=folder or None,
            max_parallel_downloads=self._parallel.value(),
        )

    def problems(self) -> list[Problem]:
        return list(self._problems)

    def apply(self) -> bool:
        """Emit the shown preferences if they are valid (checked afresh); otherwise point at
        the first problem. True when nothing is wrong."""
        self._commit_spins()
        if not self._revalidate():
            first = self._problems[0].field
            self._controls[first].setFocus(Qt.FocusReason.OtherFocusReason)
            return False
        prefs = self.preferences()
        if prefs != self._last_applied:
            self._last_applied = replace(prefs)
            self.applied.emit(prefs)
        return True

    def accept(self) -> None:
        if self.apply():
            super().accept()

    # -- building ----------------------------------------------------------------------------

    def _combo(self, items: Any, current: Any) -> QComboBox:
        combo = QComboBox()
        for label, value in items:
            combo.addItem(label, value)
        index = combo.findData(current)
        combo.setCurrentIndex(max(index, 0))
        combo.currentIndexChanged.connect(self._edited)
        return combo

    def _add_row(
        self, form: QFormLayout, name: str, label_text: str, control: QWidget, row_widget: QWidget | None = None
    ) -> None:
        """Label and control, with the (hidden) problem line under the control."""
        plain = label_text.replace("&", "")
        control.setObjectName(f"pref_{name}")
        control.setAccessibleName(plain)
        control.setAccessibleDescription(_HELP[name])
        control.setToolTip(_HELP[name])
        self._controls[name] = control
        label = QLabel(label_text)
        label.setBuddy(control)
        label.setToolTip(_HELP[name])
        field = QWidget()
        column = QVBoxLayout(field)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(row_widget or control)
        problem = QLabel()
        problem.setObjectName(f"problem_{name}")
        problem.setWordWrap(True)
        problem.setTextFormat(Qt.TextFormat.PlainText)
        problem.setProperty("role", "problem")
        problem.hide()
        self._problem_labels[name] = problem
        column.addWidget(problem)
        form.addRow(label, field)

    # -- reacting ----------------------------------------------------------------------------

    def _edited(self, *_args: Any) -> None:
        self._revalidate()

    def _revalidate(self) -> bool:
        """Mark every problem; True when there is none."""
        problems = self.preferences().validate()
        self._problems = problems
        show_problems(problems, self._controls, self._problem_labels, lambda name, _control: _HELP[name])
        return not problems

    def _commit_spins(self) -> None:
        """A number typed but not yet confirmed (no Enter, focus still in the box) counts."""
        for spin in (self._font_size, self._parallel):
            spin.interpretText()

    def _browse(self) -> None:
        start = self._models_dir.text().strip()
        folder = QFileDialog.getExistingDirectory(self, "Choose the models folder", start)
        if folder:
            self._models_dir.setText(folder)

    def _restyle(self) -> None:
        """Problem red that stays readable: dark red on light backgrounds, light red on dark."""
        red = "#ef9a9a" if is_dark(self.palette()) else "#b71c1c"
        sheet = _STYLE % (red, red)
        if self.styleSheet() != sheet:  # a style sheet change can itself send PaletteChange
            self.setStyleSheet(sheet)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._restyle()
        super().changeEvent(event)
