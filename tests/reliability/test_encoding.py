"""One odd string never costs a batch of telemetry: model ids and string attributes taken
from user input (lone surrogates, control characters, thousands of characters) are cleaned
before they become span names and attributes, so the real OTLP/HTTP exporter delivers every
span of a batch, and every metric, to a real receiver."""

from __future__ import annotations

import contextlib
import json
from typing import Any, Callable

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor, names

from ..e2e.otlp_receiver import OTLPReceiver, attributes_of, iter_metrics, iter_spans
from .support import CLAUDE, default_params, figure

HEALTHY_CALLS = 20
# Each reaches the instrumentation as the user passed it.
ODD_MODEL_IDS = {
    "lone-surrogate": CLAUDE + "\ud800",
    "control-characters": CLAUDE + "\x00\x1b[31m\n",
    "very-long": "anthropic." + "x" * 5000,
}


def _odd_calls(client: Any) -> list[Callable[[], Any]]:
    calls: list[Callable[[], Any]] = [
        (lambda model=model: client.converse(**default_params("Converse", model)))
        for model in ODD_MODEL_IDS.values()
    ]
    # a stop sequence with a lone surrogate (JSON's escape gives one), as a request attribute
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 20,
                       "stop_sequences": ["\ud800"],
                       "messages": [{"role": "user", "content": "Hi"}]}).encode()
    calls.append(lambda: client.invoke_model(modelId=CLAUDE, body=body)["body"].read())
    return calls


@pytest.mark.parametrize("odd", [*ODD_MODEL_IDS, "stop-sequence"])
def test_one_odd_string_never_drops_a_batch(
    odd: str, make_client: Callable[..., Any],
) -> None:
    labels = [*ODD_MODEL_IDS, "stop-sequence"]
    odd_call = labels.index(odd)
    with OTLPReceiver() as receiver:
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces", timeout=10),
            schedule_delay_millis=60_000, max_export_batch_size=512))
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{receiver.url}/v1/metrics", timeout=10),
            export_interval_millis=60_000)
        meter_provider = MeterProvider(metric_readers=[reader])
        instrumentor = BedrockTokensInstrumentor()
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        client = make_client()
        try:
            for index in range(HEALTHY_CALLS + 1):
                if index == HEALTHY_CALLS // 2:
                    # the service (or botocore) may reject it: the span exists anyway
                    with contextlib.suppress(Exception):
                        _odd_calls(client)[odd_call]()
                else:
                    client.converse(**default_params("Converse", text=f"call {index}"))
            tracer_provider.force_flush()
            meter_provider.force_flush()
        finally:
            instrumentor.uninstrument()
            tracer_provider.shutdown()
            meter_provider.shutdown()
        spans = [span for _, _, span in iter_spans(receiver.exports("traces"))]
        # the encoder drops an attribute it cannot encode (and logs), the batch for a name
        stops = [attributes_of(span.attributes).get(names.GEN_AI_REQUEST_STOP_SEQUENCES)
                 for span in spans]
        metrics = {metric.name for _, _, metric in iter_metrics(receiver.exports("metrics"))}
        assert receiver.errors == []
    figure(f"odd string ({odd}) in a batch of {HEALTHY_CALLS + 1} calls",
           f"{len(spans)} of {HEALTHY_CALLS + 1} spans and {len(metrics)} metrics exported")
    assert len(spans) == HEALTHY_CALLS + 1
    if odd == "stop-sequence":
        assert ("\ufffd",) in stops, "the stop sequences attribute was dropped"
    assert names.METRIC_OPERATION_DURATION in metrics
    for span in spans:
        assert len(span.name) <= len("chat ") + 2048
        assert not any(ch in span.name for ch in "\x00\x1b\n")
