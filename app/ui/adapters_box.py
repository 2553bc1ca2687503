"""The Models dialog's "Adapters" section: the selected model's LoRA adapters, Add… and Remove.

Reading and checking an adapter's header (against the model's) is :func:`adapter_outcome`, a
plain function the dialog runs on its worker thread; which adapters are on, and at what
scale, is chosen per conversation in the settings panel.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.adapters import AdapterError, AdapterInfo, check_adapter, is_adapter
from app.core.gguf import GGUFError, read_gguf
from app.core.library import human_size
from app.ui.a11y import named
from app.ui.plain import plain_tip


def adapter_outcome(source: str, target: tuple[str, str] | None, only_adapters: bool = False) -> tuple[str, object]:
    """Worker side: ``("adapter", AdapterInfo)`` when ``source`` is an adapter that fits the
    model ``target`` (path, name); ``("error", sentence)`` when it is an adapter that does not
    fit (or, with ``only_adapters``, anything that is not a fitting adapter); ``("model", None)``
    for a model file, which the caller imports as a model."""
    name = Path(source).name
    try:
        if not only_adapters and not is_adapter(read_gguf(source)):
            return ("model", None)
        if target is None:
            return ("error", f"{name} is a LoRA adapter: select its model in the list first, then add it again.")
        return ("adapter", check_adapter(source, target[0], target[1]))
    except (AdapterError, GGUFError) as exc:
        if not only_adapters and isinstance(exc, GGUFError):
            return ("model", None)  # the model import reports an unreadable file in its own words
        return ("error", str(exc))
    except OSError as exc:
        return ("error", f"{name}: {exc.strerror or exc}")


def adapter_label(adapter: AdapterInfo) -> str:
    facts = [f"rank {adapter.rank}" if adapter.rank else "", human_size(adapter.size) if adapter.size else ""]
    extra = ", ".join(f for f in facts if f)
    return f"{adapter.name} ({extra})" if extra else adapter.name


class AdaptersBox(QGroupBox):
    """Lists one model's adapters; asks the dialog to add files or remove one."""

    addRequested = Signal(list)  # adapter file paths chosen with Add…
    removeRequested = Signal(str)  # the adapter's path

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Adapters (LoRA)", parent)
        named(self, "modelAdapters", "Adapters of this model")
        self.setToolTip(
            plain_tip(
                "LoRA adapters are small files that specialise this model (a style, a task). Add them here, "
                "then turn each on and set its strength per chat in the settings panel."
            )
        )
        column = QVBoxLayout(self)
        self.list = named(QListWidget(), "adapterList", "Adapters of this model")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setAcceptDrops(False)  # a dropped file goes to the dialog, which routes it
        self.list.setMaximumHeight(96)
        column.addWidget(self.list)
        self.note = QLabel()
        self.note.setObjectName("adaptersNote")
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        column.addWidget(self.note)
        row = QHBoxLayout()
        self.add_button = named(QPushButton("Add adapter…"), "addAdapterButton", "Add adapter")
        self.add_button.setToolTip("Add a GGUF LoRA adapter made for this model (or drop its file on this window)")
        self.remove_button = named(QPushButton("Remove adapter"), "removeAdapterButton", "Remove adapter")
        self.remove_button.setToolTip("Forget the selected adapter (its file stays where it is)")
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        row.addStretch(1)
        column.addLayout(row)
        self.add_button.clicked.connect(self._choose)
        self.remove_button.clicked.connect(self._remove)
        self.list.itemSelectionChanged.connect(self._update_buttons)
        self.show_adapters(None)

    def show_adapters(self, adapters: list[AdapterInfo] | None) -> None:
        """The selected model's adapters (None: no model selected)."""
        self.list.clear()
        for adapter in adapters or []:
            item = QListWidgetItem(adapter_label(adapter))
            item.setData(Qt.ItemDataRole.UserRole, adapter.path)
            item.setToolTip(plain_tip(adapter.path))
            self.list.addItem(item)
        self.setEnabled(adapters is not None)
        if adapters is None:
            self.note.setText("")
        elif adapters:
            self.note.setText("Turn them on per chat under Adapters in the settings panel.")
        else:
            self.note.setText("No adapters. Add a GGUF LoRA adapter made for this model.")
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.remove_button.setEnabled(bool(self.list.selectedItems()))

    def _choose(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add LoRA adapters", "", "GGUF adapters (*.gguf);;All files (*)")
        if files:
            self.addRequested.emit(files)

    def _remove(self) -> None:
        items = self.list.selectedItems()
        if items:
            self.removeRequested.emit(items[0].data(Qt.ItemDataRole.UserRole))
