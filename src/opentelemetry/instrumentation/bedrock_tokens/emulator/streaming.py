"""Event-stream responses: frames produced lazily, with faults injected by index.

Both stream operations become an iterator of encoded frames (or the :data:`DROP` sentinel),
consumed by the HTTP layer one chunk at a time, so nothing is built ahead. Fault injection
numbers the events: an exception frame after N events, a dropped connection after N events, a
wrong CRC at event N, and ``chunk_delay`` between events. Latencies are read when the frame
that reports them is encoded.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from typing import Any, Callable, TypeVar, Union

from . import eventstream
from .chunks import invoke_stream
from .converse import converse_events, converse_metadata
from .families import Number, Turn
from .scenarios import Scenario, default_error_message
from .wire import json_bytes, malformed, ms_since

__all__ = ["DROP", "Frame", "Sleep", "converse_frames", "invoke_frames"]

_T = TypeVar("_T")


class _Drop:
    """Sentinel in a frame iterator: close the connection here, without ending the body."""


DROP = _Drop()
Frame = Union[bytes, _Drop]
Sleep = Callable[[float], None]
_FrameMaker = Callable[[bool], bytes]  # corrupt_crc -> encoded frame

_PAD_SOURCE = "".join(random.choices(string.ascii_letters + string.digits, k=4096))


def _padding() -> str:
    """A random alphanumeric string of random length, like the service's ``p`` key."""
    start = random.randrange(4000)
    return _PAD_SOURCE[start : start + random.randint(1, 40)]


def _with_last(items: Iterator[_T]) -> Iterator[tuple[_T, bool]]:
    """Pair each item with whether it is the last one (one item of lookahead)."""
    iterator = iter(items)
    try:
        current = next(iterator)
    except StopIteration:
        return
    for following in iterator:
        yield current, False
        current = following
    yield current, True


def _invocation_metrics(turn: Turn, started: float, first_byte: int) -> dict[str, Number]:
    metrics: dict[str, Number] = {
        "inputTokenCount": turn.n(turn.input_tokens),
        "outputTokenCount": turn.n(turn.reply.output_tokens),
        "invocationLatency": ms_since(started),
        "firstByteLatency": first_byte,
    }
    if turn.cache_reported:
        metrics["cacheReadInputTokenCount"] = turn.n(turn.cache_read)
        metrics["cacheWriteInputTokenCount"] = turn.n(turn.cache_write)
    return metrics


def invoke_frames(
    turn: Turn, scenario: Scenario, started: float, first_byte: int, sleep: Sleep
) -> Iterator[Frame]:
    """The ``chunk`` frames of InvokeModelWithResponseStream; metrics on the last chunk."""

    guardrail = turn.guardrail
    with_metrics = not scenario.omit_invocation_metrics
    if turn.intervened and turn.family == "titan-text":
        with_metrics = False  # the recorded intervened Titan stream has none
    padded = turn.family != "cohere-command"  # recorded Cohere Command chunks have no "p"

    def makers() -> Iterator[_FrameMaker]:
        for chunk, last in _with_last(invoke_stream(turn)):

            def make(corrupt: bool, chunk: dict[str, Any] = chunk, last: bool = last) -> bytes:
                if guardrail is not None:
                    if last and guardrail.trace:
                        trace = guardrail.invoke_trace(*turn.guardrail_chars())
                        chunk["amazon-bedrock-trace"] = trace
                    chunk["amazon-bedrock-guardrailAction"] = guardrail.action
                if last and with_metrics:
                    metrics = _invocation_metrics(turn, started, first_byte)
                    chunk["amazon-bedrock-invocationMetrics"] = metrics
                inner = json_bytes(chunk)
                if scenario.malformed_body:
                    inner = malformed(inner)
                padding = _padding() if padded else None
                return eventstream.chunk_frame(inner, padding, corrupt_crc=corrupt)

            yield make

    return _inject_faults(scenario, makers(), sleep)


def converse_frames(
    turn: Turn, scenario: Scenario, started: float, sleep: Sleep
) -> Iterator[Frame]:
    """The ConverseStream events, ending with ``metadata`` unless the scenario omits it."""

    def encode(event_type: str, payload: dict[str, Any], corrupt: bool) -> bytes:
        payload["p"] = _padding()
        raw = json_bytes(payload)
        if scenario.malformed_body:
            raw = malformed(raw)
        headers = eventstream.event_headers(event_type)
        return eventstream.encode_frame(headers, raw, corrupt_crc=corrupt)

    def event(event_type: str, payload: dict[str, Any]) -> _FrameMaker:
        return lambda corrupt: encode(event_type, payload, corrupt)

    def metadata(corrupt: bool) -> bytes:
        return encode("metadata", converse_metadata(turn, ms_since(started)), corrupt)

    def makers() -> Iterator[_FrameMaker]:
        for event_type, payload in converse_events(turn):
            yield event(event_type, payload)
        if not scenario.omit_stream_metadata:
            yield metadata

    return _inject_faults(scenario, makers(), sleep)


def _exception_frame(scenario: Scenario, corrupt: bool) -> bytes:
    name = scenario.stream_exception or "internalServerException"
    message = scenario.error_message or default_error_message(name)
    payload: dict[str, Any] = {"message": message}
    if name == "modelStreamErrorException":
        payload["originalStatusCode"] = 500
        payload["originalMessage"] = message
    return eventstream.exception_frame(name, payload, corrupt_crc=corrupt)


def _inject_faults(
    scenario: Scenario, makers: Iterator[_FrameMaker], sleep: Sleep
) -> Iterator[Frame]:
    """Number the events and apply exceptions, drops, corrupt CRCs and chunk delays."""
    index = 0
    for make in makers:
        if scenario.stream_exception is not None and index == scenario.stream_exception_after:
            break
        if scenario.drop_after is not None and index == scenario.drop_after:
            yield DROP
            return
        if index:
            sleep(scenario.chunk_delay)
        yield make(index == scenario.corrupt_crc_at)
        index += 1
    if scenario.stream_exception is not None:
        if index:
            sleep(scenario.chunk_delay)
        yield _exception_frame(scenario, index == scenario.corrupt_crc_at)
    elif scenario.drop_after is not None:
        yield DROP
