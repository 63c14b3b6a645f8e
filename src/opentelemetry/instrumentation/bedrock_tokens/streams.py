"""Event-stream proxies: the user's stream, observed, never buffered, ended exactly once.

botocore hands back an ``EventStream`` for InvokeModelWithResponseStream (``result["body"]``)
and ConverseStream (``result["stream"]``). It is replaced by a wrapt proxy, so everything the
user may touch passes through and ``isinstance`` still holds. The proxy's state lives in
``_self_*`` attributes: wrapt forwards other attribute writes to the wrapped object, where a
second proxy (contrib's, say) would overwrite them.

Per event, before the event is handed to the user, the proxy takes what counting needs and
nothing else: for InvokeModel streams a reference to the chunk's immutable ``bytes`` (the first
and the last two are kept) and a check for the final usage marker; for ConverseStream the usage,
latency and stop reason of the one event that carries each, copied as plain values. Nothing is
ever read back from an event the user was given: apps pop, mutate and drop them. At the true
end of the response the kept chunks are parsed once and the record is ended: on exhaustion, on
an error raised by the iterator, on ``close()``, when the stream is garbage-collected, or at
interpreter exit. Breaking out of a ``for`` loop is not an end: botocore lets the user
iterate the same stream again, so the span ends when the stream is closed or dropped.
"""

from __future__ import annotations

import atexit
import copy
import json
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Callable, Optional

import wrapt

from . import agents, families, names
from .content import Capture, TextCollector, stream_delta_text
from .extras import ResponseFacts
from .pricing import ttl_breakdown_from_anthropic, ttl_breakdown_from_converse
from .record import CallRecord
from .tiers import from_converse_response
from .usage import Usage, from_converse, merge, to_count

_logger = logging.getLogger(__name__)

# As a JSON key: the same text inside a string value (a reply that mentions it) is no marker.
_METRICS_MARKER = b'"' + names.INVOCATION_METRICS_KEY.encode() + b'":'

# Streams whose record has not ended yet, ended as abandoned at interpreter exit.
_open: set[_StreamState] = set()
_open_lock = threading.Lock()


