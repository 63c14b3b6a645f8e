#!/bin/sh
# The application side of collector.yaml: send everything to a local Collector, which fans
# out to Honeycomb and Datadog (and converts metrics to delta for Datadog).
#
#   HONEYCOMB_API_KEY=... DD_API_KEY=... DD_SITE=datadoghq.com \
#       otelcol-contrib --config collector.yaml &
#   sh collector.sh
#
# Backend credentials live in the Collector only; the app sends plain OTLP with the SDK's
# default (cumulative) temporality.
set -eu

export OTEL_SERVICE_NAME=bedrock-app
export OTEL_TRACES_EXPORTER=otlp
export OTEL_METRICS_EXPORTER=otlp
export OTEL_LOGS_EXPORTER=none
export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318
# CountTokens pre-count off the call path: the count span links to the invocation span.
export OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT=background

exec opentelemetry-instrument python "$(dirname "$0")/app.py"
