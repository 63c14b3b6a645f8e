"""Event-stream proxies: the user's stream, observed, never buffered, ended exactly once.

botocore hands back an ``EventStream`` for InvokeModelWithResponseStream (``result["body"]``)
and ConverseStream (``result["stream"]``). It is replaced by a wrapt proxy, so everything the
user may touch passes through and ``isinstance`` still holds. The proxy's state lives in
``_self_*`` attributes: wrapt forwards other attribute writes to the wrapped object, where a
second proxy (contrib's, say) would overwrite them.

Per event the proxy only keeps references to the first and the last two events (constant
memory, no parsing) and checks whether the final usage event has arrived. At the true end of
the response the kept events are parsed once and the record is ended: on exhaustion, on an
error raised by the iterator, on ``close()``, when the stream is garbage-collected, or at
interpreter exit. Breaking out of a ``for`` loop is not an end: botocore lets the user
iterate the same stream again, so the span ends when the stream is closed or dropped.
"""

from __future__ import annotations

import atexit
import copy
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Callable, Optional

import wrapt

from . import families, names
from .content import TextCollector, output_attributes, stream_delta_text
from .record import CallRecord
from .usage import Usage, from_converse, merge

_logger = logging.getLogger(__name__)

# As a JSON key: the same text inside a string value (a reply that mentions it) is no marker.
_METRICS_MARKER = b'"' + names.INVOCATION_METRICS_KEY.encode() + b'":'

# Streams whose record has not ended yet, ended as abandoned at interpreter exit.
_open: set[_StreamState] = set()
_open_lock = threading.Lock()


class _StreamState:
    """Everything one stream's telemetry needs; referenced by the proxy and its iterator,
    never by the wrapped EventStream."""

    __slots__ = (
        "__weakref__", "_collector", "_family", "_kind", "first", "last", "prev", "record",
        "saw_final", "ttfc",
    )

    def __init__(
        self, record: CallRecord, kind: str, family: str, collector: Optional[TextCollector]
    ) -> None:
        self.record = record
        self._kind = kind  # "invoke" | "converse"
        self._family = family
        self._collector = collector
        self.first: Any = None
        self.prev: Any = None
        self.last: Any = None
        self.saw_final = False
        self.ttfc: Optional[float] = None
        with _open_lock:
            _open.add(self)

    # -- per event -------------------------------------------------------------------------
    def observer(self) -> Callable[[Any], None]:
        """The per-event function: specialised per operation unless content is captured."""
        if self._collector is not None:
            return self.observe
        return self._observe_invoke if self._kind == "invoke" else self._observe_converse

    def _first_event(self, event: Any) -> None:
        self.ttfc = time.perf_counter() - self.record.start
        self.first = event

    def _observe_invoke(self, event: Any) -> None:
        if self.ttfc is None:
            self._first_event(event)
        self.prev = self.last
        self.last = event
        try:
            if _METRICS_MARKER in event["chunk"]["bytes"]:
                self.saw_final = True
        except (KeyError, TypeError):
            pass  # not a chunk event: nothing to look for

    def _observe_converse(self, event: Any) -> None:
        if self.ttfc is None:
            self._first_event(event)
        self.prev = self.last
        self.last = event
        if "metadata" in event:
            self.saw_final = True

    def observe(self, event: Any) -> None:
        """The observer used when content is captured: counting, then the reply text."""
        if self._kind == "invoke":
            self._observe_invoke(event)
        else:
            self._observe_converse(event)
        if self._collector is not None:
            self._collect(event)

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
        try:
            usage = self._summarise(attrs)
        except Exception:
            _logger.debug("bedrock-tokens: could not read stream usage", exc_info=True)
        self.record.end(usage, attrs, error, self.ttfc)
        # Drop the kept events: the proxy may live on in the user's hands.
        self.first = self.prev = self.last = None

    def _kept(self) -> list[Any]:
        kept: list[Any] = []
        for event in (self.first, self.prev, self.last):
            if event is not None and not any(event is k for k in kept):
                kept.append(event)
        return kept

    def _summarise(self, attrs: dict[str, Any]) -> Optional[Usage]:
        if self._kind == "invoke":
            return self._summarise_invoke(attrs)
        return self._summarise_converse(attrs)

    def _summarise_invoke(self, attrs: dict[str, Any]) -> Optional[Usage]:
        chunks = [c for c in (_parse_chunk(e) for e in self._kept()) if c is not None]
        metrics, info = families.extract_stream_chunks(self._family, chunks)
        for chunk in chunks:
            invocation, first_byte = families.invocation_latencies(chunk)
            if invocation is not None:
                attrs[names.AWS_BEDROCK_INVOCATION_LATENCY] = invocation
            if first_byte is not None:
                attrs[names.AWS_BEDROCK_FIRST_BYTE_LATENCY] = first_byte
        info.add_response_attributes(attrs)
        self._add_output(attrs, info.finish_reasons)
        return merge(metrics, info.usage)

    def _summarise_converse(self, attrs: dict[str, Any]) -> Optional[Usage]:
        usage: Optional[Usage] = None
        for event in self._kept():
            if not isinstance(event, Mapping):
                continue
            metadata = event.get("metadata")
            if isinstance(metadata, Mapping):
                usage = from_converse(metadata.get("usage"), "stream_metadata")
                latency = metadata.get("metrics")
                if isinstance(latency, Mapping) and isinstance(latency.get("latencyMs"), int):
                    attrs[names.AWS_BEDROCK_CONVERSE_LATENCY] = latency["latencyMs"]
            stop = event.get("messageStop")
            if isinstance(stop, Mapping) and isinstance(stop.get("stopReason"), str):
                attrs[names.GEN_AI_RESPONSE_FINISH_REASONS] = (stop["stopReason"],)
        self._add_output(attrs, attrs.get(names.GEN_AI_RESPONSE_FINISH_REASONS))
        return usage

    def _add_output(self, attrs: dict[str, Any], finish: Optional[tuple[str, ...]]) -> None:
        if self._collector is not None:
            attrs.update(
                output_attributes(self._collector.text(), finish, self._collector.limit)
            )