class _StreamState:
    """Everything one stream's telemetry needs; referenced by the proxy and its iterator,
    never by the wrapped EventStream.

    The user owns every event the moment it is yielded (langchain-aws pops ``usage`` out of
    the ConverseStream ``metadata`` event), so what counting needs is taken before that:
    for InvokeModel streams the chunk's ``bytes`` (immutable) of the first and last two
    chunks, parsed only at the end; for ConverseStream the usage, latency and stop reason,
    read from the one event that carries each, as plain values; for agent-runtime streams
    (agents, flows, knowledge bases) the model steps of the trace events, copied by an
    ``agents.StepCollector`` and handed to the record (a child span and the step's token
    metrics) as each step completes."""

    __slots__ = (
        "__weakref__", "_chunk_interval", "_collector", "_family", "_kind", "_last_at",
        "_steps", "finish", "first", "last", "latency", "prev", "record", "saw_final", "ttfc",
        "usage",
    )

    def __init__(
        self, record: CallRecord, kind: str, family: str, collector: Optional[TextCollector]
    ) -> None:
        self.record = record
        self._kind = kind  # "invoke" | "converse" | "agent"
        self._family = family
        self._collector = collector
        # Agent-runtime streams: the model steps, copied out of the trace events (their text
        # only with content capture on the span).
        self._steps: Optional[agents.StepCollector] = None
        if kind == "agent":
            capture = record.capture
            self._steps = agents.StepCollector(capture is not None and capture.on_span)
            self._collector = None  # the steps carry the content, not the reply text
        # InvokeModel streams: chunk payloads (bytes) of the first and the last two chunks.
        self.first: Optional[bytes] = None
        self.prev: Optional[bytes] = None
        self.last: Optional[bytes] = None
        # ConverseStream: what the metadata and messageStop events said, copied out.
        self.usage: Optional[Usage] = None
        self.latency: Optional[int] = None
        self.finish: Optional[tuple[str, ...]] = None
        self.saw_final = False
        self.ttfc: Optional[float] = None
        self._last_at = 0.0  # perf_counter() at the previous event
        self._chunk_interval = record.chunk_recorder()  # time_per_output_chunk, or None
        with _open_lock:
            _open.add(self)

    # -- per event (called before the event is handed to the user) -------------------------
    def observer(self) -> Callable[[Any], None]:
        """The per-event function: specialised per operation unless content is captured."""
        if self._kind == "agent":
            return self._observe_agent
        if self._collector is not None:
            return self.observe
        return self._observe_invoke if self._kind == "invoke" else self._observe_converse

    def _observe_agent(self, event: Any) -> None:
        if self.ttfc is None:  # no per-chunk timing: these are steps of a run, not output chunks
            self.ttfc = time.perf_counter() - self.record.start
        assert self._steps is not None
        try:
            step = self._steps.observe(event)
            if step is not None:
                self.record.model_step(step)
            elif isinstance(event, Mapping) and (
                "returnControl" in event or "flowCompletionEvent" in event
            ):
                self.saw_final = True
        except Exception:  # never let the observer break the user's iteration
            _logger.debug("bedrock-tokens: agent stream observer failed", exc_info=True)

    def _timing(self) -> None:
        if self.ttfc is None:
            self._last_at = now = time.perf_counter()
            self.ttfc = now - self.record.start
        elif self._chunk_interval is not None:  # no clock read at all when chunk timing is off
            now = time.perf_counter()
            self._chunk_interval(now - self._last_at)
            self._last_at = now

    def _observe_invoke(self, event: Any) -> None:
        self._timing()
        try:
            data = event["chunk"]["bytes"]
        except Exception:
            return  # not a chunk event: nothing to look for
        if not isinstance(data, bytes):
            return
        if self.first is None:
            self.first = data
        self.prev = self.last
        self.last = data
        if _METRICS_MARKER in data:
            self.saw_final = True

    def _observe_converse(self, event: Any) -> None:
        self._timing()
        try:
            if "metadata" in event:
                self._take_metadata(event["metadata"])
            elif "messageStop" in event:
                stop = event["messageStop"]
                reason = stop.get("stopReason") if isinstance(stop, Mapping) else None
                if isinstance(reason, str) and reason:
                    self.finish = (reason,)
        except Exception:  # never let the observer break the user's iteration
            _logger.debug("bedrock-tokens: stream observer failed", exc_info=True)

    def _take_metadata(self, metadata: Any) -> None:
        self.saw_final = True
        if not isinstance(metadata, Mapping):
            return
        usage = metadata.get("usage")
        self.usage = from_converse(usage, "stream_metadata")
        # tier, latency mode and cache writes by TTL, copied out as plain values
        self.record.facts = ResponseFacts(
            from_converse_response(metadata), ttl_breakdown_from_converse(usage)
        )
        metrics = metadata.get("metrics")
        if isinstance(metrics, Mapping):
            self.latency = to_count(metrics.get("latencyMs"))

    def observe(self, event: Any) -> None:
        """The observer used when content is captured: counting, then the reply text."""
        if self._kind == "invoke":
            self._observe_invoke(event)
        else:
            self._observe_converse(event)
        if self._collector is not None:
            try:
                self._collect(event)
            except Exception:
                _logger.debug("bedrock-tokens: content capture failed", exc_info=True)

    def _collect(self, event: Any) -> None:
        assert self._collector is not None
        if self._kind == "invoke":
            parsed = _parse_chunk(event)
            self._collector.add(stream_delta_text(parsed))
        else:
            self._collector.add(stream_delta_text(event))

    # -- ends --------------------------------------------------------------------------------
    def complete(self) -> None:
        self._end(names.STREAM_COMPLETED, None)

    def fail(self, exc: BaseException) -> None:
        self._end(names.STREAM_ERROR, exc)

    def close(self) -> None:
        self._end(names.STREAM_COMPLETED if self.saw_final else names.STREAM_CLOSED, None)

    def abandon(self) -> None:
        self._end(names.STREAM_COMPLETED if self.saw_final else names.STREAM_ABANDONED, None)

    def _end(self, outcome: str, error: Optional[BaseException]) -> None:
        with _open_lock:
            _open.discard(self)
        if self.record.ended:
            return
        usage: Optional[Usage] = None
        attrs: dict[str, Any] = {names.AWS_BEDROCK_STREAM_OUTCOME: outcome}
        if error is not None and self._collector is not None:
            self._collector.failed = True  # the captured reply ended abnormally
        try:
            usage = self._summarise(attrs)
        except Exception:
            _logger.debug("bedrock-tokens: could not read stream usage", exc_info=True)
        self.record.end(usage, attrs, error, self.ttfc)
        # Drop the kept events: the proxy may live on in the user's hands.
        self.first = self.prev = self.last = None

    def _summarise(self, attrs: dict[str, Any]) -> Optional[Usage]:
        if self._kind == "invoke":
            return self._summarise_invoke(attrs)
        if self._steps is not None:
            return self._summarise_agent(attrs, self._steps)
        if self.latency is not None:
            attrs[names.AWS_BEDROCK_CONVERSE_LATENCY] = self.latency
        if self.finish is not None:
            attrs[names.GEN_AI_RESPONSE_FINISH_REASONS] = self.finish
        self._add_output(attrs, self.finish)
        return self.usage

    @staticmethod
    def _summarise_agent(attrs: dict[str, Any], steps: agents.StepCollector) -> Optional[Usage]:
        """The agent's totals (its steps already recorded their own metrics), no cache
        breakdown: the convention keeps those off aggregate spans."""
        if steps.steps:
            attrs[names.AWS_BEDROCK_AGENT_MODEL_STEPS] = len(steps.steps)
        if steps.total_time_ms is not None:
            attrs[names.AWS_BEDROCK_AGENT_TOTAL_TIME] = steps.total_time_ms
        return agents.totals(steps.steps)

    def _summarise_invoke(self, attrs: dict[str, Any]) -> Optional[Usage]:
        kept: list[bytes] = []
        for data in (self.first, self.prev, self.last):
            if data is not None and not any(data is k for k in kept):
                kept.append(data)
        chunks = [c for c in map(_parse_json, kept) if c is not None]
        metrics, info = families.extract_stream_chunks(self._family, chunks)
        for chunk in chunks:
            if isinstance(chunk, Mapping) and chunk.get("type") == "message_start":
                message = chunk.get("message")  # Anthropic: cache writes by TTL, if broken down
                ttl = ttl_breakdown_from_anthropic(
                    message.get("usage") if isinstance(message, Mapping) else None
                )
                if ttl is not None:
                    self.record.facts = self.record.facts._replace(cache_ttl=ttl)
            invocation, first_byte = families.invocation_latencies(chunk)
            if invocation is not None:
                attrs[names.AWS_BEDROCK_INVOCATION_LATENCY] = invocation
            if first_byte is not None:
                attrs[names.AWS_BEDROCK_FIRST_BYTE_LATENCY] = first_byte
        info.add_response_attributes(attrs)
        self._add_output(attrs, info.finish_reasons)
        return merge(metrics, info.usage)

    def _add_output(self, attrs: dict[str, Any], finish: Optional[tuple[str, ...]]) -> None:
        if self._collector is not None:
            attrs.update(self._collector.output_attributes(finish))


