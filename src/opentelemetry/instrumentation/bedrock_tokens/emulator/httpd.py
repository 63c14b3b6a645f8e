"""The HTTP side of the emulator: a threaded stdlib server speaking what botocore expects.

Choices that matter for botocore (see the wire reference, section 12): HTTP/1.1 keep-alive with
explicit framing (``Content-Length``, or chunked streams ending in ``0\\r\\n\\r\\n``), TCP_NODELAY
so small responses do not wait ~40 ms for a delayed ACK, one event-stream frame per HTTP chunk
written on its own, and silence when a client walks away from a stream half-read.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

from .operations import (
    DROP,
    EmulatorState,
    Frame,
    Incoming,
    Outcome,
    Stopping,
    error_outcome,
    handle,
)

__all__ = ["EmulatorHTTPServer"]

_log = logging.getLogger(__name__)

_CLIENT_GONE = (ConnectionError, BrokenPipeError, TimeoutError, socket.timeout, OSError)
_MAX_BODY = 64 * 1024 * 1024


class EmulatorHTTPServer(ThreadingHTTPServer):
    """Threaded server bound to one :class:`EmulatorState`; tracks live connections so a
    stop can close them."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        state: EmulatorState,
        verbose: bool,
        *,
        connection_timeout: Optional[float] = 60.0,
        backlog: int = 1024,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        # socketserver's default backlog of 5 drops SYNs as soon as a few dozen clients
        # connect at once; they then wait for a retransmit (1 s, 3 s, ...) or get a reset.
        self.request_queue_size = backlog
        self.connection_timeout = connection_timeout
        self.state = state
        self.verbose = verbose
        self._live_lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._idle = threading.Condition(self._live_lock)
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the host (slow without DNS)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def track(self, sock: socket.socket, alive: bool) -> None:
        with self._live_lock:
            if alive:
                self._live.add(sock)
            else:
                self._live.discard(sock)
                self._idle.notify_all()

    def close_live_connections(self, timeout: float) -> None:
        """Shut every open connection down and wait (bounded) for handlers to finish."""
        with self._live_lock:
            for sock in list(self._live):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._idle.wait_for(lambda: not self._live, timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when clients drop connections; log anything else without a traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, _CLIENT_GONE) or self.state.stopping.is_set():
            return
        _log.warning("Bedrock emulator: unexpected error serving %s: %r", client_address, error)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "BedrockEmulator"
    sys_version = ""
    server: EmulatorHTTPServer

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        # A connection silent for this long (idle keep-alive, half a request, a reader that
        # stopped reading) times out and is closed, and its thread ends, instead of being held
        # forever.
        self.request.settimeout(self.server.connection_timeout)
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def send_error(
        self, code: int, message: Optional[str] = None, explain: Optional[str] = None
    ) -> None:
        """Protocol-level errors (bad request line, unknown method) in Bedrock's error style."""
        status = code if 400 <= code < 600 else 400
        error_code = "ValidationException" if status < 500 else "InternalServerException"
        if status in (404, 405, 501):
            status, error_code = 404, "UnknownOperationException"
        self.close_connection = True
        outcome = error_outcome(str(uuid.uuid4()), status, error_code, message or "")
        with contextlib.suppress(OSError):
            self._write_outcome(outcome)

    def do_POST(self) -> None:
        self._serve()

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_POST

    # ------------------------------------------------------------------ request

    def _read_body(self) -> Optional[bytes]:
        """The request body (Content-Length or chunked); None after answering a framing error."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        try:
            length = int(length_header) if length_header is not None else 0
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self.send_error(400, "Invalid Content-Length")
            return None
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> Optional[bytes]:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.send_error(400, "Invalid chunked request body")
                return None
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass
                return b"".join(parts)
            total += size
            if total > _MAX_BODY:
                self.send_error(400, "Request body too large")
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _serve(self) -> None:
        started = time.monotonic()
        body = self._read_body()
        if body is None:
            return
        incoming = Incoming(
            method=self.command,
            target=self.path,
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
            request_id=str(uuid.uuid4()),
            started=started,
        )
        try:
            outcome = handle(self.server.state, incoming)
        except Stopping:
            self.close_connection = True
            return
        except Exception as exc:  # a bug here must not hang or confuse the client
            _log.exception("Bedrock emulator: internal error")
            outcome = error_outcome(incoming.request_id, 500, "InternalServerException", repr(exc))
        self._write_outcome(outcome)

    # ------------------------------------------------------------------ response

    def _write_outcome(self, outcome: Outcome) -> None:
        self.send_response(outcome.status)
        for name, value in outcome.headers:
            self.send_header(name, value)
        if outcome.frames is not None:
            self.end_headers()
            self._write_frames(outcome.frames)
            return
        self.send_header("Content-Length", str(len(outcome.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if outcome.drop_partial:
            self.wfile.write(outcome.body[: len(outcome.body) // 2])
            self._drop_connection()
            return
        self.wfile.write(outcome.body)

    def _write_frames(self, frames: Iterator[Frame]) -> None:
        try:
            for frame in frames:
                if frame is DROP:
                    self._drop_connection()
                    return
                assert isinstance(frame, bytes)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except Stopping:
            self._drop_connection()

    def _drop_connection(self) -> None:
        """Close abruptly, as a dropped upstream does: the body never gets its end."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
