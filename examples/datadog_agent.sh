#!/bin/sh
# Datadog through the Datadog Agent's OTLP intake.
#
#   pip install opentelemetry-instrumentation-bedrock-tokens boto3 \
#       opentelemetry-distro opentelemetry-exporter-otlp-proto-http
#   sh datadog_agent.sh
#
# The Agent must listen for OTLP/HTTP; in datadog.yaml:
#   otlp_config:
#     receiver:
#       protocols:
#         http:
#           endpoint: 0.0.0.0:4318
# (or DD_OTLP_CONFIG_RECEIVER_PROTOCOLS_HTTP_ENDPOINT=0.0.0.0:4318 for a containerised Agent).
# The Agent holds the API key; the application sends no credentials.
set -eu

export OTEL_SERVICE_NAME=bedrock-app
export OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=dev
export OTEL_TRACES_EXPORTER=otlp
export OTEL_METRICS_EXPORTER=otlp
export OTEL_LOGS_EXPORTER=none
export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318
# Datadog wants delta temporality: cumulative histograms lose their first points and min/max.
export OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta

# Optional: message content on spans (off by default: prompts may be sensitive).
# export OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY

exec opentelemetry-instrument python "$(dirname "$0")/app.py"
