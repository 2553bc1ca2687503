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


def show_problems(problems, controls: dict, labels: dict, describe) -> None:
    """Mark each control with its problems and show the reasons in its label; ``describe(name,
    control)`` gives the accessible description when the value is fine."""
    by_field: dict[str, list[str]] = {}
    for problem in problems:
        by_field.setdefault(problem.field, []).append(problem.message)
    for name, control in controls.items():
        messages = by_field.get(name, [])
        label = labels[name]
        label.setText(" ".join(messages))
        label.setVisible(bool(messages))
        control.setAccessibleDescription(" ".join(messages) or describe(name, control))
        mark_invalid(control, bool(messages))
