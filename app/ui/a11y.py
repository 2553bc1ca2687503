"""Accessibility helpers shared by the window and the dialogs.

API:
    named(widget, object_name, human, description=None) -> widget
        objectName (for tests and style sheets) and a human accessible name (what a screen
        reader says: "Send", not "sendButton"), with an optional description.
    announce(widget, text, assertive=False) -> bool
        a screen reader says ``text`` now (QAccessibleAnnouncementEvent, Qt >= 6.8); False
        where this Qt has no announcements, or nothing listens (no assistive technology).
    looks_like_identifier(name) -> bool
        "modelPicker", "send_button", "chatView": a code name, not words.
    focusable_controls(top) -> list[QWidget]
        the controls a keyboard can reach in ``top`` (shown, enabled, tab focus), without the
        inner editors of spin and combo boxes (they speak for their box).
"""

from __future__ import annotations

import re
from typing import TypeVar

from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible
from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QWidget

try:  # Qt 6.8+
    from PySide6.QtGui import QAccessibleAnnouncementEvent
except ImportError:  # pragma: no cover - older Qt: announcements are skipped
    QAccessibleAnnouncementEvent = None  # type: ignore[assignment,misc]

W = TypeVar("W", bound=QWidget)

# a word with an inner capital (camelCase) or an underscore, and no space: a code identifier
_IDENTIFIER = re.compile(r"^(?:[a-z]+[A-Z]\w*|\w+_\w*)$")


def named(widget: W, object_name: str, human: str, description: str | None = None) -> W:
    widget.setObjectName(object_name)
    widget.setAccessibleName(human)
    if description:
        widget.setAccessibleDescription(description)
    return widget


def looks_like_identifier(name: str) -> bool:
    return bool(_IDENTIFIER.match(name.strip()))


def announce(widget: QWidget, text: str, assertive: bool = False) -> bool:
    """Ask the screen reader to say ``text`` (politely: after what it is saying, unless
    ``assertive``). Announcements made while no assistive technology listens cost nothing."""
    text = " ".join(text.split())
    if not text or QAccessibleAnnouncementEvent is None:
        return False
    event = QAccessibleAnnouncementEvent(widget, text)
    if assertive:
        event.setPoliteness(QAccessible.AnnouncementPoliteness.Assertive)
    QAccessible.updateAccessibility(event)
    return QAccessible.isActive()


def _inner_editor(widget: QWidget) -> bool:
    parent = widget.parentWidget()
    return isinstance(parent, (QAbstractSpinBox, QComboBox)) and widget.objectName() in (
        "qt_spinbox_lineedit",
        "",
    )


def focusable_controls(top: QWidget) -> list[QWidget]:
    controls = []
    for widget in [top, *top.findChildren(QWidget)]:
        if not widget.focusPolicy() & Qt.FocusPolicy.TabFocus or not widget.isEnabled():
            continue
        if not widget.isVisibleTo(top) or widget.window() is not top.window() or _inner_editor(widget):
            continue
        controls.append(widget)
    return controls
