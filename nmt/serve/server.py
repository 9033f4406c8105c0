"""uvicorn around the app: bind, serve, stop gracefully.

The socket is bound here (so a busy port is one `NmtError` line, and port 0 picks a free
one that the caller can print). On SIGTERM or Ctrl-C uvicorn stops accepting connections,
answers every request in flight (the batcher finishes what is queued), then runs the app's
shutdown. uvicorn re-raises the signal it stopped on once it is done; SIGTERM's handler is a
no-op while serving so that a requested stop ends with exit status 0 (Ctrl-C still ends as
an interrupt, 130).
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from nmt.errors import NmtError


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are TCP;
    # without it a response's header and body writes wait out the peer's delayed ACK (40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise NmtError(f"--host {host} --port {port}: {e.strerror or e}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def make_server(app: Any, log_level: str = "warning", access_log: bool = False,
                graceful_timeout: float | None = None) -> uvicorn.Server:
    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="on",
                            timeout_graceful_shutdown=graceful_timeout)
    return uvicorn.Server(config)


def serve(server: uvicorn.Server, sock: socket.socket) -> None:
    """Serve on `sock` until SIGTERM or Ctrl-C (in the main thread) or `should_exit`."""
    if threading.current_thread() is not threading.main_thread():
        server.run(sockets=[sock])
        return
    previous = signal.signal(signal.SIGTERM, _ignore)  # what uvicorn restores and re-raises
    try:
        server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not server.started:
        raise NmtError("the server did not start (see the messages above)")


def _ignore(signum: int, frame: Any) -> None:
    """SIGTERM after uvicorn's graceful stop: already done."""


@contextmanager
def background(app: Any, host: str = "127.0.0.1", port: int = 0,
               timeout: float = 30.0) -> Iterator[str]:
    """Serve `app` from a thread while the block runs (tests, notebooks); yields its base
    URL. Leaving the block stops it as SIGTERM would: requests in flight are answered."""
    sock = bind(host, port)
    server = make_server(app)
    thread = threading.Thread(target=serve, args=(server, sock), name="nmt-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise NmtError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
