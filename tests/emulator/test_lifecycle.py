"""Starting, stopping and binding: a clean stop even with streams in flight."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import boto3
import pytest
from botocore.config import Config

from opentelemetry.instrumentation.bedrock_tokens.emulator import BedrockEmulator, Scenario

from .support import converse_messages


def _client(emulator: BedrockEmulator) -> Any:
    return boto3.client(
        "bedrock-runtime",
        config=Config(retries={"total_max_attempts": 1}, proxies={}, read_timeout=10),
        **emulator.client_kwargs(),
    )


def test_lifecycle_and_port_reuse() -> None:
    emulator = BedrockEmulator()
    assert not emulator.running
    with pytest.raises(RuntimeError):
        _ = emulator.endpoint_url
    with emulator:
        port = emulator.port
        assert port > 0
        assert emulator.host == "127.0.0.1"
        assert emulator.endpoint_url == f"http://127.0.0.1:{port}"
        with pytest.raises(RuntimeError):
            emulator.start()
        assert _client(emulator).converse(
            modelId="amazon.nova-micro-v1:0", messages=converse_messages()
        )
    assert not emulator.running
    emulator.stop()  # idempotent
    # the port is free again, and a given port is honoured
    with BedrockEmulator(port=port) as again:
        assert again.port == port
        assert _client(again).converse(
            modelId="amazon.nova-micro-v1:0", messages=converse_messages()
        )


def test_binds_loopback_only() -> None:
    with BedrockEmulator() as emulator:
        listening = emulator._server.socket.getsockname()  # type: ignore[union-attr]
        assert listening[0] == "127.0.0.1"


def test_stop_ends_streams_in_flight_and_idle_connections() -> None:
    emulator = BedrockEmulator().start()
    port = emulator.port
    client = _client(emulator)
    client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())  # keep-alive
    emulator.set_scenario(Scenario(stream_events=1000, chunk_delay=0.05))
    outcome: list[BaseException] = []

    def consume() -> None:
        try:
            response = client.converse_stream(
                modelId="amazon.nova-micro-v1:0", messages=converse_messages()
            )
            for _ in response["stream"]:
                pass
        except BaseException as exc:  # expected: the server went away
            outcome.append(exc)

    reader = threading.Thread(target=consume)
    reader.start()
    time.sleep(0.2)
    started = time.perf_counter()
    emulator.stop()
    assert time.perf_counter() - started < 2.0
    reader.join(5)
    assert not reader.is_alive()
    assert outcome  # the stream did not complete
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
