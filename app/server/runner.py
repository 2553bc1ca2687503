"""Run the API under uvicorn in a daemon thread with its own asyncio loop, beside Qt's.

``ApiServer(gateway, host="127.0.0.1", port=8080, api_key=None, cors_origins=(), ...)``:
``start()`` binds the socket itself (so a port in use is an OSError at once, and port 0
picks a free one: ``.port``, ``.base_url``) and returns when uvicorn is accepting;
``stop()`` cancels the jobs in progress, lets uvicorn close its connections and returns
within a few seconds; ``running`` says whether it serves. ``on_request`` gets a
:class:`~app.server.api.RequestLogEntry` per request, on the server's thread (a Qt panel
should re-emit it as a signal).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from app.engine.jobs import EngineGateway
from app.server.api import RequestLogEntry, create_app
from app.server.schemas import Limits

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ApiServer:
    def __init__(
        self,
        gateway: EngineGateway,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        api_key: str | None = None,
        cors_origins: Sequence[str] = (),
        *,
        max_body: int = Limits.max_body,
        max_tokens_cap: int = Limits.max_tokens_cap,
        max_messages: int = Limits.max_messages,
        on_request: Callable[[RequestLogEntry], None] | None = None,
        shutdown_seconds: float = 2.0,
    ) -> None:
        self.gateway = gateway
        self.host = host
        self.port = port
        self.app = create_app(
            gateway,
            api_key=api_key or None,
            cors_origins=list(cors_origins),
            max_body=max_body,
            max_tokens_cap=max_tokens_cap,
            max_messages=max_messages,
            on_request=on_request,
        )
        self.shutdown_seconds = shutdown_seconds
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def base_url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"  # reachable from here; the panel shows the network address apart
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return (
            self._thread is not None and self._thread.is_alive() and self._server is not None and self._server.started
        )

    def start(self, timeout: float = 10.0) -> None:
        """Serve; returns once the server accepts connections. Raises OSError when the
        address cannot be bound (port in use, no such interface), RuntimeError when uvicorn
        does not start within ``timeout`` seconds."""
        import uvicorn

        if self._thread is not None:
            raise RuntimeError("The API server is already running.")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host.strip("[]"), self.port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._socket = sock
        config = uvicorn.Config(
            self.app,
            log_config=None,  # Hearth's logging stays as it is
            access_log=False,  # the request log is ours (on_request)
            lifespan="off",
            timeout_graceful_shutdown=max(1, int(self.shutdown_seconds)),
            timeout_keep_alive=5,
        )
        server = uvicorn.Server(config)
        self._server = server
        thread = threading.Thread(target=self._serve, args=(server, sock), name="api-server", daemon=True)
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("The API server did not start.")
            time.sleep(0.005)
        log.info("API server listening on %s", self.base_url)

    def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except BaseException:
            log.exception("the API server stopped with an error")

    def stop(self, timeout: float | None = None) -> None:
        """Stop serving: jobs in progress are cancelled, open streams end, the port is free
        again when this returns (within ``shutdown_seconds`` + 1 s)."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self.app.state.api.cancel_all()
        server.should_exit = True
        thread.join(timeout if timeout is not None else self.shutdown_seconds + 1.0)
        if thread.is_alive():
            server.force_exit = True
            self.app.state.api.cancel_all()
            thread.join(2.0)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._server = None
        self._thread = None
        log.info("API server stopped")
