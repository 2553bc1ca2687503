"""No access token reaches the log, whatever its shape and however a line spells it."""

from __future__ import annotations

import json
import logging
import urllib.parse
from pathlib import Path

import keyring
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memory_keyring import MemoryKeyring

from app import logs
from app.core import secrets

# Not hf_-shaped: an enterprise endpoint's key, a token with punctuation and a non-ASCII letter.
ODD_TOKEN = "corp$Key!2024/Ünïcode+=="


@pytest.fixture(autouse=True)
def registered_secrets():
    """Secrets registered by a test are forgotten after it (the set is process-wide)."""
    before = set(logs._secrets)
    yield
    logs._secrets.clear()
    logs._secrets.update(before)


@pytest.fixture
def log_path():
    level = logging.getLogger().level
    path = logs.setup_logging()
    yield path
    logs.shutdown_logging()
    logging.getLogger().setLevel(level)


@pytest.fixture
def memory_keyring(monkeypatch):
    before = keyring.get_keyring()
    monkeypatch.setattr(secrets, "_session", {})
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(before)


def _written(path: Path) -> str:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return path.read_text(encoding="utf-8")


def _every_spelling(token: str) -> list[str]:
    return [
        token,
        urllib.parse.quote(token, safe=""),
        urllib.parse.quote_plus(token),
        repr(token),
        ascii(token),
        json.dumps(token),
        json.dumps({"token": token}, ensure_ascii=False),
    ]


def test_a_token_of_any_shape_is_masked_once_it_is_set(log_path: Path, memory_keyring) -> None:
    secrets.set_token(ODD_TOKEN)
    log = logging.getLogger("app.test")
    for spelling in _every_spelling(ODD_TOKEN):
        log.warning("request to https://example.com/api?q=1 failed with %s", spelling)
    try:
        raise RuntimeError(f"the server said no to {ODD_TOKEN!r}")
    except RuntimeError:
        log.exception("download failed")
    text = _written(log_path)
    assert "download failed" in text and "RuntimeError" in text
    for spelling in _every_spelling(ODD_TOKEN):
        assert spelling.strip("'\"") not in text, spelling
    assert "Key!2024" not in text


def test_a_token_read_from_the_keyring_is_masked(log_path: Path, memory_keyring) -> None:
    token = "zz-Read.From~Keyring-77"
    memory_keyring.set_password(secrets.SERVICE, secrets.USERNAME, token)
    assert secrets.get_token() == token
    logging.getLogger("app.test").error("GET /models failed: %s", token)
    assert token not in _written(log_path)


@pytest.mark.parametrize(
    "line, secret",
    [
        ("headers [(b'Authorization', b'Bearer abc!def$ghi%jkl')]", "abc!def$ghi%jkl"),
        ("Bearer abc!def$ghi%jkl", "abc!def$ghi%jkl"),
        ("X-Api-Key: k3y-with-dashes", "k3y-with-dashes"),
        ('{"api-key": "k3y with spaces"}', "k3y with spaces"),
        ('{"api_key": "quoted \\"inner\\" value"}', "inner"),
        ("OPENAI_API_KEY=sk-abcdef", "sk-abcdef"),
        ("client_secret=shhh123", "shhh123"),
        ("https://host/v1?access_token=zzz999&x=1", "zzz999"),
        ("password: hunter2", "hunter2"),
    ],
)
def test_credential_shapes_are_masked_without_registering(line: str, secret: str) -> None:
    assert secret not in logs.redact(line)


@pytest.mark.parametrize(
    "line",
    [
        "n_tokens=5",
        "max_tokens: 512",
        "eos_token: '</s>'",
        "bos_token_id=1",
        "tokenizer: llama",
        "the bearer of good news",
        "token count: 12",
    ],
)
def test_ordinary_lines_stay_readable(line: str) -> None:
    assert logs.redact(line) == line


@settings(max_examples=150, deadline=None)
@given(
    token=st.text(min_size=8, max_size=40).filter(lambda t: "*" not in t),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
)
def test_any_registered_secret_never_survives_redaction(token: str, before: str, after: str) -> None:
    saved = set(logs._secrets)
    try:
        logs.add_secret(token)
        for spelling in (token, urllib.parse.quote(token, safe=""), json.dumps(token)[1:-1]):
            assert spelling not in logs.redact(before + spelling + after)
    finally:
        logs._secrets.clear()
        logs._secrets.update(saved)
