"""The settings panel: presets, sampling values, stop sequences, system prompt,
chain-of-thought and the model's load-time options, meant for a dock beside the chat.

It edits copies and only ever hands out *valid* settings: while any field is invalid the
field is marked and explained, and nothing is emitted, so an invalid value never reaches the
session (and so never llama.cpp). Load-time values reload the model, which can take a long
time, so they are not sent as they are typed: the "Reload model" button sends them, and only
when they really differ from those in use.

API: ``SettingsPanel(presets: PresetStore, parent=None)``;
``set_settings(sampling, load, native_ctx)``; ``settings() -> SamplingSettings``;
``load_settings() -> LoadSettings``; ``problems() -> list[Problem]``;
``current_preset() -> Preset | None``; ``select_preset(name, apply=True)``;
``refresh_presets()``; ``reset_field(name)``; signals ``settingsChanged(SamplingSettings)``,
``loadSettingsChanged(LoadSettings)``, ``presetApplied(Preset)``.
Controls are named ``setting_<field>``, their reasons ``problem_<field>``, their reset
buttons ``reset_<field>``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, cast

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core import response_format as rf
from app.core.adapters import MAX_SCALE as MAX_ADAPTER_SCALE
from app.core.adapters import AdapterInfo
from app.core.presets import Preset, PresetError, PresetStore, apply_preset
from app.core.settings import LoadSettings, Problem, SamplingSettings, escape_visible, unescape_visible
from app.ui.plain import ask, plain_tip
from app.ui.validation import show_problems

_INVALID_STYLE = """
*[invalid="true"] { border: 1px solid #c62828; border-radius: 3px; }
QLabel[role="problem"] { color: #b71c1c; }
"""


_ADAPTERS_HELP = (
    "LoRA adapters specialise the model (a style, a task). Tick one to apply it and set its scale: "
    "1 as trained, 0 not at all, in between a little, negative the opposite. Saved with this chat "
    "and in presets; the model reloads when they change."
)


@dataclass(frozen=True)
class _Spin:
    """A numeric field. Its range is a little wider than the valid one on purpose: typing a
    bad value should get an explanation, not a keystroke that silently does nothing."""

    name: str
    label: str
    help: str
    minimum: float
    maximum: float
    step: float
    decimals: int = 0  # 0: a whole number (QSpinBox)
    special: str = ""  # shown instead of the minimum value (e.g. "Auto")


_SAMPLING_SPINS = (
    _Spin(
        "temperature",
        "Temperature",
        "How adventurous the wording is: low (0–0.3) is focused and repeatable, high (1 and up) "
        "is varied and creative; 0 always picks the likeliest word.",
        0,
        10,
        0.05,
        3,
    ),
    _Spin(
        "top_p",
        "Top-p",
        "Only consider the likeliest words whose chances add up to this: low keeps replies safe "
        "and narrow, 1 considers every word.",
        0,
        1,
        0.01,
        3,
    ),
    _Spin(
        "top_k",
        "Top-k",
        "Only consider this many of the likeliest words: low is focused, high is varied; 0 turns the limit off.",
        0,
        1_000_000,
        1,
    ),
    _Spin(
        "min_p",
        "Min-p",
        "Ignore words less likely than this share of the likeliest one: higher is more focused, 0 turns it off.",
        0,
        1,
        0.01,
        3,
    ),
    _Spin(
        "repeat_penalty",
        "Repetition penalty",
        "Discourages repeating recent words: 1 is off, a little higher (1.1–1.3) repeats less, "
        "much higher makes the wording odd.",
        0,
        10,
        0.05,
        2,
    ),
    _Spin(
        "last_n_tokens",
        "Repetition window",
        "How many recent tokens the repetition penalties look back over: small only stops "
        "tight loops, large avoids repeats across the whole reply; 0 turns it off.",
        0,
        10_000_000,
        16,
    ),
    _Spin(
        "presence_penalty",
        "Presence penalty",
        "Nudges towards new words and topics: positive avoids anything already said, "
        "negative encourages reuse; 0 is off.",
        -10,
        10,
        0.1,
        2,
    ),
    _Spin(
        "frequency_penalty",
        "Frequency penalty",
        "Penalizes words by how often they already appeared: positive repeats less, negative allows more; 0 is off.",
        -10,
        10,
        0.1,
        2,
    ),
    _Spin(
        "max_tokens",
        "Max new tokens",
        "The longest a reply may be, in tokens (roughly ¾ of a word each): low cuts replies "
        "short, high allows long answers.",
        0,
        10_000_000,
        64,
    ),
)

_LOAD_SPINS = (
    _Spin(
        "n_ctx",
        "Context length",
        "How much text the model keeps in mind at once, in tokens: higher remembers more of the "
        "chat but needs more memory.",
        0,
        100_000_000,
        256,
    ),
    _Spin(
        "n_threads",
        "CPU threads",
        "Processor threads used to generate: Auto picks for this computer; more can be faster, "
        "up to the number of cores.",
        0,
        4096,
        1,
        special="Auto",
    ),
    _Spin(
        "n_gpu_layers",
        "GPU layers",
        "Model layers placed on the graphics card: 0 runs on the processor only; more is faster "
        "while the card has memory for them; All puts every layer there.",
        -1,
        100_000,
        1,
        special="All",
    ),
    _Spin(
        "n_batch",
        "Batch size",
        "Prompt tokens read in one step: higher reads long prompts faster but needs more memory.",
        0,
        10_000_000,
        64,
    ),
)

_HELP = {
    "seed": "Where randomness starts: the same seed, settings and prompt give the same reply; "
    "tick Random for a fresh reply each time.",
    "stop": "The reply ends as soon as the model writes one of these. Type \\n for a new line and \\t for a tab.",
    "system_prompt": "Standing instructions the model reads before the chat: who it should be "
    "and how it should answer.",
    "chain_of_thought": "Asks the model to think step by step before answering; its reasoning "
    "is shown apart from the answer. Slower, often better at puzzles and maths.",
    "response_format": "Holds every reply to a shape: free text, any JSON, JSON that matches your schema, "
    "or your own grammar. The model can then only write what the shape allows; a JSON reply is "
    "checked when it ends and shown pretty-printed.",
    "json_schema": "A JSON Schema the reply must match (draft 2020-12 unless its $schema names another). "
    "It is checked as you type and turned into a grammar for the model; tell the model in your "
    "message what to fill in.",
    "grammar": "A llama.cpp GBNF grammar: one rule per line (name ::= what it matches); the reply "
    "starts at the rule named root. llama.cpp checks it before the model writes.",
}

_SCHEMA_PLACEHOLDER = '{"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}'
_GRAMMAR_PLACEHOLDER = 'root ::= "yes" | "no"'


class SettingsPanel(QWidget):
    settingsChanged = Signal(object)  # a valid SamplingSettings
    loadSettingsChanged = Signal(object)  # a valid LoadSettings that differs from the one in use
    presetApplied = Signal(object)  # the Preset just chosen (its few_shot pairs go with requests)
    fewShotChanged = Signal(object)  # list of (user, assistant) example pairs for this conversation

    def __init__(self, presets: PresetStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("settingsPanel")
        self.setAccessibleName("Settings")
        self.setStyleSheet(_INVALID_STYLE)
        self._store = presets
        self._current_preset: Preset | None = None
        self._updating = False  # True while filling controls: edits then are not the user's
        self._native_ctx: int | None = None
        self._sampling_sent = SamplingSettings()
        self._load_in_use = LoadSettings()
        self._spins: dict[str, QSpinBox | QDoubleSpinBox] = {}
        self._controls: dict[str, QWidget] = {}
        self._problem_labels: dict[str, QLabel] = {}
        self._problems: list[Problem] = []

        content = QWidget()
        content.setObjectName("settingsContent")
        column = QVBoxLayout(content)
        # For a model on another server: which of these knobs that server would ignore.
        self._ignored_note = self._note("ignoredNote")
        self._ignored_note.setWordWrap(True)
        self._ignored_note.hide()
        self._ignored: frozenset[str] = frozenset()
        column.addWidget(self._ignored_note)
        column.addWidget(self._build_preset_section())
        column.addWidget(self._build_sampling_section())
        column.addWidget(self._build_stop_section())
        column.addWidget(self._build_prompt_section())
        column.addWidget(self._build_format_section())
        column.addWidget(self._build_examples_section())
        column.addWidget(self._build_load_section())
        column.addWidget(self._build_adapters_section())
        precedence = self._note("precedenceNote")
        precedence.setWordWrap(True)
        precedence.setText(
            "Which value wins: a preset sets the starting values; a model's own defaults (Models > Manage "
            "models) set its context, threads, GPU layers and a system prompt used when this one is empty; "
            "what you change here applies to this conversation and is saved with it."
        )
        column.addWidget(precedence)
        column.addStretch(1)

        scroll = QScrollArea()
        scroll.setObjectName("settingsScroll")
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # not a stop of its own: it follows the focused field
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        # Narrower than its fields, the panel scrolls sideways rather than cutting off their
        # right edge (the spin boxes' arrows, the reset buttons, Remove).
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        scroll.setWidget(content)
        self._scroll = scroll
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        self.refresh_presets()
        self.set_settings(SamplingSettings(), LoadSettings(), None)

    # -- public API --------------------------------------------------------------------------

    def preferred_width(self) -> int:
        """The width at which every field shows whole, without a sideways scroll bar."""
        content = self._scroll.widget()
        assert content is not None  # set in __init__, never taken back
        return content.minimumSizeHint().width() + self._scroll.verticalScrollBar().sizeHint().width()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        # The main window sizes its dock from this when it first lays out; the scroll
        # area's own hint is far narrower, and the fields' right edge would be cut off.
        return QSize(self.preferred_width(), super().sizeHint().height())

    def set_settings(self, sampling: SamplingSettings, load: LoadSettings, native_ctx: int | None) -> None:
        """Show the settings in use (e.g. after start-up or a model load); emits nothing.

        ``native_ctx`` is the context length the loaded model was trained for (None when
        unknown); it bounds the context length field.
        """
        self._native_ctx = native_ctx
        self._sampling_sent = replace(sampling, stop=list(sampling.stop))
        self._load_in_use = replace(load)
        self._updating = True
        try:
            self._show_sampling(sampling)
            for name in ("n_ctx", "n_gpu_layers", "n_batch"):
                self._spins[name].setValue(getattr(load, name))
            self._spins["n_threads"].setValue(load.n_threads or 0)
        finally:
            self._updating = False
        if native_ctx:
            self._native_note.setText(f"This model was trained for up to {native_ctx:,} tokens of context.")
        self._native_note.setVisible(bool(native_ctx))
        self._revalidate(emit=False)

    def set_ignored(self, names: frozenset[str], server: str = "") -> None:
        """Mark the settings the model's server would ignore (a remote server without such a
        knob): disabled, with the reason, rather than silently dropped."""
        for name in self._ignored - names:
            control = self._controls.get(name)
            if control is not None:
                control.setEnabled(True)
                control.setToolTip(control.property("plainHelp") or control.toolTip())
        for name in names:
            control = self._controls.get(name)
            if control is None:
                continue
            if control.property("plainHelp") is None:
                control.setProperty("plainHelp", control.toolTip())
            control.setEnabled(False)
            control.setToolTip(f"{server or 'This server'} ignores this setting.")
        self._ignored = frozenset(names)
        labels = sorted(self._controls[n].accessibleName() for n in names if n in self._controls)
        self._ignored_note.setText(
            f"{server or 'This server'} ignores: {', '.join(labels)}. They stay as they are for other models."
        )
        self._ignored_note.setVisible(bool(labels))

    def set_adapters(self, adapters: list[AdapterInfo] | None) -> None:
        """The current model's LoRA adapters (None: a model on another server, which cannot
        take them): one row each, with on/off and a scale; emits nothing."""
        if adapters is not None and [row[0] for row in self._adapter_rows] == adapters:
            return  # the same rows: keep them (and the keyboard focus, and what is ticked)
        self._updating = True
        try:
            for row in self._adapter_rows:
                for widget in row[1:]:
                    self._adapters_grid.removeWidget(widget)
                    widget.setParent(None)  # gone from the panel now, not at the next event loop
                    widget.deleteLater()
            self._adapter_rows.clear()
            for adapter in adapters or []:
                self._add_adapter_row(adapter)
            self._show_adapter_values(self._sampling_sent.adapters)
        finally:
            self._updating = False
        if adapters is None:
            text = "Adapters apply to models on this computer only."
        elif not adapters:
            text = "This model has no LoRA adapters. Add them under Models > Manage models."
        else:
            text = "Turn an adapter on and set how strongly it applies; changing these reloads the model."
        self._adapters_note.setText(text)

    def settings(self) -> SamplingSettings:
        """The sampling settings as shown, valid or not (see :meth:`problems`)."""
        spin = self._spins
        return SamplingSettings(
            temperature=spin["temperature"].value(),
            top_p=spin["top_p"].value(),
            top_k=int(spin["top_k"].value()),
            min_p=spin["min_p"].value(),
            repeat_penalty=spin["repeat_penalty"].value(),
            presence_penalty=spin["presence_penalty"].value(),
            frequency_penalty=spin["frequency_penalty"].value(),
            max_tokens=int(spin["max_tokens"].value()),
            stop=[unescape_visible(self._stop_list.item(i).text()) for i in range(self._stop_list.count())],
            seed=None if self._seed_random.isChecked() else int(self._seed.value()),
            system_prompt=self._system_prompt.toPlainText(),
            last_n_tokens=int(spin["last_n_tokens"].value()),
            chain_of_thought=self._cot.isChecked(),
            response_format=str(self._format.currentData() or rf.TEXT),
            json_schema=self._schema_edit.toPlainText(),
            grammar=self._grammar_edit.toPlainText(),
            adapters=self._adapter_settings(),
        )

    def load_settings(self) -> LoadSettings:
        """The load-time settings as shown, valid or not, applied or not."""
        threads = int(self._spins["n_threads"].value())
        return LoadSettings(
            n_ctx=int(self._spins["n_ctx"].value()),
            n_threads=threads or None,
            n_gpu_layers=int(self._spins["n_gpu_layers"].value()),
            n_batch=int(self._spins["n_batch"].value()),
        )

    def problems(self) -> list[Problem]:
        return list(self._problems)

    def current_preset(self) -> Preset | None:
        """The preset last applied (its few-shot examples still belong with requests)."""
        return self._current_preset

    def refresh_presets(self) -> None:
        """Re-read the store's list, keeping the shown choice when it still exists."""
        shown = self._picker.currentText()
        self._picker.blockSignals(True)
        try:
            self._picker.clear()
            presets = self._store.list()
            builtins = [p for p in presets if p.builtin]
            users = [p for p in presets if not p.builtin]
            for preset in builtins:
                self._add_preset_item(preset)
            if users:
                self._picker.insertSeparator(self._picker.count())
                for preset in users:
                    self._add_preset_item(preset)
            self._picker.setCurrentIndex(self._picker.findText(shown) if shown else -1)
        finally:
            self._picker.blockSignals(False)
        self._update_preset_buttons()

    def select_preset(self, name: str, apply: bool = True) -> bool:
        """Show the preset called ``name`` in the picker and (by default) apply it, as if chosen."""
        index = self._picker.findText(name)
        if index < 0:
            return False
        self._picker.setCurrentIndex(index)
        if apply:
            self._apply_preset_at(index)
        self._update_preset_buttons()
        return True

    # -- building ----------------------------------------------------------------------------

    def _build_preset_section(self) -> QGroupBox:
        box = QGroupBox("Preset")
        box.setObjectName("presetSection")
        layout = QVBoxLayout(box)
        row = QHBoxLayout()
        self._picker = QComboBox()
        self._picker.setObjectName("presetPicker")
        self._picker.setAccessibleName("Preset")
        self._picker.setPlaceholderText("Choose a preset…")
        self._picker.setToolTip(
            "A ready-made starting point for a kind of job: system prompt, sampling values and examples."
        )
        self._picker.activated.connect(self._apply_preset_at)
        self._picker.currentIndexChanged.connect(lambda _i: self._update_preset_buttons())
        row.addWidget(self._picker, 1)
        self._save_button = QPushButton("Save as…")
        self._save_button.setObjectName("presetSaveAs")
        self._save_button.setToolTip("Keep the current settings as a preset of your own.")
        self._save_button.clicked.connect(self._save_as)
        row.addWidget(self._save_button)
        self._delete_button = QPushButton("Delete")
        self._delete_button.setObjectName("presetDelete")
        self._delete_button.setToolTip("Delete the chosen preset (built-in presets cannot be deleted).")
        self._delete_button.clicked.connect(self._delete_preset)
        row.addWidget(self._delete_button)
        layout.addLayout(row)
        self._preset_description = self._note("presetDescription")
        layout.addWidget(self._preset_description)
        self._preset_message = self._problem_label("presetMessage")
        layout.addWidget(self._preset_message)
        return box

    def _build_sampling_section(self) -> QGroupBox:
        box = QGroupBox("Sampling")
        box.setObjectName("samplingSection")
        grid = QGridLayout(box)
        for spec in _SAMPLING_SPINS:
            self._add_row(grid, spec.name, spec.label, spec.help, self._make_spin(spec))

        seed_row = QWidget()
        seed_layout = QHBoxLayout(seed_row)
        seed_layout.setContentsMargins(0, 0, 0, 0)
        self._seed_random = QCheckBox("Random")
        self._seed_random.setObjectName("setting_seed_random")
        self._seed_random.setAccessibleName("Random seed for each reply")
        self._seed_random.setToolTip(_HELP["seed"])
        self._seed = QDoubleSpinBox()  # a QSpinBox stops at 2³¹−1; seeds go to 2³²−1
        self._seed.setDecimals(0)
        self._seed.setRange(0, 2**32 - 1)
        self._seed.setKeyboardTracking(False)
        self._seed_random.toggled.connect(lambda on: self._seed.setEnabled(not on))
        self._seed_random.toggled.connect(self._edited)
        self._seed.valueChanged.connect(self._edited)
        seed_layout.addWidget(self._seed_random)
        seed_layout.addWidget(self._seed, 1)
        self._add_row(grid, "seed", "Seed", _HELP["seed"], self._seed, row_widget=seed_row)
        return box

    def _build_stop_section(self) -> QGroupBox:
        box = QGroupBox("Stop sequences")
        box.setObjectName("stopSection")
        grid = QGridLayout(box)
        self._stop_list = QListWidget()
        self._stop_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self._stop_list.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self._stop_list.setMaximumHeight(110)
        self._stop_list.itemChanged.connect(self._edited)
        self._stop_list.itemSelectionChanged.connect(self._update_stop_buttons)

        editor = QWidget()
        column = QVBoxLayout(editor)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self._stop_list)
        add_row = QHBoxLayout()
        self._stop_input = QLineEdit()
        self._stop_input.setObjectName("stop_input")
        self._stop_input.setAccessibleName("New stop sequence")
        self._stop_input.setPlaceholderText(r"New stop sequence (\n for a new line)")
        self._stop_input.setToolTip(_HELP["stop"])
        self._stop_input.returnPressed.connect(self._add_stop)
        self._stop_input.textChanged.connect(self._update_stop_buttons)
        add_row.addWidget(self._stop_input, 1)
        self._stop_add = QPushButton("Add")
        self._stop_add.setObjectName("stop_add")
        self._stop_add.setToolTip("Add the typed stop sequence.")
        self._stop_add.clicked.connect(self._add_stop)
        add_row.addWidget(self._stop_add)
        self._stop_remove = QPushButton("Remove")
        self._stop_remove.setObjectName("stop_remove")
        self._stop_remove.setToolTip("Remove the selected stop sequences.")
        self._stop_remove.clicked.connect(self._remove_stops)
        add_row.addWidget(self._stop_remove)
        column.addLayout(add_row)
        self._add_row(grid, "stop", "Stop at", _HELP["stop"], self._stop_list, row_widget=editor)
        self._update_stop_buttons()
        return box

    def _build_prompt_section(self) -> QGroupBox:
        box = QGroupBox("System prompt")
        box.setObjectName("promptSection")
        grid = QGridLayout(box)
        self._system_prompt = QPlainTextEdit()
        self._system_prompt.setPlaceholderText("For example: You are a patient tutor who explains with examples.")
        self._system_prompt.setMinimumHeight(80)
        self._system_prompt.setTabChangesFocus(True)
        self._system_prompt.textChanged.connect(self._edited)
        self._add_row(grid, "system_prompt", "Instructions", _HELP["system_prompt"], self._system_prompt)
        self._cot = QCheckBox("Think step by step first (chain of thought)")
        self._cot.toggled.connect(self._edited)
        self._add_row(grid, "chain_of_thought", "Reasoning", _HELP["chain_of_thought"], self._cot)
        return box

    def _build_format_section(self) -> QGroupBox:
        """Structured output: the format, and the schema or grammar editor when it needs one."""
        box = QGroupBox("Response format")
        box.setObjectName("formatSection")
        grid = QGridLayout(box)
        self._format = QComboBox()
        for value, label in rf.FORMATS.items():
            self._format.addItem(label, value)
        self._format.currentIndexChanged.connect(self._format_changed)
        self._add_row(grid, "response_format", "Reply as", _HELP["response_format"], self._format)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self._format_rows: dict[str, list[QWidget]] = {}
        for name, label, placeholder in (
            ("json_schema", "JSON Schema", _SCHEMA_PLACEHOLDER),
            ("grammar", "Grammar", _GRAMMAR_PLACEHOLDER),
        ):
            editor = QPlainTextEdit()
            editor.setFont(mono)
            editor.setPlaceholderText(placeholder)
            editor.setMinimumHeight(90)
            editor.setTabChangesFocus(True)  # Tab moves on, as everywhere in the panel
            editor.textChanged.connect(self._edited)
            row = grid.rowCount()
            self._add_row(grid, name, label, _HELP[name], editor)
            self._format_rows[name] = [
                widget
                for col in range(3)
                if (item := grid.itemAtPosition(row, col)) is not None and (widget := item.widget()) is not None
            ]
        self._schema_edit = cast(QPlainTextEdit, self._controls["json_schema"])
        self._grammar_edit = cast(QPlainTextEdit, self._controls["grammar"])
        self._show_format_editor()
        return box

    def _format_changed(self, _index: int) -> None:
        self._show_format_editor()
        self._edited()

    def _show_format_editor(self) -> None:
        """Only the editor the chosen format uses is shown (its text is kept when hidden)."""
        chosen = self._format.currentData()
        for name, widgets in self._format_rows.items():
            for widget in widgets:
                widget.setVisible(chosen == name)

    def _build_examples_section(self) -> QGroupBox:
        """Few-shot examples: sent as real earlier turns through the chat template."""
        box = QGroupBox("Examples (few-shot)")
        box.setObjectName("examplesSection")
        layout = QVBoxLayout(box)
        hint = self._note("examplesNote")
        hint.setWordWrap(True)
        hint.setText(
            "Example questions and answers the model sees before your chat, to show it the style "
            "or format you want. A preset can bring its own."
        )
        layout.addWidget(hint)
        self._examples = QListWidget()
        self._examples.setObjectName("fewShotList")
        self._examples.setAccessibleName("Examples")
        self._examples.setMaximumHeight(110)
        layout.addWidget(self._examples)
        row = QHBoxLayout()
        add = QPushButton("Add example…")
        add.setObjectName("fewShotAdd")
        remove = QPushButton("Remove")
        remove.setObjectName("fewShotRemove")
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        layout.addLayout(row)
        add.clicked.connect(self._add_example)
        remove.clicked.connect(self._remove_example)
        self._few_shot: list[tuple[str, str]] = []
        return box

    def set_gpu_available(self, available: bool) -> None:
        """GPU layers only matter when llama.cpp was built with a GPU backend."""
        spin = self._spins["n_gpu_layers"]
        spin.setEnabled(available)
        spin.setToolTip(
            spin.toolTip().split("\n\n")[0]
            + ("" if available else "\n\nThis build of llama.cpp runs on the CPU only, so this setting has no effect.")
        )

    def few_shot(self) -> list[tuple[str, str]]:
        return list(self._few_shot)

    def set_few_shot(self, pairs, emit: bool = False) -> None:
        self._few_shot = [(str(u), str(a)) for u, a in pairs]
        self._examples.clear()
        for user, assistant in self._few_shot:
            item = QListWidgetItem(f"You: {user[:40]} → {assistant[:40]}")
            item.setToolTip(plain_tip(f"You: {user}\n\nModel: {assistant}"))  # presets can be imported
            self._examples.addItem(item)
        if emit:
            self.fewShotChanged.emit(self.few_shot())

    def _add_example(self) -> None:
        user, ok = QInputDialog.getMultiLineText(self, "Add example", "The example question (what you would write):")
        if not ok or not user.strip():
            return
        answer, ok = QInputDialog.getMultiLineText(self, "Add example", "The answer you want the model to imitate:")
        if not ok or not answer.strip():
            return
        self.set_few_shot([*self._few_shot, (user.strip(), answer.strip())], emit=True)

    def _remove_example(self) -> None:
        row = self._examples.currentRow()
        if row >= 0:
            pairs = self.few_shot()
            del pairs[row]
            self.set_few_shot(pairs, emit=True)

    def _build_adapters_section(self) -> QGroupBox:
        """LoRA adapters of the current model (Models > Manage models adds them): on/off and a
        scale each, per conversation and preset; applied when the model (re)loads."""
        box = QGroupBox("Adapters (LoRA)")
        box.setObjectName("adaptersSection")
        grid = QGridLayout(box)
        self._adapters_note = self._note("adaptersNote")
        grid.addWidget(self._adapters_note, 0, 0, 1, 3)
        rows = QWidget()
        self._adapters_grid = QGridLayout(rows)
        self._adapters_grid.setContentsMargins(0, 0, 0, 0)
        self._add_row(grid, "adapters", "Use", _ADAPTERS_HELP, rows)
        rows.setAccessibleName("Adapters")
        self._adapter_rows: list[tuple[AdapterInfo, QCheckBox, QDoubleSpinBox]] = []
        self._adapters_note.setText("This model has no LoRA adapters. Add them under Models > Manage models.")
        return box

    def _add_adapter_row(self, adapter: AdapterInfo) -> None:
        row = self._adapters_grid.rowCount()
        check = QCheckBox(adapter.name.replace("&", "&&"))  # the name is the file's: no mnemonic from it
        check.setObjectName(f"adapter_on_{len(self._adapter_rows)}")
        check.setAccessibleName(f"Use adapter {adapter.name}")
        check.setToolTip(plain_tip(f"Apply the LoRA adapter {adapter.name} ({adapter.path})"))
        scale = QDoubleSpinBox()
        scale.setObjectName(f"adapter_scale_{len(self._adapter_rows)}")
        scale.setAccessibleName(f"Scale of adapter {adapter.name}")
        scale.setToolTip("How strongly the adapter applies: 1 as trained, 0 not at all, negative the opposite")
        scale.setDecimals(2)
        scale.setRange(-MAX_ADAPTER_SCALE, MAX_ADAPTER_SCALE)
        scale.setSingleStep(0.1)
        scale.setValue(1.0)
        scale.setKeyboardTracking(False)
        check.toggled.connect(self._edited)
        scale.valueChanged.connect(self._edited)
        self._adapters_grid.addWidget(check, row, 0)
        self._adapters_grid.addWidget(scale, row, 1)
        self._adapter_rows.append((adapter, check, scale))

    def _show_adapter_values(self, values: list[dict[str, Any]]) -> None:
        on = {a.get("path"): a.get("scale") for a in values if isinstance(a, dict)}
        for adapter, check, scale in self._adapter_rows:
            check.setChecked(adapter.path in on)
            value = on.get(adapter.path)
            if isinstance(value, (int, float)):
                scale.setValue(float(value))

    def _adapter_settings(self) -> list[dict[str, Any]]:
        """Adapters on, as a setting: those of other models stay as they were (a conversation
        keeps its choice for each model), then this model's that are ticked."""
        shown = {adapter.path for adapter, _check, _scale in self._adapter_rows}
        kept = [dict(a) for a in self._sampling_sent.adapters if isinstance(a, dict) and a.get("path") not in shown]
        return kept + [
            {"path": adapter.path, "scale": round(scale.value(), 2)}
            for adapter, check, scale in self._adapter_rows
            if check.isChecked()
        ]

    def _build_load_section(self) -> QGroupBox:
        box = QGroupBox("Model and runtime")
        box.setObjectName("loadSection")
        grid = QGridLayout(box)
        note = self._note("loadNote")
        note.setText("Changing these reloads the model.")
        grid.addWidget(note, 0, 0, 1, 3)
        self._native_note = self._note("nativeContext")
        grid.addWidget(self._native_note, 1, 0, 1, 3)
        for spec in _LOAD_SPINS:
            self._add_row(grid, spec.name, spec.label, spec.help, self._make_spin(spec))
        self._apply_load = QPushButton("Reload model with these settings")
        self._apply_load.setObjectName("applyLoadSettings")
        self._apply_load.setToolTip(
            "Reload the model with the context length, threads, GPU layers and batch size above."
        )
        self._apply_load.clicked.connect(self._send_load_settings)
        grid.addWidget(self._apply_load, grid.rowCount(), 0, 1, 3)
        return box

    def _make_spin(self, spec: _Spin) -> QSpinBox | QDoubleSpinBox:
        spin: QSpinBox | QDoubleSpinBox
        if spec.decimals:
            spin = QDoubleSpinBox()
            spin.setDecimals(spec.decimals)
            spin.setRange(spec.minimum, spec.maximum)
            spin.setSingleStep(spec.step)
        else:
            spin = QSpinBox()
            spin.setRange(int(spec.minimum), int(spec.maximum))
            spin.setSingleStep(int(spec.step))
        if spec.special:
            spin.setSpecialValueText(spec.special)
        # Commit on Enter, focus change or arrow step, not on every keystroke: "0.5" must not
        # pass through an invalid "0" on its way.
        spin.setKeyboardTracking(False)
        spin.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToNearestValue)
        spin.valueChanged.connect(self._edited)
        self._spins[spec.name] = spin
        return spin

    def _add_row(
        self,
        grid: QGridLayout,
        name: str,
        label_text: str,
        help_text: str,
        control: QWidget,
        row_widget: QWidget | None = None,
    ) -> None:
        """Label, control, reset button, and the (hidden) problem line under them."""
        row = grid.rowCount()
        control.setObjectName(f"setting_{name}")
        control.setAccessibleName(label_text)
        control.setAccessibleDescription(help_text)
        control.setToolTip(help_text)
        self._controls[name] = control
        label = QLabel(label_text)
        label.setToolTip(help_text)
        label.setBuddy(control)
        grid.addWidget(
            label,
            row,
            0,
            Qt.AlignmentFlag.AlignTop if name in ("stop", "json_schema", "grammar") else Qt.AlignmentFlag.AlignVCenter,
        )
        grid.addWidget(row_widget or control, row, 1)
        reset = QToolButton()
        reset.setObjectName(f"reset_{name}")
        reset.setText("↺")
        reset.setAutoRaise(True)
        reset.setToolTip(f"Reset {label_text.lower()} to its default")
        reset.setAccessibleName(f"Reset {label_text} to default")
        reset.clicked.connect(lambda _checked=False, n=name: self.reset_field(n))
        grid.addWidget(reset, row, 2, Qt.AlignmentFlag.AlignTop)
        problem = self._problem_label(f"problem_{name}")
        self._problem_labels[name] = problem
        grid.addWidget(problem, row + 1, 1, 1, 2)
        grid.setColumnStretch(1, 1)

    def _note(self, name: str) -> QLabel:
        label = QLabel()
        label.setObjectName(name)
        label.setWordWrap(True)
        label.setTextFormat(Qt.TextFormat.PlainText)
        label.setProperty("role", "note")
        return label

    def _problem_label(self, name: str) -> QLabel:
        label = QLabel()
        label.setObjectName(name)
        label.setWordWrap(True)
        label.setTextFormat(Qt.TextFormat.PlainText)
        label.setProperty("role", "problem")
        label.hide()
        return label

    def _add_preset_item(self, preset: Preset) -> None:
        self._picker.addItem(preset.name)
        tip = preset.description or ("Built-in preset" if preset.builtin else "Your preset")
        self._picker.setItemData(self._picker.count() - 1, plain_tip(tip), Qt.ItemDataRole.ToolTipRole)

    # -- filling and reading -----------------------------------------------------------------

    def _show_sampling(self, s: SamplingSettings) -> None:
        for spec in _SAMPLING_SPINS:
            self._spins[spec.name].setValue(getattr(s, spec.name))
        self._seed_random.setChecked(s.seed is None)
        self._seed.setEnabled(s.seed is not None)
        if s.seed is not None:
            self._seed.setValue(s.seed)
        self._stop_list.clear()
        for stop in s.stop:
            self._append_stop_item(escape_visible(stop))
        if self._system_prompt.toPlainText() != s.system_prompt:
            self._system_prompt.setPlainText(s.system_prompt)
        self._cot.setChecked(s.chain_of_thought)
        self._format.setCurrentIndex(max(0, self._format.findData(s.response_format)))
        for editor, text in ((self._schema_edit, s.json_schema), (self._grammar_edit, s.grammar)):
            if editor.toPlainText() != text:
                editor.setPlainText(text)
        self._show_format_editor()
        self._show_adapter_values(s.adapters)

    def _append_stop_item(self, shown: str) -> QListWidgetItem:
        item = QListWidgetItem(shown)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        item.setToolTip("Double-click to edit. " + _HELP["stop"])
        self._stop_list.addItem(item)
        return item

    # -- reacting ----------------------------------------------------------------------------

    def _edited(self, *_args: Any) -> None:
        if not self._updating:
            self._revalidate(emit=True)

    def _revalidate(self, emit: bool) -> None:
        """Mark every problem; emit the sampling settings only when nothing at all is wrong."""
        sampling = self.settings()
        load = self.load_settings()
        load_problems = load.validate(self._native_ctx)
        # max_tokens must fit the context the model will have: the one typed here if it is
        # valid (it is about to be used), else the one in use.
        n_ctx = self._load_in_use.n_ctx if any(p.field == "n_ctx" for p in load_problems) else load.n_ctx
        problems = sampling.validate(n_ctx) + load_problems
        self._problems = problems
        show_problems(problems, self._controls, self._problem_labels, lambda _name, control: control.toolTip())
        self._apply_load.setEnabled(not problems and load != self._load_in_use)
        self._save_button.setEnabled(not problems)
        if emit and not problems and sampling != self._sampling_sent:
            self._sampling_sent = replace(sampling, stop=list(sampling.stop))
            self.settingsChanged.emit(sampling)

    def reset_field(self, name: str) -> None:
        """Put one field back to its default value (as the user would, so it is validated
        and emitted like any edit)."""
        defaults = SamplingSettings()
        if name in self._spins and hasattr(defaults, name):
            self._spins[name].setValue(getattr(defaults, name))
        elif name == "seed":
            self._seed_random.setChecked(True)
        elif name == "stop":
            self._stop_list.clear()
            self._edited()
        elif name == "system_prompt":
            self._system_prompt.setPlainText(defaults.system_prompt)
        elif name == "chain_of_thought":
            self._cot.setChecked(defaults.chain_of_thought)
        elif name == "response_format":
            self._format.setCurrentIndex(self._format.findData(defaults.response_format))
        elif name == "json_schema":
            self._schema_edit.setPlainText(defaults.json_schema)
        elif name == "grammar":
            self._grammar_edit.setPlainText(defaults.grammar)
        elif name == "adapters":
            for _adapter, check, _scale in self._adapter_rows:
                check.setChecked(False)
        elif name == "n_ctx":
            default_ctx = LoadSettings().n_ctx
            self._spins[name].setValue(min(default_ctx, self._native_ctx) if self._native_ctx else default_ctx)
        elif name == "n_batch":
            self._spins[name].setValue(min(LoadSettings().n_batch, int(self._spins["n_ctx"].value())))
        elif name == "n_threads":
            self._spins[name].setValue(LoadSettings().n_threads or 0)
        elif name == "n_gpu_layers":
            self._spins[name].setValue(LoadSettings().n_gpu_layers)

    def _send_load_settings(self) -> None:
        self._revalidate(emit=True)
        load = self.load_settings()
        if self._problems or load == self._load_in_use:
            return
        self._load_in_use = replace(load)
        self._apply_load.setEnabled(False)
        self.loadSettingsChanged.emit(load)

    # -- stop sequences ----------------------------------------------------------------------

    def _add_stop(self) -> None:
        text = self._stop_input.text()
        if not text:
            return
        item = self._append_stop_item(text)
        self._stop_list.scrollToItem(item)
        self._stop_input.clear()
        self._edited()

    def _remove_stops(self) -> None:
        for item in self._stop_list.selectedItems():
            self._stop_list.takeItem(self._stop_list.row(item))
        self._update_stop_buttons()
        self._edited()

    def _update_stop_buttons(self) -> None:
        self._stop_add.setEnabled(bool(self._stop_input.text()))
        self._stop_remove.setEnabled(bool(self._stop_list.selectedItems()))

    # -- presets -----------------------------------------------------------------------------

    def _apply_preset_at(self, index: int) -> None:
        preset = self._store.get(self._picker.itemText(index)) if index >= 0 else None
        if preset is None:
            return
        self._preset_message.hide()
        # Chain-of-thought is a way of working rather than part of a job, so it survives a
        # preset change unless the preset itself says otherwise.
        base = replace(SamplingSettings(), chain_of_thought=self._cot.isChecked())
        self._current_preset = preset
        self._updating = True
        try:
            self._show_sampling(apply_preset(preset, base))
        finally:
            self._updating = False
        self._preset_description.setText(preset.description)
        self._revalidate(emit=True)
        self.set_few_shot(preset.few_shot)
        self.presetApplied.emit(preset)

    def _save_as(self) -> None:
        current = self._store.get(self._picker.currentText()) if self._picker.currentIndex() >= 0 else None
        suggested = current.name if current is not None and not current.builtin else ""
        name, ok = QInputDialog.getText(
            self, "Save preset", "Name for these settings:", QLineEdit.EchoMode.Normal, suggested
        )
        name = name.strip()
        if not ok or not name:
            return
        existing = self._store.get(name)
        if (
            existing is not None
            and not existing.builtin
            and not self._confirm("Replace preset", f"Replace your preset “{existing.name}” with the current settings?")
        ):
            return
        sampling = self.settings()
        values = {k: v for k, v in sampling.to_dict().items() if k != "system_prompt"}
        few_shot = list(self._current_preset.few_shot) if self._current_preset else []
        preset = Preset(
            name,
            existing.description if existing and not existing.builtin else "",
            sampling.system_prompt,
            values,
            few_shot,
        )
        try:
            saved = self._store.save(preset)
        except PresetError as exc:
            self._show_preset_message(str(exc))
            return
        self._preset_message.hide()
        self._current_preset = saved
        self.refresh_presets()
        self.select_preset(saved.name, apply=False)
        self._preset_description.setText(saved.description)

    def _delete_preset(self) -> None:
        index = self._picker.currentIndex()
        preset = self._store.get(self._picker.itemText(index)) if index >= 0 else None
        if preset is None or preset.builtin:
            return
        if not self._confirm("Delete preset", f"Delete your preset “{preset.name}”? This cannot be undone."):
            return
        try:
            self._store.delete(preset.name)
        except PresetError as exc:
            self._show_preset_message(str(exc))
            return
        self._preset_message.hide()
        if self._current_preset is not None and self._current_preset.name == preset.name:
            self._current_preset = None
        self._picker.setCurrentIndex(-1)
        self.refresh_presets()
        self._preset_description.clear()

    def _update_preset_buttons(self) -> None:
        index = self._picker.currentIndex()
        preset = self._store.get(self._picker.itemText(index)) if index >= 0 else None
        self._delete_button.setEnabled(preset is not None and not preset.builtin)

    def _show_preset_message(self, text: str) -> None:
        self._preset_message.setText(text)
        self._preset_message.show()

    def _confirm(self, title: str, text: str) -> bool:
        return ask(self, title, text)  # preset names may come from an imported file
