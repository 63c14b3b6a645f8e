#!/bin/sh
# The app of ../app.py with its metrics served for Prometheus to scrape (pull), through the
# OpenTelemetry Prometheus exporter, at http://localhost:9464/metrics.
#
#   pip install opentelemetry-instrumentation-bedrock-tokens boto3 \
#       opentelemetry-distro opentelemetry-exporter-prometheus
#   prometheus --config.file=prometheus.yml &   # scrapes localhost:9464
#   sh run.sh
#
# The app makes its calls, then stays up for BEDROCK_APP_LINGER_SECONDS (here 60) so that
# Prometheus scrapes the final values: a pull exporter has nothing to push at exit.
set -eu

export OTEL_SERVICE_NAME=bedrock-app
export OTEL_TRACES_EXPORTER=none
export OTEL_LOGS_EXPORTER=none
export OTEL_METRICS_EXPORTER=prometheus
export OTEL_EXPORTER_PROMETHEUS_HOST=localhost
export OTEL_EXPORTER_PROMETHEUS_PORT=9464
export BEDROCK_APP_LINGER_SECONDS="${BEDROCK_APP_LINGER_SECONDS:-60}"

exec opentelemetry-instrument python "$(dirname "$0")/../app.py"
