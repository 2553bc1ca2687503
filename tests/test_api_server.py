"""The local OpenAI-compatible API (app/server) against a fake engine gateway: the official
``openai`` client for what clients do, plain httpx2 for what they should not do, and one
end-to-end test through the real engine worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import openai
import pytest
from fake_gateway import FakeGateway

from app.engine.jobs import JobFailed
from app.server.api import RequestLogEntry
from app.server.runner import ApiServer

KEY = "s3cret-key-for-tests"


@pytest.fixture
def serve() -> Iterator[Callable[..., ApiServer]]:
    servers: list[ApiServer] = []

    def start(gateway: FakeGateway | None = None, **kwargs: object) -> ApiServer:
        server = ApiServer(gateway if gateway is not None else FakeGateway(), port=0, **kwargs)  # type: ignore[arg-type]
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def client(server: ApiServer, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=10)


# -- the official client -------------------------------------------------------------------


def test_models_lists_the_library_with_the_loaded_one_marked(serve):
    server = serve()
    models = client(server).models.list()
    assert [m.id for m in models.data] == ["smol-chat", "tiny-base"]
    assert [m.model_extra["loaded"] for m in models.data] == [True, False]
    assert client(server).models.retrieve("tiny-base").id == "tiny-base"


def test_plain_chat_with_usage_and_settings_passed_through(serve):
    gateway = FakeGateway()
    server = serve(gateway)
    reply = client(server).chat.completions.create(
        model="smol-chat",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Again"},
        ],
        temperature=0.2,
        top_p=0.5,
        seed=42,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        max_completion_tokens=100,
        extra_body={"some_unknown_field": {"x": 1}, "top_k": 12},
    )
    assert reply.choices[0].message.content == "Hello, world!"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "smol-chat"
    assert reply.usage.prompt_tokens == 7 and reply.usage.completion_tokens == 4 and reply.usage.total_tokens == 11
    job = gateway.requests[-1]
    assert job.kind == "chat" and job.model == "smol-chat" and job.client.startswith("127.0.0.1:")
    assert job.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Again"},
    ]
    s = job.settings
    assert (s["temperature"], s["top_p"], s["seed"], s["max_tokens"], s["top_k"]) == (0.2, 0.5, 42, 100, 12)
    assert (s["presence_penalty"], s["frequency_penalty"]) == (0.5, -0.5)
    assert s["system_prompt"] == ""  # the messages carry it


def test_streamed_chat_ends_with_done_and_usage(serve):
    gateway = FakeGateway(delay=0.01)
    server = serve(gateway)
    with httpx2.stream(
        "POST",
        server.base_url + "/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "stream": True},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"

    stream = client(server).chat.completions.create(
        model="smol-chat",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello, world!"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert all(c.model == "smol-chat" for c in chunks)


def test_model_left_out_answers_with_the_loaded_one_and_no_folder(serve):
    gateway = FakeGateway()
    server = serve(gateway)
    response = httpx2.post(server.base_url + "/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200
    assert response.json()["model"] == "smol-chat"  # from the answering model's path, without its folder
    assert gateway.requests[-1].model is None
    # no max_tokens: a usable default (the cap), not 16; the engine clamps it to the context
    assert gateway.requests[-1].settings["max_tokens"] == 8192


def test_completions_plain_and_streamed(serve):
    gateway = FakeGateway(reply=["Once", " upon", " a", " time"])
    server = serve(gateway)
    plain = client(server).completions.create(model="tiny-base", prompt="Tell me", max_tokens=3, seed=1)
    assert plain.choices[0].text == "Once upon a" and plain.choices[0].finish_reason == "length"
    assert plain.object == "text_completion" and plain.usage.completion_tokens == 3
    job = gateway.requests[-1]
    assert job.kind == "complete" and job.prompt == "Tell me" and job.settings["max_tokens"] == 3
    streamed = list(client(server).completions.create(model="tiny-base", prompt="Tell me", stream=True))
    assert "".join(c.choices[0].text for c in streamed) == "Once upon a time"


def test_stop_sequences_string_and_list(serve):
    gateway = FakeGateway(reply=["one", " two", " three", " four"])
    server = serve(gateway)
    api = client(server)
    reply = api.chat.completions.create(
        model="smol-chat", messages=[{"role": "user", "content": "count"}], stop="three"
    )
    assert reply.choices[0].message.content == "one two "
    assert gateway.requests[-1].settings["stop"] == ["three"]
    api.completions.create(model="tiny-base", prompt="count", stop=["\n\n", "four"])
    assert gateway.requests[-1].settings["stop"] == ["\n\n", "four"]


def test_embeddings_float_and_base64_name_the_embedding_model(serve):
    gateway = FakeGateway()
    server = serve(gateway)
    api = client(server)
    one = api.embeddings.create(model="smol-chat", input="hello world")  # the client asks for base64
    assert one.data[0].embedding == [11.0, 0.5, -0.25, 1.0]
    assert one.model == "nomic-embed.gguf"  # the model that embedded, without its folder
    many = api.embeddings.create(model="smol-chat", input=["a", "bb"], encoding_format="float")
    assert [d.embedding[0] for d in many.data] == [1.0, 2.0] and [d.index for d in many.data] == [0, 1]
    assert gateway.requests[-1].kind == "embed" and gateway.requests[-1].texts == ["a", "bb"]
    assert many.usage.total_tokens == 2


# -- errors ----------------------------------------------------------------------------------


def test_unknown_model_is_404_with_the_list(serve):
    server = serve()
    with pytest.raises(openai.NotFoundError) as caught:
        client(server).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    error = caught.value.body
    assert caught.value.status_code == 404 and error["code"] == "model_not_found" and error["param"] == "model"
    assert "smol-chat" in error["message"] and "tiny-base" in error["message"]


def test_queue_full_is_429_with_retry_after(serve):
    server = serve(FakeGateway(queue_full=2.5))
    with pytest.raises(openai.RateLimitError) as caught:
        client(server).chat.completions.create(model="smol-chat", messages=[{"role": "user", "content": "x"}])
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.body["type"] == "rate_limit_error"


def test_engine_failures_keep_paths_and_internals_out(serve):
    gateway = FakeGateway(fail=JobFailed("Generation failed: GGML_ASSERT at /home/me/llama.cpp/ggml.c:123", 500))
    server = serve(gateway)
    response = httpx2.post(server.base_url + "/completions", json={"prompt": "x"})
    assert response.status_code == 500
    assert "GGML" not in response.text and "/home" not in response.text
    gateway.fail = JobFailed("This message is longer than the model's context (5,000 of 4,096 tokens).", 400)
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).chat.completions.create(model="smol-chat", messages=[{"role": "user", "content": "x"}])
    assert "longer than the model's context" in caught.value.body["message"]
    gateway.fail = JobFailed("Could not load /srv/models/secret/big.gguf: not a GGUF file", 400)
    response = httpx2.post(server.base_url + "/completions", json={"prompt": "x", "stream": True})
    assert response.status_code == 400 and "big.gguf" in response.text and "/srv" not in response.text


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"", None),
        (b"[1, 2]", None),
        (b'"just a string"', None),
        (b"\xff\xfe", None),
        (b"[" * 100_000 + b"]" * 100_000, None),
        (b'{"messages": "hi"}', "messages"),
        (b'{"messages": []}', "messages"),
        (b'{"messages": [{"role": "wizard", "content": "x"}]}', "messages[0].role"),
        (b'{"messages": [{"role": "tool", "content": "x"}]}', "messages[0].role"),
        (b'{"messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
        (b'{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}', "messages[0].content"),
        (b'{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', "temperature"),
        (b'{"messages": [{"role": "user", "content": "x"}], "temperature": 9}', "temperature"),
        (b'{"messages": [{"role": "user", "content": "x"}], "top_p": 0}', "top_p"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}', "max_tokens"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5}', "max_tokens"),
        (b'{"messages": [{"role": "user", "content": "x"}], "seed": -1}', "seed"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stop": 3}', "stop"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream"),
        (b'{"messages": [{"role": "user", "content": "x"}], "n": 3}', "n"),
        (b'{"messages": [{"role": "user", "content": "x"}], "model": 7}', "model"),
        (b'{"messages": [{"role": "user", "content": "x"}], "presence_penalty": NaN}', "presence_penalty"),
    ],
)
def test_malformed_requests_are_400_in_openai_shape(serve, body, param):
    server = serve()
    response = httpx2.post(
        server.base_url + "/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/completions", {"prompt": ["a", "b"]}),
        ("/completions", {"prompt": None}),
        ("/embeddings", {"input": []}),
        ("/embeddings", {"input": [[1, 2, 3]]}),
        ("/embeddings", {"input": "x", "encoding_format": "int8"}),
    ],
)
def test_malformed_completion_and_embedding_requests_are_400(serve, path, body):
    server = serve()
    response = httpx2.post(server.base_url + path, json=body)
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


def test_limits_body_messages_and_max_tokens(serve):
    gateway = FakeGateway()
    server = serve(gateway, max_body=10_000, max_messages=3, max_tokens_cap=50)
    big = {"messages": [{"role": "user", "content": "x" * 20_000}]}
    response = httpx2.post(server.base_url + "/chat/completions", json=big)
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        yield b'{"prompt": "'
        for _ in range(20):
            yield b"y" * 1000
        yield b'"}'

    response = httpx2.post(server.base_url + "/completions", content=chunks())
    assert response.status_code == 413
    many = {"messages": [{"role": "user", "content": "x"}] * 4}
    response = httpx2.post(server.base_url + "/chat/completions", json=many)
    assert response.status_code == 400 and "at most 3" in response.json()["error"]["message"]
    response = httpx2.post(server.base_url + "/completions", json={"prompt": "x", "max_tokens": 10_000})
    assert response.status_code == 200 and gateway.requests[-1].settings["max_tokens"] == 50  # lowered to the cap


def test_unknown_paths_and_methods_answer_in_openai_shape(serve):
    server = serve()
    response = httpx2.get(server.base_url + "/nothing-here")
    assert response.status_code == 404 and "error" in response.json()
    response = httpx2.get(server.base_url + "/chat/completions")
    assert response.status_code == 405 and "error" in response.json()


# -- auth and CORS ---------------------------------------------------------------------------


def test_api_key_on_and_off(serve):
    open_server = serve()
    assert httpx2.get(open_server.base_url + "/models").status_code == 200

    server = serve(api_key=KEY)
    assert httpx2.get(server.base_url + "/models").status_code == 401
    wrong = httpx2.get(server.base_url + "/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert KEY not in wrong.text
    right = httpx2.get(server.base_url + "/models", headers={"Authorization": f"Bearer {KEY}"})
    assert right.status_code == 200
    with pytest.raises(openai.AuthenticationError):
        client(server, "wrong").models.list()
    assert (
        client(server, KEY)
        .chat.completions.create(model="smol-chat", messages=[{"role": "user", "content": "x"}])
        .choices[0]
        .message.content
    )
    # a POST without the key is refused before its body is read
    assert httpx2.post(server.base_url + "/completions", json={"prompt": "x"}).status_code == 401


def test_cors_none_by_default_and_preflight_works_with_a_key(serve):
    plain = serve()
    response = httpx2.options(
        plain.base_url + "/chat/completions",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in response.headers
    # a web page's request is refused outright, not only hidden from it by the browser
    refused = httpx2.post(plain.base_url + "/completions", json={"prompt": "x"}, headers={"Origin": "http://evil.test"})
    assert refused.status_code == 403

    server = serve(api_key=KEY, cors_origins=["http://localhost:3000"])
    preflight = httpx2.options(
        server.base_url + "/chat/completions",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    actual = httpx2.post(
        server.base_url + "/chat/completions",
        json={"messages": [{"role": "user", "content": "x"}]},
        headers={"Origin": "http://localhost:3000", "Authorization": f"Bearer {KEY}"},
    )
    assert actual.status_code == 200 and actual.headers["access-control-allow-origin"] == "http://localhost:3000"
    denied = httpx2.post(
        server.base_url + "/chat/completions",
        json={"messages": [{"role": "user", "content": "x"}]},
        headers={"Origin": "http://localhost:3000"},
    )
    # the browser can read the 401 (CORS headers on errors too), so the page can say why
    assert denied.status_code == 401 and denied.headers["access-control-allow-origin"] == "http://localhost:3000"


# -- concurrency, disconnects, the log -------------------------------------------------------


def test_two_clients_at_once(serve):
    gateway = FakeGateway(reply=[f"w{i} " for i in range(10)], delay=0.02)
    server = serve(gateway)
    results: dict[int, str] = {}
    times: dict[int, tuple[float, float]] = {}

    def ask(i: int) -> None:
        start = time.monotonic()
        stream = client(server).chat.completions.create(
            model="smol-chat", messages=[{"role": "user", "content": str(i)}], stream=True
        )
        results[i] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        times[i] = (start, time.monotonic())

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {0: "".join(gateway.reply), 1: "".join(gateway.reply)}
    assert max(s for s, _ in times.values()) < min(e for _, e in times.values())  # they overlapped


def test_client_that_drops_mid_stream_cancels_its_job_at_once(serve):
    gateway = FakeGateway(reply=[f"t{i} " for i in range(1000)], delay=0.01)
    entries: list[RequestLogEntry] = []
    server = serve(gateway, on_request=entries.append)
    with httpx2.Client(timeout=5) as http:
        with http.stream(
            "POST",
            server.base_url + "/chat/completions",
            json={"model": "smol-chat", "messages": [{"role": "user", "content": "go"}], "stream": True},
        ) as response:
            for line in response.iter_lines():
                if '"t2 "' in line:
                    break
            dropped_at = time.monotonic()
    job = gateway.jobs[-1]
    deadline = time.monotonic() + 2
    while job.id not in gateway.cancel_seen and time.monotonic() < deadline:
        time.sleep(0.002)
    assert job.id in gateway.cancel_seen
    # long before the reply's end (1000 pieces 10 ms apart: 10 s); generous for slow machines
    assert gateway.cancel_seen[job.id] - dropped_at < 5
    started = time.monotonic()
    gateway.reply, gateway.delay = ["next"], 0.0
    assert client(server).completions.create(model="tiny-base", prompt="x").choices[0].text == "next"
    assert time.monotonic() - started < 5  # not kept behind the dropped reply
    deadline = time.monotonic() + 2
    while len(entries) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert entries[0].status == 499 and entries[0].endpoint == "/v1/chat/completions" and entries[0].tokens >= 2
    assert entries[1].status == 200 and entries[1].model == "tiny-base"


def test_client_that_leaves_while_queued_or_waiting_for_a_whole_reply_cancels(serve):
    hold = threading.Event()
    gateway = FakeGateway(hold=hold)
    server = serve(gateway)
    for stream in (True, False):
        with pytest.raises(httpx2.TimeoutException):
            httpx2.post(
                server.base_url + "/chat/completions",
                json={"messages": [{"role": "user", "content": "x"}], "stream": stream},
                timeout=0.3,
            )
        job = gateway.jobs[-1]
        deadline = time.monotonic() + 2
        while job.id not in gateway.cancel_seen and time.monotonic() < deadline:
            time.sleep(0.005)
        assert job.id in gateway.cancel_seen


def test_a_stream_waiting_for_the_engine_gets_keep_alive_comments(serve, monkeypatch):
    import app.server.api

    monkeypatch.setattr(app.server.api, "PING_SECONDS", 0.1)
    gateway = FakeGateway(reply=["a", "b"], delay=0.35)
    server = serve(gateway)
    with httpx2.stream(
        "POST",
        server.base_url + "/chat/completions",
        json={"messages": [{"role": "user", "content": "x"}], "stream": True},
        timeout=5,
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert ": ping" in lines and lines[-1] == "data: [DONE]"
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events) == "ab"


def test_request_log_entries(serve):
    entries: list[RequestLogEntry] = []
    server = serve(on_request=entries.append, api_key=KEY)
    client(server, KEY).chat.completions.create(model="smol-chat", messages=[{"role": "user", "content": "x"}])
    httpx2.post(server.base_url + "/chat/completions", content=b"{", headers={"Authorization": f"Bearer {KEY}"})
    httpx2.get(server.base_url + "/models")
    assert [(e.endpoint, e.status) for e in entries] == [
        ("/v1/chat/completions", 200),
        ("/v1/chat/completions", 400),
        ("/v1/models", 401),
    ]
    first = entries[0]
    assert first.model == "smol-chat" and first.tokens == 4 and first.tokens_per_s == 123.4
    assert first.client.startswith("127.0.0.1:") and "smol-chat" in first.line()


def test_stop_ends_open_streams_and_frees_the_port(serve):
    gateway = FakeGateway(reply=["x"] * 100_000, delay=0.01)
    server = ApiServer(gateway, port=0)
    server.start()
    assert server.running
    got_first = threading.Event()

    def read() -> None:
        try:
            with httpx2.stream(
                "POST",
                server.base_url + "/completions",
                json={"prompt": "x", "stream": True},
                timeout=10,
            ) as response:
                for _ in response.iter_lines():
                    got_first.set()
        except httpx2.HTTPError:
            pass

    reader = threading.Thread(target=read)
    reader.start()
    assert got_first.wait(5)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 8  # bounded (a stuck stream would hold it for good)
    assert not server.running
    reader.join(5)
    assert not reader.is_alive()
    assert gateway.jobs[-1].cancelled.is_set()
    again = ApiServer(gateway, port=server.port)  # the port is free again: the panel can restart
    again.start()
    again.stop()


def test_port_in_use_is_an_error_at_start(serve):
    first = serve()
    with pytest.raises(OSError):
        ApiServer(FakeGateway(), port=first.port).start()


# -- the real engine -------------------------------------------------------------------------


def _service_class():
    try:
        from app.engine.service import EngineService
    except ImportError:
        pytest.skip("app.engine.service.EngineService (the real gateway) is not in this tree yet")
    if not hasattr(EngineService, "submit") or not hasattr(EngineService, "models"):
        pytest.skip("EngineService does not expose submit/models yet")
    return EngineService


@pytest.mark.model
def test_end_to_end_through_the_real_engine_service(qtbot, demo_model):
    from PySide6.QtCore import QObject, QThread, Signal

    from app.engine import protocol as p
    from app.engine.service import CatalogEntry

    service_class = _service_class()

    class Driver(QObject):  # on the test's thread: waits happen where Qt expects them
        load = Signal(object)
        shutdown = Signal()
        loaded = Signal(object)

    thread = QThread()
    service = service_class(flush_interval=0.04)
    service.moveToThread(thread)
    driver = Driver()
    driver.load.connect(service.load)
    driver.shutdown.connect(service.shutdown)
    service.loaded.connect(driver.loaded)
    thread.start()
    server: ApiServer | None = None
    try:
        with qtbot.waitSignal(driver.loaded, timeout=120_000):
            driver.load.emit(p.Load(str(demo_model), n_ctx=1024, n_threads=2))
        service.set_catalog([CatalogEntry("smol", "SmolLM2", str(demo_model))])
        server = ApiServer(service, port=0)
        server.start()
        results: dict[str, object] = {}

        def use() -> None:
            api = client_for(server.base_url, "unused")  # a loaded machine may take a while
            results["models"] = [(m.id, m.model_extra["loaded"]) for m in api.models.list().data]
            started = time.monotonic()  # how long a short completion takes on this machine now
            api.completions.create(model="smol", prompt="The sea is", max_tokens=4, temperature=0)
            results["baseline_seconds"] = time.monotonic() - started
            stream = api.chat.completions.create(
                model="smol",
                messages=[{"role": "user", "content": "Name three colours."}],
                max_tokens=8,
                temperature=0,
                seed=1,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = list(stream)
            results["text"] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            results["usage"] = chunks[-1].usage
            results["finish"] = [c.choices[0].finish_reason for c in chunks if c.choices][-1]

            def drop_after_a_few(extra: dict) -> tuple[int, str]:
                body = {"messages": [{"role": "user", "content": "Write a long story."}], "stream": True, **extra}
                with httpx2.stream("POST", server.base_url + "/chat/completions", json=body, timeout=60) as response:
                    if response.status_code != 200:
                        return response.status_code, response.read().decode()
                    seen = 0
                    for line in response.iter_lines():
                        seen += line.startswith("data: ")
                        if seen >= 4:
                            break  # the client leaves; its job must stop at once
                    return 200, ""

            # no max_tokens: the default must be usable on a 1,024-token context (not refused)
            results["default_status"], results["default_body"] = drop_after_a_few({})
            drop_after_a_few({"max_tokens": 1000})
            started = time.monotonic()
            plain = api.completions.create(model="smol", prompt="The sky is", max_tokens=4, temperature=0)
            results["next_seconds"] = time.monotonic() - started
            results["completion"] = plain.choices[0].text
            embedded = api.embeddings.create(model="smol", input=["a lighthouse", "a storm"])
            results["embedding"] = (len(embedded.data), len(embedded.data[0].embedding), embedded.model)
            with pytest.raises(openai.NotFoundError) as caught:
                api.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
            results["404"] = caught.value.body["message"]

        def run() -> None:
            try:
                use()
            except BaseException as exc:  # reported on the test's thread
                results["error"] = exc

        user = threading.Thread(target=run)
        user.start()
        qtbot.waitUntil(lambda: not user.is_alive(), timeout=180_000)
        if "error" in results:
            raise results["error"]  # type: ignore[misc]
        assert results["models"] == [("smol", True)]
        assert results["text"] and results["finish"] == "length"
        assert results["usage"].completion_tokens >= 7 and results["usage"].prompt_tokens > 5
        # the dropped stream's job was cancelled: the next one is not kept waiting behind a reply
        # written to the end of the context (about 250 times as long as a 4-token one)
        assert results["next_seconds"] < 5 * results["baseline_seconds"] + 1 and results["completion"]
        count, dims, model = results["embedding"]
        assert count == 2 and dims > 16 and model == "smol"
        assert "smol" in results["404"] and str(demo_model.parent) not in results["404"]
        assert results["default_status"] == 200, results["default_body"]
    finally:
        if server is not None:
            server.stop()
        driver.shutdown.emit()
        assert thread.wait(10_000)


@pytest.mark.model
def test_hearth_serve_runs_headless_and_stops_on_sigterm(tmp_path, demo_model):
    _service_class()
    data = tmp_path / "serve-home"
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('widgets imported:', 'PySide6.QtWidgets' in sys.modules, flush=True))\n"
        "from app.application import run\n"
        "sys.exit(run(sys.argv[1:]))\n"
    )
    env = {**os.environ, "HEARTH_TEST_KEY": KEY, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("HEARTH_HOME", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "serve",
            "--data-dir",
            str(data),
            "--port",
            "0",
            "--api-key-env",
            "HEARTH_TEST_KEY",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).parent.parent,
    )
    lines: list[str] = []
    try:
        base_url = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Serving "):
                base_url = line.split(" at ", 1)[1].split()[0]
                break
        assert base_url.startswith("http://127.0.0.1:"), (lines, process.stderr.read() if process.poll() else "")
        api = client_for(base_url, KEY)
        models = api.models.list().data
        assert [m.model_extra["loaded"] for m in models] == [True]  # the demo model, by default
        reply = api.completions.create(model=models[0].id, prompt="Hello", max_tokens=3, temperature=0)
        assert reply.choices[0].text is not None
        assert httpx2.get(base_url + "/models").status_code == 401
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
        assert time.monotonic() - started < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "widgets imported: False" in out
    assert " POST /v1/completions 200 " in out and " GET /v1/models 401 " in out  # the request log
    assert "Stopped." in out
    assert KEY not in out + err


def client_for(base_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=60)
