"""Connections: OpenAI-compatible endpoints whose models Hearth can chat with.

A connection is a name and a base URL (a llama.cpp server on a home server, vLLM or Ollama
on a GPU box, a hosted gateway). It is kept in ``connections.json`` in the config folder;
its API key, like every secret, goes to the system keyring (:mod:`app.core.secrets`) under
``endpoint:<name>``, never into that file or a log.

The same store serves the Connections dialog and ``hearth --add-endpoint NAME=URL``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from app import paths
from app.core import secrets
from app.core.jsonfile import read_json, write_json

MAX_NAME = 60


class ConnectionError_(Exception):  # noqa: N801 - the builtin ConnectionError means a socket error
    """A connection cannot be added or changed; ``str()`` is a sentence for the person."""


@dataclass
class Connection:
    name: str
    base_url: str  # normalised: scheme://host[:port][/path], no trailing slash, no /v1
    kind: str | None = None  # what "Test" recognised last (a ServerKind value), shown in lists
    added: float = field(default_factory=time.time)

    @property
    def key_name(self) -> str:
        """The keyring entry that holds this connection's API key."""
        return key_name(self.name)

    @property
    def host(self) -> str:
        """Where a conversation's text goes when it uses this connection."""
        return urlsplit(self.base_url).netloc

    @property
    def is_local(self) -> bool:
        """True when the server runs on this computer (loopback): the text stays here."""
        host = urlsplit(self.base_url).hostname or ""
        return host in ("localhost", "::1") or host.startswith("127.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def key_name(name: str) -> str:
    return f"endpoint:{name}"


def normalise_url(url: str) -> str:
    """A base URL as stored: http(s) only, no credentials, query or fragment; a trailing
    ``/v1`` (as people paste from docs) is dropped, since Hearth adds the paths itself."""
    text = (url or "").strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError for a bad port
    except ValueError:
        raise ConnectionError_(f"“{url}” is not a web address Hearth can use.") from None
    if parts.scheme not in ("http", "https"):
        raise ConnectionError_("The address must start with http:// or https://.")
    if not parts.hostname:
        raise ConnectionError_(f"“{url}” has no host name.")
    if parts.username or parts.password:
        raise ConnectionError_("Put the API key in its own field, not in the address.")
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    del port  # only checked: parts.netloc keeps it (and an IPv6 literal's brackets) as typed
    return urlunsplit((parts.scheme, parts.netloc.lower(), path, "", ""))


def check_name(name: str) -> str:
    text = " ".join((name or "").split())
    if not text:
        raise ConnectionError_("A connection needs a name.")
    if len(text) > MAX_NAME:
        raise ConnectionError_(f"A connection's name can have at most {MAX_NAME} characters.")
    if "/" in text:
        raise ConnectionError_("A connection's name cannot contain “/”.")
    return text


class ConnectionStore:
    """The saved connections (a small JSON file; every change is written at once)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.config_dir() / "connections.json"
        self._items: dict[str, Connection] = {}
        raw = read_json(self.path, {})
        entries = raw.get("connections") if isinstance(raw, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            connection = _from_dict(entry)
            if connection is not None:
                self._items[connection.name.casefold()] = connection

    def all(self) -> list[Connection]:
        return sorted(self._items.values(), key=lambda c: c.name.casefold())

    def get(self, name: str) -> Connection | None:
        return self._items.get((name or "").strip().casefold())

    def save(self) -> None:
        write_json(self.path, {"version": 1, "connections": [c.to_dict() for c in self.all()]})

    def add_or_update(self, name: str, url: str, api_key: str | None = None, *, keep_key: bool = False) -> Connection:
        """Add a connection, or change the address (and key) of the one with that name.

        ``api_key`` None with ``keep_key`` leaves a stored key as it is; otherwise None or
        "" removes it. May raise :class:`secrets.TokenStorageUnavailable` after saving
        (the key is then kept for this session only)."""
        name = check_name(name)
        base_url = normalise_url(url)
        old = self.get(name)
        connection = Connection(name, base_url, kind=old.kind if old and old.base_url == base_url else None)
        moved_key: str | None = None
        if old is not None:
            connection.added = old.added
            del self._items[old.name.casefold()]
            if old.key_name != connection.key_name:  # the name's spelling changed: so does the entry
                moved_key = secrets.get_secret(old.key_name)
                secrets.set_secret(old.key_name, None)
        self._items[name.casefold()] = connection
        self.save()
        if keep_key and api_key is None:
            if moved_key is not None:
                secrets.set_secret(connection.key_name, moved_key)
        else:
            secrets.set_secret(connection.key_name, api_key)
        return connection

    def set_kind(self, name: str, kind: str | None) -> None:
        connection = self.get(name)
        if connection is not None and connection.kind != kind:
            connection.kind = kind
            self.save()

    def remove(self, name: str) -> bool:
        connection = self.get(name)
        if connection is None:
            return False
        del self._items[connection.name.casefold()]
        self.save()
        try:
            secrets.set_secret(connection.key_name, None)
        except secrets.TokenStorageUnavailable:
            pass  # nothing could have been stored
        return True

    @staticmethod
    def api_key(connection: Connection) -> str | None:
        """The connection's key from the keyring (may block on a locked keyring: call it off
        the GUI thread)."""
        return secrets.get_secret(connection.key_name)


def _from_dict(raw: Any) -> Connection | None:
    """A stored record, or None when it is too damaged to use (the others still load)."""
    if not isinstance(raw, dict):
        return None
    name, url = raw.get("name"), raw.get("base_url")
    if not isinstance(name, str) or not isinstance(url, str):
        return None
    try:
        name = check_name(name)
        base_url = normalise_url(url)
    except ConnectionError_:
        return None
    kind = raw.get("kind")
    added = raw.get("added")
    return Connection(
        name,
        base_url,
        kind=kind if isinstance(kind, str) else None,
        added=float(added) if isinstance(added, (int, float)) and not isinstance(added, bool) else 0.0,
    )
