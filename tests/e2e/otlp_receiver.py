"""A loopback OTLP/HTTP receiver for end-to-end tests.

It stands where a backend (Honeycomb, Datadog's intake, the Agent, a Collector) would: it
accepts ``POST /v1/traces``, ``/v1/metrics`` and ``/v1/logs``, keeps every request's path and
headers, and decodes the body with the official ``opentelemetry-proto`` messages, so what the
tests assert is exactly what a backend would parse. Anything it cannot decode is kept as an
error and fails the test that reads it.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

_MESSAGES: dict[str, tuple[Any, Any]] = {
    "traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
    "metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
    "logs": (ExportLogsServiceRequest, ExportLogsServiceResponse),
}


@dataclass
class Export:
    """One export request as received."""

    signal: str  # traces | metrics | logs
    path: str
    headers: dict[str, str]  # lower-cased names
    message: Any  # the decoded Export*ServiceRequest


def value_of(value: AnyValue) -> Any:
    """An OTLP AnyValue as a plain Python value (arrays as tuples)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(value_of(item) for item in value.array_value.values)
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    return getattr(value, kind)


def attributes_of(pairs: Any) -> dict[str, Any]:
    return {pair.key: value_of(pair.value) for pair in pairs}


def set_attribute(pairs: Any, key: str, value: Optional[Any]) -> None:
    """Replace (or, with None, delete) one attribute in a repeated KeyValue field, in place:
    lets a test doctor a captured payload to show the checks catch what is missing."""
    for index, pair in enumerate(pairs):
        if pair.key == key:
            del pairs[index]
            break
    if value is not None:
        new = KeyValue(key=key)
        if isinstance(value, bool):
            new.value.bool_value = value
        elif isinstance(value, int):
            new.value.int_value = value
        elif isinstance(value, float):
            new.value.double_value = value
        else:
            new.value.string_value = str(value)
        pairs.append(new)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return None

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        headers = {key.lower(): value for key, value in self.headers.items()}
        signal = self.path.rstrip("/").rsplit("/", 1)[-1]
        request_cls, response_cls = _MESSAGES.get(signal, (None, None))
        try:
            encoding = headers.get("content-encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            if request_cls is None:
                raise ValueError(f"unknown OTLP path {self.path}")
            message = request_cls.FromString(body)
        except Exception as exc:
            self.server.errors.append(f"{self.path}: {exc!r}")
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with self.server.lock:
            self.server.exports.append(Export(signal, self.path, headers, message))
        payload = response_cls().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.exports: list[Export] = []
        self.errors: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class OTLPReceiver:
    """Start with ``with OTLPReceiver() as receiver:``; ``receiver.url`` is the OTLP base URL."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def errors(self) -> list[str]:
        return list(self._server.errors)

    def exports(self, signal: Optional[str] = None) -> list[Export]:
        with self._server.lock:
            return [e for e in self._server.exports if signal is None or e.signal == signal]

    def clear(self) -> None:
        with self._server.lock:
            self._server.exports.clear()
            self._server.errors.clear()


def iter_spans(exports: list[Export]) -> Iterator[tuple[dict[str, Any], Any, Any]]:
    """(resource attributes, instrumentation scope, span) for every span received."""
    for export in exports:
        for resource_spans in export.message.resource_spans:
            resource = attributes_of(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    yield resource, scope_spans, span


def iter_metrics(exports: list[Export]) -> Iterator[tuple[dict[str, Any], Any, Any]]:
    """(resource attributes, scope metrics, metric) for every metric received."""
    for export in exports:
        for resource_metrics in export.message.resource_metrics:
            resource = attributes_of(resource_metrics.resource.attributes)
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    yield resource, scope_metrics, metric
