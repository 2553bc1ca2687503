"""Hearth's log file, and the last line of defence for errors nothing else caught.

A double-clicked app has no terminal: without a log file a problem leaves no trace, and an
exception that escapes a Qt slot or a worker thread would vanish (or end the process)
without a word. So :func:`setup_logging` writes a rotating log in ``paths.log_dir()``
(1 MB × 5 files, so it never fills the disk) and :func:`install_excepthook` routes every
uncaught exception, from the GUI thread (``sys.excepthook``: PySide6 reports exceptions
in slots there) and from other threads (``threading.excepthook``), into that log with its
traceback, then to a callback that shows a friendly dialog.

Secrets never reach the file: every record's final text (message and traceback) goes
through :func:`redact`, which masks Hugging Face tokens (``hf_…``), ``Bearer`` credentials,
``token=``/``api_key=``/``X-Api-Key:``/``password=``-style values and any value registered with
:func:`add_secret` (``app.core.secrets`` registers the access token whenever it is set or
read, so a token of any shape is masked, also URL-encoded or escaped in a repr).

No Qt here: the callback decides how to show the error (the GUI passes a thread-safe one,
see ``app.ui.error_dialog.ErrorReporter``).

API::

    setup_logging(level=logging.INFO, max_bytes=1_000_000, backup_count=5) -> Path  # the log file
    shutdown_logging() -> None            # remove Hearth's handlers (flushes the file)
    log_file() -> Path
    install_excepthook(show_dialog: Callable[[str], None]) -> None
    uninstall_excepthook() -> None
    add_secret(value: str) -> None
    redact(text: str) -> str
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import platform
import re
import sys
import threading
import traceback
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from app import APP_NAME, __version__, paths

__all__ = [
    "LOG_FILE_NAME",
    "add_secret",
    "format_exception",
    "install_excepthook",
    "log_file",
    "redact",
    "setup_logging",
    "shutdown_logging",
    "uninstall_excepthook",
]

LOG_FILE_NAME = "hearth.log"
_FORMAT = "%(asctime)s %(levelname)-7s %(threadName)s %(name)s: %(message)s"

log = logging.getLogger("app")

# -- redaction -----------------------------------------------------------------------------

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Hugging Face user/org access tokens: hf_ + 34 letters and digits (not hf_hub_download).
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}"), "hf_***"),
    # HTTP Authorization headers, as a log line or a dict repr spells them.
    (re.compile(r"""(?i)\b(authorization["']?\s*[:=]\s*["']?(?:bearer\s+|basic\s+|token\s+)?)[^\s"',;}]+"""), r"\1***"),
    # A bearer credential in any spelling (a header tuple, an exception message): whatever
    # follows "Bearer " up to a delimiter, so a token of any shape is covered.
    (re.compile(r"""(?i)\b(bearer\s+)[^\s"'<>,;()\[\]{}]{8,}"""), r"\1***"),
    # key=value, key: value and "key": "value" for names that hold credentials: token,
    # access_token, api_key, X-Api-Key, client_secret, OPENAI_API_KEY, password… A quoted value
    # is masked whole. Not n_tokens=… or max_tokens=…, nor a model's eos_token/bos_token.
    (
        re.compile(r"""(?ix)
        (?<![A-Za-z0-9])(?<!eos_)(?<!bos_)(?<!pad_)(?<!unk_)(?<!eot_)(?<!eom_)(?<!sep_)(?<!cls_)(?<!mask_)
        ((?:x-)?(?:access|api|auth|hf|refresh|client|private|session|id)?[_-]?
         (?:token|password|passwd|secret|api[_-]?key|apikey|credentials?))
        (["']?\s*[=:]\s*)
        (?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|[^\s"'&,;}\]]+)"""),
        r"\1\2***",
    ),
]
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_MIN_SECRET = 4  # shorter values would mask ordinary words all over the log


def _spellings(value: str) -> set[str]:
    """``value`` as logs may carry it: as is, URL-encoded, and escaped in a repr or JSON."""
    forms = {
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        repr(value)[1:-1],
        ascii(value)[1:-1],
        repr(value.encode("utf-8", "surrogatepass"))[2:-1],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    }
    return {form for form in forms if len(form) >= _MIN_SECRET}


