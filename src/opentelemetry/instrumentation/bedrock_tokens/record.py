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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Optional

from botocore.exceptions import HTTPClientError
from opentelemetry.trace import Span, SpanContext, Status, StatusCode

from . import names
from .extras import NO_FACTS, NO_START, Extras, ResponseFacts, Start
from .telemetry import MetricAttributes, Telemetry
from .text import clean_attributes, clean_id, clean_value
from .usage import Usage

if TYPE_CHECKING:
    from .content import Capture

_logger = logging.getLogger(__name__)


def error_type(exc: BaseException) -> str:
    """The service's error code in one form (``throttlingException`` from a stream and
    ``ThrottlingException`` from HTTP both give the latter), else the exception's class."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        error = response.get("Error")
        code = error.get("Code") if isinstance(error, Mapping) else None
        if isinstance(code, str) and code:
            return clean_id(code[0].upper() + code[1:])  # the service's text: may be anything
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def request_id(exc: BaseException) -> Optional[str]:
    """The RequestId of the response a botocore error was built from, if it has one."""
    response = getattr(exc, "response", None)
    meta = response.get("ResponseMetadata") if isinstance(response, Mapping) else None
    found = meta.get("RequestId") if isinstance(meta, Mapping) else None
    return found if isinstance(found, str) and found else None


def status_description(exc: BaseException, service_message: bool = False) -> str:
    """A span status description that carries no request content.

    Service errors give their code, and the service's message only when ``service_message``
    (content capture is on): a service message may quote the request. Client-side errors
    (``ParamValidationError`` quotes the parameter it rejects: the prompt) give their class
    only, whatever the settings. Network errors keep botocore's message, which names only the
    endpoint URL and the socket's error.
    """
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, Mapping) else None
    if isinstance(error, Mapping) and isinstance(error.get("Code"), str) and error["Code"]:
        code = error_type(exc)
        message = error.get("Message")
        if service_message and isinstance(message, str) and message:
            return f"{code}: {clean_value(message)}"
        return code
    name = type(exc).__name__
    return f"{name}: {clean_value(str(exc))}" if isinstance(exc, HTTPClientError) else name


class CallRecord:
    __slots__ = (
        "_guard", "_once", "_telemetry", "capture", "content", "estimate", "extra", "extras",
        "facts", "metric_attrs", "metric_key", "model", "operation", "request_body",
        "service_message", "span", "start",
    )

    def __init__(
        self,
        telemetry: Telemetry,
        span: Span,
        start: float,
        metric_attrs: MetricAttributes,
        service_message: bool = False,
    ) -> None:
        self._once = threading.Lock()
        # Orders a pre-count finishing on another thread (add_estimate) against end().
        self._guard = threading.Lock()
        self._telemetry = telemetry
        self.span = span
        self.start = start  # time.perf_counter() at the start of the call
        self.metric_attrs = metric_attrs
        self.estimate: Optional[int] = None  # CountTokens pre-count, when one is known
        # Content capture of this call (opt-in): the policy and the input content attributes.
        self.capture: Optional[Capture] = None
        self.content: Optional[dict[str, Any]] = None
        # Service error messages may quote the request: in the status only with content capture.
        self.service_message = service_message
        # Cost, quota burn, tier and attribution (extras.py): set by the flow for invocations.
        self.extras: Optional[Extras] = None
        self.extra: Start = NO_START
        self.facts: ResponseFacts = NO_FACTS  # what the response said; set before end()
        self.model = ""  # the modelId as sent (prices and burndown rates key on it)
        self.operation = ""
        self.metric_key: tuple[str, str, Optional[str], Optional[int]] = ("", "", None, None)
        self.request_body: Any = None  # kept only when an estimator needs it

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
        with self._guard:  # an add_estimate already under way completes first
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

    def forget(self) -> None:
        """In a forked child, for a call of the parent: every later end() does nothing (the
        parent ends this span, once)."""
        self._once.acquire(False)

    def add_estimate(
        self, tokens: Optional[int], count_span: Optional[SpanContext] = None
    ) -> bool:
        """Attach a pre-count that finished after the span started (background mode, or a
        blocking count that outlived its budget): the estimate, which end() turns into drift,
        and a link to the count span. False, and nothing changed, once the call has ended:
        either the whole estimate is in the span and the drift, or none of it is."""
        with self._guard:
            if self._once.locked():
                return False
            try:
                if tokens is not None:
                    self.span.set_attribute(names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS, tokens)
                    self.estimate = tokens
                if count_span is not None:
                    self.span.add_link(
                        count_span,
                        {names.AWS_BEDROCK_LINK_RELATION: names.LINK_RELATION_PRECOUNT},
                    )
            except Exception:
                _logger.debug("bedrock-tokens: failed to attach a pre-count", exc_info=True)
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
        metric_attrs = self.metric_attrs
        base = metric_attrs.base
        # One set_attributes call: the SDK locks and validates per call, not per attribute.
        attrs: dict[str, Any] = dict(attributes) if attributes else {}
        extras = self.extras
        finish = None
        if extras is not None and error is None:
            facts = self.facts
            finish = extras.finish(
                self.extra, self.model, self.operation, usage, facts.tier, facts.cache_ttl,
                facts.images, self.request_body, facts.response_body,
                response_has_model=names.GEN_AI_RESPONSE_MODEL in attrs,
            )
            attrs.update(finish.attributes)
            if finish.metric_extra:  # the service tier on the token metrics
                metric_attrs = tel.metric_attributes(*self.metric_key, extra=finish.metric_extra)
        input_tokens = None
        if usage is not None:
            input_tokens = usage.semconv_input()
            output_tokens = usage.output
            attrs[names.AWS_BEDROCK_USAGE_SOURCE] = usage.source
            if input_tokens is not None:
                attrs[names.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
            if usage.input is not None:
                attrs[names.AWS_BEDROCK_USAGE_UNCACHED_INPUT_TOKENS] = usage.input
            if output_tokens is not None:
                attrs[names.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
            if usage.cache_read is not None:
                attrs[names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read
            if usage.cache_write is not None:
                attrs[tel.schema.cache_write_attribute] = usage.cache_write
            tel.record_usage(
                input_tokens, output_tokens, usage.cache_read, usage.cache_write, metric_attrs
            )
        if self.estimate is not None and input_tokens is not None:
            drift = input_tokens - self.estimate
            attrs[names.AWS_BEDROCK_COUNT_TOKENS_DRIFT] = drift
            # SDK histograms drop negative values: record the magnitude, the sign as attribute
            direction = (
                names.DIRECTION_UNDER if drift > 0
                else names.DIRECTION_OVER if drift < 0
                else names.DIRECTION_EXACT
            )
            tel.precount_drift.record(
                abs(drift), {**(base or {}), names.AWS_BEDROCK_COUNT_TOKENS_DIRECTION: direction}
            )
        if finish is not None:  # cost, quota burn, images: the tier and the attribution
            key = (self.metric_key, finish.counter_extra)
            extended = (
                tel.metric_attributes(*self.metric_key, extra=finish.counter_extra).base
                if finish.counter_extra else base
            )
            if finish.cost is not None:
                tel.usage_cost.add(key, finish.cost, extended)
            if finish.quota_tokens is not None:
                tel.quota_tokens.add(key, finish.quota_tokens, extended)
            if finish.images is not None:
                tel.output_images.add(key, finish.images, extended)
        if ttfc is not None:
            attrs[names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = ttfc
            tel.time_to_first_chunk.record(ttfc, base)
        if self.capture is not None:
            self._content(span, attrs, error)
        if error is not None:
            attrs[names.ERROR_TYPE] = error_type(error)
            rid = request_id(error)
            if rid is not None:
                attrs[names.AWS_REQUEST_ID] = rid
        clean_attributes(attrs)  # the service's codes and ids too: every exporter must cope
        if error is not None:
            etype = attrs[names.ERROR_TYPE]
            span.set_attributes(attrs)
            span.set_status(
                Status(StatusCode.ERROR, status_description(error, self.service_message))
            )
            metric_attrs.duration.record(duration, {**(base or {}), names.ERROR_TYPE: etype})
        else:
            if attrs:
                span.set_attributes(attrs)
            metric_attrs.duration.record(duration, base)

    def _content(
        self, span: Span, attrs: dict[str, Any], error: Optional[BaseException]
    ) -> None:
        """The content event (EVENT_ONLY, SPAN_AND_EVENT), and no content on the span unless
        it was asked for there (the output content arrives in ``attrs``)."""
        capture = self.capture
        assert capture is not None
        if capture.on_event:
            details = {**(self.metric_attrs.base or {}), **(self.content or {}), **attrs}
            if error is not None:
                details[names.ERROR_TYPE] = error_type(error)
            capture.emit_event(span, details)
        if not capture.on_span:
            for key in names.CONTENT_ATTRIBUTES:
                attrs.pop(key, None)

    def chunk_recorder(self) -> Optional[Callable[[float], None]]:
        """What a stream calls per chunk after the first with the time since the previous
        one (``time_per_output_chunk``); None when chunk timing is off."""
        histogram = self._telemetry.time_per_output_chunk
        if histogram is None:
            return None
        attrs = self.metric_attrs.base
        record = histogram.record

        def chunk_interval(seconds: float) -> None:
            record(seconds, attrs)

        return chunk_interval
