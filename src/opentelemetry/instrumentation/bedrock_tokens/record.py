"""The call record: the one object that owns one Bedrock call's span and metric recordings.

Every path, streamed or not, successful or not, ends in ``CallRecord.end``. Its first call
wins and every later call does nothing, which is what makes "exactly once" hold for a stream
closed twice, broken out of, collected, or failing after it was closed. The guard is a
non-blocking lock acquire, so it also holds when two threads race to end the same call.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Optional

from botocore.exceptions import HTTPClientError
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, set_span_in_context

from . import names
from .extras import NO_FACTS, NO_START, Extras, Finish, ResponseFacts, Start
from .telemetry import MetricAttributes, Telemetry
from .text import clean_attributes, clean_id, clean_value
from .usage import Usage

if TYPE_CHECKING:
    from .agents import ModelStep
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
        "service_message", "span", "start", "usage_metrics",
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
        # False for an agent or flow call: its model steps recorded the token metrics
        # (model_step), and the totals on its span must not be recorded a second time.
        self.usage_metrics = True
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
        # Metrics for every call; the span's attributes (and the content event, which carries
        # them) only when someone will see them: a sampled-out span records nothing.
        # error_type() cleans a service code; a class name is cleaned here (both identifiers)
        etype = None if error is None else clean_id(error_type(error))
        finish = self._finish(usage, attributes) if error is None else None
        input_tokens, drift = self._record_metrics(duration, usage, etype, ttfc, finish)
        capture = self.capture
        if span.is_recording() or (capture is not None and capture.on_event):
            extra = finish.attributes if finish is not None else None
            self._annotate(span, usage, input_tokens, drift, attributes, extra, error, etype, ttfc)

    def _record_metrics(
        self,
        duration: float,
        usage: Optional[Usage],
        etype: Optional[str],
        ttfc: Optional[float],
        finish: Optional[Finish],
    ) -> tuple[Optional[int], Optional[int]]:
        """Every metric point of the call; (semconv input tokens, pre-count drift)."""
        tel = self._telemetry
        metric_attrs = self.metric_attrs
        base = metric_attrs.base
        if finish is not None and finish.metric_extra:  # the service tier on the token metrics
            metric_attrs = tel.metric_attributes(*self.metric_key, extra=finish.metric_extra)
        input_tokens = drift = None
        if usage is not None:
            input_tokens = usage.semconv_input()
            if self.usage_metrics:  # an agent's total: its steps recorded the tokens already
                tel.record_usage(
                    input_tokens, usage.output, usage.cache_read, usage.cache_write, metric_attrs
                )
        if self.estimate is not None and input_tokens is not None:
            drift = input_tokens - self.estimate
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
            tel.time_to_first_chunk.record(ttfc, base)
        if etype is not None:
            metric_attrs.duration.record(duration, metric_attrs.with_error(etype))
        else:
            metric_attrs.duration.record(duration, base)
        return input_tokens, drift

    def _finish(
        self, usage: Optional[Usage], attributes: Optional[Mapping[str, Any]]
    ) -> Optional[Finish]:
        """What the extras make of a successful call (cost, quota burn, tier, attribution),
        for the metrics and the span alike; None for calls that take no extras."""
        extras = self.extras
        if extras is None:
            return None
        facts = self.facts
        return extras.finish(
            self.extra, self.model, self.operation, usage, facts.tier, facts.cache_ttl,
            facts.images, self.request_body, facts.response_body,
            response_has_model=attributes is not None
            and names.GEN_AI_RESPONSE_MODEL in attributes,
        )

    def _annotate(
        self,
        span: Span,
        usage: Optional[Usage],
        input_tokens: Optional[int],
        drift: Optional[int],
        attributes: Optional[Mapping[str, Any]],
        extra: Optional[Mapping[str, Any]],
        error: Optional[BaseException],
        etype: Optional[str],
        ttfc: Optional[float],
    ) -> None:
        """The span's end attributes and status, and the content event."""
        # One set_attributes call: the SDK locks and validates per call, not per attribute.
        attrs: dict[str, Any] = dict(attributes) if attributes else {}
        if extra:
            attrs.update(extra)
        if usage is not None:
            attrs[names.AWS_BEDROCK_USAGE_SOURCE] = usage.source
            if input_tokens is not None:
                attrs[names.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
            if usage.input is not None:
                attrs[names.AWS_BEDROCK_USAGE_UNCACHED_INPUT_TOKENS] = usage.input
            if usage.output is not None:
                attrs[names.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output
            if usage.cache_read is not None:
                attrs[names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read
            if usage.cache_write is not None:
                attrs[self._telemetry.schema.cache_write_attribute] = usage.cache_write
        if drift is not None:
            attrs[names.AWS_BEDROCK_COUNT_TOKENS_DRIFT] = drift
        if ttfc is not None:
            attrs[names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = ttfc
        if self.capture is not None:
            self._content(span, attrs, error)
        if error is not None:
            attrs[names.ERROR_TYPE] = etype
            rid = request_id(error)
            if rid is not None:
                attrs[names.AWS_REQUEST_ID] = rid
        clean_attributes(attrs)  # the service's codes and ids too: every exporter must cope
        if error is not None:
            span.set_attributes(attrs)
            span.set_status(
                Status(StatusCode.ERROR, status_description(error, self.service_message))
            )
        elif attrs:
            span.set_attributes(attrs)

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

    def model_step(self, step: ModelStep) -> bool:
        """One model invocation an agent reported: its ``chat`` child span, with the service's
        start and end times, and its token metrics (recorded here once, never again for the
        agent's total). False, and nothing recorded, once the call has ended."""
        with self._guard:
            if self._once.locked():
                return False
            try:
                self._model_step(step)
            except Exception:
                _logger.debug("bedrock-tokens: failed to record an agent step", exc_info=True)
            return True

    def _model_step(self, step: ModelStep) -> None:
        tel = self._telemetry
        model = step.model or ""
        base = self.metric_attrs.base or {}
        address, port = base.get(names.SERVER_ADDRESS), base.get(names.SERVER_PORT)
        step_metrics = tel.metric_attributes(
            names.OP_CHAT,
            model,
            address if isinstance(address, str) else None,
            port if isinstance(port, int) else None,
        )
        usage = step.usage
        input_tokens = usage.semconv_input() if usage is not None else None
        if usage is not None:
            tel.record_usage(input_tokens, usage.output, None, None, step_metrics)
        if not self.span.is_recording():
            return  # span-only work is skipped for calls that are not recorded
        attrs: dict[str, Any] = {
            names.GEN_AI_OPERATION_NAME: names.OP_CHAT,
            names.GEN_AI_PROVIDER_NAME: names.PROVIDER_AWS_BEDROCK,
            names.AWS_BEDROCK_AGENT_STEP_TYPE: step.step_type,
        }
        optional = (
            (names.GEN_AI_REQUEST_MODEL, step.model),
            (names.AWS_BEDROCK_AGENT_CLIENT_REQUEST_ID, step.client_request_id),
            (names.AWS_BEDROCK_AGENT_TRACE_ID, step.trace_id),
            (names.GEN_AI_AGENT_ID, step.agent_id),
            (names.AWS_BEDROCK_AGENT_COLLABORATOR, step.collaborator),
            (names.GEN_AI_USAGE_INPUT_TOKENS, input_tokens),
            (names.GEN_AI_USAGE_OUTPUT_TOKENS, usage.output if usage is not None else None),
        )
        attrs.update((key, value) for key, value in optional if value is not None)
        if usage is not None:
            attrs[names.AWS_BEDROCK_USAGE_SOURCE] = usage.source
        capture = self.capture
        if capture is not None and capture.on_span:
            if step.prompt is not None:
                request = {"messages": [{"role": "user", "content": [{"text": step.prompt}]}]}
                attrs.update(capture.input_attributes(request))
            if step.response is not None:
                attrs.update(capture.output_attributes(step.response, None))
        span = tel.tracer.start_span(
            f"{names.OP_CHAT} {model}" if model else names.OP_CHAT,
            context=set_span_in_context(self.span),
            kind=SpanKind.CLIENT,
            attributes=attrs,
            start_time=step.start_ns,
        )
        end = step.end_ns
        span.end(end_time=end if end is not None and step.start_ns is not None else None)

    def chunk_recorder(self) -> Optional[Callable[[float], None]]:
        """What a stream calls per chunk after the first with the time since the previous
        one (``time_per_output_chunk``); None when chunk timing is off."""
        histogram = self._telemetry.time_per_output_chunk
        if histogram is None:
            return None
        # A C-level partial, not a closure: one Python frame less per event.
        return functools.partial(histogram.record, attributes=self.metric_attrs.base)
