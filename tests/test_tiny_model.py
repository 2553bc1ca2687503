"""Quick checks that the tiny GGUF model from ``tiny_model`` works with llama.cpp."""

from __future__ import annotations

import pytest

llama_cpp = pytest.importorskip("llama_cpp")

from tiny_model import BOS_ID, CHATML_TEMPLATE, N_VOCAB  # noqa: E402  (tests/ is on sys.path: conftest)


@pytest.fixture(scope="module")
def tiny_llm(tiny_model):
    """The conftest's tiny model (written by ``tiny_model.write_tiny_llama``), loaded."""
    llm = llama_cpp.Llama(model_path=str(tiny_model), n_ctx=256, n_threads=1, n_threads_batch=1, verbose=False)
    yield llm
    llm.close()


def test_tiny_model_loads(tiny_llm):
    assert tiny_llm.n_vocab() == N_VOCAB
    assert tiny_llm.n_ctx() == 256
    assert tiny_llm.metadata["llama.block_count"] == "2"
    assert tiny_llm.metadata["tokenizer.chat_template"] == CHATML_TEMPLATE


def test_tiny_model_streams_chat_completion(tiny_llm):
    chunks = list(
        tiny_llm.create_chat_completion(messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=8, seed=1)
    )
    assert len(chunks) >= 2
    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("length", "stop")
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert isinstance(text, str)


def test_tiny_model_tokenizer_round_trip(tiny_llm):
    tokens = tiny_llm.tokenize(b"hello\nworld")
    assert tokens[0] == BOS_ID
    assert 3 + 0x0A in tokens  # the <0x0A> byte token carries the newline
    assert all(0 <= t < N_VOCAB for t in tokens)
    assert tiny_llm.detokenize(tokens[1:]) == b"hello\nworld"