def _parse_chunk(event: Any) -> Any:
    chunk = event.get("chunk") if isinstance(event, Mapping) else None
    data = chunk.get("bytes") if isinstance(chunk, Mapping) else None
    if not isinstance(data, (bytes, str)):
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _iterate(proxy: StreamProxy) -> Iterator[Any]:
    # The generator references the proxy, so a stream being iterated is never "abandoned".
    state: _StreamState = proxy._self_state
    observe = state.observer()
    try:
        for event in proxy.__wrapped__:
            try:
                observe(event)
            except Exception:
                _logger.debug("bedrock-tokens: stream observer failed", exc_info=True)
            yield event
    except GeneratorExit:
        raise  # the user broke out of the loop; the stream may be iterated again
    except BaseException as exc:
        state.fail(exc)
        raise
    state.complete()


if TYPE_CHECKING:
    _ProxyBase = wrapt.ObjectProxy[Any]
else:
    _ProxyBase = wrapt.ObjectProxy  # not subscriptable at runtime on wrapt 1.x


class StreamProxy(_ProxyBase):
    """Stands in for botocore's ``EventStream``; behaves exactly like it."""

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


def wrap_stream(
    result: dict[str, Any],
    key: str,
    record: CallRecord,
    kind: str,
    family: str,
    content_limit: Optional[int],
) -> bool:
    """Replace ``result[key]`` by a proxy; False (and nothing replaced) if there is no stream."""
    stream = result.get(key)
    if stream is None or not hasattr(stream, "__iter__"):
        return False
    collector = TextCollector(content_limit) if content_limit is not None else None
    state = _StreamState(record, kind, family, collector)
    result[key] = StreamProxy(stream, state)
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
