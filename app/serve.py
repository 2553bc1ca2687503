"""``hearth serve``: the local OpenAI-compatible API without a window (a server, a container).

    hearth serve [--data-dir DIR] [--host 127.0.0.1] [--port N] [--model PATH-or-library-name]
                 [--api-key-env VAR] [--cors-origin ORIGIN ...]

It runs the same engine service as the window (app.engine.service.EngineService: llama.cpp
in a child process, one job at a time) under a QCoreApplication — no Qt widgets are
imported — with the same library, preferences and data folder. Without ``--model`` it serves
the default model (Preferences > default model, else the last one used, else the first in the
library, else the demo model). Each request is logged to stdout as one line; SIGTERM or
SIGINT stops it cleanly within a few seconds (jobs in progress are cancelled).

Exit codes: 0 stopped by a signal, 1 the model could not be loaded or the engine failed,
2 bad arguments (no such model, the key's variable unset, the port taken).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app import paths

if TYPE_CHECKING:
    from app.core.library import ModelInfo, ModelLibrary
    from app.server.api import RequestLogEntry

log = logging.getLogger(__name__)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    from app.server.runner import DEFAULT_PORT

    parser = argparse.ArgumentParser(
        prog="hearth serve", description="Serve Hearth's models through a local OpenAI-compatible API."
    )
    parser.add_argument("--data-dir", metavar="DIR", help="Hearth's data folder (also: HEARTH_HOME)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this computer)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0: any free)")
    parser.add_argument("--model", metavar="PATH-or-NAME", help="a GGUF file or a library model's name")
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="require the API key held in this environment variable (never on the command line)",
    )
    parser.add_argument(
        "--cors-origin", action="append", default=[], metavar="ORIGIN", help="a browser origin allowed to call the API"
    )
    parser.add_argument(
        "--allow-model-switch",
        action="store_true",
        help="let a request for another library model load it (the default serves only the loaded model)",
    )
    parser.add_argument("--max-queue", type=int, default=4, metavar="N", help="requests that may wait (then 429)")
    args = parser.parse_args(list(argv))
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    return args


def scan_library() -> ModelLibrary:
    """The library as the window sees it after its start-up scan (done here, blocking)."""
    from app.core.library import ModelLibrary, read_demo_model, scan_models_dir
    from app.core.preferences import PreferencesStore

    paths.set_models_dir(PreferencesStore().load().usable_models_dir())
    library = ModelLibrary()
    known, stale = library.refresh_plan()
    library.apply_scan(scan_models_dir(known, stale))
    if not library.models():
        library.add_demo(read_demo_model())
    return library


def choose_model(library: ModelLibrary, wanted: str | None) -> ModelInfo:
    """The model to serve; raises LookupError with a message for the person."""
    from app.core.config import AppConfig
    from app.core.library import read_model
    from app.core.preferences import PreferencesStore

    models = [m for m in library.models() if m.exists]
    if wanted:
        for model in models:
            if wanted in (model.path, model.name, Path(model.path).name, Path(model.path).stem):
                return model
        file = Path(wanted).expanduser()
        if file.is_file():
            known = library.get(file.resolve())
            if known is not None:
                return known
            try:
                return read_model(file.resolve())
            except Exception as exc:  # GGUFError, OSError: said in words, without the folder
                raise LookupError(f"{file.name} is not a model Hearth can read: {exc}") from None
        names = ", ".join(m.name for m in models) or "none"
        raise LookupError(f"No model “{wanted}” in the library or on disk. Library models: {names}.")
    for candidate in (PreferencesStore().load().default_model, AppConfig().get("last_model")):
        if candidate:
            chosen = library.get(candidate)
            if chosen is not None and chosen.exists:
                return chosen
    if models:
        return models[0]
    raise LookupError("The library has no models: add one in Hearth, or pass --model PATH.")


def load_request(model: ModelInfo) -> object:
    """The engine's Load for ``model``, with the window's load settings and its per-model
    defaults (the same function the window loads through)."""
    from app.engine.params import load_request as engine_load

    return engine_load(model)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if args.data_dir:
        paths.set_root(args.data_dir)
    api_key: str | None = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env, "").strip() or None
        if api_key is None:
            print(f"hearth serve: the environment variable {args.api_key_env} is not set or empty.", file=sys.stderr)
            return 2

    from app.logs import add_secret, setup_logging

    if api_key:
        add_secret(api_key)
    setup_logging()

    from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer, Signal

    from app import APP_NAME
    from app.engine.service import CatalogEntry, EngineService
    from app.server.runner import ApiServer, is_loopback

    library = scan_library()
    try:
        model = choose_model(library, args.model)
    except LookupError as exc:
        print(f"hearth serve: {exc}", file=sys.stderr)
        return 2

    qt_app = QCoreApplication.instance() or QCoreApplication([sys.argv[0] if sys.argv else APP_NAME])
    qt_app.setApplicationName(APP_NAME)

    def out(line: str) -> None:
        print(line, flush=True)

    def log_request(entry: RequestLogEntry) -> None:
        out(entry.line())

    service = EngineService(max_waiting=args.max_queue)
    service.allow_model_switch = args.allow_model_switch
    catalog = [m for m in library.models() if m.exists]
    if all(m.path != model.path for m in catalog):
        catalog.append(model)
    service.set_catalog([CatalogEntry(Path(m.path).stem, m.name, m.path, (m.name,)) for m in catalog])
    thread = QThread()
    thread.setObjectName("engine-worker")
    service.moveToThread(thread)

    class Controls(QObject):
        load = Signal(object)
        shutdown = Signal()

    controls = Controls()
    controls.load.connect(service.load)
    controls.shutdown.connect(service.shutdown)

    server = ApiServer(
        service, args.host, args.port, api_key=api_key, cors_origins=args.cors_origin, on_request=log_request
    )
    state = {"code": 0, "stopping": False}

    def stop(code: int = 0) -> None:
        if state["stopping"]:
            return
        state["stopping"] = True
        state["code"] = code
        out("Stopping…")
        server.stop()
        qt_app.quit()

    def on_loaded(info: object) -> None:
        if server.running or state["stopping"]:
            return
        try:
            server.start()
        except OSError as exc:
            print(f"hearth serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
            stop(2)
            return
        if not is_loopback(args.host):
            print(
                f"WARNING: listening on {args.host}: other computers on the network can use this model"
                + ("" if api_key else " (and no API key is required: consider --api-key-env)"),
                file=sys.stderr,
                flush=True,
            )
        out(f"Serving {model.name} at {server.base_url}" + (" (API key required)" if api_key else ""))

    def on_load_failed(message: str) -> None:
        if not server.running:
            print(f"hearth serve: could not load {model.name}: {message}", file=sys.stderr)
            stop(1)

    def on_crashed(message: str) -> None:
        print(f"hearth serve: the engine stopped: {message}", file=sys.stderr)
        if not server.running:
            stop(1)

    service.loaded.connect(on_loaded)
    service.loadFailed.connect(on_load_failed)
    service.crashed.connect(on_crashed)

    # Python runs signal handlers between bytecodes; the timer gives it some while Qt waits.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: QTimer.singleShot(0, stop))
    ticker = QTimer()
    ticker.timeout.connect(lambda: None)
    ticker.start(100)

    thread.start()
    out(f"Loading {model.name}…")
    controls.load.emit(load_request(model))
    qt_app.exec()

    ticker.stop()
    server.stop()
    service.cancel()
    controls.shutdown.emit()
    if not thread.wait(3000):
        service.kill()
        thread.quit()
        thread.wait(1000)
    out("Stopped.")
    return int(state["code"])
