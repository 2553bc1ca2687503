"""How a widget shows that its value is invalid, shared by the settings panel and Preferences."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget


def mark_invalid(widget: QWidget, invalid: bool) -> None:
    """Set the ``invalid`` property the style sheets key on; Qt only re-reads dynamic
    properties for styling on a re-polish."""
    if bool(widget.property("invalid")) == invalid:
        return
    widget.setProperty("invalid", invalid)
    widget.style().unpolish(widget)
    widget.style().polish(widget)
