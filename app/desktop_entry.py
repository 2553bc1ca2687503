"""Put Hearth in the Linux applications menu and make ``.gguf`` files open with it.

People who are not Python developers start programs from the menu and open files by
double-clicking them. On freedesktop.org desktops (GNOME, KDE, Xfce, …) that needs three
things in the user's data folder (``$XDG_DATA_HOME``, usually ``~/.local/share``), all
of which ``--uninstall-desktop-entry`` removes again:

* ``applications/hearth.desktop`` — name, icon, command line (with ``%F`` so file managers
  hand over the double-clicked files) and ``MimeType=application/x-gguf;``;
* ``icons/hicolor/<N>x<N>/apps/hearth.png`` and ``icons/hicolor/scalable/apps/hearth.svg``;
* ``mime/packages/hearth-gguf.xml`` — the ``application/x-gguf`` type for ``*.gguf`` files
  (no shared-mime-info release knows it yet), also recognised by the ``GGUF`` magic bytes.

Then the caches are refreshed with ``update-desktop-database``, ``update-mime-database``
and ``gtk-update-icon-cache`` where installed; a desktop without them rescans on login.

Only the user's own folders are written (no root needed), so a per-user install from a
downloaded app folder works, and the entry points at *this* copy of Hearth: the frozen
executable, the AppImage, or ``python -m app`` of this checkout, with ``--data-dir`` when
the running instance uses a portable data folder.

API::

    install_desktop_entry(exec_cmd: str | None = None) -> list[Path]   # files written
    uninstall_desktop_entry() -> list[Path]                            # files removed
    handle_cli(args) -> int | None        # --install-desktop-entry / --uninstall-desktop-entry
    desktop_entry_text(exec_cmd: str) -> str
    default_exec_command() -> str
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from app import APP_NAME, paths
from app.resources import resources_dir

__all__ = [
    "DESKTOP_FILE_NAME",
    "ICON_NAME",
    "ICON_SIZES",
    "MIME_PACKAGE_NAME",
    "MIME_TYPE",
    "default_exec_command",
    "desktop_entry_text",
    "handle_cli",
    "install_desktop_entry",
    "mime_package_text",
    "uninstall_desktop_entry",
    "xdg_data_home",
]

DESKTOP_FILE_NAME = "hearth.desktop"  # also QGuiApplication.desktopFileName() + ".desktop"
ICON_NAME = "hearth"
MIME_TYPE = "application/x-gguf"
MIME_PACKAGE_NAME = "hearth-gguf.xml"
ICON_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
# X11 WM_CLASS class part: Qt uses QCoreApplication.applicationName() ("Hearth"). Lets
# docks and task bars group the window under this entry's icon.
STARTUP_WM_CLASS = APP_NAME

# Registered categories only (freedesktop menu spec, appendix A/B): Utility, Development,
# Science are main categories; ArtificialIntelligence is an additional one whose related
# main category is Science.
CATEGORIES = "Utility;Development;Science;ArtificialIntelligence;"


def xdg_data_home() -> Path:
    """``$XDG_DATA_HOME`` when it is an absolute path (the spec says to ignore relative ones)."""
    value = os.environ.get("XDG_DATA_HOME", "")
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / ".local" / "share"


def _targets(base: Path) -> dict[str, Path]:
    return {
        "desktop": base / "applications" / DESKTOP_FILE_NAME,
        "mime": base / "mime" / "packages" / MIME_PACKAGE_NAME,
        "svg": base / "icons" / "hicolor" / "scalable" / "apps" / f"{ICON_NAME}.svg",
        **{f"png{n}": base / "icons" / "hicolor" / f"{n}x{n}" / "apps" / f"{ICON_NAME}.png" for n in ICON_SIZES},
    }


# -- Exec line -----------------------------------------------------------------------------

_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def _exec_quote(arg: str) -> str:
    """Quote one argument by the Desktop Entry spec's Exec rules.

    Inside double quotes, ``"`` ` ``$`` and ``\\`` are backslash-escaped; ``%`` is always
    doubled (field codes). The result is later escaped again as a string *value*
    (:func:`_value_escape`), which is why a backslash ends up as four in the file.
    """
    arg = arg.replace("%", "%%")
    if arg and not (_RESERVED & set(arg)):
        return arg
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return f'"{escaped}"'


def _value_escape(value: str) -> str:
    """Escape a string value for a .desktop file (``\\s``-style escapes for control chars)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def default_exec_command() -> str:
    """The command that starts this copy of Hearth, quoted for an Exec line (without ``%F``).

    Frozen app: its executable (or the AppImage that mounted it). From a checkout or a
    pip install: this interpreter with ``-m app``, so the entry keeps working without the
    ``hearth`` script being on PATH. A portable data folder is passed on with
    ``--data-dir`` so the menu entry opens the same library as this instance.
    """
    appimage = os.environ.get("APPIMAGE")
    if getattr(sys, "frozen", False):
        argv = [appimage if appimage else sys.executable]
    else:
        argv = [sys.executable, "-m", "app"]
    root = paths.root()
    if root is not None:
        argv += ["--data-dir", str(root)]
    return " ".join(_exec_quote(a) for a in argv)


