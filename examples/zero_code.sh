#!/bin/sh
# Zero-code: the launcher loads the instrumentation into an unchanged boto3 app.
#
#   pip install opentelemetry-instrumentation-bedrock-tokens boto3 \
#       opentelemetry-distro opentelemetry-exporter-otlp-proto-http
#   sh zero_code.sh
#
# Sends OTLP over HTTP to a local OpenTelemetry Collector (or any OTLP endpoint).
set -eu

export OTEL_SERVICE_NAME=bedrock-app
export OTEL_TRACES_EXPORTER=otlp
export OTEL_METRICS_EXPORTER=otlp
# No log records unless content events are asked for (EVENT_ONLY / SPAN_AND_EVENT).
export OTEL_LOGS_EXPORTER=none
# opentelemetry-distro defaults to gRPC; this example uses the HTTP/protobuf exporter.
export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318

# Optional: ask CountTokens before each call; the span gets the estimate, the drift and a
# link to the count span. "background" does it off the call path instead.
export OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT=blocking

exec opentelemetry-instrument python "$(dirname "$0")/app.py"