def add_secret(value: str) -> None:
    """Mask this value in every later log line, in every spelling a log may carry it (a token
    the user entered, whatever its shape: the patterns only know the usual ones)."""
    if value and len(value) >= _MIN_SECRET:
        with _secrets_lock:
            _secrets.update(_spellings(value))


def redact(text: str) -> str:
    """``text`` with credentials replaced by ``***``."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class _RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted record, so tracebacks and ``%r`` arguments are covered."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


# -- log file ------------------------------------------------------------------------------

_handlers: list[logging.Handler] = []


def log_file() -> Path:
    """Where :func:`setup_logging` writes (its folder exists)."""
    return paths.log_dir() / LOG_FILE_NAME


def setup_logging(
    level: int = logging.INFO, max_bytes: int = 1_000_000, backup_count: int = 5, stderr_level: int = logging.WARNING
) -> Path:
    """Log to a rotating file in the log folder (and warnings to stderr); returns the file.

    Call once, after ``--data-dir`` is applied. Calling again replaces Hearth's handlers
    (the tests do that with a new data folder); other handlers on the root logger stay.
    """
    path = log_file()
    shutdown_logging()
    root = logging.getLogger()

    formatter = _RedactingFormatter(_FORMAT)
    file_handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8", delay=False
    )
    file_handler.setLevel(level)
    file_handler.setFormatter(formatter)
    _handlers.append(file_handler)
    if sys.stderr is not None:  # a windowed build on Windows has no stderr at all
        console = logging.StreamHandler()
        console.setLevel(stderr_level)
        console.setFormatter(formatter)
        _handlers.append(console)
    for handler in _handlers:
        root.addHandler(handler)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
    logging.captureWarnings(True)
    # Chatty libraries at INFO would drown our own lines (every HTTP request, every retry).
    for name in ("httpx", "httpcore", "httpx2", "httpcore2", "huggingface_hub", "filelock", "urllib3", "keyring"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    frozen = " (packaged)" if getattr(sys, "frozen", False) else ""
    log.info(
        "%s %s%s starting; Python %s on %s",
        APP_NAME,
        __version__,
        frozen,
        platform.python_version(),
        platform.platform(),
    )
    return path


def shutdown_logging() -> None:
    """Detach and close the handlers :func:`setup_logging` added."""
    root = logging.getLogger()
    for handler in _handlers:
        root.removeHandler(handler)
        handler.close()
    _handlers.clear()


# -- uncaught exceptions -------------------------------------------------------------------

_previous: tuple[Callable[..., object], Callable[..., object]] | None = None
_in_hook = threading.local()


def format_exception(exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None) -> str:
    """The traceback as text, redacted: what "Copy details" puts on the clipboard."""
    return redact("".join(traceback.format_exception(exc_type, exc, tb)))


def install_excepthook(show_dialog: Callable[[str], None]) -> None:
    """Log uncaught exceptions and hand their details to ``show_dialog``.

    ``show_dialog`` receives the redacted traceback text. It is called on the thread
    where the exception escaped, so for worker threads it must be thread-safe (a Qt
    signal's ``emit`` is). Ctrl+C (``KeyboardInterrupt``) and ``SystemExit`` keep their
    usual behaviour. A failure inside the hook is logged, never raised again.
    """
    global _previous
    if _previous is None:
        _previous = (sys.excepthook, threading.excepthook)

    def report(exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None, where: str) -> None:
        if getattr(_in_hook, "active", False):  # the dialog itself failed: do not loop
            return
        _in_hook.active = True
        try:
            log.critical("Unhandled error in %s", where, exc_info=(exc_type, exc, tb) if exc is not None else None)
            try:
                show_dialog(format_exception(exc_type, exc, tb))
            except Exception:
                log.exception("Could not show the error dialog")
        finally:
            _in_hook.active = False

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            sys.__excepthook__(exc_type, exc, tb)
            return
        report(exc_type, exc, tb, "the main thread")

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "a thread"
        report(args.exc_type, args.exc_value, args.exc_traceback, f"thread {name!r}")

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook


def uninstall_excepthook() -> None:
    """Put back the hooks that were there before :func:`install_excepthook`."""
    global _previous
    if _previous is not None:
        sys.excepthook, threading.excepthook = _previous
        _previous = None