def _parse_chunk(event: Any) -> Any:
    chunk = event.get("chunk") if isinstance(event, Mapping) else None
    return _parse_json(chunk.get("bytes") if isinstance(chunk, Mapping) else None)


def _parse_json(data: Any) -> Any:
    if not isinstance(data, (bytes, str)):
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


class _Watch:
    """Around a stream's iteration: the end of the wrapped iterator is the end of the call,
    an exception from it is a failure, and the consumer stopping (see ``_consumer_stopped``)
    is no end at all: the same stream may be iterated again. The same for ``for`` and
    ``async for``."""

    __slots__ = ("_state",)

    def __init__(self, state: _StreamState) -> None:
        self._state = state

    def __enter__(self) -> Callable[[Any], None]:
        return self._state.observer()

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        if exc is None:
            self._state.complete()
        elif not _consumer_stopped(exc):
            self._state.fail(exc)


def _consumer_stopped(exc: BaseException) -> bool:
    """The consumer stopped iterating, which ends nothing: GeneratorExit (a broken-out-of loop
    being closed or collected), or the consumer's task cancelled (also how asyncio closes the
    async generators left at loop shutdown). The stream then ends when it is closed or
    dropped, or at exit, as any stream the user stopped reading."""
    if isinstance(exc, GeneratorExit):
        return True
    asyncio = sys.modules.get("asyncio")  # never imported for this: a sync app may not have it
    return asyncio is not None and isinstance(exc, asyncio.CancelledError)


