"""What every reliability test shares: the independent count oracle, canned responses injected
below botocore, the user-side observation of one call (for the differential check), and the
invariant checks run after every case.

Nothing here touches the instrumentation's own code: faults the emulator cannot produce are
injected with botocore hooks on the client (``before-send`` returning a canned HTTP response,
``before-parse`` rewriting response headers), so the bytes still go through botocore's real
parsers and our real wrapper.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import math
import os
import re
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from importlib.metadata import version
from typing import Any, Callable, Optional

import urllib3
from botocore.awsrequest import AWSResponse
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from opentelemetry import context as otel_context
from opentelemetry.instrumentation.bedrock_tokens import names, patch

from ..helpers import usage_attrs
from ..test_differential import _normalise, _raised

SOAK = os.environ.get("BEDROCK_TOKENS_SOAK", "").strip().lower() in ("1", "true", "yes", "on")
WRITE_DOC = os.environ.get("BEDROCK_TOKENS_WRITE_RELIABILITY", "").strip().lower() in (
    "1", "true", "yes", "on")
# Figures measured by this run (concurrency, leaks, shutdown): printed in the summary and, with
# BEDROCK_TOKENS_WRITE_RELIABILITY=1, written to RELIABILITY.md.
FIGURES: dict[str, str] = {}


# For scripts run in a subprocess (shutdown, fork): SDK exporters that append every span and
# metric point, as one JSON line with the writing process's id, to the file ``out_path``.
JSONL_EXPORTERS = r'''
import json as _json, os as _os
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

def write(record):
    with open(out_path, "a") as out:
        out.write(_json.dumps(dict(record, pid=_os.getpid()), default=list) + "\n")

class Spans(SpanExporter):
    def export(self, spans):
        for span in spans:
            write({"span": span.name, "id": span.context.span_id,
                   "attributes": dict(span.attributes)})
        return SpanExportResult.SUCCESS

class Metrics(MetricExporter):
    def __init__(self):
        super().__init__(preferred_temporality=None, preferred_aggregation=None)
    def export(self, metrics_data, timeout_millis=10_000, **kwargs):
        for rm in metrics_data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for p in metric.data.data_points:
                        write({"metric": metric.name, "attributes": dict(p.attributes),
                               "count": getattr(p, "count", None),
                               "sum": getattr(p, "sum", None)})
        return MetricExportResult.SUCCESS
    def force_flush(self, timeout_millis=10_000):
        return True
    def shutdown(self, timeout_millis=30_000, **kwargs):
        pass

def instrument(span_processor, **options):
    """Providers first, as an application does (their exit handlers run after ours)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(span_processor)
    meter_provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(
        Metrics(), export_interval_millis=3_600_000)])
    BedrockTokensInstrumentor().instrument(tracer_provider=tracer_provider,
                                           meter_provider=meter_provider, **options)

def emulator_client(endpoint):
    import boto3
    from botocore.config import Config
    return boto3.client("bedrock-runtime", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x",
                        config=Config(retries={"total_max_attempts": 1},
                                      signature_version="v4", proxies={}))
