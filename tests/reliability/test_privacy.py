"""Nothing private leaves through telemetry or diagnostics: a prompt quoted in a client-side
validation error or a service error message never reaches an exported span with content
capture off, and ``doctor`` shows neither the password of an exporter endpoint nor the values
of resource attributes."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError, ParamValidationError
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.trace import StatusCode

from opentelemetry.instrumentation.bedrock_tokens import doctor
from opentelemetry.instrumentation.bedrock_tokens.emulator import Scenario

from .support import CLAUDE, default_params, figure, flush_precounts

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


# -- status descriptions ------------------------------------------------------------------------
PROMPT_SECRET = "my card number is 4111-1111-1111-1111, please remember it"


def _exported(telemetry: Any) -> bytes:
    """Every finished span as the OTLP exporter would send it."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return bytes(encode_spans(telemetry.spans()).SerializeToString())


def _invalid_calls(client: Any) -> list[Callable[[], Any]]:
    """Calls botocore rejects before sending, with a ParamValidationError quoting the prompt."""
    bad_content = [{"role": "user", "content": PROMPT_SECRET}]  # a string, not a list of blocks
    return [
        lambda: client.converse(modelId=CLAUDE, messages=bad_content),
        lambda: client.converse_stream(modelId=CLAUDE, messages=bad_content),
        lambda: client.count_tokens(modelId=CLAUDE, input={"converse": {"messages": bad_content}}),
        lambda: client.invoke_model(modelId=CLAUDE, body=b"{}", accept=PROMPT_SECRET,
                                    contentType=[PROMPT_SECRET]),
    ]


@pytest.mark.parametrize("mode", ["off", "blocking", "background"])
def test_prompt_quoted_by_a_validation_error_never_reaches_an_exported_span(
    mode: str, make_client: Callable[..., Any], instrument: Callable[..., Any],
    bedrock_telemetry: Any,
) -> None:
    client = make_client()
    instrument(precount=mode, precount_timeout=5.0)
    for call in _invalid_calls(client):
        with pytest.raises(ParamValidationError) as raised:
            call()
        assert PROMPT_SECRET in str(raised.value)  # botocore quotes it: the reason for the test
    flush_precounts()
    spans = bedrock_telemetry.spans()
    assert len([s for s in spans if s.status.status_code is StatusCode.ERROR]) >= 4
    leaked = [s.name for s in spans if PROMPT_SECRET.encode() in _exported_one(s)]
    figure(f"prompt quoted in ParamValidationError, pre-count {mode}",
           f"{len(leaked)} of {len(spans)} exported spans carry it")
    assert leaked == []
    assert PROMPT_SECRET.encode() not in _exported(bedrock_telemetry)
    for span in spans:  # a pre-count may get the service's rejection instead: its code only
        if span.status.status_code is StatusCode.ERROR:
            assert span.status.description in ("ParamValidationError", "ValidationException")


def _exported_one(span: Any) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return bytes(encode_spans([span]).SerializeToString())


@pytest.mark.parametrize("capture", [False, True])
@pytest.mark.parametrize("operation", ["Converse", "CountTokens"])
def test_service_error_message_in_the_status_only_with_content_capture(
    capture: bool, operation: str, make_client: Callable[..., Any],
    instrument: Callable[..., Any], bedrock_telemetry: Any, bedrock_emulator: Any,
) -> None:
    message = f"Malformed input request: {PROMPT_SECRET}"
    bedrock_emulator.set_scenario(Scenario(error_status=400, error_message=message))
    client = make_client()
    instrument(capture_content=capture)
    call = client.converse if operation == "Converse" else client.count_tokens
    with pytest.raises(ClientError):
        call(**default_params(operation))
    (span,) = bedrock_telemetry.spans()
    if capture:
        assert span.status.description == f"ValidationException: {message}"
    else:
        assert span.status.description == "ValidationException"
        assert PROMPT_SECRET.encode() not in _exported(bedrock_telemetry)


@pytest.mark.parametrize("mode", ["blocking", "background"])
def test_count_span_of_a_failed_precount_carries_no_service_message(
    mode: str, make_client: Callable[..., Any], instrument: Callable[..., Any],
    bedrock_telemetry: Any, bedrock_emulator: Any,
) -> None:
    bedrock_emulator.set_scenario(Scenario(
        error_status=500, error_message=f"could not count {PROMPT_SECRET}",
        operations=("CountTokens",)))
    client = make_client()
    instrument(precount=mode, precount_timeout=5.0)
    client.converse(**default_params("Converse", text=PROMPT_SECRET))
    flush_precounts()
    counts = [s for s in bedrock_telemetry.spans() if s.name.startswith("count_tokens")]
    assert len(counts) == 1 and counts[0].status.description == "InternalServerException"
    assert PROMPT_SECRET.encode() not in _exported(bedrock_telemetry)
