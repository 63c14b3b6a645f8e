"""The floor: the least any Bedrock token instrumentation could do per call.

One wrapt wrapper on ``BaseClient._make_api_call``; for bedrock-runtime, one CLIENT span made
current around the call, carrying the attributes the GenAI conventions require (operation and
provider names, request model, server address and port) and the token counts, read from
wherever the response has them (headers, body, Converse usage, CountTokens ``inputTokens``);
three histogram points (duration, input, output) with attribute sets built once per model and
endpoint. Streams get a wrapt proxy that ends the span when the stream is exhausted, checking
per event only what is needed to find the usage event.

It is deliberately not robust (no error type, no close/GC handling, no model-id parsing, no
request attributes): it measures what the telemetry itself costs, below which nothing can go.
With aiobotocore installed, ``AioBaseClient._make_api_call`` gets the same wrapper, awaited.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import urlsplit

import wrapt
from botocore.client import BaseClient
from botocore.response import StreamingBody
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import SpanKind, TracerProvider

from opentelemetry import context, trace

_METRICS_KEY = b"amazon-bedrock-invocationMetrics"
_Attrs = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]


class _Floor:
    def __init__(self, tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        self.tracer = tracer_provider.get_tracer("bench.floor")
        meter = meter_provider.get_meter("bench.floor")
        self.duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s")
        self.tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
        self._attrs: dict[tuple[str, str, str], _Attrs] = {}

    def attrs(self, operation: str, model: str, url: str) -> _Attrs:
        key = (operation, model, url)
        found = self._attrs.get(key)
        if found is None:
            parts = urlsplit(url)
            base = {
                "gen_ai.operation.name": operation,
                "gen_ai.provider.name": "aws.bedrock",
                "gen_ai.request.model": model,
                "server.address": parts.hostname,
                "server.port": parts.port or 443,
            }
            found = self._attrs[key] = (
                base,
                {**base, "gen_ai.token.type": "input"},
                {**base, "gen_ai.token.type": "output"},
            )
        return found

    def end(self, span: Any, start: float, attrs: _Attrs, inp: Optional[int],
            out: Optional[int]) -> None:
        base, in_attrs, out_attrs = attrs
        if inp is not None:
            span.set_attribute("gen_ai.usage.input_tokens", inp)
            self.tokens.record(inp, in_attrs)
        if out is not None:
            span.set_attribute("gen_ai.usage.output_tokens", out)
            self.tokens.record(out, out_attrs)
        self.duration.record(time.perf_counter() - start, base)
        span.end()


_floor: Optional[_Floor] = None


if TYPE_CHECKING:
    _ProxyBase = wrapt.ObjectProxy[Any]
else:
    _ProxyBase = wrapt.ObjectProxy  # not subscriptable at runtime on wrapt 1.x


class _StreamProxy(_ProxyBase):
    def __init__(self, wrapped: Any, span: Any, start: float, attrs: _Attrs, kind: str) -> None:
        super().__init__(wrapped)
        self._self_span = span
        self._self_start = start
        self._self_attrs = attrs
        self._self_kind = kind

    def __iter__(self) -> Iterator[Any]:
        final = None
        invoke = self._self_kind == "invoke"
        for event in self.__wrapped__:
            if invoke:
                data = event["chunk"]["bytes"]
                if _METRICS_KEY in data:
                    final = data
            elif "metadata" in event:
                final = event
            yield event
        _end_stream(self, final, invoke)


_Open = tuple[Any, float, _Attrs, str]


def _open(instance: Any, args: Any) -> _Open:
    """The span started and made current; (span, start, attribute sets, operation)."""
    operation, params = args
    model = params.get("modelId", "")
    assert _floor is not None
    op_name = "count_tokens" if operation == "CountTokens" else "chat"
    attrs = _floor.attrs(op_name, model, instance.meta.endpoint_url)
    span = _floor.tracer.start_span(f"{op_name} {model}", kind=SpanKind.CLIENT,
                                    attributes=attrs[0])
    return span, time.perf_counter(), attrs, operation


def _needs_body(opened: _Open, result: Any) -> bool:
    headers = result["ResponseMetadata"]["HTTPHeaders"]
    return opened[3] == "InvokeModel" and "x-amzn-bedrock-input-token-count" not in headers


def _settle(opened: _Open, result: Any, data: Optional[bytes], proxy: type[_StreamProxy]) -> Any:
    """End the span from the result (``data``: the InvokeModel body, when it was needed)."""
    span, start, attrs, operation = opened
    floor = _floor
    assert floor is not None
    if operation == "InvokeModel":
        headers = result["ResponseMetadata"]["HTTPHeaders"]
        inp = headers.get("x-amzn-bedrock-input-token-count")
        out = headers.get("x-amzn-bedrock-output-token-count")
        if data is not None:
            usage = json.loads(data).get("usage", {})
            inp, out = usage.get("input_tokens"), usage.get("output_tokens")
        floor.end(span, start, attrs, int(inp) if inp is not None else None,
                  int(out) if out is not None else None)
    elif operation == "Converse":
        usage = result["usage"]
        floor.end(span, start, attrs, usage["inputTokens"], usage["outputTokens"])
    elif operation == "CountTokens":
        span.set_attribute("aws.bedrock.count_tokens.input_tokens", result["inputTokens"])
        floor.end(span, start, attrs, None, None)
    elif operation == "InvokeModelWithResponseStream":
        result["body"] = proxy(result["body"], span, start, attrs, "invoke")
    elif operation == "ConverseStream":
        result["stream"] = proxy(result["stream"], span, start, attrs, "converse")
    else:
        floor.end(span, start, attrs, None, None)
    return result


def _wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if instance._service_model.service_name != "bedrock-runtime" or _floor is None:
        return wrapped(*args, **kwargs)
    opened = _open(instance, args)
    token = context.attach(trace.set_span_in_context(opened[0]))
    try:
        result = wrapped(*args, **kwargs)
    finally:
        context.detach(token)
    data = None
    if _needs_body(opened, result):
        data = result["body"].read()
        result["body"] = StreamingBody(io.BytesIO(data), len(data))
    return _settle(opened, result, data, _StreamProxy)


# -- aiobotocore: the same, awaited ----------------------------------------------------------
class _AioBytes:
    """What the user awaits ``read()`` on after the floor read the body."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self, amt: Optional[int] = None) -> bytes:
        data, self._data = self._data, b""
        return data


