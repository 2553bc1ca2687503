"""Vision models in the window (issue 16, point 4): attach an image, see it, send it, keep it.

The demo model (SmolLM2 135M, embedding size 576) is paired by hand (Manage models >
Defaults, here through the library) with a tiny random projector written by the test for
that size (tests/tiny_projector.py); libmtmd loads it like a real mmproj.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData
from PySide6.QtGui import QImage
from tiny_projector import IMAGE_TOKENS, png, write_tiny_projector

from app.core.conversation import MessageState, Role
from app.core.library import ModelDefaults
from app.core.store import ConversationStore
from app.engine.vision import NO_VISION
from app.session import EngineState


def test_text_only_model_refuses_an_image_and_keeps_everything(qtbot, open_main_window) -> None:
    window = open_main_window()
    session = window.session
    window.image_tray.add_bytes(png(24, 24, 1), "cat.png")
    assert window.image_tray.isVisibleTo(window) and len(window.image_tray.attachments()) == 1
    window.input.setPlainText("what is in this picture?")
    window.send_current()
    assert window.notice_bar.label.text() == NO_VISION
    # nothing the person gave is lost, and nothing was sent
    assert window.input.toPlainText() == "what is in this picture?"
    assert len(window.image_tray.attachments()) == 1
    assert session.conversation.messages == []


def test_pasted_image_goes_to_the_tray_not_the_text(qtbot, open_main_window) -> None:
    window = open_main_window()
    mime = QMimeData()
    image = QImage(10, 10, QImage.Format.Format_RGB32)
    image.fill(0x336699)
    mime.setImageData(image)
    window.input.insertFromMimeData(mime)
    assert window.input.toPlainText() == ""
    [pasted] = window.image_tray.attachments()
    assert pasted.mime == "image/png" and pasted.name == "pasted image"
    window.image_tray.findChild(type(window.image_tool), "imageThumb0").click()  # pressing it removes it
    assert window.image_tray.attachments() == [] and not window.image_tray.isVisibleTo(window)


def test_vision_model_answers_and_the_image_is_stored(qtbot, open_main_window, tmp_path: Path) -> None:
    window = open_main_window()
    session = window.session
    model = session.current_model
    projector = write_tiny_projector(tmp_path / "mmproj-smollm2-tiny.gguf", projection_dim=576)
    session.library.set_defaults(model.path, ModelDefaults(mmproj=str(projector)))
    session.select_model(model.path)
    qtbot.waitUntil(lambda: session.state is EngineState.READY and session.loaded_info.vision, timeout=120_000)

    # the context meter counts the image while it waits in the composer
    window.input.setPlainText("describe")
    qtbot.waitUntil(lambda: session.context_used > 0, timeout=20_000)
    text_only = session.context_used
    window.image_tray.add_bytes(png(40, 30, 7), "photo.png")
    qtbot.waitUntil(lambda: session.context_used >= text_only + IMAGE_TOKENS, timeout=20_000)

    window.send_current()
    assert window.input.toPlainText() == "" and window.image_tray.attachments() == []
    qtbot.waitUntil(
        lambda: session.state is EngineState.READY and len(session.conversation.messages) == 2, timeout=60_000
    )
    question, reply = session.conversation.messages
    assert question.role is Role.USER and [a.name for a in question.images] == ["photo.png"]
    assert reply.state is MessageState.COMPLETE and reply.stats["prompt_tokens"] >= text_only + IMAGE_TOKENS
    # shown as a thumbnail in the chat
    assert any("-image:" + question.id in url for url in _image_urls(window.chat_view.toHtml()))

    # stored with the conversation: a fresh store reads the same bytes back
    session.store.flush()
    again = ConversationStore(session.store.path).load(session.conversation.id)
    assert again.messages[0].images[0].data == png(40, 30, 7)

    # Edit and resend keeps the message's image
    assert session.edit_and_resend(question.id, "describe it again")
    qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=60_000)
    edited = session.conversation.messages[0]
    assert edited.id != question.id and edited.text == "describe it again" and edited.images == question.images


def _image_urls(html: str) -> list[str]:
    import re

    return re.findall(r'<img src="([^"]+)"', html)
