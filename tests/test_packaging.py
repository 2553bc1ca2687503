"""Icons, the Linux desktop entry and GGUF file association, and the packaged app itself."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from app import desktop_entry, paths
from app.desktop_entry import (
    ICON_SIZES,
    MIME_TYPE,
    desktop_entry_text,
    handle_cli,
    install_desktop_entry,
    uninstall_desktop_entry,
)

ROOT = Path(__file__).resolve().parent.parent
ICONS = ROOT / "resources" / "icons" / "hicolor"


# -- icons ---------------------------------------------------------------------------------


def test_png_icons_exist_in_every_size_and_match_the_svg(qapp) -> None:
    assert (ROOT / "resources" / "hearth.svg").is_file()
    for size in (16, 22, 24, 32, 48, 64, 128, 256, 512):
        image = QImage(str(ICONS / f"{size}x{size}" / "apps" / "hearth.png"))
        assert not image.isNull(), size
        assert (image.width(), image.height()) == (size, size)
        assert image.hasAlphaChannel()
        assert image.pixelColor(0, 0).alpha() == 0  # the rounded corner is transparent
        assert image.pixelColor(size // 2, size // 2).alpha() == 255
    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        import make_icons
    finally:
        sys.path.remove(str(ROOT / "packaging"))
    assert make_icons.main(["--check"]) == 0, "run packaging/make_icons.py after editing hearth.svg"


def _make_icons():
    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        import make_icons
    finally:
        sys.path.remove(str(ROOT / "packaging"))
    return make_icons


def test_icon_check_allows_another_cpus_antialiasing_but_not_an_edited_svg(qapp, tmp_path: Path) -> None:
    make_icons = _make_icons()
    fresh = make_icons.render(64)
    # Another CPU: edge pixels (partly transparent) a coverage level or two apart.
    other_cpu = fresh.copy()
    changed = 0
    for y in range(64):
        for x in range(64):
            color = other_cpu.pixelColor(x, y)
            if 0 < color.alpha() < 255 and changed < 40:
                color.setAlpha(max(0, color.alpha() - 16))
                other_cpu.setPixelColor(x, y, color)
                changed += 1
    assert changed > 10  # the icon has antialiased edges to move
    assert other_cpu != fresh
    assert make_icons.images_match(other_cpu, fresh)
    # An edited SVG (another fill colour) is stale, however it is antialiased.
    svg = (ROOT / "resources" / "hearth.svg").read_text()
    import re

    colours = set(re.findall(r"#[0-9a-fA-F]{6}\b", svg))
    assert colours
    edited = tmp_path / "edited.svg"
    edited_text = svg
    for colour in colours:
        edited_text = edited_text.replace(colour, "#00ff00")
    edited.write_text(edited_text)
    assert not make_icons.images_match(make_icons.render(64, edited), fresh)
    # A different size never matches.
    assert not make_icons.images_match(make_icons.render(48), fresh)


def test_windows_and_macos_icons_hold_every_size(qapp, tmp_path: Path) -> None:
    from PySide6.QtGui import QImageReader

    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        import make_icons
    finally:
        sys.path.remove(str(ROOT / "packaging"))
    assert make_icons.main(["--platform-icons", str(tmp_path)]) == 0
    for name, expected in (
        ("hearth.ico", [16, 24, 32, 48, 64, 128, 256]),
        ("hearth.icns", [16, 32, 64, 128, 256, 512, 32, 64, 256, 512, 1024]),
    ):
        reader = QImageReader(str(tmp_path / name))  # Qt's own ico and icns readers
        widths = []
        for i in range(reader.imageCount()):
            reader.jumpToImage(i)
            image = reader.read()
            assert image.width() == image.height()
            widths.append(image.width())
        assert widths == expected, name


# -- desktop entry -------------------------------------------------------------------------


def _exec_argv(exec_value: str) -> list[str]:
    """Parse an Exec value the way the Desktop Entry spec tells launchers to."""
    value, i = [], 0
    while i < len(exec_value):  # 1. string-value escapes
        c = exec_value[i]
        if c == "\\" and i + 1 < len(exec_value):
            value.append(
                {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}.get(exec_value[i + 1], "\\" + exec_value[i + 1])
            )
            i += 2
        else:
            value.append(c)
            i += 1
    text = "".join(value)
    args, current, quoted, i, started = [], [], False, 0, False
    while i < len(text):  # 2. quoting, 3. %% -> %
        c = text[i]
        if quoted:
            if c == "\\" and text[i + 1] in '"`$\\':
                current.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                quoted = False
            else:
                current.append(c)
        elif c == '"':
            quoted, started = True, True
        elif c == " ":
            if current or started:
                args.append("".join(current))
            current, started = [], False
        else:
            current.append(c)
        i += 1
    if current or started:
        args.append("".join(current))
    return [a.replace("%%", "%") if a != "%F" else a for a in args]


def _entry(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "[Desktop Entry]"
    return dict(line.split("=", 1) for line in lines[1:] if line)


def _validate(path: Path) -> None:
    validator = shutil.which("desktop-file-validate")
    if validator is None:
        pytest.skip("desktop-file-validate is not installed (apt-get install desktop-file-utils)")
    result = subprocess.run([validator, str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    problems = [line for line in (result.stdout + result.stderr).splitlines() if "error:" in line or "warning:" in line]
    assert problems == []


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch) -> Path:
    home = tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


def test_install_writes_a_valid_entry_icons_and_the_gguf_mime_type(xdg: Path, hearth_home: Path) -> None:
    written = install_desktop_entry()
    entry_path = xdg / "applications" / "hearth.desktop"
    assert entry_path in written
    _validate(entry_path)
    entry = _entry(entry_path)
    assert entry["Type"] == "Application" and entry["Name"] == "Hearth"
    assert entry["Icon"] == "hearth" and entry["Terminal"] == "false"
    assert entry["GenericName"] and entry["Comment"]
    assert entry["Categories"] == "Utility;Development;Science;ArtificialIntelligence;"
    assert entry["MimeType"] == "application/x-gguf;"
    assert entry["StartupWMClass"] == "Hearth"  # Qt's WM_CLASS class = the application name
    argv = _exec_argv(entry["Exec"])
    # This test process runs from a checkout: the entry starts this interpreter with -m app,
    # on the same portable data folder the conftest fixture set.
    assert argv == [sys.executable, "-m", "app", "--data-dir", str(hearth_home), "%F"]

    for size in ICON_SIZES:
        icon = xdg / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "hearth.png"
        assert icon in written and QImage(str(icon)).width() == size
    assert (xdg / "icons" / "hicolor" / "scalable" / "apps" / "hearth.svg").is_file()
    mime = xdg / "mime" / "packages" / "hearth-gguf.xml"
    assert mime in written
    assert 'pattern="*.gguf"' in mime.read_text() and MIME_TYPE in mime.read_text()

    if shutil.which("update-desktop-database"):
        assert "application/x-gguf=hearth.desktop;" in (xdg / "applications" / "mimeinfo.cache").read_text()


def test_the_desktop_resolves_gguf_files_to_hearth(xdg: Path, tmp_path: Path) -> None:
    if shutil.which("update-mime-database") is None:
        pytest.skip("update-mime-database (shared-mime-info) is not installed")
    install_desktop_entry()
    named = tmp_path / "model.Q4_K_M.gguf"
    named.write_bytes(b"\0" * 64)
    unnamed = tmp_path / "download-part"
    unnamed.write_bytes(b"GGUF\x03\0\0\0" + b"\0" * 56)
    # Qt reads the same shared-mime-info database as file managers do.
    code = (
        "import sys; from PySide6.QtCore import QMimeDatabase; db = QMimeDatabase();"
        "print(db.mimeTypeForFile(sys.argv[1]).name(), db.mimeTypeForFile(sys.argv[2]).name())"
    )
    env = dict(os.environ, XDG_DATA_HOME=str(xdg), XDG_DATA_DIRS="/usr/local/share:/usr/share")
    out = subprocess.run(
        [sys.executable, "-c", code, str(named), str(unnamed)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.split() == [MIME_TYPE, MIME_TYPE], out.stderr


def test_uninstall_removes_everything_it_installed(xdg: Path) -> None:
    written = install_desktop_entry()
    removed = uninstall_desktop_entry()
    assert sorted(removed) == sorted(written)
    assert not any(path.exists() for path in written)
    assert uninstall_desktop_entry() == []


def test_exec_line_survives_spaces_quotes_dollars_and_percent(xdg: Path, tmp_path: Path) -> None:
    odd = tmp_path / 'My "AI" $HOME 100% \\ folder'
    paths.set_root(odd)
    install_desktop_entry()
    entry_path = xdg / "applications" / "hearth.desktop"
    _validate(entry_path)
    argv = _exec_argv(_entry(entry_path)["Exec"])
    assert argv == [sys.executable, "-m", "app", "--data-dir", str(odd), "%F"]


def test_frozen_app_entry_points_at_its_executable(xdg: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", "/opt/Hearth/Hearth")
    paths.set_root(None)
    monkeypatch.delenv("HEARTH_HOME", raising=False)
    monkeypatch.delenv("APPIMAGE", raising=False)
    text = desktop_entry_text(desktop_entry.default_exec_command())
    assert "Exec=/opt/Hearth/Hearth %F\n" in text and "TryExec=/opt/Hearth/Hearth\n" in text
    monkeypatch.setenv("APPIMAGE", "/home/me/Apps/Hearth-x86_64.AppImage")
    assert desktop_entry.default_exec_command() == "/home/me/Apps/Hearth-x86_64.AppImage"


def test_relative_xdg_data_home_is_ignored_as_the_spec_says(monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")
    assert desktop_entry.xdg_data_home() == Path.home() / ".local" / "share"


def test_cli_flags(xdg: Path, capsys) -> None:
    assert handle_cli(argparse.Namespace(install_desktop_entry=False, uninstall_desktop_entry=False)) is None
    assert handle_cli(argparse.Namespace()) is None
    assert handle_cli(argparse.Namespace(install_desktop_entry=True, uninstall_desktop_entry=False)) == 0
    assert (xdg / "applications" / "hearth.desktop").exists()
    assert "applications menu" in capsys.readouterr().out
    assert handle_cli(argparse.Namespace(install_desktop_entry=False, uninstall_desktop_entry=True)) == 0
    assert not (xdg / "applications" / "hearth.desktop").exists()
    assert "Removed" in capsys.readouterr().out


def test_cli_reports_an_unwritable_data_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker))
    assert handle_cli(argparse.Namespace(install_desktop_entry=True, uninstall_desktop_entry=False)) == 1
    assert "Could not update the desktop entry" in capsys.readouterr().err


# -- the packaged app ----------------------------------------------------------------------


@pytest.mark.model
def test_build_script_makes_an_app_folder_that_starts_and_loads_the_demo_model(
    tmp_path: Path, demo_model: Path
) -> None:
    """packaging/build.sh --with-demo, then the frozen app as a user starts it (~1-2 min)."""
    pytest.importorskip("PyInstaller", reason="PyInstaller is a build-time tool: pip install 'pyinstaller>=6'")
    dist = tmp_path / "dist"
    env = dict(
        os.environ,
        HEARTH_DIST_DIR=str(dist),
        HEARTH_BUILD_DIR=str(tmp_path / "work"),
        HEARTH_VENV=str(Path(sys.executable).parent.parent),
    )
    env.pop("HEARTH_HOME", None)
    build = subprocess.run(
        ["bash", str(ROOT / "packaging" / "build.sh"), "--with-demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    app_dir = dist / "Hearth"
    exe = app_dir / "Hearth"
    assert exe.is_file() and os.access(exe, os.X_OK)

    # Only the Qt we use; llama.cpp's libraries where llama_cpp looks for them.
    internal = app_dir / "_internal"
    qt_libs = {p.name for p in (internal / "PySide6" / "Qt" / "lib").iterdir()}
    for needed in ("libQt6Core.so.6", "libQt6Gui.so.6", "libQt6Widgets.so.6", "libQt6Network.so.6", "libQt6Svg.so.6"):
        assert needed in qt_libs
    assert not [n for n in qt_libs if any(m in n for m in ("WebEngine", "Qml", "Quick", "3D", "Multimedia"))]
    for lib in ("libllama.so", "libggml.so.0", "libggml-base.so.0", "libggml-cpu.so.0"):
        assert (internal / "llama_cpp" / "lib" / lib).exists(), lib
    assert (internal / "resources" / "hearth.svg").is_file()
    assert (internal / "resources" / "icons" / "hicolor" / "256x256" / "apps" / "hearth.png").is_file()

    run_env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    run_env.pop("HEARTH_HOME", None)
    run_env.pop("PYTHONPATH", None)
    version = subprocess.run([str(exe), "--version"], env=run_env, capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("Hearth "), version.stderr

    # First start on an empty data folder, as a double-click would: the bundled demo model
    # is registered and the engine child (multiprocessing spawn of the frozen executable)
    # loads it: llama.cpp maps the model file into the child's memory.
    home = tmp_path / "portable"
    proc = subprocess.Popen(
        [str(exe), "--data-dir", str(home)], env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        models = home / "data" / "models.json"
        deadline = time.monotonic() + 90
        loaded_by = None
        while time.monotonic() < deadline and proc.poll() is None and loaded_by is None:
            time.sleep(0.3)
            loaded_by = _child_mapping(proc.pid, ".gguf")
        assert loaded_by is not None, "the engine child never loaded the model"
        registered = json.loads(models.read_text())["models"]
        assert len(registered) == 1
        assert Path(registered[0]["path"]).is_relative_to(app_dir), "the bundled demo model is the one registered"
        assert registered[0]["path"] in loaded_by
        assert "llama_cpp/lib/libllama.so" in loaded_by
        proc.send_signal(signal.SIGINT)  # Ctrl+C closes the window in order
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    # --self-test: the frozen window + engine answer one question and exit 0
    selftest = subprocess.run(
        [str(exe), "--data-dir", str(tmp_path / "selftest"), "--self-test"],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert selftest.returncode == 0, selftest.stdout + selftest.stderr[-3000:]
    assert "self-test: ok" in selftest.stdout
    size = sum(p.stat().st_size for p in app_dir.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"\nbuilt app folder: {size / 1e6:.0f} MB (with the 98 MB demo model)")


def _child_mapping(pid: int, needle: str) -> str | None:
    """The /proc/<child>/maps text of the first child of ``pid`` that maps ``needle``."""
    children: list[str] = []
    # Every thread's list: the engine child is forked by the worker thread, not the main one.
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += (task / "children").read_text().split()
        except OSError:
            continue
    for child in children:
        try:
            maps = Path(f"/proc/{child}/maps").read_text()
        except OSError:
            continue
        if needle in maps:
            return maps
    return None
