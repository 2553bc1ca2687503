"""The engine child process through EngineClient (no Qt), on the tiny random model."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from app.core.settings import SamplingSettings
from app.engine import protocol as p
from app.engine.client import EngineClient, EngineCrashed, EngineError

SETTINGS = SamplingSettings(temperature=0.8, seed=3, max_tokens=40).to_dict()
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def client():
    c = EngineClient()
    c.start()
    yield c
    c.stop()


def _load(client: EngineClient, path: Path, **kw) -> p.Loaded:
    return client.load(p.Load(str(path), n_ctx=256, n_threads=1, **kw))


def test_load_stream_and_tokenize(client: EngineClient, tiny_model: Path) -> None:
    info = _load(client, tiny_model)
    assert info.n_ctx == 256 and info.template_from_gguf
    events = [e for e in client.chat(p.Chat(MESSAGES, SETTINGS)) if e is not None]
    deltas = [e for e in events if isinstance(e, p.Delta)]
    done = events[-1]
    assert isinstance(done, p.Done) and done.reason in ("stop", "length")
    assert len(deltas) >= 2, "the reply must arrive in pieces, not at once"
    assert done.stats["seed"] == 3 and done.stats["tokens"] >= 1
    assert client.tokenize("hello\nworld") > client.tokenize("hello") > 0


def test_fixed_seed_reproduces_the_reply(client: EngineClient, tiny_model: Path) -> None:
    _load(client, tiny_model)

    def reply() -> str:
        return "".join(e.text for e in client.chat(p.Chat(MESSAGES, SETTINGS)) if isinstance(e, p.Delta))

    assert reply() == reply()


def test_cancel_stops_between_tokens(client: EngineClient, tiny_model: Path) -> None:
    _load(client, tiny_model)
    settings = SamplingSettings(seed=6, max_tokens=150, stop=[]).to_dict()  # seed 6: ~90 tokens before EOS
    seen = 0
    done = None
    for event in client.chat(p.Chat(MESSAGES, settings)):
        if isinstance(event, p.Delta):
            seen += 1
            if seen == 3:
                client.cancel()
        elif isinstance(event, p.Done):
            done = event
    assert done is not None and done.reason == "cancelled"
    assert seen < 10
    # the engine keeps serving after a cancel
    assert any(isinstance(e, p.Done) for e in client.chat(p.Chat(MESSAGES, SETTINGS)))


def test_garbage_file_is_an_error_not_a_crash(client: EngineClient, tmp_path: Path, tiny_model: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(EngineError) as err:
        _load(client, junk)
    assert "junk.gguf" in str(err.value) and not isinstance(err.value, EngineCrashed)
    assert _load(client, tiny_model).n_ctx == 256  # still alive


def test_invalid_settings_never_reach_llama_cpp(client: EngineClient, tiny_model: Path) -> None:
    _load(client, tiny_model)
    with pytest.raises(EngineError, match="Top-p"):
        list(client.chat(p.Chat(MESSAGES, SamplingSettings(top_p=7).to_dict())))


def test_killed_child_is_reported_with_its_signal(client: EngineClient, tiny_model: Path) -> None:
    _load(client, tiny_model)
    os.kill(client.pid, signal.SIGKILL)
    with pytest.raises(EngineCrashed) as err:
        list(client.chat(p.Chat(MESSAGES, SETTINGS)))
    assert err.value.exitcode == -signal.SIGKILL
    assert "signal 9" in str(err.value) and "conversation is safe" in str(err.value)
    client.start()  # a fresh child works
    assert _load(client, tiny_model).n_ctx == 256


def test_crafted_gguf_that_aborts_llama_cpp_only_kills_the_child(client: EngineClient, tmp_path: Path) -> None:
    from tiny_model import write_tiny_llama

    crafted = write_tiny_llama(tmp_path / "crafted.gguf", block_count=100000)
    with pytest.raises(EngineError):
        _load(client, crafted)
    # we are still here: the abort (if any) happened in the child


def test_reply_that_fills_the_context_ends_cleanly(client: EngineClient, tiny_model: Path) -> None:
    """A reply that runs into the end of the context is finished, not an error."""
    client.load(p.Load(str(tiny_model), n_ctx=256, n_threads=1))
    # More new tokens than the context has left; a random model says EOS now and then, so
    # try seeds until a reply runs to the end (which seed does depends on the build's kernels).
    for seed in range(1, 40):
        settings = SamplingSettings(seed=seed, max_tokens=250, temperature=0.7, repeat_penalty=1.0).to_dict()
        events = [e for e in client.chat(p.Chat(MESSAGES, settings)) if e is not None]
        done = events[-1]
        assert isinstance(done, p.Done), events[-3:]  # never an error
        if done.reason != "stop":
            assert done.reason == "context_full", done  # not "length": the person's limit was not reached
            break
    else:
        pytest.fail("no seed ran to the end of the context")
