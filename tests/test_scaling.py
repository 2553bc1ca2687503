"""Issue 19 point 3: at 200 % scale and at the largest font setting no label or button of the
main window and the dialogs is cut (each size hint fits its text, and each gets its hint);
the font-size preference scales the whole window; high contrast is followed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from app.core.preferences import MAX_FONT_SIZE
from app.ui import theme

PROBE = Path(__file__).parent / "scaling_probe.py"


def _probe(tmp_path: Path, font_size: int, scale: str | None) -> tuple[list[str], int, int]:
    screen = tmp_path / "screen.json"  # a large offscreen screen: the window may take its minimum size
    screen.write_text('{"screens": [{"name": "big", "x": 0, "y": 0, "width": 3840, "height": 2160}]}')
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={screen}"}
    env.pop("QT_SCALE_FACTOR", None)
    if scale:
        env["QT_SCALE_FACTOR"] = scale
    out = subprocess.run(
        [sys.executable, str(PROBE), str(font_size)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    clipped = [line for line in lines if line.startswith("CLIPPED")]
    summary = next(line for line in lines if line.startswith("checked")).split()
    return clipped, int(summary[1]), int(summary[3])


@pytest.mark.parametrize(("font_size", "scale"), [(11, "2"), (MAX_FONT_SIZE, None)])
def test_nothing_is_clipped_at_double_scale_or_the_largest_font(tmp_path: Path, font_size: int, scale) -> None:
    clipped, checked, app_font = _probe(tmp_path, font_size, scale)
    assert checked >= 30  # the labels and buttons of the window and three dialogs were looked at
    assert clipped == []
    if font_size == MAX_FONT_SIZE:
        assert app_font >= 20  # the whole window follows the font-size preference, not only the chat


def test_window_font_size_scales_with_the_preference(qapp: QApplication) -> None:
    base = theme._remember_platform(qapp).font.pointSizeF()
    assert theme.window_font_size(qapp, theme.DEFAULT_FONT_SIZE) is None
    assert theme.window_font_size(qapp, 22) == round(base * 2)


def test_light_and_dark_follow_a_high_contrast_request(qapp: QApplication, monkeypatch) -> None:
    monkeypatch.setattr(theme, "wants_high_contrast", lambda app: True)
    try:
        theme.apply_theme(qapp, "dark")
        assert qapp.palette().color(QPalette.ColorRole.Base).name() == "#000000"
        assert qapp.palette().color(QPalette.ColorRole.Text).name() == "#ffffff"
        theme.apply_theme(qapp, "light")
        assert qapp.palette().color(QPalette.ColorRole.Base).name() == "#ffffff"
        assert qapp.palette().color(QPalette.ColorRole.Highlight).name() == "#0000a0"
        monkeypatch.setattr(theme, "wants_high_contrast", lambda app: False)
        theme.apply_theme(qapp, "light")
        assert qapp.palette().color(QPalette.ColorRole.Highlight).name() != "#0000a0"  # Fusion's own again
    finally:
        theme.apply_theme(qapp, "system")
