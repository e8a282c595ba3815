"""Running the application with uvicorn: the listening socket, the log, and a clean stop on SIGTERM or SIGINT.

On a signal, camera streams end at once, the server stops accepting connections, finishes the requests it has
(up to :data:`GRACE` seconds), stops the workers and releases the camera; :func:`run` then returns the signal's
name, so that the command exits with status 0.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys

import uvicorn
from fastapi import FastAPI

__all__ = ["GRACE", "configure_logging", "listen", "run"]

GRACE = 10  # seconds open requests get to finish after a signal
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def configure_logging() -> None:
    """Log lines on stderr: ``ferlite.serve`` (one line per request, startup, errors) at INFO, uvicorn's warnings."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # python_multipart logs a malformed form as a warning too: the 400 answer and its log line say it already
    for name, level in (("ferlite.serve", logging.INFO), ("uvicorn", logging.WARNING), ("python_multipart", 100)):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host``:``port`` (0: a free port); OSError naming the address and why not.

    Made with ``IPPROTO_TCP`` as its protocol, so that asyncio turns Nagle's algorithm off on its connections (it
    does only for sockets of that protocol): with it on, each answer sent in two writes waits for the client's
    delayed ACK, 40 ms on Linux.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        why = exc.strerror or str(exc)
        raise OSError(f"cannot listen on {host}:{port}: {why} (expected a free port on an address of this machine: "
                      "choose another --port, or --port 0 for any free one)") from exc
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, which also tells the application at once that a signal came (camera streams end)."""

    def __init__(self, config: uvicorn.Config, on_signal) -> None:
        super().__init__(config)
        self._on_signal = on_signal

    def handle_exit(self, sig: int, frame) -> None:
        self._on_signal()
        super().handle_exit(sig, frame)


def run(app: FastAPI, sock: socket.socket, *, max_connections: int) -> str | None:
    """Serve ``app`` on the listening ``sock`` until SIGTERM or SIGINT; the name of the signal that stopped it.

    ``max_connections``: connections and requests open at once; uvicorn answers more with 503.
    """
    config = uvicorn.Config(app, log_config=None, access_log=False, limit_concurrency=max_connections,
                            timeout_graceful_shutdown=GRACE, server_header=False, lifespan="on")
    server = _Server(config, app.state.service.halt)
    received: list[int] = []

    def note(sig: int, frame) -> None:  # uvicorn raises the signal again once it has stopped: it ends here
        received.append(sig)

    previous = {sig: signal.signal(sig, note) for sig in _SIGNALS}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    return signal.Signals(received[0]).name if received else None
