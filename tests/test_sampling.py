"""Sampling decides what the span gets, never what the metrics get.

The same calls (every operation, counts from headers and from the body, a failed call, a
stream that fails mid-way, a stream closed early) run twice against the emulator: once with a
tracer provider that records every span, once with the ALWAYS_OFF sampler. The metric points
must be the same: the same metrics, attribute sets and recording counts, and the same token
sums (durations differ in value only).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

import pytest
from botocore.exceptions import ClientError, EventStreamError
from botocore.response import StreamingBody
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor, names
from opentelemetry.instrumentation.bedrock_tokens.emulator import Scenario
from opentelemetry.instrumentation.bedrock_tokens.pytest_plugin import BedrockTelemetry

from .floor import needs_runtime_member
from .helpers import body_for, converse_messages

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
NOVA = "amazon.nova-micro-v1:0"
# Metrics whose recorded values depend on the call's timing, not on what it returned.
_TIMED = {"s"}


def _calls(client: Any, emulator: Any) -> None:
    """One of each: what a sampled-out call still has to record."""
    client.invoke_model(modelId=CLAUDE, body=body_for(CLAUDE))["body"].read()
    emulator.set_scenario(Scenario(omit_token_headers=True))
    client.invoke_model(modelId=CLAUDE, body=body_for(CLAUDE))["body"].read()
    emulator.set_scenario(None)
    client.invoke_model(modelId=NOVA, body=body_for(NOVA))  # body never read by the user
    client.converse(modelId=NOVA, messages=converse_messages())
    client.count_tokens(modelId=CLAUDE, input={"converse": {"messages": converse_messages()}})
    for _ in client.invoke_model_with_response_stream(modelId=CLAUDE, body=body_for(CLAUDE))[
        "body"
    ]:
        pass
    for _ in client.converse_stream(modelId=NOVA, messages=converse_messages())["stream"]:
        pass
    stream = client.converse_stream(modelId=NOVA, messages=converse_messages())["stream"]
    next(iter(stream))
    stream.close()  # ended early by the user
    emulator.set_scenario(Scenario(error_status=429))
    with pytest.raises(ClientError):
        client.converse(modelId=NOVA, messages=converse_messages())
    emulator.set_scenario(
        Scenario(stream_exception="throttlingException", stream_exception_after=2)
    )
    with pytest.raises(EventStreamError):
        for _ in client.converse_stream(modelId=NOVA, messages=converse_messages())["stream"]:
            pass
    emulator.set_scenario(None)


def _points(telemetry: BedrockTelemetry) -> dict[tuple[str, frozenset[Any]], tuple[Any, ...]]:
    """Every metric point: (name, attributes) -> (recordings, value sum unless timed)."""
    found: dict[tuple[str, frozenset[Any]], tuple[Any, ...]] = {}
    data = telemetry.metric_reader.get_metrics_data()
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, frozenset((point.attributes or {}).items()))
                    count = getattr(point, "count", None)
                    value: Optional[float] = (
                        None if metric.unit in _TIMED
                        else getattr(point, "sum", getattr(point, "value", None))
                    )
                    found[key] = (count, value)
    return found


def _telemetry(sampled: bool) -> BedrockTelemetry:
    """The test's providers; sampled out: the ALWAYS_OFF sampler, exporting to the same
    exporter, so that "no spans" is what the sampler did, not a missing processor."""
    telemetry = BedrockTelemetry()
    if not sampled:
        telemetry.tracer_provider = TracerProvider(sampler=ALWAYS_OFF)
        telemetry.tracer_provider.add_span_processor(
            SimpleSpanProcessor(telemetry.span_exporter)
        )
    return telemetry


@contextmanager
def _instrumented(telemetry: BedrockTelemetry, **options: Any) -> Iterator[None]:
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        **options,
    )
    try:
        yield
    finally:
        instrumentor.uninstrument()


def _run(
    sampled: bool, client: Any, emulator: Any, **options: Any
) -> tuple[BedrockTelemetry, dict[tuple[str, frozenset[Any]], tuple[Any, ...]]]:
    telemetry = _telemetry(sampled)
    with _instrumented(telemetry, **options):
        _calls(client, emulator)
    return telemetry, _points(telemetry)


@pytest.fixture
def both(bedrock_client: Any, bedrock_emulator: Any) -> Iterator[Any]:
    made: list[BedrockTelemetry] = []

    def run(**options: Any) -> tuple[Any, Any]:
        on, on_points = _run(True, bedrock_client, bedrock_emulator, **options)
        off, off_points = _run(False, bedrock_client, bedrock_emulator, **options)
        made.extend((on, off))
        # The premise: one run recorded spans, the other none.
        assert len(on.spans()) == 10
        assert off.spans() == []
        return on_points, off_points

    yield run
    for telemetry in made:
        telemetry.shutdown()


@pytest.mark.parametrize("stability", ["", "gen_ai_latest_experimental"])
def test_sampled_out_calls_record_the_same_metric_points(
    both: Any, stability: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", stability)
    on, off = both()
    assert off == on
    names_seen = {name for name, _ in on}
    # What the calls must have produced, so that equality says something.
    duration = (names.SCHEMA_LATEST if stability else names.SCHEMA_V1_41).inference_duration
    assert duration in names_seen
    assert any(
        name == duration and (names.ERROR_TYPE, "ThrottlingException") in attrs
        for name, attrs in on
    )
    time_per_chunk = (names.SCHEMA_LATEST if stability else names.SCHEMA_V1_41)
    assert time_per_chunk.time_to_first_chunk in names_seen
    assert time_per_chunk.time_per_output_chunk in names_seen


def test_sampled_out_with_chunk_timing_off_and_content_on(both: Any) -> None:
    on, off = both(chunk_timing=False, capture_content="SPAN_ONLY")
    assert off == on
    assert on


PRICED = {"models": {CLAUDE: {"input": 0.8, "output": 4.0, "cache_read": 0.08,
                              "cache_write": 1.0, "cache_write_1h": 1.6}}}
_CACHED_BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 40,
                "system": [{"type": "text", "text": "Answer in one sentence. " * 60,
                            "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
                "messages": [{"role": "user", "content": "Say hello."}]}


def _priced_run(sampled: bool, client: Any, emulator: Any) -> tuple[BedrockTelemetry, Any]:
    emulator.reset()  # a cold prompt cache: each run writes first, then reads
    telemetry = _telemetry(sampled)
    with _instrumented(telemetry, prices=PRICED, request_metadata_keys="tenant"):
        for _ in range(2):  # a cache write (1-hour TTL, priced apart), then a cache read
            client.invoke_model(modelId=CLAUDE, body=json.dumps(_CACHED_BODY),
                                requestMetadata=json.dumps({"tenant": "acme"}))["body"].read()
        client.converse(modelId=CLAUDE, messages=converse_messages(),
                        requestMetadata={"tenant": "acme"})
    writes = [r for r in emulator.requests if r.cache_write_tokens]
    assert len(writes) == 1  # the premise: the run's first call wrote the cache
    return telemetry, _points(telemetry)


@needs_runtime_member("InvokeModelRequest", "requestMetadata")
def test_sampled_out_cost_quota_and_attribution_points_match(
    bedrock_client: Any, bedrock_emulator: Any
) -> None:
    """The InvokeModel body is read for a sampled-out call only when it matters to a metric:
    here its cache-write TTLs, which the price table prices apart."""
    on, on_points = _priced_run(True, bedrock_client, bedrock_emulator)
    off, off_points = _priced_run(False, bedrock_client, bedrock_emulator)
    try:
        assert off_points == on_points
        cost = [(value, attrs) for (name, attrs), (_, value) in on_points.items()
                if name == names.METRIC_USAGE_COST]
        assert cost and all(("aws.bedrock.request_metadata.tenant", "acme") in attrs
                            for _, attrs in cost)
        spans = on.spans()
        assert off.spans() == [] and len(spans) == 3
        assert sum(value for value, _ in cost) == pytest.approx(
            sum(span.attributes[names.AWS_BEDROCK_USAGE_COST] for span in spans))
    finally:
        on.shutdown()
        off.shutdown()


@pytest.mark.parametrize("sampled", [True, False])
def test_a_sampled_out_invoke_model_leaves_the_body_alone(
    bedrock_client: Any, sampled: bool
) -> None:
    """With the counts in the headers, the body only adds span attributes (finish reason,
    id, model): for a span nobody records it is not read, and the user gets botocore's
    own StreamingBody back. A recording span's call reads it (the replay is ours)."""
    telemetry = _telemetry(sampled)
    try:
        with _instrumented(telemetry):
            result = bedrock_client.invoke_model(modelId=CLAUDE, body=body_for(CLAUDE))
            body = result["body"]
            assert (type(body) is StreamingBody) is not sampled
            assert json.loads(body.read())["usage"]["input_tokens"] > 0
            points = _points(telemetry)
            assert any(name == names.METRIC_TOKEN_USAGE for name, _ in points)
    finally:
        telemetry.shutdown()
