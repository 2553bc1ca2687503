"""Render resources/hearth.svg into the PNG sizes desktops and installers ask for.

Why PNGs at all when we have an SVG: the Windows .ico, the macOS .icns, window managers
that read _NET_WM_ICON, and icon themes without an SVG loader all want bitmaps, and a
16 px icon rendered once (with Qt's own SVG renderer, the one the app uses) looks the same
everywhere instead of depending on each desktop's scaler.

Usage (from the repository root; the generated PNGs are committed)::

    .venv/bin/python packaging/make_icons.py            # writes resources/icons/hicolor/<N>x<N>/apps/hearth.png
    .venv/bin/python packaging/make_icons.py --check    # exit 1 if a committed PNG is missing or stale
    python packaging/make_icons.py --platform-icons packaging/build   # hearth.ico + hearth.icns
                                                        # for the Windows / macOS builds (not committed)
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SVG = ROOT / "resources" / "hearth.svg"
ICONS = ROOT / "resources" / "icons" / "hicolor"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def png_path(size: int, base: Path = ICONS) -> Path:
    """Where the hicolor theme layout (and desktop_entry.py) expects the ``size`` px icon."""
    return base / f"{size}x{size}" / "apps" / "hearth.png"


def render(size: int, svg: Path = SVG):
    """The icon as a ``QImage`` of ``size`` x ``size``, transparent outside the rounded square."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    return image


# How far a committed icon may stand from a fresh render and still count as the same:
# antialiasing on another CPU moves edge pixels by a coverage level or two (up to ~1/16 of
# the range), never the body of the icon. An edited SVG moves whole areas, which fails the
# mean or the share of far-off pixels at once.
EDGE_TOLERANCE = 48  # per channel, out of 255: an edge pixel may differ this much…
FAR_OFF_SHARE = 0.01  # …and at most this share of pixels may differ by more
MEAN_TOLERANCE = 1.0  # mean absolute difference per channel


def images_match(old, new) -> bool:
    """True when ``old`` and ``new`` (QImages) are the same icon up to antialiasing noise."""
    import numpy as np
    from PySide6.QtGui import QImage

    if (old.width(), old.height()) != (new.width(), new.height()):
        return False

    def pixels(image) -> np.ndarray:
        image = image.convertToFormat(QImage.Format.Format_ARGB32)
        width, height = image.width(), image.height()
        raw = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes())
        rows = raw.reshape(height, image.bytesPerLine())[:, : width * 4]
        return rows.reshape(height, width, 4).astype(np.int16)

    diff = np.abs(pixels(old) - pixels(new))
    far_off = np.count_nonzero(diff.max(axis=2) > EDGE_TOLERANCE)
    return bool(diff.mean() <= MEAN_TOLERANCE and far_off <= FAR_OFF_SHARE * old.width() * old.height())


def _png_bytes(size: int) -> bytes:
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    render(size).save(buffer, "PNG")
    buffer.close()
    return bytes(data.data())


def write_ico(path: Path) -> None:
    """A Windows .ico with PNG-compressed images (Windows Vista and later read these).

    Written by hand because Qt's ICO writer stores a single size and Pillow would be a
    build dependency for ~20 lines of struct packing.
    """
    sizes = (16, 24, 32, 48, 64, 128, 256)
    images = [_png_bytes(n) for n in sizes]
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = len(header) + 16 * len(sizes)
    entries = b""
    for n, data in zip(sizes, images):
        # Width/height 0 means 256; no palette; 1 plane; 32 bits per pixel.
        entries += struct.pack("<BBBBHHII", n % 256, n % 256, 0, 0, 1, 32, len(data), offset)
        offset += len(data)
    path.write_bytes(header + entries + b"".join(images))


def write_icns(path: Path) -> None:
    """A macOS .icns with PNG entries (what ``iconutil`` makes from an .iconset)."""
    types = (
        ("icp4", 16),
        ("icp5", 32),
        ("icp6", 64),
        ("ic07", 128),
        ("ic08", 256),
        ("ic09", 512),
        ("ic11", 32),
        ("ic12", 64),
        ("ic13", 256),
        ("ic14", 512),
        ("ic10", 1024),
    )
    chunks = b""
    for kind, n in types:
        data = _png_bytes(n)
        chunks += kind.encode("ascii") + struct.pack(">I", 8 + len(data)) + data
    path.write_bytes(b"icns" + struct.pack(">I", 8 + len(chunks)) + chunks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the committed PNGs match the SVG")
    parser.add_argument(
        "--platform-icons",
        metavar="DIR",
        type=Path,
        help="write DIR/hearth.ico and DIR/hearth.icns (Windows and macOS builds) instead",
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication, QImage

    _app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    if args.platform_icons is not None:
        args.platform_icons.mkdir(parents=True, exist_ok=True)
        write_ico(args.platform_icons / "hearth.ico")
        write_icns(args.platform_icons / "hearth.icns")
        print(f"wrote {args.platform_icons / 'hearth.ico'} and {args.platform_icons / 'hearth.icns'}")
        return 0
    stale = []
    for size in SIZES:
        image = render(size)
        target = png_path(size)
        if args.check:
            # Compare pixels, not bytes (PNG encoders differ between Qt versions), and within
            # a tolerance: Qt's antialiasing differs by a level on edge pixels from one CPU
            # to another, so an exact compare fails on every machine but the one that wrote them.
            old = QImage(str(target))
            if old.isNull() or not images_match(old, image):
                stale.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(target), "PNG"):
            raise SystemExit(f"could not write {target}")
        print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print("stale or missing (run packaging/make_icons.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
