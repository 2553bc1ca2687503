"""Each sampling setting really changes what llama.cpp does, on the real demo model."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.settings import SamplingSettings
from app.engine import protocol as p
from app.engine.client import EngineClient

pytestmark = pytest.mark.model
ASK = [{"role": "user", "content": "List five fruits, one per line."}]


@pytest.fixture(scope="module")
def engine(demo_model: Path):
    client = EngineClient()
    client.start()
    client.load(p.Load(str(demo_model), n_ctx=1024, n_threads=2))
    yield client
    client.stop()


def reply(engine: EngineClient, messages=ASK, **settings) -> tuple[str, p.Done]:
    events = [e for e in engine.chat(p.Chat(messages, SamplingSettings(**settings).to_dict())) if e is not None]
    return "".join(e.text for e in events if isinstance(e, p.Delta)), events[-1]


def test_max_tokens_bounds_the_reply(engine) -> None:
    text, done = reply(engine, max_tokens=5, temperature=0)
    assert done.reason == "length" and done.stats["tokens"] <= 6
    longer, _ = reply(engine, max_tokens=40, temperature=0)
    assert longer.startswith(text.strip()[:10]) and len(longer) > len(text)


def test_stop_sequence_really_stops(engine) -> None:
    full, _ = reply(engine, max_tokens=40, temperature=0)
    assert "\n" in full.strip()
    stopped, done = reply(engine, max_tokens=40, temperature=0, stop=["\n"])
    assert "\n" not in stopped and done.reason == "stop"
    assert full.startswith(stopped)


def test_temperature_zero_is_deterministic_and_a_fixed_seed_reproduces(engine) -> None:
    assert reply(engine, max_tokens=24, temperature=0)[0] == reply(engine, max_tokens=24, temperature=0)[0]
    a = reply(engine, max_tokens=24, temperature=1.2, seed=1234)[0]
    b = reply(engine, max_tokens=24, temperature=1.2, seed=1234)[0]
    assert a == b
    others = {reply(engine, max_tokens=24, temperature=1.2, seed=s)[0] for s in (1, 2, 3)}
    assert len(others | {a}) > 1, "different seeds should give different replies at temperature 1.2"


def test_repetition_window_and_penalty_change_the_reply(engine) -> None:
    msgs = [{"role": "user", "content": "Repeat the word cat twenty times."}]
    plain = reply(engine, msgs, max_tokens=30, temperature=0, repeat_penalty=1.0)[0]
    penalised = reply(engine, msgs, max_tokens=30, temperature=0, repeat_penalty=2.0, last_n_tokens=64)[0]
    assert plain != penalised
    no_window = reply(engine, msgs, max_tokens=30, temperature=0, repeat_penalty=2.0, last_n_tokens=0)[0]
    assert no_window == plain  # a zero-length window disables the penalty


def test_few_shot_examples_arrive_as_real_turns(qtbot, demo_model: Path) -> None:
    from app import paths
    from app.core.config import AppConfig
    from app.core.library import ModelLibrary
    from app.core.presets import BUILTIN_PRESETS
    from app.core.store import ConversationStore
    from app.session import ChatSession

    session = ChatSession(ModelLibrary(), AppConfig(), ConversationStore(paths.data_dir() / "c.sqlite3"))
    translate = next(pr for pr in BUILTIN_PRESETS if pr.name.startswith("Translate"))
    session.few_shot = list(translate.few_shot)
    session.settings.system_prompt = "You translate."
    from app.core.conversation import Message, Role

    session.conversation.messages.append(Message(Role.USER, "Bonjour"))
    messages = session.prompt_messages()
    assert messages[0] == {"role": "system", "content": "You translate."}
    user, assistant = translate.few_shot[0]
    assert messages[1] == {"role": "user", "content": user}
    assert messages[2] == {"role": "assistant", "content": assistant}
    assert messages[-1] == {"role": "user", "content": "Bonjour"}


def test_embedding_mode_gives_unit_vectors_that_rank_by_meaning(engine, demo_model: Path) -> None:
    """Any GGUF can serve as the embedding model (mean-pooled when it has no pooling of its own)."""
    import numpy as np

    dims = engine.load_embedder(str(demo_model), n_threads=2)
    assert dims == 576  # SmolLM2-135M's embedding width
    docs = engine.embed(["The lighthouse was built in 1887 by an engineer.", "Bread needs flour, water and yeast."])
    query = np.array(engine.embed(["Who built the lighthouse?"])[0])
    sims = np.array(docs) @ query
    assert np.allclose(np.linalg.norm(np.array(docs), axis=1), 1.0, atol=1e-4)
    assert sims[0] > sims[1]
    # the chat model still answers after the embedder was loaded beside it
    text, done = reply(engine, max_tokens=4, temperature=0)
    assert done.stats["tokens"] > 0
    assert engine.load_embedder(None) == 0
