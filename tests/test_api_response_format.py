"""The local API's ``response_format`` (issue 16, structured output): OpenAI's json_object and
json_schema forms become the same settings the window uses, an unusable schema is a 400, and
a json_schema request through the real engine gets JSON that matches its schema."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import jsonschema
import openai
import pytest
from fake_gateway import FakeGateway

from app.server.runner import ApiServer

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
ASK = [{"role": "user", "content": "Reply with a JSON object whose field a is the number 42."}]


@pytest.fixture
def serve() -> Iterator[Callable[..., ApiServer]]:
    servers: list[ApiServer] = []

    def start(gateway: object) -> ApiServer:
        server = ApiServer(gateway, port=0)  # type: ignore[arg-type]
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _client(server: ApiServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=60)


def test_response_formats_become_the_settings_the_window_uses(serve) -> None:
    gateway = FakeGateway()
    api = _client(serve(gateway))
    api.chat.completions.create(
        model="smol-chat",
        messages=ASK,
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA, "strict": True}},
    )
    settings = gateway.requests[-1].settings
    assert settings["response_format"] == "json_schema" and json.loads(settings["json_schema"]) == SCHEMA
    api.chat.completions.create(model="smol-chat", messages=ASK, response_format={"type": "json_object"})
    assert gateway.requests[-1].settings["response_format"] == "json"
    api.chat.completions.create(model="smol-chat", messages=ASK, response_format={"type": "text"})
    assert gateway.requests[-1].settings["response_format"] == "text"
    # llama-cpp-python's own form: json_object with a schema
    api.chat.completions.create(
        model="smol-chat",
        messages=ASK,
        extra_body={"response_format": {"type": "json_object", "schema": SCHEMA}},
    )
    assert gateway.requests[-1].settings["response_format"] == "json_schema"


@pytest.mark.parametrize(
    ("response_format", "words"),
    [
        (
            {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "objekt"}}},
            "not a valid JSON Schema",
        ),
        ({"type": "json_schema", "json_schema": {"name": "a"}}, "schema"),
        ({"type": "json_schema", "json_schema": {"schema": {"$ref": "https://example.com/s"}}}, "never fetches"),
        ({"type": "xml"}, "json_schema"),
    ],
)
def test_an_unusable_response_format_is_refused_before_the_engine(serve, response_format, words) -> None:
    gateway = FakeGateway()
    api = _client(serve(gateway))
    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(model="smol-chat", messages=ASK, extra_body={"response_format": response_format})
    assert words in caught.value.body["message"] and caught.value.body["param"] == "response_format"
    assert gateway.requests == []


@pytest.mark.model
def test_a_json_schema_request_through_the_real_engine_matches_its_schema(qtbot, serve, demo_model) -> None:
    from PySide6.QtCore import QObject, QThread, Signal

    from app.engine import protocol as p
    from app.engine.service import CatalogEntry, EngineService

    class Driver(QObject):
        load = Signal(object)
        shutdown = Signal()
        loaded = Signal(object)

    thread = QThread()
    service = EngineService(flush_interval=0.04)
    service.moveToThread(thread)
    driver = Driver()
    driver.load.connect(service.load)
    driver.shutdown.connect(service.shutdown)
    service.loaded.connect(driver.loaded)
    thread.start()
    try:
        with qtbot.waitSignal(driver.loaded, timeout=120_000):
            driver.load.emit(p.Load(str(demo_model), n_ctx=1024, n_threads=2))
        service.set_catalog([CatalogEntry("smol", "SmolLM2", str(demo_model))])
        api = _client(serve(service))
        results: dict[str, object] = {}

        def use() -> None:
            try:
                reply = api.chat.completions.create(
                    model="smol",
                    messages=ASK,
                    max_tokens=30,
                    temperature=0.8,
                    seed=3,
                    response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}},
                )
                results["text"] = reply.choices[0].message.content
            except BaseException as exc:  # reported on the test's thread
                results["error"] = exc

        user = threading.Thread(target=use)
        user.start()
        qtbot.waitUntil(lambda: not user.is_alive(), timeout=180_000)
        if "error" in results:
            raise results["error"]  # type: ignore[misc]
        jsonschema.validate(json.loads(str(results["text"])), SCHEMA)
    finally:
        driver.shutdown.emit()
        assert thread.wait(10_000)
