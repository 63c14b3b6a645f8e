"""``BedrockEmulator``: the public face of the emulator (lifecycle, control, expectations).

The HTTP details live in :mod:`.httpd`, the request logic in :mod:`.operations`; this class
owns one server thread and the shared state, and forwards the control calls to that state.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from types import TracebackType
from typing import Any, Optional

from .counting import RequestLike, input_tokens_for, output_text_for, output_tokens_for
from .httpd import EmulatorHTTPServer
from .operations import EmulatorState
from .recording import RecordedRequest
from .scenarios import Scenario

__all__ = ["BedrockEmulator", "is_loopback_host"]

_log = logging.getLogger(__name__)


def is_loopback_host(host: str) -> bool:
    """True when every address ``host`` names is a loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


class BedrockEmulator:
    """A local Bedrock Runtime endpoint for boto3/botocore, with scenario control.

    Use as a context manager (``with BedrockEmulator() as emu: ...``) or call :meth:`start` /
    :meth:`stop`. It binds ``127.0.0.1`` on a free port unless told otherwise and serves every
    request on its own thread. All public methods are thread-safe.

    ``scenario_headers`` lets clients choose a scenario per request with the
    ``x-bedrock-emulator-scenario`` header (delays, errors...); off by default, since any client
    that can reach the port could then hold threads or break answers. ``connection_timeout`` is
    how long a connection may stay silent (idle keep-alive, a half-sent request, a client that
    stops reading) before the emulator closes it. ``backlog`` is the listen queue length.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_recorded_requests: int = 10_000,
        verbose: bool = False,
        scenario_headers: bool = False,
        connection_timeout: Optional[float] = 60.0,
        backlog: int = 1024,
    ) -> None:
        if connection_timeout is not None and connection_timeout <= 0:
            raise ValueError("connection_timeout must be positive (or None for no timeout)")
        self._host = host
        self._port = port
        self._verbose = verbose
        self._connection_timeout = connection_timeout
        self._backlog = backlog
        self._state = EmulatorState(max_recorded_requests, scenario_headers=scenario_headers)
        self._server: Optional[EmulatorHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> BedrockEmulator:
        """Bind and serve in a background thread; returns self. Starting twice is an error."""
        if self._server is not None:
            raise RuntimeError("BedrockEmulator is already running")
        self._state.stopping.clear()
        server = EmulatorHTTPServer(
            (self._host, self._port),
            self._state,
            self._verbose,
            connection_timeout=self._connection_timeout,
            backlog=self._backlog,
        )
        self._server = server
        if not is_loopback_host(self._host):
            _log.warning(
                "Bedrock emulator: %s is not a loopback address; anything that can reach "
                "port %d can use this emulator (it checks no credentials). It is meant for "
                "tests and demos on one machine.",
                self._host,
                self.port,
            )
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"bedrock-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, end open connections and in-flight streams, release the port."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._state.stopping.set()
        server.shutdown()
        server.close_live_connections(timeout)
        server.server_close()
        if thread is not None:
            thread.join(timeout)
        self._server = self._thread = None

    def serve_forever(self) -> None:
        """Start if needed and block until interrupted (KeyboardInterrupt), then stop."""
        if self._server is None:
            self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def __enter__(self) -> BedrockEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def scenario_headers(self) -> bool:
        """Whether the ``x-bedrock-emulator-scenario`` request header is honoured."""
        return self._state.scenario_headers

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The bound port (the free one chosen when started with port 0)."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._port

    @property
    def endpoint_url(self) -> str:
        """``http://host:port``, to pass as ``endpoint_url`` to boto3."""
        if self._server is None:
            raise RuntimeError("BedrockEmulator is not running; call start() first")
        host = self._host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``boto3.client("bedrock-runtime", **kwargs)``."""
        return {
            "endpoint_url": self.endpoint_url,
            "region_name": "us-east-1",
            "aws_access_key_id": "emulator",
            "aws_secret_access_key": "emulator",
        }

    # ------------------------------------------------------------------ control

    def set_scenario(self, scenario: Optional[Scenario], model_id: Optional[str] = None) -> None:
        """Apply ``scenario`` to every request for ``model_id`` (as the client passed it,
        decoded), or to every model when ``model_id`` is None; ``None`` removes it."""
        self._state.scenarios.set(scenario, model_id)

    def push_scenario(self, *scenarios: Scenario) -> None:
        """Queue one-shot scenarios: each applies to one later request, first in first out,
        ahead of the ones set with :meth:`set_scenario`."""
        self._state.scenarios.push(scenarios)

    def register_alias(self, model_id: str, base_model_id: str) -> None:
        """Treat ``model_id`` (e.g. an application inference profile ARN) as ``base_model_id``."""
        self._state.register_alias(model_id, base_model_id)

    def reset(self) -> None:
        """Forget recorded requests, scenarios, aliases and the prompt cache."""
        self._state.reset()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the recorded requests, oldest first (the last 10,000 by default)."""
        return self._state.log.snapshot()

    # ------------------------------------------------------------------ expectations

    @staticmethod
    def input_tokens_for(model_id: str, operation: str, request: RequestLike) -> int:
        """See :func:`~.counting.input_tokens_for`."""
        return input_tokens_for(model_id, operation, request)

    @staticmethod
    def output_tokens_for(
        model_id: str,
        operation: str,
        request: RequestLike,
        scenario: Optional[Scenario] = None,
    ) -> int:
        """See :func:`~.counting.output_tokens_for`."""
        return output_tokens_for(model_id, operation, request, scenario)

    @staticmethod
    def output_text_for(
        model_id: str,
        operation: str,
        request: RequestLike,
        scenario: Optional[Scenario] = None,
    ) -> str:
        """See :func:`~.counting.output_text_for`."""
        return output_text_for(model_id, operation, request, scenario)