def desktop_entry_text(exec_cmd: str) -> str:
    """The .desktop file for ``exec_cmd`` (already quoted; ``%F`` is appended here)."""
    try_exec = _try_exec(exec_cmd)
    lines = [
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.4",
        f"Name={APP_NAME}",
        "GenericName=Local AI Chat",
        "Comment=Chat with language models that run entirely on your own computer",
        f"Icon={ICON_NAME}",
        f"Exec={_value_escape(exec_cmd)} %F",
        f"TryExec={_value_escape(try_exec)}" if try_exec else "",
        "Terminal=false",
        f"Categories={CATEGORIES}",
        f"MimeType={MIME_TYPE};",
        "Keywords=LLM;GGUF;llama;chat;AI;offline;",
        f"StartupWMClass={STARTUP_WM_CLASS}",
        "StartupNotify=true",
    ]
    return "\n".join(line for line in lines if line) + "\n"


def _try_exec(exec_cmd: str) -> str | None:
    """The program part of ``exec_cmd`` when it is a plain absolute path (menus hide the
    entry once it is gone, e.g. after the app folder was deleted without uninstalling)."""
    first = exec_cmd.split(" ", 1)[0]
    if first.startswith("/") and "%" not in first and not (_RESERVED & set(first)):
        return first
    return None


def mime_package_text() -> str:
    """shared-mime-info package: ``*.gguf`` and files starting with ``GGUF`` (model files)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<mime-info xmlns="http://www.freedesktop.org/standards/shared-mime-info">
  <mime-type type="{MIME_TYPE}">
    <comment>GGUF language model</comment>
    <acronym>GGUF</acronym>
    <expanded-acronym>GPT-Generated Unified Format</expanded-acronym>
    <generic-icon name="application-x-generic"/>
    <magic priority="50">
      <match type="string" offset="0" value="GGUF"/>
    </magic>
    <glob pattern="*.gguf"/>
  </mime-type>
</mime-info>
"""


# -- install / uninstall -------------------------------------------------------------------


def _icon_sources() -> dict[str, Path]:
    res = resources_dir()
    sources = {"svg": res / "hearth.svg"}
    for n in ICON_SIZES:
        sources[f"png{n}"] = res / "icons" / "hicolor" / f"{n}x{n}" / "apps" / "hearth.png"
    return sources


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write through a temporary file so a menu scanner never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(mode)
    os.replace(tmp, path)


def _refresh_caches(base: Path) -> None:
    """Tell the desktop about the change; every tool is optional (desktops rescan anyway)."""
    commands = [
        ["update-desktop-database", "-q", str(base / "applications")],
        ["update-mime-database", str(base / "mime")],
        # -t: the user's hicolor folder has no index.theme of its own.
        ["gtk-update-icon-cache", "-q", "-t", "-f", str(base / "icons" / "hicolor")],
    ]
    for command in commands:
        if shutil.which(command[0]) is None or not Path(command[-1]).is_dir():
            continue
        try:
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError):
            pass


def install_desktop_entry(exec_cmd: str | None = None) -> list[Path]:
    """Install the menu entry, icons and the GGUF MIME type for the current user.

    ``exec_cmd`` is the already-quoted command line without ``%F`` (default:
    :func:`default_exec_command`). Installing again overwrites, so it also repairs an
    entry that points at a moved app folder. Returns the files written.
    Raises ``OSError`` when the data folder cannot be written.
    """
    base = xdg_data_home()
    targets = _targets(base)
    written: list[Path] = []
    for key, source in _icon_sources().items():
        if source.is_file():  # a checkout without generated PNGs still gets the SVG
            targets[key].parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, targets[key])
            targets[key].chmod(0o644)
            written.append(targets[key])
    _write(targets["mime"], mime_package_text())
    written.append(targets["mime"])
    _write(targets["desktop"], desktop_entry_text(exec_cmd or default_exec_command()))
    written.append(targets["desktop"])
    _refresh_caches(base)
    return written


def uninstall_desktop_entry() -> list[Path]:
    """Remove everything :func:`install_desktop_entry` wrote; returns the files removed."""
    base = xdg_data_home()
    removed: list[Path] = []
    for path in _targets(base).values():
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    _refresh_caches(base)
    return removed


def handle_cli(args: argparse.Namespace) -> int | None:
    """Run ``--install-desktop-entry`` / ``--uninstall-desktop-entry``; ``None`` if neither
    was given (the app starts normally), else the exit code. Call after ``--data-dir`` is
    applied so a portable install's entry carries its data folder."""
    install = getattr(args, "install_desktop_entry", False)
    uninstall = getattr(args, "uninstall_desktop_entry", False)
    if not (install or uninstall):
        return None
    if not sys.platform.startswith("linux") and "bsd" not in sys.platform:
        print(
            "Desktop entries are a Linux (freedesktop.org) feature; the Windows installer and "
            "the macOS app bundle register Hearth themselves.",
            file=sys.stderr,
        )
        return 2
    try:
        if uninstall:
            removed = uninstall_desktop_entry()
            print(
                f"Removed {len(removed)} file(s):"
                if removed
                else "Nothing to remove: Hearth's menu entry was not installed."
            )
            for path in removed:
                print(f"  {path}")
        else:
            written = install_desktop_entry()
            print(f"{APP_NAME} is now in your applications menu, and .gguf files open with it:")
            for path in written:
                print(f"  {path}")
    except OSError as exc:
        print(
            f"Could not update the desktop entry: {exc.strerror or exc} ({exc.filename or xdg_data_home()})",
            file=sys.stderr,
        )
        return 1
    return 0