def _iterate(proxy: StreamProxy) -> Iterator[Any]:
    # The generator references the proxy, so a stream being iterated is never "abandoned".
    with _Watch(proxy._self_state) as observe:
        for event in proxy.__wrapped__:
            observe(event)  # takes what counting needs before the user has the event
            yield event


async def _aiterate(proxy: AsyncStreamProxy) -> AsyncIterator[Any]:
    with _Watch(proxy._self_state) as observe:
        async for event in proxy.__wrapped__:
            observe(event)
            yield event


if TYPE_CHECKING:
    _ProxyBase = wrapt.ObjectProxy[Any]
else:
    _ProxyBase = wrapt.ObjectProxy  # not subscriptable at runtime on wrapt 1.x


class StreamProxy(_ProxyBase):
    """Stands in for botocore's ``EventStream``; behaves exactly like it."""

    ITERATION = "__iter__"  # the method a stream must have to be wrapped by this class

    def __init__(self, wrapped: Any, state: _StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state
        finalizer = weakref.finalize(self, state.abandon)
        finalizer.atexit = False  # exit is handled by end_open_streams, before SDK shutdown
        self._self_finalizer = finalizer

    def __iter__(self) -> Iterator[Any]:
        return _iterate(self)

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_state.close()

    # wrapt's proxy refuses copy and pickle with NotImplementedError; botocore's EventStream
    # copies (shallowly: the copy shares the connection and the event generator) and fails to
    # deep-copy or pickle with TypeError (its generator). Each is handed to the EventStream,
    # so the user gets exactly what the uninstrumented stream gives, a plain EventStream or
    # the same TypeError. Events read through a copy are not observed (the copy is the user's).
    def __copy__(self) -> Any:
        return copy.copy(self.__wrapped__)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return copy.deepcopy(self.__wrapped__, memo)

    def __reduce__(self) -> Any:
        return self.__wrapped__.__reduce__()

    def __reduce_ex__(self, protocol: Any) -> Any:
        return self.__wrapped__.__reduce_ex__(protocol)


class AsyncStreamProxy(StreamProxy):
    """Stands in for aiobotocore's ``AioEventStream`` (``async for``; ``close()`` is sync
    there too). ``iter()`` fails exactly as the wrapped stream's does."""

    ITERATION = "__aiter__"

    def __iter__(self) -> Iterator[Any]:
        return iter(self.__wrapped__)

    def __aiter__(self) -> AsyncIterator[Any]:
        return _aiterate(self)


def wrap_stream(
    result: dict[str, Any],
    key: str,
    record: CallRecord,
    kind: str,
    family: str,
    capture: Optional[Capture],
    proxy: type[StreamProxy] = StreamProxy,
) -> bool:
    """Replace ``result[key]`` by a proxy; False (and nothing replaced) if there is no stream."""
    stream = result.get(key)
    if stream is None or not hasattr(stream, proxy.ITERATION):
        return False
    collector = capture.collector() if capture is not None else None
    state = _StreamState(record, kind, family, collector)
    result[key] = proxy(stream, state)
    return True


def end_open_streams() -> None:
    """End every stream still open, as abandoned (registered with atexit by instrument())."""
    with _open_lock:
        pending = list(_open)
    for state in pending:
        try:
            state.abandon()
        except Exception:
            _logger.debug("bedrock-tokens: failed to end a stream at exit", exc_info=True)


def _forget_parent_streams() -> None:
    """In a forked child: the open streams are the parent's (its spans, its metrics, its
    connections). The child must never end them, at its exit or when it drops the copies it
    inherited, or the parent's span is exported twice; so their records are made inert and
    the registry starts empty (with a fresh lock: another thread may have held it at fork)."""
    global _open_lock
    _open_lock = threading.Lock()
    for state in list(_open):
        state.record.forget()
    _open.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_parent_streams)

_registered: list[Callable[[], None]] = []


def register_exit_handler() -> None:
    """Once per process. atexit runs handlers last-in first-out, so registering at instrument
    time (after the SDK providers registered theirs) ends open streams before SDK shutdown."""
    if not _registered:
        atexit.register(end_open_streams)
        _registered.append(end_open_streams)