class _AioStreamProxy(_StreamProxy):
    def __aiter__(self) -> AsyncIterator[Any]:
        return self._aiterate()

    async def _aiterate(self) -> AsyncIterator[Any]:
        # The sync loop's body, repeated on purpose: a shared per-event function would add
        # a call per event to the floor, which must stay the least anyone could do.
        final = None
        invoke = self._self_kind == "invoke"
        async for event in self.__wrapped__:
            if invoke:
                data = event["chunk"]["bytes"]
                if _METRICS_KEY in data:
                    final = data
            elif "metadata" in event:
                final = event
            yield event
        _end_stream(self, final, invoke)


def _end_stream(proxy: _StreamProxy, final: Any, invoke: bool) -> None:
    inp = out = None
    if invoke and final is not None:
        metrics = json.loads(final)[_METRICS_KEY.decode()]
        inp, out = metrics.get("inputTokenCount"), metrics.get("outputTokenCount")
    elif final is not None:
        usage = final["metadata"].get("usage", {})
        inp, out = usage.get("inputTokens"), usage.get("outputTokens")
    assert _floor is not None
    _floor.end(proxy._self_span, proxy._self_start, proxy._self_attrs, inp, out)


async def _aio_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if instance._service_model.service_name != "bedrock-runtime" or _floor is None:
        return await wrapped(*args, **kwargs)
    opened = _open(instance, args)
    token = context.attach(trace.set_span_in_context(opened[0]))
    try:
        result = await wrapped(*args, **kwargs)
    finally:
        context.detach(token)
    data = None
    if _needs_body(opened, result):
        data = await result["body"].read()
        result["body"] = _AioBytes(data)
    return _settle(opened, result, data, _AioStreamProxy)


def instrument(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
    global _floor
    _floor = _Floor(tracer_provider, meter_provider)
    wrapt.wrap_function_wrapper(BaseClient, "_make_api_call", _wrapper)
    try:
        from aiobotocore.client import AioBaseClient
    except ImportError:  # no aiobotocore here: the sync floor only
        return
    wrapt.wrap_function_wrapper(AioBaseClient, "_make_api_call", _aio_wrapper)
