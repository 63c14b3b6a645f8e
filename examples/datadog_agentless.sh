#!/bin/sh
# Datadog without an Agent: OTLP/HTTP straight to Datadog's OTLP intake.
#
#   pip install opentelemetry-instrumentation-bedrock-tokens boto3 \
#       opentelemetry-distro opentelemetry-exporter-otlp-proto-http
#   DD_API_KEY=... DD_SITE=datadoghq.com sh datadog_agentless.sh
#
# Traces: LLM Observability reads the OpenTelemetry GenAI attributes (1.37+ conventions) of
# these spans: gen_ai.provider.name, gen_ai.operation.name, gen_ai.request.model, the
# gen_ai.request.* parameters and gen_ai.usage.input_tokens / output_tokens. The ml_app is
# the root span's service, i.e. OTEL_SERVICE_NAME. The traces intake takes http/protobuf only.
# Metrics: the intake accepts delta temporality only.
# Check the endpoints for your Datadog site in Datadog's "OTLP intake endpoint" docs.
set -eu
: "${DD_API_KEY:?set DD_API_KEY to a Datadog API key}"
DD_SITE="${DD_SITE:-datadoghq.com}"

export OTEL_SERVICE_NAME=bedrock-app
export OTEL_TRACES_EXPORTER=otlp
export OTEL_METRICS_EXPORTER=otlp
export OTEL_LOGS_EXPORTER=none
export OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf
export OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="https://otlp.${DD_SITE}/v1/traces"
export OTEL_EXPORTER_OTLP_TRACES_HEADERS="dd-api-key=${DD_API_KEY},dd-otlp-source=datadog"
export OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=http/protobuf
export OTEL_EXPORTER_OTLP_METRICS_ENDPOINT="https://otlp.${DD_SITE}/v1/metrics"
export OTEL_EXPORTER_OTLP_METRICS_HEADERS="dd-api-key=${DD_API_KEY}"
export OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta

# Optional: prompts and replies in LLM Observability (off by default: they may be sensitive).
# export OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY

exec opentelemetry-instrument python "$(dirname "$0")/app.py"
