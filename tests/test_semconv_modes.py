"""Every name emitted, in both convention modes, against the table written from the conventions
(tests/semconv_table.py): span attributes, metrics (kind, unit, attributes), events, schema URL.

One workload per mode exercises every path that emits a name: Converse and InvokeModel, each
streamed and not, a cache write then a cache read, a throttled call, CountTokens, a blocking
pre-count (drift) and content capture to both the span and the event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from opentelemetry.instrumentation.bedrock_tokens.emulator import Scenario

from . import semconv_table as table
from .helpers import PROMPT, converse_messages

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
NOVA = "amazon.nova-micro-v1:0"
TOOLS = {"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather in a city",
                                 "inputSchema": {"json": {"type": "object"}}}}]}


@pytest.fixture
def logs() -> Iterator[Any]:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs import export as logs_export
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

    # The floor set's SDK (1.32.1) has neither the exporter's new name nor event names
    InMemoryLogRecordExporter = getattr(logs_export, "InMemoryLogRecordExporter", None)
    if InMemoryLogRecordExporter is None:
        pytest.skip("opentelemetry-sdk before 1.33: log records have no event_name, which "
                    "the content events need")

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    provider.exporter = exporter  # type: ignore[attr-defined]
    yield provider
    provider.shutdown()


def _workload(client: Any, emulator: Any) -> None:
    system = [{"text": "Shared context. " * 50}, {"cachePoint": {"type": "default"}}]
    for _ in range(2):  # cache write, then cache read
        client.converse(modelId=CLAUDE, system=system, messages=converse_messages(),
                        toolConfig=TOOLS)
    stream = client.converse_stream(modelId=NOVA, messages=converse_messages())
    list(stream["stream"])
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 30,
                       "top_k": 40, "messages": [{"role": "user", "content": PROMPT}]})
    client.invoke_model(modelId=CLAUDE, body=body)
    list(client.invoke_model_with_response_stream(modelId=CLAUDE, body=body)["body"])
    client.count_tokens(modelId=CLAUDE, input={"converse": {"messages": converse_messages()}})
    emulator.set_scenario(Scenario(error_status=429, operations=("Converse",)))
    with pytest.raises(Exception, match="Throttling"):
        client.converse(modelId=NOVA, messages=converse_messages())
    emulator.set_scenario(None)


def _emitted(telemetry: Any, logs: Any) -> dict[str, Any]:
    spans = telemetry.spans()
    metrics: dict[str, tuple[str, str, set[str]]] = {}
    points: dict[str, list[Any]] = {}
    urls = set()
    data = telemetry.metric_reader.get_metrics_data()
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            if sm.scope.name.startswith("opentelemetry.instrumentation.bedrock_tokens"):
                urls.add(sm.scope.schema_url)
            for metric in sm.metrics:
                kind = "histogram" if type(metric.data).__name__ == "Histogram" else "counter"
                keys: set[str] = set()
                for point in metric.data.data_points:
                    keys |= set(point.attributes or {})
                    points.setdefault(metric.name, []).append(point)
                metrics[metric.name] = (kind, metric.unit, keys)
    urls |= {s.instrumentation_scope.schema_url for s in spans}
    events = [r.log_record for r in logs.exporter.get_finished_logs()]
    return {"spans": spans, "metrics": metrics, "points": points, "urls": urls,
            "events": events}


@pytest.mark.parametrize("mode", ["v1.41", "latest"])
def test_every_emitted_name_is_the_conventions(
    mode: str, instrument: Callable[..., Any], bedrock_client: Any, bedrock_emulator: Any,
    bedrock_telemetry: Any, logs: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    if mode == "latest":  # a comma list, combined with another signal's value
        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http, gen_ai_latest_experimental")
    else:
        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    instrument(logger_provider=logs, capture_content="SPAN_AND_EVENT", precount="blocking",
               precount_timeout=10.0)
    _workload(bedrock_client, bedrock_emulator)
    got = _emitted(bedrock_telemetry, logs)

    # span attributes: every key is the convention's (this mode's) or a documented own one
    allowed = table.SPAN_ATTRIBUTES[mode] | table.PROJECT_SPAN
    keys = {k for s in got["spans"] for k in s.attributes}
    assert keys <= allowed, keys - allowed
    other = "latest" if mode == "v1.41" else "v1.41"
    only_mode = table.SPAN_ATTRIBUTES[mode] - table.SPAN_ATTRIBUTES[other]
    assert only_mode and only_mode <= keys  # the mode's own cache-write name was emitted
    assert not (table.SPAN_ATTRIBUTES[other] - table.SPAN_ATTRIBUTES[mode]) & keys
    assert {"gen_ai.tool.definitions", "gen_ai.input.messages", "gen_ai.output.messages",
            "gen_ai.system_instructions", "gen_ai.usage.cache_read.input_tokens"} <= keys

    top_k = {s.attributes["gen_ai.request.top_k"] for s in got["spans"]
             if "gen_ai.request.top_k" in s.attributes}
    assert top_k == {40} and {type(v) for v in top_k} == {table.TOP_K_TYPE[mode]}

    # metrics: exactly the mode's table (plus the project's drift and quota-burn metrics),
    # kinds, units, keys
    expected = {**table.METRICS[mode], **{
        k: v for k, v in table.PROJECT_METRICS.items()
        if k in ("aws.bedrock.count_tokens.drift", "aws.bedrock.usage.quota_tokens")}}
    assert set(got["metrics"]) == set(expected)
    for name, (kind, unit, keys_seen) in got["metrics"].items():
        want_kind, want_unit, allowed_keys = expected[name]
        assert (kind, unit) == (want_kind, want_unit), name
        assert keys_seen <= allowed_keys, (name, keys_seen - allowed_keys)
    if mode == "latest":  # operation.duration only for the operation that is not inference
        ops = {p.attributes["gen_ai.operation.name"]
               for p in got["points"]["gen_ai.client.operation.duration"]}
        assert ops == {"count_tokens"}

    # the token metrics of either mode add up to the spans' figures
    spans = [s for s in got["spans"] if s.attributes.get("gen_ai.operation.name") == "chat"]
    span_input = sum(s.attributes.get("gen_ai.usage.input_tokens", 0) for s in spans)
    span_output = sum(s.attributes.get("gen_ai.usage.output_tokens", 0) for s in spans)
    if mode == "v1.41":
        by_type = {p.attributes["gen_ai.token.type"]: p.sum
                   for p in got["points"]["gen_ai.client.token.usage"]}
        assert len(got["points"]["gen_ai.client.token.usage"]) == 4  # 2 models x 2 types
        input_sum = sum(p.sum for p in got["points"]["gen_ai.client.token.usage"]
                        if p.attributes["gen_ai.token.type"] == "input")
        assert input_sum == span_input and set(by_type) == {"input", "output"}
    else:
        def total(name: str) -> int:
            return sum(p.value for p in got["points"][name])

        assert total("gen_ai.client.inference.usage.input_tokens") == span_input
        assert total("gen_ai.client.inference.usage.output_tokens") == span_output
        assert total("gen_ai.client.inference.usage.cache_write.input_tokens") == sum(
            s.attributes.get("gen_ai.usage.cache_write.input_tokens", 0) for s in spans)
        assert {p.attributes["gen_ai.token.modality"]
                for p in got["points"]["gen_ai.client.inference.usage.input_tokens"]} == {
            "unknown"}

    # time_per_output_chunk: one value per stream event after the first, in both modes
    tpoc = next(n for n in got["metrics"] if n.endswith("time_per_output_chunk"))
    assert sum(p.count for p in got["points"][tpoc]) >= 2

    # events: the convention's name, in the span's context, content structured
    assert got["events"]
    assert {e.event_name for e in got["events"]} <= table.EVENTS[mode]
    span_ids = {s.context.span_id for s in got["spans"]}
    for event in got["events"]:
        assert event.span_id in span_ids
        messages = event.attributes.get("gen_ai.input.messages")
        assert messages is None or messages[0]["role"] == "user"
    assert got["urls"] == {table.SCHEMA_URLS[mode]}


def test_finish_reasons_in_messages_are_the_schema_enum(
    instrument: Callable[..., Any], bedrock_client: Any, bedrock_telemetry: Any,
) -> None:
    instrument(capture_content=True)
    result = bedrock_client.converse(modelId=NOVA, messages=converse_messages())
    span = bedrock_telemetry.spans()[-1]
    output = json.loads(span.attributes["gen_ai.output.messages"])
    assert output[0]["finish_reason"] in table.FINISH_REASONS
    assert span.attributes["gen_ai.response.finish_reasons"] == (result["stopReason"],)


def test_latest_mode_leaves_finish_reason_out_of_the_messages(
    instrument: Callable[..., Any], bedrock_client: Any, bedrock_telemetry: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # deprecated there (semantic-conventions-genai #363): gen_ai.response.finish_reasons only
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    instrument(capture_content=True)
    bedrock_client.converse(modelId=NOVA, messages=converse_messages())
    span = bedrock_telemetry.spans()[-1]
    assert "finish_reason" not in json.loads(span.attributes["gen_ai.output.messages"])[0]
    assert span.attributes["gen_ai.response.finish_reasons"]


@pytest.mark.parametrize("value,on_span,events", [
    ("EVENT_ONLY", False, True), ("SPAN_AND_EVENT", True, True), ("SPAN_ONLY", True, False),
    ("NO_CONTENT", False, False)])
def test_content_goes_where_the_setting_says(
    value: str, on_span: bool, events: bool, instrument: Callable[..., Any],
    bedrock_client: Any, bedrock_telemetry: Any, logs: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
    instrument(logger_provider=logs)
    stream = bedrock_client.converse_stream(modelId=NOVA, messages=converse_messages(),
                                            system=[{"text": "be brief"}])
    reply = "".join(e["contentBlockDelta"]["delta"]["text"] for e in stream["stream"]
                    if "contentBlockDelta" in e)
    span = bedrock_telemetry.spans()[-1]
    content_keys = {"gen_ai.input.messages", "gen_ai.output.messages",
                    "gen_ai.system_instructions"}
    assert (content_keys <= set(span.attributes)) is on_span
    assert not (content_keys & set(span.attributes)) or on_span
    found = [r.log_record for r in logs.exporter.get_finished_logs()]
    if not events:
        assert found == []
        return
    (event,) = found
    assert event.event_name == "gen_ai.client.inference.operation.details"
    assert event.span_id == span.context.span_id and event.trace_id == span.context.trace_id
    assert event.attributes["gen_ai.input.messages"][0]["parts"][0]["content"] == PROMPT
    assert event.attributes["gen_ai.output.messages"][0]["parts"][0]["content"] == reply
    assert list(event.attributes["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "be brief"}]
    assert event.attributes["gen_ai.usage.output_tokens"] == span.attributes[
        "gen_ai.usage.output_tokens"]


@pytest.mark.parametrize("chunk_timing", [True, False])
def test_time_per_output_chunk_is_one_value_per_event_after_the_first(
    chunk_timing: bool, instrument: Callable[..., Any], bedrock_client: Any,
    bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    instrument(chunk_timing=chunk_timing)
    bedrock_emulator.set_scenario(Scenario(stream_events=25, chunk_delay=0.002))
    events = list(bedrock_client.converse_stream(modelId=NOVA,
                                                 messages=converse_messages())["stream"])
    name = "gen_ai.client.operation.time_per_output_chunk"
    if not chunk_timing:  # OTEL_INSTRUMENTATION_BEDROCK_TOKENS_CHUNK_TIMING=false
        assert bedrock_telemetry.metric_points(name) == []
        return
    (point,) = bedrock_telemetry.metric_points(name)
    assert point.count == len(events) - 1
    # every interval includes the emulator's delay between events, none is negative
    assert point.min >= 0 and point.sum >= 0.002 * (len(events) - 10)
    assert point.attributes["gen_ai.request.model"] == NOVA


def test_a_failed_call_still_has_its_content_event_with_the_error(
    instrument: Callable[..., Any], bedrock_client: Any, bedrock_emulator: Any,
    bedrock_telemetry: Any, logs: Any,
) -> None:
    instrument(logger_provider=logs, capture_content="EVENT_ONLY")
    bedrock_emulator.set_scenario(Scenario(error_status=429))
    with pytest.raises(Exception, match="Throttling"):
        bedrock_client.converse(modelId=NOVA, messages=converse_messages())
    span = bedrock_telemetry.spans()[-1]
    assert "gen_ai.input.messages" not in span.attributes  # EVENT_ONLY: never on the span
    (found,) = logs.exporter.get_finished_logs()
    event = found.log_record
    assert event.attributes["error.type"] == span.attributes["error.type"] == (
        "ThrottlingException")
    assert event.attributes["gen_ai.input.messages"][0]["parts"][0]["content"] == PROMPT


def test_a_stream_that_fails_has_error_as_the_messages_finish_reason(
    instrument: Callable[..., Any], bedrock_client: Any, bedrock_emulator: Any,
    bedrock_telemetry: Any,
) -> None:
    instrument(capture_content=True)
    bedrock_emulator.set_scenario(Scenario(stream_exception="throttlingException",
                                           stream_exception_after=3))
    with pytest.raises(Exception, match="hrottling"):
        list(bedrock_client.converse_stream(modelId=NOVA,
                                            messages=converse_messages())["stream"])
    span = bedrock_telemetry.spans()[-1]
    (message,) = json.loads(span.attributes["gen_ai.output.messages"])
    assert message["finish_reason"] == "error"
    assert "gen_ai.response.finish_reasons" not in span.attributes  # none was sent
