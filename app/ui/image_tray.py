"""The images waiting to go with the next message (vision models): a thumbnail each, which
removes the image when pressed (Delete or Space with the keyboard). Images come from the
Image… button / Chat > Attach image… (Ctrl+Shift+I), a paste into the message box, or a drop
on the window."""

from __future__ import annotations

import os
import threading

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from app.core.vision import MAX_IMAGE_BYTES, Attachment
from app.ui.a11y import named

THUMB = 64

#: What the file picker offers.
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.gif *.bmp *.webp);;All files (*)"


def is_image_file(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")


def thumbnail(data: bytes, size: int = THUMB) -> QPixmap:
    pixmap = QPixmap()
    pixmap.loadFromData(data)
    if pixmap.isNull():
        return pixmap
    return pixmap.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)


def png_bytes(image: QImage) -> bytes:
    """A pasted image, as PNG."""
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")  # type: ignore[call-overload]  # the stubs want bytes; PySide6 wants str
    return bytes(QByteArray(buffer.data()).data())


class ImageTray(QWidget):
    changed = Signal()
    problem = Signal(str)  # a plain sentence: why an image was not added
    _read = Signal(object, str)  # bytes read off the GUI thread, the file's name

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        named(self, "imageTray", "Images to send", "Images that go with your next message; press one to remove it")
        self._images: list[Attachment] = []
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._label = QLabel("")
        self._layout.addWidget(self._label)
        self._layout.addStretch(1)
        self._read.connect(self.add_bytes)  # queued: emitted from the reading thread
        self.hide()

    def attachments(self) -> list[Attachment]:
        return list(self._images)

    def add_bytes(self, data: bytes, name: str = "") -> bool:
        try:
            attachment = Attachment.from_bytes(data, name)
        except ValueError as exc:
            self.problem.emit(str(exc))
            return False
        if thumbnail(data).isNull():
            self.problem.emit(f"{name or 'This image'} could not be read as an image.")
            return False
        self._images.append(attachment)
        self._rebuild()
        return True

    def add_files(self, paths: list[str]) -> threading.Thread:
        """Read the picked or dropped files on a thread of their own (a network share or a
        sleeping disk must not freeze the window); each joins the tray when read."""

        def read() -> None:
            for path in paths:
                name = os.path.basename(path)
                try:
                    if os.path.getsize(path) > MAX_IMAGE_BYTES:
                        self.problem.emit(f"{name} is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB.")
                        continue
                    with open(path, "rb") as f:
                        data = f.read(MAX_IMAGE_BYTES + 1)
                except OSError as exc:
                    self.problem.emit(f"{name} could not be read ({exc.strerror or exc}).")
                    continue
                self._read.emit(data, name)

        thread = threading.Thread(target=read, name="image-read", daemon=True)
        thread.start()
        return thread

    def add_image(self, image: QImage, name: str = "pasted image") -> bool:
        if image.isNull():
            return False
        return self.add_bytes(png_bytes(image), name)

    def remove(self, index: int) -> None:
        if 0 <= index < len(self._images):
            del self._images[index]
            self._rebuild()

    def clear(self) -> None:
        if self._images:
            self._images.clear()
            self._rebuild()

    def _rebuild(self) -> None:
        while self._layout.count() > 2:  # the thumbnails, before the label and the stretch
            item = self._layout.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        for i, image in enumerate(self._images):
            title = image.name or f"image {i + 1}"
            button = QToolButton()
            named(button, f"imageThumb{i}", f"Remove {title}", "Press to remove this image from the message")
            button.setIcon(QIcon(thumbnail(image.data)))
            button.setIconSize(QSize(THUMB, THUMB))
            button.setToolTip(f"{title} — press to remove")
            button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            button.clicked.connect(lambda _checked=False, n=i: self.remove(n))
            self._layout.insertWidget(i, button)
        count = len(self._images)
        self._label.setText(f"{count} image{'s' if count != 1 else ''} will go with your message" if count else "")
        self.setVisible(bool(count))
        self.changed.emit()
