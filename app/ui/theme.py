"""Light, dark or the platform's own look, switched live (no restart).

Light and dark use the Fusion style with an explicit palette: Fusion draws every widget from
the palette, so each role is set and every widget is readable, on every platform. Native
styles (Windows 11, macOS) ignore parts of a custom palette and would mix dark and light.
"System" gives the look back to the platform: its own style, and an empty palette, which
Qt resolves to the platform theme's colours (so an OS switch to dark mode is followed).

The platform's style and font are remembered on the first call, before anything is changed,
so "system" can restore them.

When the system asks for high contrast (Qt 6.10+: ``QStyleHints.accessibility()``), light and
dark use :func:`high_contrast_palette` instead (pure black and white, strong selection);
"system" leaves it to the platform. :func:`follow_system` re-applies the look when the system's
dark/light or contrast setting changes while Hearth runs.

The font-size preference scales the whole window: :func:`window_font_size` turns it into the
app-wide font's size, in proportion to the platform's own (the default size keeps it as is).

API: ``apply_theme(app, theme, font_size=None)``; ``apply_chat_font(view, point_size)``;
``dark_palette()``; ``light_palette()``; ``high_contrast_palette(dark)``; ``is_dark(palette)``;
``wants_high_contrast(app)``; ``window_font_size(app, preference)``; ``follow_system(app, reapply)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory, QTextEdit

from app.core.preferences import THEMES, Preferences

DEFAULT_FONT_SIZE = Preferences().chat_font_size  # the preference's default: the platform's own size

_Role = QPalette.ColorRole
_Group = QPalette.ColorGroup


@dataclass(frozen=True)
class _Platform:
    style: str
    font: QFont


_platform: dict[int, _Platform] = {}  # per QApplication (tests may see more than one)


def _remember_platform(app: QApplication) -> _Platform:
    key = id(app)
    if key not in _platform:
        _platform[key] = _Platform(app.style().name(), QFont(app.font()))
    return _platform[key]


def dark_palette() -> QPalette:
    """Light text on dark grey; links, selection and placeholders chosen to stay readable
    on it (the usual ones are made for white backgrounds)."""
    text = QColor(232, 232, 232)
    dim = QColor(128, 128, 128)
    palette = QPalette()
    for role, colour in (
        (_Role.Window, QColor(45, 45, 48)),
        (_Role.WindowText, text),
        (_Role.Base, QColor(30, 30, 32)),
        (_Role.AlternateBase, QColor(40, 40, 43)),
        (_Role.ToolTipBase, QColor(60, 60, 64)),
        (_Role.ToolTipText, text),
        (_Role.PlaceholderText, QColor(150, 150, 150)),
        (_Role.Text, text),
        (_Role.Button, QColor(55, 55, 59)),
        (_Role.ButtonText, text),
        (_Role.BrightText, QColor(255, 110, 110)),
        (_Role.Light, QColor(80, 80, 85)),
        (_Role.Midlight, QColor(66, 66, 70)),
        (_Role.Mid, QColor(42, 42, 45)),
        (_Role.Dark, QColor(25, 25, 27)),
        (_Role.Shadow, QColor(10, 10, 10)),
        (_Role.Highlight, QColor(42, 110, 190)),
        (_Role.HighlightedText, QColor(255, 255, 255)),
        (_Role.Link, QColor(110, 175, 255)),
        (_Role.LinkVisited, QColor(190, 150, 255)),
    ):
        palette.setColor(role, colour)
    if hasattr(_Role, "Accent"):  # Qt 6.6+
        palette.setColor(_Role.Accent, QColor(42, 110, 190))
    for role in (_Role.WindowText, _Role.Text, _Role.ButtonText, _Role.HighlightedText, _Role.ToolTipText):
        palette.setColor(_Group.Disabled, role, dim)
    palette.setColor(_Group.Disabled, _Role.Highlight, QColor(70, 70, 74))
    palette.setColor(_Group.Disabled, _Role.Base, QColor(40, 40, 43))
    palette.setColor(_Group.Disabled, _Role.Button, QColor(48, 48, 52))
    return palette


def light_palette() -> QPalette:
    """Fusion's own light palette: made for the style, every role and group set."""
    style = QStyleFactory.create("Fusion")
    try:
        return QPalette(style.standardPalette())
    finally:
        style.deleteLater()


def high_contrast_palette(dark: bool) -> QPalette:
    """Black on white (or white on black) everywhere, with black (white) edges and a selection
    no one can miss: for people who asked their system for more contrast."""
    fg, bg = (QColor(255, 255, 255), QColor(0, 0, 0)) if dark else (QColor(0, 0, 0), QColor(255, 255, 255))
    palette = QPalette()
    for role in (_Role.Window, _Role.Base, _Role.AlternateBase, _Role.Button, _Role.ToolTipBase, _Role.Light):
        palette.setColor(role, bg)
    for role in (_Role.WindowText, _Role.Text, _Role.ButtonText, _Role.ToolTipText, _Role.PlaceholderText):
        palette.setColor(role, fg)
    for role in (_Role.Mid, _Role.Midlight, _Role.Dark, _Role.Shadow):
        palette.setColor(role, fg)  # Fusion draws frames and edges with these
    highlight = QColor(255, 255, 0) if dark else QColor(0, 0, 160)
    palette.setColor(_Role.Highlight, highlight)
    palette.setColor(_Role.HighlightedText, QColor(0, 0, 0) if dark else QColor(255, 255, 255))
    palette.setColor(_Role.Link, QColor(120, 200, 255) if dark else QColor(0, 0, 200))
    palette.setColor(_Role.LinkVisited, QColor(230, 160, 255) if dark else QColor(100, 0, 140))
    palette.setColor(_Role.BrightText, QColor(255, 80, 80) if dark else QColor(180, 0, 0))
    if hasattr(_Role, "Accent"):
        palette.setColor(_Role.Accent, highlight)
    dim = QColor(160, 160, 160) if dark else QColor(90, 90, 90)
    for role in (_Role.WindowText, _Role.Text, _Role.ButtonText):
        palette.setColor(_Group.Disabled, role, dim)
    return palette


