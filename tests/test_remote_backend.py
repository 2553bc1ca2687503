"""The remote backend against a real server (llama-cpp-python's own, serving the demo model)
and against a fake that misbehaves on command. Nothing here leaves 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest
from fake_openai_server import FakeOpenAI

from app.core.settings import SamplingSettings
from app.engine import protocol as p
from app.engine.remote import (
    RemoteBackend,
    RemoteError,
    RemoteInterrupted,
    ServerKind,
    parse_retry_after,
    request_body,
)

MESSAGES = [{"role": "user", "content": "Say hello."}]
KEY = "sk-test-abcdef0123456789"


def run(backend: RemoteBackend, settings: dict | None = None, tick: float | None = 0.02):
    """(events without ticks, text) of one chat."""
    events = [e for e in backend.chat(p.Chat(MESSAGES, settings or {"max_tokens": 16}), tick=tick) if e is not None]
    text = "".join(e.text for e in events if isinstance(e, p.Delta))
    return events, text


def loaded(url: str, model: str = "fake-model", **kwargs) -> RemoteBackend:
    backend = RemoteBackend(url, **kwargs)
    backend.load(p.Load(model))
    return backend


# --- kind detection, models, context length --------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected", "version"),
    [
        ("openai", ServerKind.OPENAI, None),
        ("llama.cpp", ServerKind.LLAMA_CPP, "b1234-abc"),
        ("vllm", ServerKind.VLLM, "0.9.1"),
        ("ollama", ServerKind.OLLAMA, "0.6.2"),
        ("lmstudio", ServerKind.LM_STUDIO, None),
    ],
)
def test_probe_recognises_the_server_and_load_finds_its_context(kind, expected, version) -> None:
    with FakeOpenAI(kind) as fake:
        fake.context_length = 3072
        backend = RemoteBackend(fake.url + "/v1/")  # the OpenAI base URL people paste works too
        result = backend.probe()
        assert (result.kind, result.version) == (expected, version)
        assert [m.id for m in result.models] == ["fake-model"]
        assert result.latency_ms > 0
        info = backend.load(p.Load("fake-model", n_ctx=2048))
        assert info.model_path == "fake-model" and info.chat_format == expected.value
        if expected is ServerKind.OPENAI:
            assert (info.n_ctx, info.n_ctx_train) == (2048, 0)  # unknown: the user's setting
        elif expected is ServerKind.OLLAMA:
            assert (info.n_ctx, info.n_ctx_train) == (2048, 3072)  # Ollama runs what we ask (num_ctx)
        else:
            assert info.n_ctx == 3072
        events, text = run(backend)
        assert text == "Hello, world!"
        assert isinstance(events[0], p.PromptInfo) and isinstance(events[-1], p.Done)
        done = events[-1]
        assert done.reason == "stop" and done.stats["remote_model"] == "fake-model"
        assert done.stats["endpoint"] == fake.url and done.stats["tokens"] == 4


def test_sampling_settings_take_each_servers_form() -> None:
    s = SamplingSettings(top_k=0, min_p=0.1, repeat_penalty=1.2, last_n_tokens=32, stop=["###"])
    llama = request_body(ServerKind.LLAMA_CPP, "m", MESSAGES, s, 7)
    assert (llama["top_k"], llama["min_p"], llama["repeat_penalty"], llama["repeat_last_n"]) == (0, 0.1, 1.2, 32)
    vllm = request_body(ServerKind.VLLM, "m", MESSAGES, s, 7)
    assert (vllm["top_k"], vllm["min_p"], vllm["repetition_penalty"]) == (-1, 0.1, 1.2)
    assert vllm["stream_options"] == {"include_usage": True} and vllm["seed"] == 7 and vllm["stop"] == ["###"]
    ollama = request_body(ServerKind.OLLAMA, "m", MESSAGES, s, 7)["options"]
    assert (ollama["repeat_last_n"], ollama["num_predict"], ollama["min_p"]) == (32, 512, 0.1)
    generic = request_body(ServerKind.OPENAI, "m", MESSAGES, s, 7)
    assert not {"top_k", "min_p", "repeat_penalty", "repetition_penalty"} & generic.keys()
    assert RemoteBackend("http://127.0.0.1:1", kind=ServerKind.OPENAI).ignored_settings() == {
        "top_k",
        "min_p",
        "repeat_penalty",
        "last_n_tokens",
        "grammar",
    }
    assert RemoteBackend("http://127.0.0.1:1", kind=ServerKind.LLAMA_CPP).ignored_settings() == frozenset()
    assert RemoteBackend("http://127.0.0.1:1", kind=ServerKind.VLLM).ignored_settings() == {"last_n_tokens"}


SCHEMA = '{"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}'


def test_structured_output_takes_each_servers_form() -> None:
    as_json = SamplingSettings(response_format="json")
    for kind in (ServerKind.OPENAI, ServerKind.LLAMA_CPP, ServerKind.VLLM, ServerKind.LLAMA_CPP_PYTHON):
        assert request_body(kind, "m", MESSAGES, as_json, 7)["response_format"] == {"type": "json_object"}
    assert request_body(ServerKind.OLLAMA, "m", MESSAGES, as_json, 7)["format"] == "json"

    schema = SamplingSettings(response_format="json_schema", json_schema=SCHEMA)
    openai_form = {"type": "json_schema", "json_schema": {"name": "reply", "schema": json.loads(SCHEMA)}}
    for kind in (ServerKind.OPENAI, ServerKind.LLAMA_CPP, ServerKind.VLLM, ServerKind.LM_STUDIO):
        assert request_body(kind, "m", MESSAGES, schema, 7)["response_format"] == openai_form
    # llama-cpp-python's server refuses the json_schema form; it reads a schema in json_object
    assert request_body(ServerKind.LLAMA_CPP_PYTHON, "m", MESSAGES, schema, 7)["response_format"] == {
        "type": "json_object",
        "schema": json.loads(SCHEMA),
    }
    assert request_body(ServerKind.OLLAMA, "m", MESSAGES, schema, 7)["format"] == json.loads(SCHEMA)

    gbnf = SamplingSettings(response_format="grammar", grammar='root ::= "yes" | "no"')
    assert request_body(ServerKind.LLAMA_CPP, "m", MESSAGES, gbnf, 7)["grammar"] == gbnf.grammar
    assert request_body(ServerKind.VLLM, "m", MESSAGES, gbnf, 7)["structured_outputs"] == {"grammar": gbnf.grammar}
    for kind in (ServerKind.OPENAI, ServerKind.OLLAMA, ServerKind.LM_STUDIO):  # marked ignored in the panel
        body = request_body(kind, "m", MESSAGES, gbnf, 7)
        assert "grammar" not in body and "response_format" not in body and "format" not in body
        assert "grammar" in RemoteBackend("http://127.0.0.1:1", kind=kind).ignored_settings()
    plain = request_body(ServerKind.OPENAI, "m", MESSAGES, SamplingSettings(), 7)
    assert "response_format" not in plain


@pytest.mark.parametrize("kind", ["openai", "llama.cpp"])  # counted by estimate, and by the server
def test_a_conversation_longer_than_the_context_leaves_out_its_oldest_turns(kind) -> None:
    with FakeOpenAI(kind) as fake:
        fake.context_length = 256  # llama.cpp's /props says so; for the other, the user's setting
        backend = RemoteBackend(fake.url)
        backend.load(p.Load("fake-model", n_ctx=256))
        history: list[dict[str, str]] = [{"role": "system", "content": "Be brief."}]
        for i in range(12):
            history += [
                {"role": "user", "content": f"Question {i}: " + "words " * 20},
                {"role": "assistant", "content": f"Answer {i}: " + "more " * 20},
            ]
        history.append({"role": "user", "content": "And the last question?"})
        events = [e for e in backend.chat(p.Chat(history, {"max_tokens": 32}), tick=0.02) if e is not None]
        info = next(e for e in events if isinstance(e, p.PromptInfo))
        sent = fake.chat_bodies()[-1]["messages"]
        assert info.dropped_turns > 0 and len(sent) == len(history) - info.dropped_turns
        assert sent[0] == history[0] and sent[-1] == history[-1]  # the system prompt and the question stay
        assert sent[1:] == history[1 + info.dropped_turns :]  # the oldest turns went, in order
        assert info.prompt_tokens <= 256 - 32
        assert events[-1].stats["dropped_turns"] == info.dropped_turns
        # a conversation that fits is sent whole
        events = [e for e in backend.chat(p.Chat(history[-3:], {"max_tokens": 32}), tick=0.02) if e is not None]
        assert len(fake.chat_bodies()[-1]["messages"]) == 3 and events[-1].stats["dropped_turns"] == 0


def test_counts_come_from_the_server_where_it_can_and_usage_corrects_an_estimate() -> None:
    with FakeOpenAI("vllm") as fake:
        backend = loaded(fake.url)
        assert backend.count_prompt_info(MESSAGES) == (42, True)
    with FakeOpenAI("llama.cpp") as fake:
        backend = loaded(fake.url)
        count, exact = backend.count_prompt_info(MESSAGES)
        assert exact and count > 0
    with FakeOpenAI("openai") as fake:
        backend = loaded(fake.url)
        assert backend.count_prompt_info(MESSAGES)[1] is False  # an estimate: ≈
        events, _ = run(backend)
        infos = [e for e in events if isinstance(e, p.PromptInfo)]
        assert not infos[0].counted_exactly and infos[-1].counted_exactly and infos[-1].prompt_tokens == 17
        assert events[-1].stats["prompt_tokens"] == 17  # the stream's usage


def test_ollama_native_chat_carries_every_setting_and_the_context() -> None:
    with FakeOpenAI("ollama") as fake:
        backend = loaded(fake.url)
        events, text = run(backend, {"max_tokens": 16, "top_k": 5, "last_n_tokens": 16, "seed": 3})
        assert text == "Hello, world!" and events[-1].stats["prompt_tokens"] == 11
        options = fake.chat_bodies()[-1]["options"]
        assert (options["top_k"], options["repeat_last_n"], options["seed"], options["num_ctx"]) == (5, 16, 3, 2048)


def test_images_take_each_servers_form() -> None:
    png = "iVBORw0KGgo="  # the bytes do not matter here, only where they go
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": parts}]
    ollama = request_body(ServerKind.OLLAMA, "m", messages, SamplingSettings(), 7)["messages"]
    assert ollama == [messages[0], {"role": "user", "content": "What is this?", "images": [png]}]
    assert request_body(ServerKind.VLLM, "m", messages, SamplingSettings(), 7)["messages"] == messages  # OpenAI parts


def test_keepalive_comments_crlf_and_split_data_lines() -> None:
    with FakeOpenAI() as fake:
        fake.mode = "keepalive"
        assert run(loaded(fake.url))[1] == "Hello, world!"


def test_a_server_that_refuses_stream_options_is_asked_again_without() -> None:
    with FakeOpenAI() as fake:
        fake.mode = "strict"
        assert run(loaded(fake.url))[1] == "Hello, world!"
        assert "stream_options" not in fake.chat_bodies()[-1]


# --- failures --------------------------------------------------------------------------


def test_unreachable_host() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens on it
    with pytest.raises(RemoteError, match=r"Cannot reach 127\.0\.0\.1:\d+"):
        RemoteBackend(f"http://127.0.0.1:{port}").probe()


def test_tls_to_a_plain_http_server_is_a_tls_error() -> None:
    with FakeOpenAI() as fake, pytest.raises(RemoteError, match="secure connection"):
        RemoteBackend(fake.url.replace("http://", "https://")).probe()


def test_a_wrong_key_is_named_and_the_key_never_shows(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI(api_key="the-right-key-123456") as fake:
        backend = RemoteBackend(fake.url, KEY)
        with pytest.raises(RemoteError) as info:
            backend.probe()
        assert "refused the API key" in str(info.value) and info.value.status == 401
        assert fake.requests[0][2]["Authorization"] == f"Bearer {KEY}"
        assert KEY not in str(info.value) and KEY not in repr(backend) and KEY not in caplog.text
        with pytest.raises(RemoteError, match="needs an API key"):
            RemoteBackend(fake.url).probe()
        assert RemoteBackend(fake.url, "the-right-key-123456").probe().models


def test_unknown_model() -> None:
    with FakeOpenAI() as fake:
        with pytest.raises(RemoteError, match="no model named “gone”"):
            RemoteBackend(fake.url).load(p.Load("gone"))
        backend = loaded(fake.url)
        fake.models = ["other"]  # removed from the server after it was picked
        with pytest.raises(RemoteError, match="no model named “fake-model”") as info:
            run(backend)
        assert info.value.status == 404


def test_server_error() -> None:
    with FakeOpenAI() as fake:
        fake.mode = "500"
        with pytest.raises(RemoteError, match=r"internal error \(HTTP 500\): CUDA out of memory"):
            run(loaded(fake.url))


def test_429_waits_for_retry_after_says_so_and_retries() -> None:
    with FakeOpenAI() as fake:
        fake.mode, fake.retry_after, fake.fail_times = "429", "1", 2
        started = time.monotonic()
        events, text = run(loaded(fake.url))
        waits = [e for e in events if isinstance(e, p.Waiting)]
        assert [w.seconds for w in waits] == [1.0, 1.0] and "busy" in waits[0].reason
        assert text == "Hello, world!" and time.monotonic() - started >= 2.0
    with FakeOpenAI() as fake:
        fake.mode, fake.retry_after, fake.fail_times = "429", "0", 10  # bounded
        with pytest.raises(RemoteError, match="429"):
            run(loaded(fake.url))
        assert len(fake.chat_bodies()) == 4
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0


def test_cancel_while_waiting_out_a_429() -> None:
    with FakeOpenAI() as fake:
        fake.mode, fake.retry_after = "429", "30"
        backend = loaded(fake.url)
        for event in backend.chat(p.Chat(MESSAGES, {"max_tokens": 8}), tick=0.02):
            if isinstance(event, p.Waiting):
                backend.cancel()
            if isinstance(event, p.Done):
                assert event.reason == "cancelled"
                break


def test_a_stream_cut_mid_reply_keeps_the_text_and_says_interrupted() -> None:
    with FakeOpenAI() as fake:
        fake.mode = "cut"
        backend = loaded(fake.url)
        got: list[str] = []
        with pytest.raises(RemoteInterrupted, match="interrupted") as info:
            for event in backend.chat(p.Chat(MESSAGES, {"max_tokens": 8}), tick=0.02):
                if isinstance(event, p.Delta):
                    got.append(event.text)
        assert "".join(got) == "Hello," and "kept" in str(info.value)


def test_malformed_sse() -> None:
    with FakeOpenAI() as fake:
        fake.mode = "bad_sse"
        with pytest.raises(RemoteInterrupted, match="cannot read"):
            run(loaded(fake.url))


def test_a_server_that_never_answers_times_out_and_stop_works_at_any_moment() -> None:
    with FakeOpenAI() as fake:
        fake.mode = "silent"
        backend = loaded(fake.url, read_timeout=0.5)
        with pytest.raises(RemoteError, match="sent nothing for 0.5 s"):
            run(backend)
        for mode in ("silent", "silent_stream"):  # before the headers, and mid-stream
            fake.mode = mode
            backend = loaded(fake.url, read_timeout=30)
            threading.Timer(0.3, backend.cancel).start()
            started = time.monotonic()
            events, _ = run(backend)
            assert events[-1] == p.Done("cancelled", events[-1].stats)
            assert time.monotonic() - started < 5


def test_stop_closes_the_connection_so_the_server_stops() -> None:
    with FakeOpenAI() as fake:
        fake.mode = "slow"
        backend = loaded(fake.url)
        for event in backend.chat(p.Chat(MESSAGES, {"max_tokens": 8}), tick=0.02):
            if isinstance(event, p.Delta):
                backend.cancel()
            if isinstance(event, p.Done):
                assert event.reason == "cancelled"
        assert fake.disconnected.wait(5)  # its next write failed: the client had left


def test_plain_words_for_a_bad_address() -> None:
    with pytest.raises(RemoteError, match="not a web address"):
        RemoteBackend("ftp://example")


# --- a real server: llama-cpp-python's own, serving the demo model -------------------------


@pytest.fixture(scope="module")
def llama_server(demo_model, tmp_path_factory):
    from llama_server import running_server

    with running_server(demo_model, tmp_path_factory.mktemp("llama-server") / "server.log") as server:
        yield server


@pytest.mark.model
def test_real_server_probe_load_chat_count(llama_server) -> None:
    backend = RemoteBackend(llama_server.url)
    result = backend.probe()
    assert result.kind is ServerKind.LLAMA_CPP_PYTHON and result.version
    assert [m.id for m in result.models] == ["smol"]
    info = backend.load(p.Load("smol"))
    assert info.n_ctx == 1024  # --n_ctx 1024, learned from the server itself
    assert backend.ignored_settings() == {"last_n_tokens"}
    settings = {"max_tokens": 24, "seed": 5, "temperature": 0.0}
    first, text = run(backend, settings)
    assert text.strip()
    done = first[-1]
    assert isinstance(done, p.Done) and done.reason in ("stop", "length")
    assert done.stats["seed"] == 5 and done.stats["remote_model"] == "smol" and 0 < done.stats["tokens"] <= 24
    assert done.stats["ttft"] is not None and first[0].n_ctx == 1024
    count = backend.count_prompt(MESSAGES)
    assert 3 < count < 60
    backend.close()


@pytest.mark.model
def test_real_server_replies_in_the_json_schema_asked_for(llama_server) -> None:
    """llama-cpp-python's own server, sent the form it accepts: the reply is JSON matching."""
    backend = RemoteBackend(llama_server.url)
    backend.load(p.Load("smol"))
    settings = SamplingSettings(response_format="json_schema", json_schema=SCHEMA, max_tokens=48, temperature=0)
    events, text = run(backend, {**settings.to_dict(), "seed": 3})
    assert events[-1].reason in ("stop", "length")
    assert isinstance(json.loads(text)["n"], int), text
    backend.close()


