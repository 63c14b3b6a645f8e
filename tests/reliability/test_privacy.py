"""Nothing private leaves through telemetry or diagnostics: a prompt quoted in a client-side
validation error or a service error message never reaches an exported span with content
capture off, and ``doctor`` shows neither the password of an exporter endpoint nor the values
of resource attributes."""

from __future__ import annotations

import os
import subprocess
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from opentelemetry.instrumentation.bedrock_tokens import doctor

from .support import figure

PASSWORD = "s3cr3t-PASSWORD-4711"
RESOURCE_VALUE = "team-private-value-0815"
SECRET_ENV = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://alice:{PASSWORD}@collector.example:4318",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"https://bob:{PASSWORD}@traces.example/v1/traces",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"bob:{PASSWORD}@metrics.example:4318",
    "OTEL_RESOURCE_ATTRIBUTES": f"service.name=checkout,team.secret={RESOURCE_VALUE}",
}


def test_doctor_redacts_endpoint_userinfo_and_resource_attribute_values() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(SECRET_ENV)
    env["OTEL_TRACES_EXPORTER"] = "none"
    env["OTEL_METRICS_EXPORTER"] = "none"
    done = subprocess.run(
        [sys.executable, "-m", "opentelemetry.instrumentation.bedrock_tokens.cli", "doctor",
         "--no-launch"], env=env, capture_output=True, text=True, timeout=60,
    )
    out = done.stdout + done.stderr
    leaked = [s for s in (PASSWORD, RESOURCE_VALUE, "checkout") if s in out]
    figure("doctor with secrets in OTEL_* endpoints and resource attributes",
           f"{len(leaked)} of 3 secret values printed")
    assert leaked == [], f"{len(leaked)} of 3 secret values printed"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=https://<redacted>@collector.example:4318" in out, out
    assert "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=<redacted>@metrics.example:4318" in out
    assert "OTEL_RESOURCE_ATTRIBUTES=service.name=<redacted>,team.secret=<redacted>" in out


def test_doctor_process_report_redacts_exporter_endpoint_userinfo() -> None:
    exporter = OTLPSpanExporter(endpoint=SECRET_ENV["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
    try:
        described = doctor._describe_exporter(exporter)
    finally:
        exporter.shutdown()
    assert described["endpoint"] == "https://<redacted>@traces.example/v1/traces"
