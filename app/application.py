"""Entry point wiring: arguments, paths, QApplication, session, window, shutdown order."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from app import APP_NAME, __version__, paths


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hearth", description="Chat with language models on your own computer.")
    parser.add_argument(
        "files", nargs="*", metavar="FILE", help="GGUF model files to add (a running Hearth takes them over)"
    )
    parser.add_argument(
        "--data-dir", metavar="DIR", help="keep all of Hearth's data, config and models under DIR (also: HEARTH_HOME)"
    )
    parser.add_argument(
        "--install-desktop-entry",
        action="store_true",
        help="add Hearth to the applications menu and open .gguf files with it (Linux)",
    )
    parser.add_argument(
        "--uninstall-desktop-entry", action="store_true", help="remove what --install-desktop-entry added"
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="open the window, load the model, generate a few tokens, print the result and exit "
        "(exit code 0: everything works)",
    )
    from app import cli_endpoints

    cli_endpoints.add_arguments(parser)
    parser.add_argument("--version", action="version", version=f"{APP_NAME} {__version__}")
    return parser.parse_args(argv)


def run(argv: Sequence[str] | None = None) -> int:
    if argv is not None and list(argv[:1]) == ["serve"]:  # headless API server, no widgets (app/serve.py)
        from app import serve

        return serve.main(argv[1:])
    if argv is not None and list(argv[:1]) == ["dataset"]:  # fine-tuning datasets, no Qt (app/cli_dataset.py)
        from app import cli_dataset

        return cli_dataset.main(argv[1:])
    args = parse_args(argv)
    if args.data_dir:
        paths.set_root(args.data_dir)
    from app.desktop_entry import handle_cli

    if (code := handle_cli(args)) is not None:
        return code
    from app import cli_endpoints

    if (code := cli_endpoints.handle(args)) is not None:
        return code
    from app.logs import install_excepthook, setup_logging

    log_path = setup_logging()

    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from app.core.config import AppConfig
    from app.core.library import ModelLibrary
    from app.core.preferences import PreferencesStore
    from app.core.presets import PresetStore
    from app.core.store import StoreError, open_or_move_aside
    from app.resources import icon_path
    from app.session import ChatSession
    from app.ui.lazy_downloads import LazyDownloads
    from app.ui.main_window import MainWindow
    from app.ui.theme import apply_theme

    prefs_store = PreferencesStore()
    prefs = prefs_store.load()
    paths.set_models_dir(prefs.usable_models_dir())

    # instance() is typed QCoreApplication; in this process it is always a QApplication
    qt_app = cast(QApplication, QApplication.instance() or QApplication([sys.argv[0]]))
    apply_theme(qt_app, prefs.theme)  # before the window: the chat view picks its code colours
    qt_app.setApplicationName(APP_NAME)
    qt_app.setApplicationVersion(__version__)
    qt_app.setDesktopFileName("hearth")
    icon = icon_path()
    if icon is not None:
        qt_app.setWindowIcon(QIcon(str(icon)))

    # One Hearth per data folder: a second launch hands its files to the running one.
    from pathlib import Path

    from app.single_instance import SingleInstance

    files = [str(Path(f).expanduser().resolve()) for f in args.files]
    instance = SingleInstance(SingleInstance.key_for(paths.data_dir()))
    if args.self_test and not instance.listen():
        print("self-test: another Hearth is running with this data folder; close it or use --data-dir", flush=True)
        return 3
    if not args.self_test and (instance.try_forward(files) or (not instance.listen() and instance.try_forward(files))):
        return 0  # the running Hearth comes to the front and imports the files
    from app.ui.error_dialog import ErrorReporter

    reporter = ErrorReporter(log_path, parent=qt_app)
    install_excepthook(reporter.report.emit)

    try:
        store, store_note = open_or_move_aside(paths.data_dir() / "conversations.sqlite3")
    except StoreError as exc:
        from PySide6.QtWidgets import QMessageBox

        from app.ui.plain import as_plain

        QMessageBox.critical(None, APP_NAME, as_plain(f"Hearth cannot open its conversation history.\n\n{exc}"))
        return 1
    session = ChatSession(ModelLibrary(), AppConfig(), store)
    session.default_model = prefs.default_model
    store.on_error = session.storeError.emit
    downloads = LazyDownloads(prefs.max_parallel_downloads)  # made when the dialog opens
    window = MainWindow(
        session,
        PresetStore(paths.config_dir() / "presets.json"),
        downloads=downloads,
        preferences=(prefs_store, prefs),
    )
    if prefs.models_dir and prefs.usable_models_dir() is None:
        window.info_bar.show_message(
            f"Your models folder “{prefs.models_dir}” is not available now; using the default folder until it is back."
        )
    # Files from this launch and from later ones wait for the session to start: a model
    # imported before the engine's start would be loaded into a child that start replaces.
    launches: list[list[str]] | None = [files] if files else []

    def on_launch(more: list[str]) -> None:
        if launches is None:
            window.handle_launch_args(more)
        else:
            launches.append(more)

    instance.messageReceived.connect(on_launch)
    if store_note:
        window.notice_bar.show_message(store_note)

    def after_first_frame() -> None:
        """What the first frame does not need: the document index (numpy, the readers), the
        engine child and the model, pending downloads (the Hub's HTTP stack), the launch files."""
        nonlocal launches
        note = _open_documents(session)
        if note:
            window.notice_bar.show_message((store_note + "\n" if store_note else "") + note)
        session.start()
        if downloads.pending():
            downloads.get()  # the queue marks transfers cut off last time as paused
        waiting, launches = launches or [], None
        for launch in waiting:
            window.handle_launch_args(launch)
        if args.self_test:
            _self_test(qt_app, session, window)

    window.show()
    call_after_first_frame(window, after_first_frame)

    # Ctrl+C in the terminal closes the window in order; the timer lets Python see the signal.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    ticker = QTimer()
    ticker.start(200)
    ticker.timeout.connect(lambda: None)

    code = qt_app.exec()
    session.shutdown()
    downloads.close()  # partial downloads stay on disk and are listed as paused next time
    instance.close()  # last: a launch during shutdown still finds this instance, not the database
    return code


def _open_documents(session) -> str | None:
    """Give the session its document index; a note for the user when it cannot be opened."""
    from app.core.documents.index import DocumentIndex, DocumentIndexError

    try:
        session.documents = DocumentIndex()
    except DocumentIndexError as exc:  # chat still works; documents say why they don't
        session.documents = None
        return f"Documents are unavailable: {exc}"
    session.docs.documentsChanged.emit()  # the Attach and Collections buttons come on
    return None


def call_after_first_frame(window, callback, fallback_ms: int = 5000) -> None:
    """Run ``callback`` once, on the event loop turn after ``window`` first paints.

    The window must never wait for what comes after it (the engine child, the model, the
    imports those need): a zero-time timer set at show() can fire before the window system
    has asked for the first paint, so the paint itself is the signal. Should no paint come (a
    window that is never exposed), the fallback timer runs it all the same."""
    from PySide6.QtCore import QEvent, QObject, QTimer

    state = {"done": False}

    def fire() -> None:
        if not state["done"]:
            state["done"] = True
            window.removeEventFilter(watcher)
            if window.isVisible():  # not when the window was closed first: the app is ending
                callback()

    class _FirstPaint(QObject):
        def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt's name
            if watched is window and event.type() == QEvent.Type.Paint and not state["done"]:
                QTimer.singleShot(0, fire)
            return False

    watcher = _FirstPaint(window)
    window.installEventFilter(watcher)
    QTimer.singleShot(fallback_ms, fire)


def _check_document_readers() -> str | None:
    """A packaged app that lacks python-docx's templates or pypdf would only show it when a
    user attaches a file; the self-test writes a .docx from that template and reads it back."""
    import tempfile

    try:
        import docx
        import pypdf  # noqa: F401

        from app.core.documents import extract

        document = docx.Document()
        document.add_heading("Readers", level=1)
        document.add_paragraph("The document readers work.")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "check.docx"
            document.save(str(path))
            sections = extract(path).sections
        if [(s.heading, s.text) for s in sections] != [("Readers", "The document readers work.")]:
            return f"the .docx reader read {sections!r}"
    except Exception as exc:  # noqa: BLE001 - any failure here is the finding
        return f"the document readers are broken: {type(exc).__name__}: {exc}"
    return None


def _self_test(qt_app, session, window) -> None:
    """--self-test: the real window and engine answer one short question, then the app exits.
    The test conversation is deleted again, so a user's history is left as it was."""
    from PySide6.QtCore import QTimer

    from app.session import EngineState

    started = {"sent": False}

    def finish(code: int, text: str) -> None:
        print(f"self-test: {text}", flush=True)
        if session.conversation.messages:
            session.store.delete_conversation(session.conversation.id)
        qt_app.exit(code)

    def on_state(state: str) -> None:
        if state == EngineState.READY.value and not started["sent"]:
            started["sent"] = True
            session.conversations.new_conversation()
            session.settings.max_tokens = 8
            window.input.setPlainText("Say hello.")
            window.send_current()
        elif state in (EngineState.CRASHED.value, EngineState.NO_MODEL.value) and started["sent"] is not None:
            finish(1, f"the engine is not usable ({window.status.currentMessage()})")

    def on_reply(message) -> None:
        stats = message.stats or {}
        ok = bool(message.text.strip()) and message.state.value == "complete"
        finish(
            0 if ok else 1,
            f"{'ok' if ok else 'FAILED'} — {session.current_model.name if session.current_model else '?'}: "
            f"{stats.get('tokens', 0)} tokens, {stats.get('tokens_per_s') or 0:.1f} tokens/s, "
            f"reply {message.text.strip()!r}",
        )

    problem = _check_document_readers()
    if problem:  # exit() does nothing before the event loop runs: leave from inside it
        QTimer.singleShot(0, lambda: finish(1, problem))
        return
    session.stateChanged.connect(on_state)
    session.replyFinished.connect(on_reply)
    session.errorMessage.connect(lambda text: finish(1, text))
    QTimer.singleShot(180_000, lambda: finish(2, "timed out after 180 s"))
    if session.state is EngineState.NO_MODEL:
        QTimer.singleShot(0, lambda: finish(1, "no model: add one, or install the demo model"))
