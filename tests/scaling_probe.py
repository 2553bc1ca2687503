"""Run in a subprocess by tests/test_scaling.py (QT_SCALE_FACTOR is read when QApplication is
made): open the main window and the dialogs, lay them out, and print one line per label or
button whose text does not fit its width, then "checked N". Argument: the font-size preference.

Not a test file: ``python tests/scaling_probe.py 11``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtWidgets import QAbstractButton, QApplication, QCheckBox, QLabel, QRadioButton, QWidget  # noqa: E402

from app import paths  # noqa: E402


def clipped(root: QWidget) -> tuple[list[str], int]:
    problems: list[str] = []
    checked = 0
    for widget in [root, *root.findChildren(QWidget)]:
        if not widget.isVisibleTo(root) or widget.width() <= 1:
            continue
        if isinstance(widget, QLabel) and not widget.wordWrap() and widget.text() and "<" not in widget.text():
            need = widget.fontMetrics().horizontalAdvance(widget.text().replace("&", "")) + 2 * widget.margin()
        elif isinstance(widget, QAbstractButton) and widget.text() and widget.metaObject().className() != "QToolButton":
            need = widget.fontMetrics().horizontalAdvance(widget.text().replace("&", ""))
            if isinstance(widget, (QCheckBox, QRadioButton)):
                need += 16  # the indicator, at least
        else:
            continue
        checked += 1
        hint = widget.sizeHint().width()
        if hint < need or widget.width() < min(need, hint) - 1:
            problems.append(
                f"{root.objectName()}/{widget.objectName() or type(widget).__name__} {widget.text()!r}: "
                f"text {need}px, hint {hint}px, width {widget.width()}px"
            )
    return problems, checked


def main() -> int:
    font_size = int(sys.argv[1]) if len(sys.argv) > 1 else 11
    paths.set_root(tempfile.mkdtemp(prefix="hearth-scale-"))
    app = QApplication([])
    from app.core.config import AppConfig
    from app.core.library import ModelLibrary
    from app.core.preferences import Preferences
    from app.core.presets import PresetStore
    from app.core.store import ConversationStore
    from app.session import ChatSession
    from app.ui.main_window import MainWindow
    from app.ui.models_dialog import ModelsDialog
    from app.ui.preferences_dialog import PreferencesDialog
    from app.ui.shortcuts_dialog import ShortcutsDialog

    prefs = Preferences(chat_font_size=font_size)
    session = ChatSession(ModelLibrary(), AppConfig(), ConversationStore(paths.data_dir() / "c.sqlite3"))
    window = MainWindow(session, PresetStore(paths.config_dir() / "presets.json"), preferences=(None, prefs))
    window.apply_look()
    windows: list[QWidget] = [
        window,
        ModelsDialog(session.library),
        PreferencesDialog(prefs, [("/models/a.gguf", "A model")], ["General assistant"], window),
        ShortcutsDialog(window),
    ]
    total = 0
    problems: list[str] = []
    for w in windows:
        w.show()
        for _ in range(3):  # as a window manager does: never smaller than the minimum size
            app.processEvents()
            w.resize(w.size().expandedTo(w.minimumSizeHint()))
        app.processEvents()
        found, checked = clipped(w)
        if found:
            print("WINDOW", w.objectName(), w.size().toTuple(), w.minimumSizeHint().toTuple(), w.sizeHint().toTuple())
        problems += found
        total += checked
    for line in problems:
        print("CLIPPED", line)
    print("checked", total, "font", app.font().pointSize(), "dpr", window.devicePixelRatio())
    window.close()
    session.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
