"""The access token lives in the system keyring, or for the session only, and never on disk."""

from __future__ import annotations

import logging
from pathlib import Path

import keyring
import keyring.errors
import pytest
from keyring.backends import fail
from memory_keyring import MemoryKeyring

from app.core import secrets
from app.core.secrets import NO_KEYRING_MESSAGE, SERVICE, USERNAME, TokenStorageUnavailable

TOKEN = "hf_SecretTokenValue1234567890"


class LockedKeyring(MemoryKeyring):
    """A keyring that is there but refuses to store (a locked collection, a D-Bus error)."""

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError("the collection is locked")


@pytest.fixture(autouse=True)
def restore_keyring(monkeypatch):
    before = keyring.get_keyring()
    monkeypatch.setattr(secrets, "_session", {})
    yield
    keyring.set_keyring(before)


@pytest.fixture
def memory_keyring() -> MemoryKeyring:
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    return backend


def files_containing(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_token_round_trips_through_the_keyring(memory_keyring: MemoryKeyring, hearth_home: Path) -> None:
    assert secrets.get_token() is None
    secrets.set_token(f"  {TOKEN}\n")
    assert memory_keyring.passwords == {(SERVICE, USERNAME): TOKEN}
    assert secrets.get_token() == TOKEN
    assert secrets.storage_available()
    # It is not kept in the process either: another program changing the keyring entry wins.
    memory_keyring.passwords[(SERVICE, USERNAME)] = "hf_other"
    assert secrets.get_token() == "hf_other"
    assert not hearth_home.exists() or files_containing(hearth_home, TOKEN) == []


@pytest.mark.parametrize("empty", [None, "", "   "])
def test_none_or_empty_deletes_the_token(memory_keyring: MemoryKeyring, empty) -> None:
    secrets.set_token(TOKEN)
    secrets.set_token(empty)
    assert memory_keyring.passwords == {}
    assert secrets.get_token() is None
    secrets.set_token(empty)  # deleting when there is none is fine


def test_no_keyring_keeps_the_token_for_the_session_only(hearth_home: Path, caplog) -> None:
    keyring.set_keyring(fail.Keyring())
    caplog.set_level(logging.DEBUG)
    assert not secrets.storage_available()
    assert secrets.get_token() is None
    with pytest.raises(TokenStorageUnavailable) as raised:
        secrets.set_token(TOKEN)
    assert str(raised.value) == NO_KEYRING_MESSAGE
    assert "session only" in str(raised.value)
    assert secrets.get_token() == TOKEN  # still usable until the app quits
    secrets.set_token(None)  # clearing needs no keyring
    assert secrets.get_token() is None
    assert TOKEN not in caplog.text
    assert not hearth_home.exists() or files_containing(hearth_home, TOKEN) == []


def test_no_keyring_error_from_a_backend_is_handled_the_same_way(monkeypatch) -> None:
    """keyring's chainer/no-backend path raises NoKeyringError from the call itself."""
    backend = MemoryKeyring()
    keyring.set_keyring(backend)

    def refuse(*_args):
        raise keyring.errors.NoKeyringError("No recommended backend was available.")

    monkeypatch.setattr(backend, "set_password", refuse)
    monkeypatch.setattr(backend, "get_password", refuse)
    assert secrets.get_token() is None  # unreadable: the app carries on without a token
    with pytest.raises(TokenStorageUnavailable, match="No system keyring is available"):
        secrets.set_token(TOKEN)
    assert secrets.get_token() == TOKEN


def test_a_keyring_that_refuses_keeps_the_token_for_the_session(caplog) -> None:
    backend = LockedKeyring()
    keyring.set_keyring(backend)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TokenStorageUnavailable, match="session only"):
        secrets.set_token(TOKEN)
    assert backend.passwords == {}
    assert secrets.get_token() == TOKEN
    assert TOKEN not in caplog.text


def test_a_working_keyring_replaces_the_session_token(memory_keyring: MemoryKeyring, monkeypatch) -> None:
    monkeypatch.setattr(secrets, "_session", {secrets.USERNAME: "hf_session"})
    assert secrets.get_token() == "hf_session"
    secrets.set_token(TOKEN)
    assert secrets.get_token() == TOKEN and memory_keyring.passwords[(SERVICE, USERNAME)] == TOKEN
