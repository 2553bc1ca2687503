"""The local API's image_url content parts (issue 16, point 4): data: URLs only, with a size
limit, in OpenAI's error JSON otherwise; accepted parts reach the engine job in order."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx2
import pytest
from fake_gateway import FakeGateway
from tiny_projector import png

from app.server import schemas
from app.server.runner import ApiServer


@pytest.fixture
def server() -> Iterator[tuple[ApiServer, FakeGateway]]:
    gateway = FakeGateway()
    s = ApiServer(gateway, port=0)  # type: ignore[arg-type]
    s.start()
    yield s, gateway
    s.stop()


def _url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _chat(url: str, text: str = "what is this?") -> dict:
    content = [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]
    return {"messages": [{"role": "user", "content": content}]}


def test_image_parts_reach_the_job_in_order(server) -> None:
    s, gateway = server
    picture = png(8, 8, 1)
    response = httpx2.post(s.base_url + "/chat/completions", json=_chat(_url(picture, "image/whatever")))
    assert response.status_code == 200, response.text
    [message] = gateway.requests[-1].messages
    text, image = message["content"]
    assert text == {"type": "text", "text": "what is this?"}
    assert image["image_url"]["url"] == _url(picture)  # the type is the image's own, not the client's claim
    # text-only content parts still become a plain string
    plain = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}
    assert httpx2.post(s.base_url + "/chat/completions", json=plain).status_code == 200
    assert gateway.requests[-1].messages[0]["content"] == "ab"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://example.com/cat.png", "unsupported_image_url"),
        ("data:image/png;base64,@@@@", "invalid_image"),
        (_url(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"), "invalid_image"),
    ],
)
def test_unusable_images_are_400_before_the_engine(server, url: str, code: str) -> None:
    s, gateway = server
    before = len(gateway.requests)
    response = httpx2.post(s.base_url + "/chat/completions", json=_chat(url))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code and error["param"] == "messages[0].content" and "content[1]" in error["message"]
    assert len(gateway.requests) == before


def test_an_image_over_the_limit_is_413() -> None:
    limits = schemas.Limits(max_image_bytes=1000)
    with pytest.raises(schemas.ApiError) as err:
        schemas.messages(
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": _url(png(64, 64, 2))}}]}], limits
        )
    assert err.value.status == 413 and err.value.body()["error"]["code"] == "image_too_large"
    small = schemas.messages(
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": _url(png(4, 4, 2))}}]}], limits
    )
    assert small[0]["content"][0]["type"] == "image_url"


def test_through_the_real_engine_an_image_is_seen_or_refused(qtbot, tiny_model, tmp_path) -> None:
    import threading

    import openai
    from PySide6.QtCore import QObject, QThread, Signal
    from tiny_projector import IMAGE_TOKENS, write_tiny_projector

    from app.engine import protocol as p
    from app.engine.service import CatalogEntry, EngineService

    class Driver(QObject):
        load = Signal(object)
        shutdown = Signal()
        loaded = Signal(object)

    projector = write_tiny_projector(tmp_path / "mmproj-tiny.gguf")
    thread = QThread()
    service = EngineService(flush_interval=0.04)
    service.moveToThread(thread)
    driver = Driver()
    driver.load.connect(service.load)
    driver.shutdown.connect(service.shutdown)
    service.loaded.connect(driver.loaded)
    thread.start()
    server = ApiServer(service, port=0)  # type: ignore[arg-type]
    try:
        server.start()
        api = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=60)
        service.set_catalog([CatalogEntry("tiny", "Tiny", str(tiny_model))])
        picture = _chat(_url(png(40, 30, 5)))["messages"]

        def ask(messages: list | None = None) -> dict:
            out: dict = {}

            def run() -> None:
                try:
                    out["reply"] = api.chat.completions.create(
                        model="tiny", messages=messages or picture, max_tokens=8, seed=1
                    )
                except BaseException as exc:
                    out["error"] = exc

            user = threading.Thread(target=run)
            user.start()
            qtbot.waitUntil(lambda: not user.is_alive(), timeout=60_000)
            return out

        with qtbot.waitSignal(driver.loaded, timeout=60_000):
            driver.load.emit(p.Load(str(tiny_model), n_ctx=512, n_threads=1))
        refused = ask()["error"]
        assert isinstance(refused, openai.BadRequestError) and "can't see images" in refused.body["message"]

        with qtbot.waitSignal(driver.loaded, timeout=60_000):
            driver.load.emit(p.Load(str(tiny_model), n_ctx=512, n_threads=1, mmproj_path=str(projector)))
        seen = ask()
        assert "error" not in seen, seen
        plain = ask([{"role": "user", "content": "what is this?"}])["reply"]
        # the image's tokens (and the newline after its marker) are in the prompt the engine read
        assert seen["reply"].usage.prompt_tokens == plain.usage.prompt_tokens + IMAGE_TOKENS + 1
    finally:
        server.stop()
        driver.shutdown.emit()
        assert thread.wait(10_000)
