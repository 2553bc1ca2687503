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
