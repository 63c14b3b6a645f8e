"""The call record: the one object that owns one Bedrock call's span and metric recordings.

Every path, streamed or not, successful or not, ends in ``CallRecord.end``. Its first call
wins and every later call does nothing, which is what makes "exactly once" hold for a stream
closed twice, broken out of, collected, or failing after it was closed. The guard is a
non-blocking lock acquire, so it also holds when two threads race to end the same call.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Mapping, Optional

from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import Attributes

from . import names
from .telemetry import Telemetry
from .usage import Usage

_logger = logging.getLogger(__name__)


def error_type(exc: BaseException) -> str:
    """The service's error code in one form (``throttlingException`` from a stream and
    ``ThrottlingException`` from HTTP both give the latter), else the exception's class."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        error = response.get("Error")
        code = error.get("Code") if isinstance(error, Mapping) else None
        if isinstance(code, str) and code:
            return code[0].upper() + code[1:]
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class CallRecord:
    __slots__ = (
        "_once", "_telemetry", "estimate", "metric_attrs", "span", "start", "stream",
    )

    def __init__(
        self,
        telemetry: Telemetry,
        span: Span,
        start: float,
        metric_attrs: tuple[Attributes, Attributes, Attributes],
        stream: bool,
    ) -> None:
        self._once = threading.Lock()
        self._telemetry = telemetry
        self.span = span
        self.start = start  # time.perf_counter() at the start of the call
        self.metric_attrs = metric_attrs
        self.stream = stream
        self.estimate: Optional[int] = None  # CountTokens pre-count, when one is known

    @property
    def ended(self) -> bool:
        return self._once.locked()

    def end(
        self,
        usage: Optional[Usage] = None,
        attributes: Optional[Mapping[str, Any]] = None,
        error: Optional[BaseException] = None,
        time_to_first_chunk: Optional[float] = None,
    ) -> bool:
        """End the span and record the metrics; True only for the call that did it."""
        if not self._once.acquire(False):
            return False
        duration = time.perf_counter() - self.start
        span = self.span
        try:
            self._emit(span, duration, usage, attributes, error, time_to_first_chunk)
        except Exception:  # never let our own failure reach the user
            _logger.debug("bedrock-tokens: failed to record a call", exc_info=True)
        finally:
            try:
                span.end()
            except Exception:
                _logger.debug("bedrock-tokens: failed to end a span", exc_info=True)
        return True

    def _emit(
        self,
        span: Span,
        duration: float,
        usage: Optional[Usage],
        attributes: Optional[Mapping[str, Any]],
        error: Optional[BaseException],
        ttfc: Optional[float],
    ) -> None:
        tel = self._telemetry
        base, input_attrs, output_attrs = self.metric_attrs
        if attributes:
            span.set_attributes(attributes)
        input_tokens = None
        if usage is not None:
            input_tokens = usage.semconv_input()
            output_tokens = usage.output
            span.set_attribute(names.AWS_BEDROCK_USAGE_SOURCE, usage.source)
            if input_tokens is not None:
                span.set_attribute(names.GEN_AI_USAGE_INPUT_TOKENS, input_tokens)
                tel.token_usage.record(input_tokens, input_attrs)
            if usage.input is not None:
                span.set_attribute(names.AWS_BEDROCK_USAGE_UNCACHED_INPUT_TOKENS, usage.input)
            if output_tokens is not None:
                span.set_attribute(names.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens)
                tel.token_usage.record(output_tokens, output_attrs)
            if usage.cache_read is not None:
                span.set_attribute(names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, usage.cache_read)
            if usage.cache_write is not None:
                span.set_attribute(
                    names.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, usage.cache_write
                )
        if self.estimate is not None and input_tokens is not None:
            drift = input_tokens - self.estimate
            span.set_attribute(names.AWS_BEDROCK_COUNT_TOKENS_DRIFT, drift)
            tel.precount_drift.record(drift, base)
        if ttfc is not None:
            span.set_attribute(names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, ttfc)
            tel.time_to_first_chunk.record(ttfc, base)
        if error is not None:
            etype = error_type(error)
            span.set_attribute(names.ERROR_TYPE, etype)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            tel.duration.record(duration, {**(base or {}), names.ERROR_TYPE: etype})
        else:
            tel.duration.record(duration, base)
