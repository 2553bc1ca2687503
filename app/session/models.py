"""The models a person can choose: GGUF files in the library and what each connection serves.

One object with one job: keep the list the picker shows up to date without the window ever
waiting. Headers are read and servers asked on worker threads; the answers come back to
the GUI thread through a queued signal. What to do with a model that just became available
(choose it when none is in use) is the chat session's decision, told by ``modelAdded``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.core.connections import Connection, ConnectionStore
from app.core.gguf import GGUFError, read_gguf
from app.core.library import (
    LibraryError,
    ModelDefaults,
    ModelInfo,
    ModelLibrary,
    ScanResult,
    read_demo_model,
    read_model,
    scan_models_dir,
)
from app.core.remote_models import parse_remote_ref, remote_model_info
from app.core.vision import find_projector, looks_like_projector
from app.engine import protocol as p


class ModelCatalog(QObject):
    modelsChanged = Signal()  # the picker's list changed (files, damaged files, remote models)
    errorMessage = Signal(str)
    infoMessage = Signal(str)
    modelAdded = Signal(str)  # a model just joined (added or downloaded): the session may pick it
    scanFinished = Signal()  # the models folder has been read: "no model at all" is now known
    _offThreadDone = Signal(object, object, object)  # on_done, result, error (from a reader thread)

    def __init__(self, library: ModelLibrary, connections: ConnectionStore | None = None) -> None:
        super().__init__()
        self.library = library
        self.connections = connections or ConnectionStore()
        self.remote_models: dict[str, ModelInfo] = {}  # by remote:// reference, as last listed
        self.remote_status: dict[str, str] = {}  # connection name -> why it did not answer ("" ok)
        self.scanning = False  # the models folder is being read
        self._readers: list[threading.Thread] = []
        self._closed = False
        self._offThreadDone.connect(self._off_thread_done)

    def get(self, path: str) -> ModelInfo | None:
        """A model file in the library, or a model a connection serves (``remote://…``)."""
        return self.library.get(path) or self.remote_models.get(path)

    def remote_target(self, model: ModelInfo) -> p.RemoteTarget | None:
        """Where the engine finds a remote model (None for a file, or a connection since removed)."""
        ref = parse_remote_ref(model.path) if model.remote is not None else None
        connection = self.connections.get(ref[0]) if ref is not None else None
        if ref is None or connection is None:
            return None
        return p.RemoteTarget(connection.name, connection.base_url, ref[1])

    def close(self) -> None:
        """No more answers are delivered; reads in flight are waited for briefly."""
        self._closed = True
        for reader in self._readers:
            reader.join(2.0)  # header reads are budgeted (app.core.gguf): well under a second

    # -- files -----------------------------------------------------------------------------

    def refresh_models(self, first_start: bool = False) -> None:
        """Look for new and vanished files in the models folder (and, on a first start with
        an empty library, the demo model) on a worker thread; the picker fills when done."""
        demo_wanted = first_start and not self.library.models()
        known, stale = self.library.refresh_plan()
        self.scanning = True
        self._read_off_thread(
            lambda: (read_demo_model() if demo_wanted else None, scan_models_dir(known, stale)), self._models_scanned
        )

    def _models_scanned(self, result: Any, error: BaseException | None) -> None:
        self.scanning = False
        demo_info, scan = result if error is None and result is not None else (None, ScanResult())
        if error is not None:
            self.errorMessage.emit(f"Could not look for models in {self.library.models_dir}: {plain_error(error)}")
        demo = self.library.add_demo(demo_info)
        refreshed = self.library.apply_scan(scan)
        if demo is not None or refreshed.changed:
            self.modelsChanged.emit()
        self.scanFinished.emit()

    def add_model(self, path: str) -> ModelInfo | None:
        """Register a GGUF file now (blocking); a bad file becomes a message, not an exception."""
        try:
            model = self.library.add_file(path)
        except GGUFError as exc:
            self.errorMessage.emit(str(exc))
            return None
        except OSError as exc:
            self.errorMessage.emit(f"{Path(path).name}: {exc.strerror or exc}")
            return None
        self.modelsChanged.emit()
        self.modelAdded.emit(model.path)
        return model

    def add_model_in_background(self, path: str) -> None:
        """``add_model`` for the GUI: the header is read on a worker thread, then the model
        joins the library (or the reason it cannot is said)."""
        self._read_off_thread(
            lambda: read_model(path), lambda info, error: self._model_read(path, info, error, downloaded=False)
        )

    def model_downloaded(self, path: str) -> None:
        """A finished download joins the library; its header is read on a worker thread. An
        image projector (mmproj) is not a model: it pairs with the models in its folder."""
        if looks_like_projector(path):
            self._pair_projector(path)
            return
        self._read_off_thread(
            lambda: read_model(path), lambda info, error: self._model_read(path, info, error, downloaded=True)
        )

    def _pair_projector(self, projector: str) -> None:
        """Look for the models in the projector's folder that it fits (headers read off the
        GUI thread), and pair it with each of them that has none yet."""
        folder = Path(projector).resolve().parent
        paths = [m.path for m in self.library.models() if m.remote is None and Path(m.path).parent == folder]

        def pair() -> list[tuple[str, str | None]]:
            out = []
            for path in paths:
                try:
                    n_embd = read_gguf(path).embedding_length
                except (GGUFError, OSError):
                    continue
                out.append((path, find_projector(path, n_embd)))
            return out

        self._read_off_thread(pair, lambda found, error: self._projector_paired(projector, found or []))

    def _projector_paired(self, projector: str, found: list[tuple[str, str | None]]) -> None:
        names = []
        for path, match in found:
            model = self.library.get(path)
            if model is not None and match and model.projector is None:
                model.projector = match
                names.append(model.name)
        if names:
            self.library.save()
            self.modelsChanged.emit()
            self.infoMessage.emit(f"{Path(projector).name} is downloaded: {', '.join(names)} can now see images.")
        else:
            self.infoMessage.emit(
                f"{Path(projector).name} is downloaded; it pairs with its model when the model is in the same folder."
            )

    def _model_read(self, path: str, info: ModelInfo | None, error: BaseException | None, downloaded: bool) -> None:
        if info is None:
            reason = plain_error(error, path)
            self.errorMessage.emit(
                f"The download finished but the file can't be used: {reason}" if downloaded else reason
            )
            return
        model = self.library.find(path) or self.library.add_info(info)
        self.modelsChanged.emit()
        if downloaded:
            self.infoMessage.emit(f"{model.name} is downloaded and ready in the model picker.")
        self.modelAdded.emit(model.path)

    def set_chat_template(self, path: str, key: str | None) -> bool:
        """Save a known chat template for a model (None: the GGUF's own). True when saved."""
        model = self.library.get(path)
        if model is None:
            return False
        defaults = ModelDefaults.from_dict({**model.defaults.to_dict(), "chat_template": key})
        try:
            self.library.set_defaults(path, defaults)
        except (LibraryError, OSError) as exc:
            self.errorMessage.emit(f"Could not save the template for {model.name}: {exc}")
            return False
        self.modelsChanged.emit()
        return True

    # -- connections -------------------------------------------------------------------------

    def refresh_remote_models(self) -> None:
        """Ask every connection what it serves, on a worker thread; the picker lists the
        answers grouped by connection, and a connection that does not answer says why."""
        connections = self.connections.all()
        if not connections:
            if self.remote_models or self.remote_status:
                self.remote_models, self.remote_status = {}, {}
                self.modelsChanged.emit()
            return

        def list_all() -> list[tuple[Connection, list[ModelInfo], str]]:
            from app.engine.remote import RemoteBackend

            results: list[tuple[Connection, list[ModelInfo], str]] = []
            for connection in connections:
                try:
                    backend = RemoteBackend(connection.base_url, ConnectionStore.api_key(connection))
                except Exception as exc:  # a stored address the backend refuses
                    results.append((connection, [], str(exc) or type(exc).__name__))
                    continue
                try:
                    found = backend.models()
                    infos = [remote_model_info(connection, m.id, m.context_length) for m in found]
                    results.append((connection, infos, ""))
                except Exception as exc:  # said in words in the picker; RemoteError's are plain
                    results.append((connection, [], str(exc) or type(exc).__name__))
                finally:
                    backend.close()
            return results

        self._read_off_thread(list_all, self._remote_listed)

    def _remote_listed(self, results: Any, error: BaseException | None) -> None:
        if error is not None or results is None:
            return
        models: dict[str, ModelInfo] = {}
        status: dict[str, str] = {}
        for connection, infos, problem in results:
            for info in infos:
                models[info.path] = info
            status[connection.name] = problem
        self.remote_models, self.remote_status = models, status
        self.modelsChanged.emit()

    # -- worker threads ----------------------------------------------------------------------

    def _read_off_thread(self, fn: Callable[[], Any], on_done: Callable[[Any, BaseException | None], None]) -> None:
        """Run ``fn`` (blocking reads, no Qt) on a thread; ``on_done(result, error)`` runs on
        the GUI thread afterwards, through a queued signal."""

        def run() -> None:
            try:
                result, error = fn(), None
            except Exception as exc:  # handed to on_done, said in plain words there
                result, error = None, exc
            try:
                self._offThreadDone.emit(on_done, result, error)
            except RuntimeError:  # the catalog was deleted meanwhile (the app is closing)
                pass

        self._readers = [t for t in self._readers if t.is_alive()]
        thread = threading.Thread(target=run, name="model-headers", daemon=True)
        self._readers.append(thread)
        thread.start()

    def _off_thread_done(self, on_done: Callable[[Any, BaseException | None], None], result: Any, error: Any) -> None:
        if not self._closed:
            on_done(result, error)


def plain_error(error: BaseException | None, path: str | None = None) -> str:
    """A sentence for a failed header read: typed errors carry one, anything else is named."""
    name = Path(path).name if path else ""
    if isinstance(error, GGUFError):
        return str(error)
    if isinstance(error, OSError):
        text = str(error.strerror or error)
        return f"{name}: {text}" if name else text
    what = type(error).__name__ if error is not None else "unknown error"
    return f"{name}: the file could not be read ({what})" if name else f"something went wrong ({what})"
