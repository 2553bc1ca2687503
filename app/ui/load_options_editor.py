"""The speed and memory options of one model (flash attention, KV cache type, mmap, mlock,
prompt-lookup decoding), part of Manage models > Defaults for this model.

Each control has a tooltip and the line under the controls explains the one in focus, or the
problem: a quantized KV cache with flash attention off is marked and cannot be saved (the
library refuses it too), and mlock is disabled with the reason when this system would not let
the engine lock the model (core.load_options.mlock_problem).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QCheckBox, QComboBox, QGridLayout, QLabel, QWidget

from app.core import load_options as lo
from app.core.library import ModelDefaults
from app.ui.a11y import named

ERROR_STYLE = "color: #b00020;"


class LoadOptionsEditor(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        named(self, "loadOptionsEditor", "Speed and memory options")
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        self.flash_combo = named(QComboBox(), "flashAttention", "Flash attention")
        for value, label in lo.FLASH_ATTN_CHOICES:
            self.flash_combo.addItem(label, value)
        self.flash_combo.setToolTip(lo.FLASH_ATTN_HELP)
        self.kv_combo = named(QComboBox(), "kvCacheType", "KV cache type")
        for value, label in lo.KV_CACHE_CHOICES:
            self.kv_combo.addItem(label, value)
        self.kv_combo.setToolTip(lo.KV_CACHE_HELP)
        self.mmap_check = named(QCheckBox("Map the file (mmap)"), "useMmap", "Map the model file (mmap)")
        self.mmap_check.setToolTip(lo.MMAP_HELP)
        self.mlock_check = named(QCheckBox("Lock in RAM (mlock)"), "useMlock", "Lock the model in RAM (mlock)")
        self.mlock_check.setToolTip(lo.MLOCK_HELP)
        self.lookup_check = named(
            QCheckBox("Prompt-lookup decoding"), "promptLookup", "Prompt-lookup (n-gram) speculative decoding"
        )
        self.lookup_check.setToolTip(lo.PROMPT_LOOKUP_HELP)
        self.note = named(QLabel(), "loadOptionsNote", "About the speed and memory option")
        self.note.setWordWrap(True)
        self.note.setTextFormat(self.note.textFormat().PlainText)
        grid.addWidget(QLabel("Flash attention:"), 0, 0)
        grid.addWidget(self.flash_combo, 0, 1)
        grid.addWidget(QLabel("KV cache:"), 0, 2)
        grid.addWidget(self.kv_combo, 0, 3)
        grid.addWidget(self.mmap_check, 1, 0, 1, 2)
        grid.addWidget(self.mlock_check, 1, 2, 1, 2)
        grid.addWidget(self.lookup_check, 2, 0, 1, 4)
        grid.addWidget(self.note, 3, 0, 1, 5)
        grid.setColumnStretch(4, 1)
        self._mlock_reason: str | None = None
        self._focused: QWidget | None = None
        for widget in self._controls():
            widget.installEventFilter(self)
        self.flash_combo.currentIndexChanged.connect(self._update)
        self.kv_combo.currentIndexChanged.connect(self._update)
        self.clear()

    def _controls(self) -> tuple[QWidget, ...]:
        return (self.flash_combo, self.kv_combo, self.mmap_check, self.mlock_check, self.lookup_check)

    # -- public -----------------------------------------------------------------------------

    def set_defaults(self, defaults: ModelDefaults, model_bytes: int = 0) -> None:
        """Show ``defaults`` (unset options at their defaults) for a model of ``model_bytes``."""
        options = defaults.load_options()
        self.flash_combo.setCurrentIndex(max(self.flash_combo.findData(options["flash_attn"]), 0))
        self.kv_combo.setCurrentIndex(max(self.kv_combo.findData(options["kv_cache_type"]), 0))
        self.mmap_check.setChecked(options["use_mmap"])
        self.lookup_check.setChecked(options["prompt_lookup"])
        self._mlock_reason = lo.mlock_problem(model_bytes) if model_bytes else None
        self.mlock_check.setChecked(options["use_mlock"] and self._mlock_reason is None)
        self.mlock_check.setEnabled(self._mlock_reason is None)
        self.mlock_check.setToolTip(self._mlock_reason or lo.MLOCK_HELP)
        self._update()

    def clear(self) -> None:
        self.set_defaults(ModelDefaults())

    def values(self) -> dict[str, Any]:
        """``ModelDefaults`` fields; an option at its default is stored as unset (None), so a
        better default later reaches it."""
        flash = self.flash_combo.currentData()
        kv = self.kv_combo.currentData()
        return {
            "flash_attn": None if flash == lo.FLASH_AUTO else flash,
            "kv_cache_type": None if kv == lo.KV_F16 else kv,
            "use_mmap": None if self.mmap_check.isChecked() else False,
            "use_mlock": True if self.mlock_check.isChecked() and self.mlock_check.isEnabled() else None,
            "prompt_lookup": True if self.lookup_check.isChecked() else None,
        }

    def problem(self) -> str | None:
        """Why these options cannot be saved, or None."""
        return lo.conflict(self.flash_combo.currentData(), self.kv_combo.currentData())

    # -- internals --------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FocusIn and isinstance(watched, QWidget):
            self._focused = watched
            self._update()
        return super().eventFilter(watched, event)

    def _update(self) -> None:
        # Flash attention off: the quantized caches are greyed out (llama.cpp needs it for them).
        flash_off = self.flash_combo.currentData() == lo.FLASH_OFF
        items = self.kv_combo.model()
        for row in range(self.kv_combo.count()):
            item = items.item(row) if isinstance(items, QStandardItemModel) else None
            if item is not None:
                item.setEnabled(not flash_off or self.kv_combo.itemData(row) == lo.KV_F16)
        problem = self.problem()
        if problem:
            self.note.setStyleSheet(ERROR_STYLE)
            self.note.setText(problem)
            return
        self.note.setStyleSheet("")
        if self._focused is self.mlock_check and self._mlock_reason:
            self.note.setText(self._mlock_reason)
        elif self._focused is not None:
            self.note.setText(self._focused.toolTip())
        elif self._mlock_reason:
            self.note.setText("mlock is not available: " + self._mlock_reason)
        else:
            self.note.setText("Hover or focus an option for what it does.")
