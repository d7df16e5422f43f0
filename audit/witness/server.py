"""The witness over HTTP: ``POST <prefix>/add-checkpoint`` on a threading stdlib server.

Hostile input never reaches the witness unbounded: a request needs a
Content-Length no larger than :data:`~audit.witness.protocol.MAX_REQUEST_BYTES`
(else 411/413), slow clients time out, other paths and methods get 404/405,
and an unexpected failure is a 500 for that request only — the server keeps
serving.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from audit.witness.protocol import ADD_CHECKPOINT_PATH, MAX_REQUEST_BYTES
from audit.witness.witness import Witness, WitnessAnswer

__all__ = ["WitnessServer", "serve_in_thread"]

_log = logging.getLogger(__name__)
REQUEST_TIMEOUT = 10.0
"""Seconds a client may take to send its request (headers and body)."""
MAX_CONNECTIONS = 64
"""Connections served at once by default."""


class _Handler(BaseHTTPRequestHandler):
    server: WitnessServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the spec recommends
    timeout = REQUEST_TIMEOUT
    server_version = "gxpmes-witness"

    def log_message(self, format: str, *args: Any) -> None:
        _log.info("%s %s", self.address_string(), format % args)

    def _answer(self, answer: WitnessAnswer, *, close: bool = False) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(answer.body)

    def do_POST(self) -> None:
        if self.path != self.server.prefix + ADD_CHECKPOINT_PATH:
            self._answer(WitnessAnswer.text(404, "no such endpoint"), close=True)
            return
        if self.headers.get("Transfer-Encoding") is not None:
            self._answer(WitnessAnswer.text(411, "send a Content-Length"), close=True)
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.strip().isdigit():
            self._answer(WitnessAnswer.text(411, "send a Content-Length"), close=True)
            return
        length = int(length_text)
        if length > MAX_REQUEST_BYTES:
            self._answer(
                WitnessAnswer.text(413, f"request exceeds {MAX_REQUEST_BYTES} bytes"), close=True
            )
            return
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            return  # the client went away mid-body
        try:
            answer = self.server.witness.add_checkpoint(body)
        except Exception:  # a database failure must cost this request, not the server
            _log.exception("add-checkpoint failed")
            answer = WitnessAnswer.text(500, "the witness could not process the request")
        self._answer(answer)

    def _not_allowed(self) -> None:
        answer = WitnessAnswer.text(405, "use POST")
        self.send_response(answer.status)
        self.send_header("Allow", "POST")
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    do_GET = do_PUT = do_DELETE = do_HEAD = do_PATCH = _not_allowed


class WitnessServer(ThreadingHTTPServer):
    """An HTTP server answering add-checkpoint requests with ``witness``.

    At most ``max_connections`` connections are served at once (one thread
    each); a connection beyond that is closed at once, so idle or slow
    clients cannot exhaust the host.
    """

    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        witness: Witness,
        prefix: str = "",
        *,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.witness = witness
        self.prefix = prefix.rstrip("/")
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            _log.warning("refusing connection from %s: too many connections", client_address)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    @property
    def url(self) -> str:
        """The submission prefix URL, e.g. ``http://127.0.0.1:8080``."""
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}{self.prefix}"


def serve_in_thread(server: WitnessServer) -> threading.Thread:
    """Run ``server`` in a daemon thread (stop it with ``server.shutdown()``)."""
    thread = threading.Thread(target=server.serve_forever, name="witness-http", daemon=True)
    thread.start()
    return thread
