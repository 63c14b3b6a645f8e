"""The emulator as a service (issue 13, problem 12): hundreds of concurrent connections are
served promptly, a stalled connection does not hold a thread forever, the scenario header (which
lets any client delay or break answers) is honoured only when enabled, and a non-loopback host
is warned about.

Load is made with raw sockets and ``http.client`` (not boto3), so the client side stays cheap
and what is measured is the server: connect, answer, close.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import statistics
import threading
import time
from typing import Any

import pytest

from opentelemetry.instrumentation.bedrock_tokens.emulator import (
    SCENARIO_HEADER,
    BedrockEmulator,
    Scenario,
)

from .support import figure

CONCURRENT = 200
CLIENT_TIMEOUT = 10.0
MODEL = "amazon.nova-micro-v1:0"
BODY = json.dumps({"messages": [{"role": "user", "content": [{"text": "Hello there"}]}]})


def _converse(port: int, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request(
            "POST",
            f"/model/{MODEL}/converse",
            body=BODY,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_two_hundred_concurrent_requests_complete_promptly() -> None:
    """200 clients connect at the same instant: none times out and the median stays low (the
    old listen backlog of 5 dropped SYNs, so most connects waited for a 1 s or 3 s retransmit:
    p50 2.7 s, 76 timeouts at 10 s)."""
    with BedrockEmulator() as emulator:
        _converse(emulator.port)  # warm up (imports, first thread)
        barrier = threading.Barrier(CONCURRENT)
        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()

        def one() -> None:
            barrier.wait()
            started = time.monotonic()
            try:
                status, body = _converse(emulator.port)
                ok = status == 200 and b"usage" in body
                outcome = "" if ok else f"status {status}"
            except (OSError, http.client.HTTPException) as exc:
                outcome = type(exc).__name__
            with lock:
                latencies.append(time.monotonic() - started)
                if outcome:
                    failures.append(outcome)

        threads = [threading.Thread(target=one) for _ in range(CONCURRENT)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    p50 = statistics.median(latencies)
    worst = max(latencies)
    figure("emulator: 200 concurrent requests", f"p50 {p50 * 1000:.0f} ms, max {worst:.2f} s, "
           f"{len(failures)} failed")
    assert len(latencies) == CONCURRENT
    assert failures == []
    assert p50 < 0.5, f"p50 {p50:.2f} s"
    assert worst < 3.0, f"slowest {worst:.2f} s"


def _read_to_eof(sock: socket.socket) -> bool:
    """True when the peer closed (whatever it sent before, e.g. a 408 or 400 answer)."""
    while True:
        if sock.recv(1 << 16) == b"":
            return True


def test_stalled_connections_are_closed_after_the_connection_timeout() -> None:
    """Clients that connect and send nothing (or half a request) lose their connection after
    ``connection_timeout``; their threads end, and the emulator keeps answering meanwhile."""
    stalled = 100
    with BedrockEmulator(connection_timeout=0.5) as emulator:
        baseline = threading.active_count()
        sockets: list[socket.socket] = []
        try:
            for index in range(stalled):
                sock = socket.create_connection(("127.0.0.1", emulator.port), timeout=5)
                if index % 2:
                    sock.sendall(b"POST /model/x/converse HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
                sockets.append(sock)
            deadline = time.monotonic() + 2
            while (threading.active_count() < baseline + stalled // 2
                   and time.monotonic() < deadline):
                time.sleep(0.02)
            held = threading.active_count() - baseline
            assert _converse(emulator.port)[0] == 200  # still serving
            deadline = time.monotonic() + 10
            while threading.active_count() > baseline + 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            left = threading.active_count() - baseline
            closed = 0
            for sock in sockets:
                sock.settimeout(2)
                try:
                    closed += _read_to_eof(sock)
                except ConnectionResetError:
                    closed += 1
                except socket.timeout:
                    pass  # still open: not closed
        finally:
            for sock in sockets:
                sock.close()
    figure("emulator: threads held by 100 stalled connections", f"{held} at first, {left} "
           "after the 0.5 s connection timeout")
    assert held >= stalled // 2  # they did hold threads, so the release below is real
    assert left <= 2
    assert closed == stalled


def test_scenario_header_is_refused_unless_enabled() -> None:
    """A client cannot make the emulator sleep (or fail) with the header unless whoever started
    it allowed that; the refusal says how to allow it."""
    delay = {SCENARIO_HEADER: Scenario(first_byte_delay=2.0).to_json()}
    with BedrockEmulator() as emulator:
        started = time.monotonic()
        status, body = _converse(emulator.port, delay)
        elapsed = time.monotonic() - started
    assert status == 400
    assert "scenario_headers" in json.loads(body)["message"]
    assert elapsed < 1.0
    with BedrockEmulator(scenario_headers=True) as emulator:
        status, body = _converse(emulator.port, {SCENARIO_HEADER: '{"error_status": 429}'})
    assert status == 429


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_non_loopback_host_is_warned_about(host: str, caplog: Any) -> None:
    if host == "::" and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    caplog.set_level(logging.WARNING)
    try:
        emulator = BedrockEmulator(host=host).start()
    except OSError as exc:  # e.g. IPv6 disabled in the kernel
        pytest.skip(f"cannot bind {host}: {exc}")
    emulator.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("not a loopback address" in message for message in warnings), warnings


def test_loopback_host_is_not_warned_about(caplog: Any) -> None:
    caplog.set_level(logging.WARNING)
    with BedrockEmulator(host="127.0.0.1"):
        pass
    with BedrockEmulator(host="localhost"):
        pass
    assert not [r for r in caplog.records if "loopback" in r.getMessage()]