'''


def figure(key: str, value: str) -> None:
    FIGURES[f"soak: {key}" if SOAK else key] = value

INT64_MAX = 2**63 - 1
OUR_LOGGER = "opentelemetry.instrumentation.bedrock_tokens"
SDK_TRACE_LOGGER = "opentelemetry.sdk.trace"
OTLP_LOGGER = "opentelemetry.exporter.otlp.proto.common"

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
PROMPT = "Count the tokens of this short prompt, please."

INVOKE = "InvokeModel"
INVOKE_STREAM = "InvokeModelWithResponseStream"
CONVERSE = "Converse"
CONVERSE_STREAM = "ConverseStream"
COUNT = "CountTokens"
OPERATIONS = (INVOKE, INVOKE_STREAM, CONVERSE, CONVERSE_STREAM, COUNT)
STREAM_KEY = {INVOKE_STREAM: "body", CONVERSE_STREAM: "stream"}
MODES = ("off", "blocking", "background")


# -- the oracle ---------------------------------------------------------------------------------
def exact_count(value: Any) -> Optional[int]:
    """The exact token count a value stands for, or None: the contract of ARCHITECTURE.md
    ("non-negative integral values only", 64-bit; what the service sends, nothing more),
    written independently of ``usage.to_count`` so that a broken parser cannot agree with
    itself. A float (or a decimal-point string) stands for an integer only up to 2**53, where
    floats stop telling neighbouring integers apart; no sign, no exponent, ASCII digits only."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= INT64_MAX else None
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0 or value != math.floor(value):
            return None
        return int(value) if value <= 2**53 else None
    if isinstance(value, (bytes, str)):
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        text = text.strip()
        whole, dot, fraction = text.partition(".")
        digits = set("0123456789")
        if not whole or not set(whole) <= digits or (dot and not fraction):
            return None
        if dot and (not set(fraction) <= digits or set(fraction) != {"0"}
                    or Decimal(whole) > 2**53):
            return None
        return exact_count(int(whole))
    return None


def usage_expectation(
    inp: Optional[int], out: Optional[int], cache_read: Optional[int] = None,
    cache_write: Optional[int] = None,
) -> dict[str, int]:
    """Span usage attributes for exact counts: the semconv input includes cached tokens, and is
    absent when that sum is not a 64-bit count (exact or absent, and always exportable)."""
    attrs: dict[str, int] = {}
    if inp is not None:
        total = inp + (cache_read or 0) + (cache_write or 0)
        if total <= INT64_MAX:
            attrs[names.GEN_AI_USAGE_INPUT_TOKENS] = total
    if out is not None:
        attrs[names.GEN_AI_USAGE_OUTPUT_TOKENS] = out
    if cache_read is not None:
        attrs[names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cache_read
    if cache_write is not None:
        attrs[names.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = cache_write
    return attrs


def first(*values: Optional[int]) -> Optional[int]:
    return next((v for v in values if v is not None), None)


def expected_error_type(exc: BaseException) -> str:
    """``error.type`` for what the user saw: the service's code, capitalised, else the class."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        error = response.get("Error")
        code = error.get("Code") if isinstance(error, Mapping) else None
        if isinstance(code, str) and code:
            return code[:1].upper() + code[1:]
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


# -- canned responses, injected below botocore ----------------------------------------------------
EVENTSTREAM = "application/vnd.amazon.eventstream"
CANNED_REQUEST_ID = "00000000-0000-4000-8000-canned000001"


@dataclass(frozen=True)
class Canned:
    """One HTTP response returned by a ``before-send`` hook instead of sending the request."""

    body: bytes
    content_type: str = "application/json"
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    request_id: Optional[str] = CANNED_REQUEST_ID

    def response(self, url: str) -> AWSResponse:
        headers = {"content-type": self.content_type, **dict(self.headers)}
        if self.request_id is not None:
            headers["x-amzn-requestid"] = self.request_id
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(self.body), headers=headers, status=self.status,
            preload_content=False, decode_content=False,
        )
        return AWSResponse(url, self.status, headers, raw)


def serve_canned(client: Any, operation: str, canned: Canned) -> None:
    def _send(request: Any, **_: Any) -> AWSResponse:
        return canned.response(request.url)

    client.meta.events.register(f"before-send.bedrock-runtime.{operation}", _send)


def rewrite_headers(
    client: Any, operation: str, values: Mapping[str, str], remove: tuple[str, ...] = ()
) -> None:
    """Rewrite the response headers botocore parses (the body stays the emulator's)."""
    def _rewrite(response_dict: Any, **_: Any) -> None:
        headers = response_dict["headers"]
        for name in remove:
            if name in headers:
                del headers[name]
        for name, value in values.items():
            headers[name] = value

    client.meta.events.register(f"before-parse.bedrock-runtime.{operation}", _rewrite)


# -- one call, as the user sees it ----------------------------------------------------------------
def default_params(operation: str, model: str = CLAUDE, text: str = PROMPT) -> dict[str, Any]:
    messages = [{"role": "user", "content": [{"text": text}]}]
    if operation in (INVOKE, INVOKE_STREAM):
        body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 40,
                "messages": [{"role": "user", "content": text}]}
        return {"modelId": model, "body": json.dumps(body).encode()}
    if operation == COUNT:
        return {"modelId": model, "input": {"converse": {"messages": messages}}}
    return {"modelId": model, "messages": messages}


_METHOD = {INVOKE: "invoke_model", INVOKE_STREAM: "invoke_model_with_response_stream",
           CONVERSE: "converse", CONVERSE_STREAM: "converse_stream", COUNT: "count_tokens"}


@dataclass
class Observation:
    """What one call gave its user: a comparable view, plus the raw facts the checks need."""

    view: list[Any] = field(default_factory=list)
    call_error: Optional[BaseException] = None
    stream_error: Optional[BaseException] = None
    result: Any = None  # the response dict, stream and body removed
    body: Optional[bytes] = None  # InvokeModel: the body bytes the user read (if complete)
    events: list[Any] = field(default_factory=list)  # stream events the user received
    ended_early: bool = False  # the user ended the stream (close) before it failed or ended

    def took(self, event: Any, index: int, on_event: Any, limit: Optional[int]) -> bool:
        """One stream event the user received; True once ``limit`` events were taken."""
        self.events.append(event)
        self.view.append(("event", _normalise(event)))
        if on_event is not None:
            on_event(index)
        return limit is not None and len(self.events) >= limit

    def stream_raised(self, exc: Exception) -> None:
        self.view.append(("raised", raised(exc)))
        if not self.ended_early:
            self.stream_error = exc


_VOLATILE_MESSAGE = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"msg_bdrk_[0-9a-f]+"), "<msg-id>"),
    (re.compile(r'"latencyMs":\d+'), '"latencyMs":#'),
    (re.compile(r"\d+ bytes read, \d+ more expected"), "# bytes read, # more expected"),
]


def raised(exc: BaseException) -> Any:
    """An exception as the user sees it (type, message, service error), values that differ on
    every call anyway (request ids, measured latencies, lengths around them) normalised."""
    kind, module, name, message, error = _raised(exc)  # type: ignore[arg-type]
    for pattern, replacement in _VOLATILE_MESSAGE:
        message = pattern.sub(replacement, message)
    return (kind, module, name, message, _normalise(error))


def _step(view: list[Any], label: str, action: Callable[[], Any]) -> Any:
    try:
        value = action()
    except Exception as exc:
        view.append((label, raised(exc)))
        return exc
    view.append((label, _normalise(value)))
    return value


BodyConsumer = Callable[[Any, list[Any]], Optional[bytes]]


def _read(body: Any, view: list[Any]) -> Optional[bytes]:
    data = _step(view, "read", body.read)
    return data if isinstance(data, bytes) else None


def _read_twice(body: Any, view: list[Any]) -> Optional[bytes]:
    data = _read(body, view)
    _step(view, "read-again", body.read)
    return data


def _pieces(view: list[Any], label: str, reads: list[Callable[[], Any]]) -> Optional[bytes]:
    """Several reads: each one's length or exception, then what they gave joined (ids that vary
    from call to call are normalised in the whole, never in the pieces)."""
    parts: list[bytes] = []
    for index, read in enumerate(reads):
        try:
            part = read()
        except Exception as exc:
            view.append((f"{label}-{index}", raised(exc)))
            break
        view.append((f"{label}-{index}", len(part)))
        parts.append(part)
    else:
        data = b"".join(parts)
        view.append((f"{label}-joined", _normalise(data)))
        return data
    view.append((f"{label}-joined", _normalise(b"".join(parts))))
    return None


def _read_pieces(body: Any, view: list[Any]) -> Optional[bytes]:
    return _pieces(view, "read", [lambda: body.read(5), lambda: body.read(7), body.read])


def _read_partial(body: Any, view: list[Any]) -> Optional[bytes]:
    _step(view, "read-10", lambda: body.read(10))
    return None


def _iter_lines(body: Any, view: list[Any]) -> Optional[bytes]:
    lines = _step(view, "iter-lines", lambda: list(body.iter_lines()))
    return b"\n".join(lines) if isinstance(lines, list) else None


def _iter_chunks(body: Any, view: list[Any]) -> Optional[bytes]:
    chunks = body.iter_chunks(chunk_size=3)
    return _pieces(view, "chunk", [lambda: next(chunks, b"") for _ in range(1000)])


def _never(body: Any, view: list[Any]) -> Optional[bytes]:
    return None


def _close_then_read(body: Any, view: list[Any]) -> Optional[bytes]:
    _step(view, "close", body.close)
    _step(view, "read-after-close", body.read)
    return None


def _socket_timeout(body: Any, view: list[Any]) -> Optional[bytes]:
    _step(view, "set-socket-timeout", lambda: body.set_socket_timeout(30))
    return _read(body, view)


def _context(body: Any, view: list[Any]) -> Optional[bytes]:
    def use() -> Any:
        with body as raw:
            return raw.read()

    data = _step(view, "with-read", use)
    return data if isinstance(data, bytes) else None


BODY_CONSUMERS: dict[str, BodyConsumer] = {
    "all": _read, "read": _read, "read-twice": _read_twice, "read-pieces": _read_pieces,
    "read-partial": _read_partial, "iter-lines": _iter_lines, "iter-chunks": _iter_chunks,
    "never": _never, "close-then-read": _close_then_read, "socket-timeout": _socket_timeout,
    "context-manager": _context,
}


def _take(stream: Any, obs: Observation, limit: Optional[int], on_event: Any = None) -> bool:
    """Iterate (up to ``limit`` events); True when the iterator ended (exhausted or raised)."""
    try:
        for index, event in enumerate(stream):
            if obs.took(event, index, on_event, limit):
                return False
    except Exception as exc:
        obs.stream_raised(exc)
        return True
    obs.view.append(("end",))
    return True


def _close(stream: Any, obs: Observation) -> None:
    _step(obs.view, "close", stream.close)


# consumer -> (what it does, the outcome it leaves when the stream itself neither failed nor
# delivered its final event first)
STREAM_CONSUMERS: dict[str, str] = {
    "all": "completed",
    "break-close": "closed",
    "close-twice": "closed",
    "never": "abandoned",
    "break-drop": "abandoned",
    "all-close-twice": "completed",
    "break-resume": "completed",
    "close-in-loop": "closed",
}


def _consume_stream(stream: Any, how: str, obs: Observation) -> None:
    if how == "all":
        _take(stream, obs, None)
    elif how == "break-close":
        _take(stream, obs, 2)
        obs.ended_early = True
        _close(stream, obs)
    elif how == "close-twice":
        obs.ended_early = True
        _close(stream, obs)
        _close(stream, obs)
    elif how == "never":
        pass
    elif how == "break-drop":
        _take(stream, obs, 2)
    elif how == "all-close-twice":
        _take(stream, obs, None)
        _close(stream, obs)
        _close(stream, obs)
    elif how == "break-resume":
        if not _take(stream, obs, 2):
            obs.view.append(("resume",))
            _take(stream, obs, None)
    elif how == "close-in-loop":
        def close_first(index: int) -> None:
            if index == 0:
                obs.ended_early = True
                _close(stream, obs)

        _take(stream, obs, None, close_first)
    else:  # pragma: no cover - a typo in the matrix
        raise AssertionError(how)


def observe_call(
    client: Any, operation: str, params: dict[str, Any], consume: str
) -> Observation:
    """Make one call and consume its response the way ``consume`` says, recording what the user
    sees. Every reference to the response is dropped before returning."""
    obs = Observation()
    try:
        result = getattr(client, _METHOD[operation])(**params)
    except Exception as exc:
        obs.call_error = exc
        obs.view.append(("call-raised", raised(exc)))
        return obs
    if operation in STREAM_KEY:
        stream = result.pop(STREAM_KEY[operation], None)
        obs.view.append(("result", _normalise(result)))
        if stream is not None:
            _consume_stream(stream, consume, obs)
        del stream
    elif operation == INVOKE:
        body = result.pop("body", None)
        obs.view.append(("result", _normalise(result)))
        if body is not None:
            obs.body = BODY_CONSUMERS[consume](body, obs.view)
        del body
    else:
        obs.view.append(("result", _normalise(result)))
    obs.result = result
    return obs


# -- watching the instrumentation -----------------------------------------------------------------
class Ledger(SpanProcessor):
    """Every span started and every end the SDK accepted, by span id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started: dict[int, str] = {}
        self.ended: Counter[int] = Counter()

    def on_start(self, span: Span, parent_context: Optional[otel_context.Context] = None) -> None:
        with self._lock:
            self.started[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        with self._lock:
            self.ended[span.context.span_id] += 1

    def reset(self) -> None:
        with self._lock:
            self.started.clear()
            self.ended.clear()

    def open_spans(self) -> list[str]:
        with self._lock:
            return [name for sid, name in self.started.items() if sid not in self.ended]

    def ended_twice(self) -> list[str]:
        with self._lock:
            return [self.started.get(sid, "?") for sid, n in self.ended.items() if n != 1]


class Guards(logging.Handler):
    """Failures that never reach the user but must not happen either: an exception our code
    swallowed (logged at debug with a traceback), a span touched after it ended, an attribute an
    exporter cannot encode, an exception in a finaliser or a thread."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.name.startswith(OUR_LOGGER):
            if record.exc_info:
                self.problems.append(f"swallowed by {record.name}: {message}: "
                                     f"{record.exc_info[0].__name__ if record.exc_info[0] else ''}"
                                     f" {record.exc_info[1]}")
        elif record.name.startswith(SDK_TRACE_LOGGER):
            if "ended span" in message:
                self.problems.append(f"SDK: {message}")
        elif record.name.startswith(OTLP_LOGGER) and record.levelno >= logging.ERROR:
            self.problems.append(f"OTLP encoding: {message}")

    def unraisable(self, unraisable: Any) -> None:
        self.problems.append(f"unraisable: {unraisable.exc_type.__name__}: {unraisable.exc_value}"
                             f" in {unraisable.object!r}")

    def thread_exception(self, args: Any) -> None:
        name = args.thread.name if args.thread is not None else "?"
        self.problems.append(f"thread {name}: {args.exc_type.__name__}: {args.exc_value}")


@dataclass
class Watch:
    guards: Guards
    ledger: Ledger


def watching(telemetry: Any) -> Iterator[Watch]:
    """Install the guards and a ledger on the test's tracer provider; restore on exit."""
    guards = Guards()
    ledger = Ledger()
    telemetry.tracer_provider.add_span_processor(ledger)
    loggers = [logging.getLogger(n) for n in (OUR_LOGGER, SDK_TRACE_LOGGER, OTLP_LOGGER)]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(guards)
    loggers[0].setLevel(logging.DEBUG)
    old_unraisable, old_thread = sys.unraisablehook, threading.excepthook
    sys.unraisablehook = guards.unraisable
    threading.excepthook = guards.thread_exception
    try:
        yield Watch(guards, ledger)
    finally:
        sys.unraisablehook, threading.excepthook = old_unraisable, old_thread
        for lg, level in zip(loggers, levels):
            lg.removeHandler(guards)
            lg.setLevel(level)


# botocore's EventStream is a reference cycle (its event generator's frame holds the stream), so
# a stream dropped unfinished is freed by the cyclic garbage collector, whenever it next runs.
# On urllib3 1.x, finalising it returns the connection to the pool under the pool's queue lock;
# if the collection started while that thread held the same lock (inside queue.get), the
# thread deadlocks. That happens without any instrumentation (botocore 1.42, urllib3 1.26), so
# on urllib3 1.x the suite turns automatic collection off and collects at points where no lock
# is held. On urllib3 2 collection stays automatic, and may run anywhere.
URLLIB3_1 = int(version("urllib3").split(".")[0]) < 2


@contextlib.contextmanager
def collection_at_safe_points() -> Iterator[None]:
    enabled = gc.isenabled()
    if URLLIB3_1:
        gc.disable()
    try:
        yield
    finally:
        if URLLIB3_1:
            gc.collect()
            if enabled:
                gc.enable()


def safe_point(index: int, every: int = 100) -> None:
    """Call between two calls, holding nothing: collects there when collection is manual."""
    if URLLIB3_1 and index % every == every - 1:
        gc.collect()


def flush_precounts(timeout: float = 10.0) -> None:
    handler = patch.active
    precounter = handler.precounter if handler is not None else None
    flush = getattr(precounter, "flush", None)
    if callable(flush):
        assert flush(timeout), "pre-counts still running after the flush timeout"


def settle(ledger: Ledger) -> None:
    """Let abandoned streams be collected and background pre-counts finish."""
    if ledger.open_spans():
        gc.collect()
    flush_precounts()


# -- checks shared by every test --------------------------------------------------------------
def int_attribute_problems(spans: list[Any], points: list[Any]) -> list[str]:
    """Integers an OTLP exporter cannot carry (int64), on spans, links and metric points."""
    found = []

    def scan(where: str, attrs: Any) -> None:
        for key, value in dict(attrs or {}).items():
            values = value if isinstance(value, tuple) else (value,)
            for v in values:
                if isinstance(v, int) and not isinstance(v, bool) and not (
                    -(2**63) <= v <= INT64_MAX
                ):
                    found.append(f"{where}: {key}={v}")

    for span in spans:
        scan(f"span {span.name!r}", span.attributes)
        for link in span.links:
            scan(f"link of {span.name!r}", link.attributes)
    for point in points:
        scan("metric point", point.attributes)
        for attr in ("sum", "min", "max", "value"):
            v = getattr(point, attr, None)
            if isinstance(v, int) and not -(2**63) <= v <= INT64_MAX:
                found.append(f"metric point {attr}={v}")
    return found


def all_points(telemetry: Any) -> list[Any]:
    data = telemetry.metric_reader.get_metrics_data()
    points = []
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points.extend(metric.data.data_points)
    return points


def assert_exportable(telemetry: Any, guards: Guards) -> None:
    """Everything recorded fits its OTLP encoding, and the real encoder accepts it."""
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    spans = telemetry.spans()
    assert int_attribute_problems(spans, all_points(telemetry)) == []
    encode_spans(spans)
    data = telemetry.metric_reader.get_metrics_data()
    if data is not None:
        encode_metrics(data)
    assert [p for p in guards.problems if p.startswith("OTLP")] == []


def assert_clean(watch: Watch) -> None:
    assert watch.ledger.open_spans() == [], "spans started but never ended"
    assert watch.ledger.ended_twice() == [], "spans ended more than once"
    assert watch.guards.problems == [], watch.guards.problems[:5]


def split_spans(telemetry: Any, operation: str) -> tuple[list[Any], list[Any]]:
    """(invocation spans, pre-count spans). An explicit CountTokens call is an invocation."""
    return partition(telemetry.spans(), operation)


def partition(spans: list[Any], operation: str) -> tuple[list[Any], list[Any]]:
    if operation == COUNT:
        return spans, []
    counts = [s for s in spans if s.name.startswith(f"{names.OP_COUNT_TOKENS} ")
              or s.name == names.OP_COUNT_TOKENS]
    return [s for s in spans if s not in counts], counts


def metric_totals(telemetry: Any, name: str, **attrs: Any) -> tuple[int, float]:
    return telemetry.histogram_count(name, **attrs), telemetry.histogram_sum(name, **attrs)


def assert_metrics_match_spans(telemetry: Any, invocations: list[Any]) -> None:
    """Metric recordings are exactly the sums of what the spans say: one duration per call,
    one token recording per count present, time to first chunk and drift where the span has
    them, nothing dropped."""
    assert metric_totals(telemetry, names.METRIC_OPERATION_DURATION)[0] == len(invocations)
    for token_type, key in (("input", names.GEN_AI_USAGE_INPUT_TOKENS),
                            ("output", names.GEN_AI_USAGE_OUTPUT_TOKENS)):
        present = [s.attributes[key] for s in invocations if key in s.attributes]
        assert metric_totals(telemetry, names.METRIC_TOKEN_USAGE, gen_ai__token__type=token_type) \
            == (len(present), float(sum(present))), token_type
    errors = Counter(s.attributes[names.ERROR_TYPE] for s in invocations
                     if names.ERROR_TYPE in s.attributes)
    for etype, n in errors.items():
        assert metric_totals(telemetry, names.METRIC_OPERATION_DURATION, error__type=etype)[0] == n
    ttfc = [s for s in invocations if names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in s.attributes]
    assert metric_totals(telemetry, names.METRIC_TIME_TO_FIRST_CHUNK)[0] == len(ttfc)
    drifts = [s.attributes[names.AWS_BEDROCK_COUNT_TOKENS_DRIFT] for s in invocations
              if names.AWS_BEDROCK_COUNT_TOKENS_DRIFT in s.attributes]
    assert metric_totals(telemetry, names.METRIC_COUNT_TOKENS_DRIFT) == (
        len(drifts), float(sum(abs(d) for d in drifts)))
    assert telemetry.counter_value(names.METRIC_PRECOUNT_DROPPED) == 0


def assert_counts_valid(span: Any) -> None:
    """Every count on a span is a non-negative 64-bit integer (never a float, never negative)."""
    keys = (names.GEN_AI_USAGE_INPUT_TOKENS, names.GEN_AI_USAGE_OUTPUT_TOKENS,
            names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
            names.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
            names.AWS_BEDROCK_USAGE_UNCACHED_INPUT_TOKENS,
            names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS)
    for key in keys:
        if key in span.attributes:
            value = span.attributes[key]
            assert type(value) is int and 0 <= value <= INT64_MAX, (key, value)
    usage = usage_attrs(span)
    if names.AWS_BEDROCK_USAGE_UNCACHED_INPUT_TOKENS in span.attributes and (
        names.GEN_AI_USAGE_INPUT_TOKENS in usage
    ):
        assert usage[names.GEN_AI_USAGE_INPUT_TOKENS] >= span.attributes[
            names.AWS_BEDROCK_USAGE_UNCACHED_INPUT_TOKENS]


def span_status_is_error(span: Any) -> bool:
    return bool(span.status.status_code is StatusCode.ERROR)