def wants_high_contrast(app: QApplication) -> bool:
    """Whether the system asks for high contrast (False where Qt cannot tell: before 6.10)."""
    hints = app.styleHints()
    accessibility = getattr(hints, "accessibility", None)
    if accessibility is None or not hasattr(Qt, "ContrastPreference"):
        return False
    try:
        return bool(accessibility().contrastPreference() == Qt.ContrastPreference.HighContrast)
    except (AttributeError, RuntimeError):
        return False


def window_font_size(app: QApplication, preference: int) -> int | None:
    """The app-wide font's point size for the font-size preference: the platform's size scaled
    by preference / default (None at the default: the platform's font as it is)."""
    if preference == DEFAULT_FONT_SIZE:
        return None
    base = _remember_platform(app).font.pointSizeF()
    if base <= 0:
        base = float(DEFAULT_FONT_SIZE)
    return max(6, round(base * preference / DEFAULT_FONT_SIZE))


def follow_system(app: QApplication, reapply: Callable[..., None]) -> None:
    """Call ``reapply`` when the system switches dark/light or asks for more (or less) contrast
    while the app runs (the signals exist from Qt 6.5 and 6.10). Pass a bound method of a
    QObject: the connection ends with that object."""
    hints = app.styleHints()
    if hasattr(hints, "colorSchemeChanged"):
        hints.colorSchemeChanged.connect(reapply)
    accessibility = getattr(hints, "accessibility", None)
    if accessibility is not None:
        signal = getattr(accessibility(), "contrastPreferenceChanged", None)
        if signal is not None:
            signal.connect(reapply)


def is_dark(palette: QPalette) -> bool:
    """Whether text sits on a dark background (e.g. to pick a dark code-highlighting style)."""
    return palette.color(_Role.Base).lightness() < 128


def apply_theme(app: QApplication, theme: str, font_size: int | None = None) -> None:
    """Give the whole app the ``theme`` ("system", "light" or "dark") now; open windows
    repaint at once.

    ``font_size`` sets the point size of the app-wide font (every widget that does not set
    its own); None restores the platform's. For the chat's own size use
    :func:`apply_chat_font`. Raises ValueError for an unknown theme (validated preferences
    never hold one).
    """
    if theme not in THEMES:
        raise ValueError(f"Unknown theme {theme!r}; expected one of {', '.join(THEMES)}.")
    platform = _remember_platform(app)
    if theme == "system":
        if app.style().name().lower() != platform.style.lower():
            style = QStyleFactory.create(platform.style)
            if style is not None:
                app.setStyle(style)
        app.setPalette(QPalette())  # empty: resolves to the platform theme's colours
    else:
        if app.style().name().lower() != "fusion":
            app.setStyle("Fusion")
        if wants_high_contrast(app):
            app.setPalette(high_contrast_palette(theme == "dark"))
        else:
            app.setPalette(dark_palette() if theme == "dark" else light_palette())
    _set_colour_scheme(app, theme)
    # Widgets with a style sheet of their own do not take a new application palette by
    # themselves (the settings panel stayed light in a dark window): re-polish them.
    for widget in app.allWidgets():
        sheet = widget.styleSheet()
        if sheet:
            widget.setStyleSheet("")
            if not widget.styleSheet():  # unless the widget restyled itself for the new palette
                widget.setStyleSheet(sheet)
    font = QFont(platform.font)
    if font_size is not None:
        font.setPointSize(int(font_size))
    if app.font() != font:
        app.setFont(font)


def _set_colour_scheme(app: QApplication, theme: str) -> None:
    """Tell the platform too (Qt 6.8+), so what Qt does not draw — the window title bar on
    Windows, native dialogs — matches."""
    hints = app.styleHints()
    if not hasattr(hints, "setColorScheme"):
        return
    if theme == "system":
        hints.unsetColorScheme()
    else:
        hints.setColorScheme(Qt.ColorScheme.Dark if theme == "dark" else Qt.ColorScheme.Light)


def apply_chat_font(view: QTextEdit, point_size: int) -> None:
    """Show the chat (or any text view) at ``point_size`` points, now.

    Sets the widget's font and its document's default font: text the view already shows is
    re-laid out at the new size (HTML that names no absolute size follows it: the chat view uses
    relative sizes only).
    """
    font = QFont(view.font())
    font.setPointSize(int(point_size))
    view.setFont(font)
    doc_font = QFont(view.document().defaultFont())
    doc_font.setPointSize(int(point_size))
    view.document().setDefaultFont(doc_font)
