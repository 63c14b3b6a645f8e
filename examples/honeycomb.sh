#!/bin/sh
# Honeycomb, straight from the application over OTLP/HTTP.
#
#   pip install opentelemetry-instrumentation-bedrock-tokens boto3 \
#       opentelemetry-distro opentelemetry-exporter-otlp-proto-http
#   HONEYCOMB_API_KEY=... sh honeycomb.sh
#
# Traces go to the dataset named after service.name. Metrics need their dataset named in
# the x-honeycomb-dataset header, or they land in "unknown_metrics". The per-signal header
# variables replace OTEL_EXPORTER_OTLP_HEADERS entirely, so each carries the team key.
# EU accounts: use https://api.eu1.honeycomb.io instead.
set -eu
: "${HONEYCOMB_API_KEY:?set HONEYCOMB_API_KEY to a Honeycomb ingest key}"

export OTEL_SERVICE_NAME=bedrock-app
export OTEL_TRACES_EXPORTER=otlp
export OTEL_METRICS_EXPORTER=otlp
export OTEL_LOGS_EXPORTER=none
export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
export OTEL_EXPORTER_OTLP_ENDPOINT=https://api.honeycomb.io
export OTEL_EXPORTER_OTLP_TRACES_HEADERS="x-honeycomb-team=${HONEYCOMB_API_KEY}"
export OTEL_EXPORTER_OTLP_METRICS_HEADERS="x-honeycomb-team=${HONEYCOMB_API_KEY},x-honeycomb-dataset=bedrock-metrics"

# Optional: message content on spans (off by default: prompts may be sensitive).
# export OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY
# Optional: CountTokens estimate and drift on each call.
# export OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT=background

exec opentelemetry-instrument python "$(dirname "$0")/app.py"