@pytest.mark.model
def test_real_server_stop_frees_it_for_the_next_request(llama_server) -> None:
    """Stop mid-stream; the server (which does not interrupt a running reply on its own) sees
    the client leave, stops generating, and serves the next request at once."""
    backend = RemoteBackend(llama_server.url)
    backend.load(p.Load("smol"))
    long = {"max_tokens": 900, "seed": 1, "temperature": 1.0}
    tokens = 0
    stopped_at = 0.0
    for event in backend.chat(p.Chat([{"role": "user", "content": "Write a very long story."}], long), tick=0.02):
        if isinstance(event, p.Delta):
            tokens += 1
            if tokens == 5:
                stopped_at = time.monotonic()
                backend.cancel()
        if isinstance(event, p.Done):
            assert event.reason == "cancelled"
            assert time.monotonic() - stopped_at < 5  # not after the 900 tokens
    started = time.monotonic()
    events, text = run(backend, {"max_tokens": 8, "seed": 1})
    assert text and events[-1].reason in ("stop", "length")
    # 900 tokens at this model's speed would take many seconds; the next request was not queued.
    assert events[-1].stats["ttft"] < 5.0 and time.monotonic() - started < 10
    deadline = time.monotonic() + 5
    while "Disconnected from client" not in llama_server.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "Disconnected from client" in llama_server.log()
    backend.close()
