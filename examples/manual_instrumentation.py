"""Manual instrumentation: set up the SDK and the instrumentor in code, no launcher.

For applications that already configure OpenTelemetry themselves, or cannot be started with
``opentelemetry-instrument``. Needs:

    pip install opentelemetry-instrumentation-bedrock-tokens boto3 \
        opentelemetry-sdk opentelemetry-exporter-otlp-proto-http

The OTLP exporters read the standard variables, so the destination is configured outside
the code, for example for a local Collector or Datadog Agent:

    export OTEL_SERVICE_NAME=bedrock-app
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318     # /v1/traces, /v1/metrics
    # export OTEL_EXPORTER_OTLP_HEADERS=x-honeycomb-team=...      # backend credentials
    python manual_instrumentation.py

Instrument before the first Bedrock call; clients created earlier are covered too.
"""

from __future__ import annotations

import json
import os

import boto3
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor

MODEL_ID = os.environ.get("BEDROCK_MODEL_ID", "us.anthropic.claude-3-5-haiku-20241022-v1:0")
QUESTION = "What is the capital of Portugal? One word."


def setup_telemetry() -> tuple[TracerProvider, MeterProvider]:
    # Resource() picks up OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
    resource = Resource.create()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())]
    )
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    return tracer_provider, meter_provider


def main() -> None:
    tracer_provider, meter_provider = setup_telemetry()
    BedrockTokensInstrumentor().instrument(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        # Keyword options mirror OTEL_INSTRUMENTATION_BEDROCK_TOKENS_* (and win over them):
        # ask CountTokens first and link the estimate to the call.
        precount="blocking",
    )
    client = boto3.client(
        "bedrock-runtime",
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        endpoint_url=os.environ.get("BEDROCK_ENDPOINT_URL") or None,
    )
    tracer = trace.get_tracer("example.app")
    # Your own span around the work: the Bedrock span becomes its child.
    with tracer.start_as_current_span("answer-question"):
        reply = client.converse(
            modelId=MODEL_ID,
            messages=[{"role": "user", "content": [{"text": QUESTION}]}],
            inferenceConfig={"maxTokens": 200, "temperature": 0.3},
        )
        print("converse:", reply["output"]["message"]["content"][0]["text"])
        body = client.invoke_model(
            modelId=MODEL_ID,
            body=json.dumps({
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 200,
                "temperature": 0.3,
                "messages": [{"role": "user", "content": QUESTION}],
            }),
        )["body"].read()
        print("invoke_model:", json.loads(body)["content"][0]["text"])
    # Flush before exit: spans are batched and metrics are exported periodically.
    tracer_provider.shutdown()
    meter_provider.shutdown()


if __name__ == "__main__":
    main()
