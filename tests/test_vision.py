"""Vision models (issue 16, point 4): images through llama.cpp's real multimodal path.

The tiny random text model (tests/tiny_model.py) is paired with a tiny random projector
(tests/tiny_projector.py) that libmtmd loads like a real LLaVA mmproj; its replies are
nonsense, but they show that each image's embeddings reach the model.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from tiny_projector import IMAGE_TOKENS, png, write_tiny_projector

from app.core.settings import SamplingSettings
from app.engine import protocol as p
from app.engine.client import EngineClient, EngineError
from app.engine.vision import MEDIA_MARKER, NO_VISION, decode_data_url, with_markers

SETTINGS = SamplingSettings(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=5, max_tokens=12, stop=[]).to_dict()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def image_message(text: str, *images: bytes) -> dict[str, object]:
    parts: list[dict[str, object]] = [{"type": "image_url", "image_url": {"url": data_url(i)}} for i in images]
    return {"role": "user", "content": [*parts, {"type": "text", "text": text}]}


@pytest.fixture(scope="module")
def projector(tmp_path_factory) -> Path:
    return write_tiny_projector(tmp_path_factory.mktemp("mmproj") / "mmproj-tiny-f32.gguf")


@pytest.fixture
def client():
    c = EngineClient()
    c.start()
    yield c
    c.stop()


def _reply(client: EngineClient, messages: list) -> tuple[str, p.Done]:
    events = [e for e in client.chat(p.Chat(messages, SETTINGS)) if e is not None]
    done = events[-1]
    assert isinstance(done, p.Done)
    return "".join(e.text for e in events if isinstance(e, p.Delta)), done


def test_images_reach_the_model_through_libmtmd(client: EngineClient, tiny_model: Path, projector: Path) -> None:
    info = client.load(p.Load(str(tiny_model), n_ctx=512, n_threads=1, mmproj_path=str(projector)))
    assert info.vision and not info.vision_notice
    text_only = [{"role": "user", "content": "what is this?"}]
    one = [image_message("what is this?", png(40, 30, seed=1))]
    two = [image_message("what is this?", png(40, 30, seed=1), png(20, 50, seed=2))]
    # each image takes the projector's tokens in the prompt (counted, and as the reply says)
    base = client.count_prompt(text_only)
    assert client.count_prompt(one) == base + IMAGE_TOKENS + 1  # + the newline after the marker
    assert client.count_prompt(two) == base + 2 * (IMAGE_TOKENS + 1)
    reply_a, done = _reply(client, one)
    assert done.stats["prompt_tokens"] == base + IMAGE_TOKENS + 1
    # same seed, same text: only the image differs, and so does the reply
    reply_a_again, _ = _reply(client, one)
    reply_b, _ = _reply(client, [image_message("what is this?", png(40, 30, seed=9))])
    assert reply_a == reply_a_again
    assert reply_a != reply_b
    # a text-only chat afterwards never reuses the image's place in the cache
    plain, _ = _reply(client, text_only)
    assert plain == _reply(client, text_only)[0]


def test_a_text_only_model_says_it_cannot_see(client: EngineClient, tiny_model: Path) -> None:
    info = client.load(p.Load(str(tiny_model), n_ctx=256, n_threads=1))
    assert not info.vision
    deltas = []
    with pytest.raises(EngineError) as err:
        deltas = [e for e in client.chat(p.Chat([image_message("look", png(8, 8, 1))], SETTINGS))]
    assert str(err.value) == NO_VISION and not deltas


def test_a_broken_projector_leaves_the_model_for_text(client: EngineClient, tiny_model: Path, tmp_path: Path) -> None:
    junk = tmp_path / "mmproj-junk.gguf"
    junk.write_bytes(b"GGUF" + b"\0" * 64)
    info = client.load(p.Load(str(tiny_model), n_ctx=256, n_threads=1, mmproj_path=str(junk)))
    assert not info.vision and "mmproj-junk.gguf" in info.vision_notice
    assert _reply(client, [{"role": "user", "content": "hi"}])[1].reason in ("stop", "length")


def test_unreadable_image_is_a_plain_error(client: EngineClient, tiny_model: Path, projector: Path) -> None:
    client.load(p.Load(str(tiny_model), n_ctx=256, n_threads=1, mmproj_path=str(projector)))
    with pytest.raises(EngineError, match="could not be read"):
        list(client.chat(p.Chat([image_message("x", b"not an image")], SETTINGS)))
    assert _reply(client, [image_message("x", png(8, 8, 3))])[1].reason in ("stop", "length")


def test_markers_and_data_urls() -> None:
    messages, images = with_markers(
        [
            {"role": "system", "content": "be brief"},
            image_message(f"a {MEDIA_MARKER} b", b"\x01\x02"),
        ]
    )
    assert messages[0] == {"role": "system", "content": "be brief"}
    assert messages[1]["content"] == f"{MEDIA_MARKER}\na  b"  # the person's text cannot add a marker
    assert images == [b"\x01\x02"]
    with pytest.raises(ValueError, match="data: URLs"):
        decode_data_url("https://example.com/cat.png")
    with pytest.raises(ValueError, match="base64"):
        decode_data_url("data:image/png;base64,@@@")


def test_images_export_import_and_store(tmp_path: Path) -> None:
    from app.core import export
    from app.core.conversation import Conversation, Message, Role
    from app.core.store import ConversationStore
    from app.core.vision import Attachment

    picture = Attachment.from_bytes(png(6, 4, 2), "dot.png")
    conv = Conversation(
        title="pic", messages=[Message(Role.USER, "look", images=[picture]), Message(Role.ASSISTANT, "ok")]
    )
    conv.link()
    # HTML: the image inline, so the page stays one file
    assert picture.data_url() in export.to_html(conv)
    # JSON: as data, and back
    [back] = export.from_json(export.to_json([conv]))
    assert back.messages[0].images == [picture] and back.messages[1].images == []
    # an image that is not one is refused with the file, nothing imported
    bad = export.to_json([conv]).replace(picture.data_url().split(",", 1)[1], base64.b64encode(b"<svg/>").decode())
    with pytest.raises(export.ImportFormatError, match="image 1 is not a PNG"):
        export.from_json(bad)
    # the store keeps the bytes with the message, and drops them with it
    store = ConversationStore(tmp_path / "c.sqlite3")
    store.import_conversations([conv])
    store.flush()
    assert store.load(conv.id).messages[0].images == [picture]
    store.delete_message(conv.messages[0].id)
    store.flush()
    assert store._read(lambda c: c.execute("SELECT count(*) FROM message_images").fetchone()[0]) == 0
    store.close()


def test_a_remote_estimate_counts_an_image_not_its_base64() -> None:
    from app.engine.remote import IMAGE_TOKENS_ESTIMATE, estimate_tokens

    text = [{"role": "user", "content": "what is this?"}]
    with_image = [image_message("what is this?", png(400, 300, 1))]
    assert estimate_tokens(with_image) == estimate_tokens(text) + IMAGE_TOKENS_ESTIMATE
