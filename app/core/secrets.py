"""Secrets (the Hugging Face access token, endpoint API keys), kept in the system keyring and
nowhere else on disk.

A token opens the user's gated and private repos, so it is a password: it goes to the
operating system's keyring (Secret Service on Linux, Keychain on macOS, Credential Locker
on Windows) through the ``keyring`` package, never into Hearth's config files or logs.

On a machine without a keyring (headless Linux with no Secret Service, say) ``keyring``
raises ``NoKeyringError`` or falls back to its "fail" backend.  Then the token is kept in
this process's memory for the session and :func:`set_token` raises
:class:`TokenStorageUnavailable` so the UI can say it will be gone after a restart; the
next :func:`get_token` still returns it.

API::

    get_token() -> str | None            # keyring first, else the session-only token
    set_token(token: str | None) -> None # None/"" deletes; may raise TokenStorageUnavailable
    get_secret(name) / set_secret(name, value)   # the same for any named secret (endpoint API keys)
    storage_available() -> bool          # a real keyring backend is configured
    TokenStorageUnavailable(Exception)   # str() is a sentence for the user

Keyring calls may block (a locked keyring can prompt the user to unlock it): call them off
the GUI thread.
"""

from __future__ import annotations

import logging
import threading

# keyring is imported in the functions that use it: it finds its backends at import (~0.1 s),
# which Hearth's start does not need (the token is read when downloads first need it).
from app.logs import add_secret

log = logging.getLogger(__name__)

__all__ = [
    "SERVICE",
    "USERNAME",
    "TokenStorageUnavailable",
    "get_secret",
    "get_token",
    "set_secret",
    "set_token",
    "storage_available",
]

# The keyring entry: service and user name, as the OS keyring manager shows them.
SERVICE = "hearth"
USERNAME = "huggingface-token"

NO_KEYRING_MESSAGE = (
    "No system keyring is available, so the token can't be saved; it will be used for this session only."
)
KEYRING_REFUSED_MESSAGE = (
    "The system keyring did not accept the token (it may be locked), so it can't be saved; "
    "it will be used for this session only."
)


class TokenStorageUnavailable(Exception):
    """The token could not be stored in a keyring; it is kept in memory for this session."""


_lock = threading.Lock()
# Only set when the keyring could not take a secret: the session-only fallback, by entry name.
_session: dict[str, str] = {}


def _no_backend() -> bool:
    """True when keyring has nothing better than its fail backend (it would raise anyway)."""
    import keyring
    from keyring.backends import fail

    try:
        return isinstance(keyring.get_keyring(), fail.Keyring)
    except Exception:  # keyring's own configuration is broken: treat as no keyring
        return True


def storage_available() -> bool:
    """Whether a secret set now would survive a restart (used to word the Settings note)."""
    return not _no_backend()


def get_secret(name: str) -> str | None:
    """The secret saved under ``name`` (a keyring user name under :data:`SERVICE`), or the
    session-only one, or None.

    A keyring that cannot be read is not an error here: the caller works without it (or
    asks again), so it logs that (never the secret) and carries on.
    """
    with _lock:
        if name in _session:
            return _session[name]
    if _no_backend():
        return None
    import keyring

    try:
        value = keyring.get_password(SERVICE, name)
    except Exception as exc:  # NoKeyringError, a locked or broken backend, D-Bus errors
        log.warning("could not read %s from the system keyring: %s", name, type(exc).__name__)
        return None
    if value:
        add_secret(value)  # whatever its shape, it never reaches the log
    return value or None


def set_secret(name: str, value: str | None) -> None:
    """Save ``value`` (stripped) under ``name``; ``None`` or an empty string deletes it.

    Raises :class:`TokenStorageUnavailable` when there is no usable keyring: the secret is
    then kept in memory, so :func:`get_secret` returns it until the app quits.
    """
    import keyring
    import keyring.errors

    value = (value or "").strip() or None
    if value is not None:
        add_secret(value)  # before anything can log it: the patterns only know the usual shapes
    if value is None:
        with _lock:
            _session.pop(name, None)
        if _no_backend():
            return  # nothing can have been stored
        try:
            keyring.delete_password(SERVICE, name)
        except keyring.errors.PasswordDeleteError:
            pass  # there was none
        except Exception as exc:
            log.warning("could not delete %s from the system keyring: %s", name, type(exc).__name__)
        return
    if _no_backend():
        with _lock:
            _session[name] = value
        raise TokenStorageUnavailable(NO_KEYRING_MESSAGE)
    try:
        keyring.set_password(SERVICE, name, value)
    except keyring.errors.NoKeyringError:
        with _lock:
            _session[name] = value
        raise TokenStorageUnavailable(NO_KEYRING_MESSAGE) from None
    except Exception as exc:  # PasswordSetError, InitError (locked / no Secret Service), D-Bus
        log.warning("the system keyring refused %s: %s", name, type(exc).__name__)
        with _lock:
            _session[name] = value
        raise TokenStorageUnavailable(KEYRING_REFUSED_MESSAGE) from None
    with _lock:
        _session.pop(name, None)  # the keyring has it now: a later change there is what counts


def get_token() -> str | None:
    """The Hugging Face access token (see :func:`get_secret`)."""
    return get_secret(USERNAME)


def set_token(token: str | None) -> None:
    """Save or delete the Hugging Face access token (see :func:`set_secret`)."""
    set_secret(USERNAME, token)
