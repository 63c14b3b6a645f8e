"""Issue #3: one GenAI span with exact counts and one set of metric recordings per call,
for InvokeModel across every family, Converse, CountTokens, every model-id form, every HTTP
error and every bad-input scenario. All through real botocore against the emulator."""

from __future__ import annotations

import json
from typing import Any

import botocore.exceptions
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from opentelemetry.instrumentation.bedrock_tokens import names
from opentelemetry.instrumentation.bedrock_tokens.emulator import Scenario

from .helpers import (
    FAMILY_REQUESTS,
    NO_BODY_USAGE,
    PROMPT,
    body_for,
    converse_messages,
    expected_usage_attrs,
    hist,
    only_span,
    token_sums,
    usage_attrs,
)

pytestmark = pytest.mark.usefixtures("instrumented")


def _assert_common(span: Any, model: str, operation: str, port: int) -> None:
    assert span.name == f"{operation} {model}"
    assert span.kind is SpanKind.CLIENT
    attrs = span.attributes
    assert attrs[names.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    assert attrs[names.GEN_AI_OPERATION_NAME] == operation
    assert attrs[names.GEN_AI_REQUEST_MODEL] == model
    assert attrs[names.SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[names.SERVER_PORT] == port
    assert attrs[names.AWS_REQUEST_ID]


def _port(emulator: Any) -> int:
    return int(emulator.endpoint_url.rsplit(":", 1)[1])


@pytest.mark.parametrize("model", list(FAMILY_REQUESTS))
def test_invoke_model_every_family_exact_counts_from_headers(
    model: str, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    operation = FAMILY_REQUESTS[model][1]
    response = bedrock_client.invoke_model(modelId=model, body=body_for(model))
    response["body"].read()
    reported = bedrock_emulator.requests[-1]
    span = only_span(bedrock_telemetry)
    _assert_common(span, model, operation, _port(bedrock_emulator))
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes[names.AWS_BEDROCK_USAGE_SOURCE] == "headers"
    assert usage_attrs(span) == expected_usage_attrs(reported)
    assert reported.input_tokens > 0
    assert span.attributes[names.AWS_BEDROCK_INVOCATION_LATENCY] >= 0
    sums = token_sums(bedrock_telemetry)
    assert sums["input"] == (1, span.attributes[names.GEN_AI_USAGE_INPUT_TOKENS])
    if operation == "embeddings":
        assert sums["output"] == (0, 0.0)
    else:
        assert sums["output"] == (1, reported.output_tokens)
    count, _ = hist(bedrock_telemetry, names.METRIC_OPERATION_DURATION,
                    gen_ai__request__model=model, gen_ai__operation__name=operation)
    assert count == 1


@pytest.mark.parametrize("model", list(FAMILY_REQUESTS))
def test_invoke_model_without_headers_uses_body_or_records_nothing(
    model: str, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    bedrock_emulator.set_scenario(Scenario(omit_token_headers=True))
    response = bedrock_client.invoke_model(modelId=model, body=body_for(model))
    raw = response["body"].read()
    reported = bedrock_emulator.requests[-1]
    span = only_span(bedrock_telemetry)
    if model in NO_BODY_USAGE:
        # no exact count anywhere: nothing recorded, never an estimate
        assert usage_attrs(span) == {}
        assert names.AWS_BEDROCK_USAGE_SOURCE not in span.attributes
        assert token_sums(bedrock_telemetry) == {"input": (0, 0.0), "output": (0, 0.0)}
    else:
        assert span.attributes[names.AWS_BEDROCK_USAGE_SOURCE] == "body"
        assert usage_attrs(span) == expected_usage_attrs(reported)
    assert hist(bedrock_telemetry, names.METRIC_OPERATION_DURATION)[0] == 1
    assert json.loads(raw)  # the user still gets the body


def test_response_attributes_from_anthropic_body(
    bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    model = "anthropic.claude-3-5-haiku-20241022-v1:0"
    response = bedrock_client.invoke_model(modelId=model, body=body_for(model))
    body = json.loads(response["body"].read())
    span = only_span(bedrock_telemetry)
    assert span.attributes[names.GEN_AI_RESPONSE_ID] == body["id"]
    assert span.attributes[names.GEN_AI_RESPONSE_FINISH_REASONS] == (body["stop_reason"],)
    assert span.attributes[names.GEN_AI_REQUEST_MAX_TOKENS] == 40


def test_request_parameters_recorded(bedrock_client: Any, bedrock_telemetry: Any) -> None:
    bedrock_client.converse(
        modelId="amazon.nova-micro-v1:0",
        messages=converse_messages(),
        inferenceConfig={"maxTokens": 30, "temperature": 0.5, "topP": 0.9,
                         "stopSequences": ["END"]},
        guardrailConfig={"guardrailIdentifier": "gr-123", "guardrailVersion": "1"},
    )
    attrs = only_span(bedrock_telemetry).attributes
    assert attrs[names.GEN_AI_REQUEST_MAX_TOKENS] == 30
    assert attrs[names.GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert attrs[names.GEN_AI_REQUEST_TOP_P] == 0.9
    assert attrs[names.GEN_AI_REQUEST_STOP_SEQUENCES] == ("END",)
    assert attrs[names.AWS_BEDROCK_GUARDRAIL_ID] == "gr-123"


def test_converse_exact_counts_and_finish_reason(
    bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    model = "anthropic.claude-3-5-haiku-20241022-v1:0"
    result = bedrock_client.converse(modelId=model, messages=converse_messages())
    span = only_span(bedrock_telemetry)
    _assert_common(span, model, "chat", _port(bedrock_emulator))
    usage = result["usage"]
    assert span.attributes[names.GEN_AI_USAGE_INPUT_TOKENS] == usage["totalTokens"] - usage[
        "outputTokens"]
    assert span.attributes[names.GEN_AI_USAGE_OUTPUT_TOKENS] == usage["outputTokens"]
    assert span.attributes[names.GEN_AI_RESPONSE_FINISH_REASONS] == (result["stopReason"],)
    assert span.attributes[names.AWS_BEDROCK_CONVERSE_LATENCY] == result["metrics"]["latencyMs"]
    assert span.attributes[names.AWS_BEDROCK_USAGE_SOURCE] == "converse"
    assert token_sums(bedrock_telemetry) == {
        "input": (1, usage["inputTokens"]), "output": (1, usage["outputTokens"])}


def test_converse_cache_write_then_read(
    bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    model = "anthropic.claude-3-5-haiku-20241022-v1:0"
    system = [{"text": "You are a careful assistant. " * 30}, {"cachePoint": {"type": "default"}}]
    first = bedrock_client.converse(modelId=model, system=system, messages=converse_messages())
    second = bedrock_client.converse(modelId=model, system=system, messages=converse_messages())
    spans = bedrock_telemetry.spans()
    assert len(spans) == 2
    for span, result in zip(spans, (first, second)):
        usage = result["usage"]
        expected_input = (usage["inputTokens"] + usage.get("cacheReadInputTokens", 0)
                          + usage.get("cacheWriteInputTokens", 0))
        assert span.attributes[names.GEN_AI_USAGE_INPUT_TOKENS] == expected_input
        assert span.attributes[names.AWS_BEDROCK_USAGE_UNCACHED_INPUT_TOKENS] == usage[
            "inputTokens"]
    assert first["usage"]["cacheWriteInputTokens"] > 0
    assert spans[0].attributes[names.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == first["usage"][
        "cacheWriteInputTokens"]
    assert second["usage"]["cacheReadInputTokens"] == first["usage"]["cacheWriteInputTokens"]
    assert spans[1].attributes[names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == second["usage"][
        "cacheReadInputTokens"]
    # the metric's input sum is the all-inclusive figure of both calls
    assert token_sums(bedrock_telemetry)["input"] == (2, sum(
        s.attributes[names.GEN_AI_USAGE_INPUT_TOKENS] for s in spans))


def test_invoke_model_anthropic_cache_headers(
    bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    model = "anthropic.claude-3-5-haiku-20241022-v1:0"
    body = json.dumps({
        "anthropic_version": "bedrock-2023-05-31", "max_tokens": 20,
        "system": [{"type": "text", "text": "Long shared context. " * 40,
                    "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": PROMPT}],
    })
    bedrock_client.invoke_model(modelId=model, body=body)
    bedrock_client.invoke_model(modelId=model, body=body)
    first, second = bedrock_telemetry.spans()
    write = first.attributes[names.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS]
    assert write > 0
    assert second.attributes[names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == write
    reported = [r for r in bedrock_emulator.requests if r.operation == "InvokeModel"]
    assert usage_attrs(first) == expected_usage_attrs(reported[0])
    assert usage_attrs(second) == expected_usage_attrs(reported[1])


MODEL_ID_FORMS = [
    "anthropic.claude-3-5-haiku-20241022-v1:0",
    "us.anthropic.claude-3-5-haiku-20241022-v1:0",
    "eu.anthropic.claude-3-5-haiku-20241022-v1:0",
    "apac.anthropic.claude-3-5-haiku-20241022-v1:0",
    "global.anthropic.claude-3-5-haiku-20241022-v1:0",
    "us-gov.anthropic.claude-3-5-haiku-20241022-v1:0",
    "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
    "us.anthropic.claude-3-5-haiku-20241022-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6",
    "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdef123456",
]


@pytest.mark.parametrize("model", MODEL_ID_FORMS)
@pytest.mark.parametrize("headers", [True, False], ids=["headers", "no-headers"])
def test_every_model_id_form_keeps_exact_counts(
    model: str, headers: bool, bedrock_client: Any, bedrock_emulator: Any,
    bedrock_telemetry: Any,
) -> None:
    # Opaque ARNs: the emulator maps them to a Claude model; we know only the request shape.
    bedrock_emulator.register_alias(model, "anthropic.claude-3-5-haiku-20241022-v1:0")
    if not headers:
        bedrock_emulator.set_scenario(Scenario(omit_token_headers=True))
    body = body_for("anthropic.claude-3-5-haiku-20241022-v1:0")
    bedrock_client.invoke_model(modelId=model, body=body)["body"].read()
    span = only_span(bedrock_telemetry)
    assert span.name == f"chat {model}"
    assert span.attributes[names.GEN_AI_REQUEST_MODEL] == model
    assert usage_attrs(span) == expected_usage_attrs(bedrock_emulator.requests[-1])
    assert span.attributes[names.AWS_BEDROCK_USAGE_SOURCE] == ("headers" if headers else "body")
    assert token_sums(bedrock_telemetry)["output"][0] == 1


def test_explicit_count_tokens_is_not_usage(
    bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    model = "anthropic.claude-3-5-haiku-20241022-v1:0"
    result = bedrock_client.count_tokens(
        modelId=model, input={"converse": {"messages": converse_messages()}})
    span = only_span(bedrock_telemetry)
    _assert_common(span, model, "count_tokens", _port(bedrock_emulator))
    assert span.attributes[names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS] == result["inputTokens"]
    assert result["inputTokens"] > 0
    assert usage_attrs(span) == {}
    assert token_sums(bedrock_telemetry) == {"input": (0, 0.0), "output": (0, 0.0)}
    assert hist(bedrock_telemetry, names.METRIC_OPERATION_DURATION,
                gen_ai__operation__name="count_tokens")[0] == 1


HTTP_ERRORS = [
    (400, "ValidationException"), (403, "AccessDeniedException"),
    (404, "ResourceNotFoundException"), (408, "ModelTimeoutException"),
    (424, "ModelErrorException"), (429, "ThrottlingException"),
    (500, "InternalServerException"), (503, "ServiceUnavailableException"),
]


@pytest.mark.parametrize(("status", "code"), HTTP_ERRORS)
@pytest.mark.parametrize("operation", ["invoke_model", "converse", "count_tokens"])
def test_http_errors_reraised_and_recorded_once(
    status: int, code: str, operation: str, bedrock_client: Any, bedrock_emulator: Any,
    bedrock_telemetry: Any,
) -> None:
    model = "anthropic.claude-3-5-haiku-20241022-v1:0"
    bedrock_emulator.set_scenario(Scenario(error_status=status))
    kwargs: dict[str, Any] = {
        "invoke_model": {"body": body_for(model)},
        "converse": {"messages": converse_messages()},
        "count_tokens": {"input": {"converse": {"messages": converse_messages()}}},
    }[operation]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        getattr(bedrock_client, operation)(modelId=model, **kwargs)
    assert caught.value.response["Error"]["Code"] == code
    assert type(caught.value).__name__ == code  # botocore's modelled class, unchanged
    span = only_span(bedrock_telemetry)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[names.ERROR_TYPE] == code
    assert usage_attrs(span) == {}
    assert hist(bedrock_telemetry, names.METRIC_OPERATION_DURATION, error__type=code)[0] == 1
    assert hist(bedrock_telemetry, names.METRIC_OPERATION_DURATION)[0] == 1
    assert token_sums(bedrock_telemetry) == {"input": (0, 0.0), "output": (0, 0.0)}


def test_transport_error_reraised_with_class_name(bedrock_telemetry: Any) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())
    span = only_span(bedrock_telemetry)
    assert span.attributes[names.ERROR_TYPE] == "botocore.exceptions.EndpointConnectionError"
    assert span.status.status_code is StatusCode.ERROR


def test_a_call_without_a_model_id_names_no_model(
    bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    """botocore rejects the call after our span started: the span carries no
    gen_ai.request.model and is named by the operation alone; the metrics keep their
    attribute set (the model as "")."""
    with pytest.raises(botocore.exceptions.ParamValidationError):
        bedrock_client.converse(messages=converse_messages())
    span = only_span(bedrock_telemetry)
    assert span.name == names.OP_CHAT
    assert names.GEN_AI_REQUEST_MODEL not in span.attributes
    assert span.attributes[names.GEN_AI_OPERATION_NAME] == names.OP_CHAT
    assert span.attributes[names.SERVER_ADDRESS] == "127.0.0.1"
    (point,) = bedrock_telemetry.metric_points(names.METRIC_OPERATION_DURATION)
    assert point.attributes[names.GEN_AI_REQUEST_MODEL] == ""
    assert point.attributes[names.ERROR_TYPE] == "botocore.exceptions.ParamValidationError"


def test_float_counts_are_exact_integers(
    bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    bedrock_emulator.set_scenario(Scenario(float_counts=True))
    model = "amazon.titan-text-express-v1"
    bedrock_client.invoke_model(modelId=model, body=body_for(model))["body"].read()
    span = only_span(bedrock_telemetry)
    reported = bedrock_emulator.requests[-1]
    assert usage_attrs(span) == expected_usage_attrs(reported)
    assert all(type(v) is int for v in usage_attrs(span).values())


@pytest.mark.parametrize("headers", [True, False], ids=["headers", "no-headers"])
def test_malformed_body_never_raises(
    headers: bool, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    bedrock_emulator.set_scenario(Scenario(malformed_body=True, omit_token_headers=not headers))
    model = "anthropic.claude-3-5-haiku-20241022-v1:0"
    response = bedrock_client.invoke_model(modelId=model, body=body_for(model))
    raw = response["body"].read()
    with pytest.raises(ValueError):
        json.loads(raw)
    span = only_span(bedrock_telemetry)
    if headers:
        assert usage_attrs(span) == expected_usage_attrs(bedrock_emulator.requests[-1])
    else:
        assert usage_attrs(span) == {}
    assert span.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("how", ["read", "read_n", "iter_lines", "iter_chunks", "close"])
def test_body_behaves_as_without_instrumentation(
    how: str, bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    model = "amazon.nova-micro-v1:0"
    body = bedrock_client.invoke_model(modelId=model, body=body_for(model))["body"]
    if how == "read":
        data = body.read()
        assert body.read() == b""
    elif how == "read_n":
        data = body.read(5) + body.read(7) + body.read()
    elif how == "iter_lines":
        data = b"\n".join(body.iter_lines())
    elif how == "iter_chunks":
        data = b"".join(body.iter_chunks(chunk_size=3))
    else:
        body.close()
        data = b'{"closed": true}'
    assert json.loads(data)
    assert len(bedrock_telemetry.spans()) == 1


def test_body_as_context_manager_behaves_as_without_instrumentation(
    bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    """``with body as raw``: botocore hands over the raw stream and closes it on exit. The one
    we put back reads, closes and reports itself closed as urllib3's response does (closed,
    then b"" and still readable), not as a closed BytesIO (which raises)."""
    model = "amazon.nova-micro-v1:0"
    body = bedrock_client.invoke_model(modelId=model, body=body_for(model))["body"]
    with body as raw:
        data = raw.read(5) + raw.read()
        assert not raw.closed
    assert json.loads(data)
    assert type(raw).__module__.startswith("opentelemetry")  # ours replays it
    assert raw.closed
    assert raw.read() == b"" and raw.read(3) == b""
    assert raw.readable()
    assert len(bedrock_telemetry.spans()) == 1


def test_body_untouched_when_headers_suffice(
    instrument: Any, bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    instrument(parse_response_body=False)
    model = "anthropic.claude-3-5-haiku-20241022-v1:0"
    body = bedrock_client.invoke_model(modelId=model, body=body_for(model))["body"]
    # botocore's own body over the live HTTP response: we did not read or replace it
    assert type(body._raw_stream).__module__.startswith("urllib3")
    assert body._amount_read == 0
    assert json.loads(body.read())
    span = only_span(bedrock_telemetry)
    assert span.attributes[names.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert names.GEN_AI_RESPONSE_ID not in span.attributes


def test_content_not_captured_by_default(bedrock_client: Any, bedrock_telemetry: Any) -> None:
    bedrock_client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages(),
                            system=[{"text": "secret system prompt"}])
    attrs = only_span(bedrock_telemetry).attributes
    for key in (names.GEN_AI_INPUT_MESSAGES, names.GEN_AI_OUTPUT_MESSAGES,
                names.GEN_AI_SYSTEM_INSTRUCTIONS):
        assert key not in attrs
    assert not any(PROMPT in str(v) for v in attrs.values())


@pytest.mark.parametrize("value", ["true", "SPAN_ONLY", "span_and_event"])
def test_content_captured_on_opt_in(
    value: str, instrument: Any, bedrock_client: Any, bedrock_telemetry: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
    instrument()
    result = bedrock_client.converse(modelId="amazon.nova-micro-v1:0",
                                     messages=converse_messages(),
                                     system=[{"text": "be brief"}])
    attrs = only_span(bedrock_telemetry).attributes
    assert json.loads(attrs[names.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": PROMPT}]}]
    assert json.loads(attrs[names.GEN_AI_SYSTEM_INSTRUCTIONS]) == [
        {"type": "text", "content": "be brief"}]
    output = json.loads(attrs[names.GEN_AI_OUTPUT_MESSAGES])
    reply = "".join(b["text"] for b in result["output"]["message"]["content"])
    assert output[0]["parts"][0]["content"] == reply
    # the schema's enum in the JSON; the raw reason stays in gen_ai.response.finish_reasons
    assert result["stopReason"] == "end_turn" and output[0]["finish_reason"] == "stop"
    assert attrs[names.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)


def test_suppressed_calls_are_not_traced(bedrock_client: Any, bedrock_telemetry: Any) -> None:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        bedrock_client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())
    assert bedrock_telemetry.spans() == []


def test_http_call_runs_inside_our_span(bedrock_client: Any, bedrock_telemetry: Any) -> None:
    from opentelemetry import trace

    seen: list[Any] = []
    bedrock_client.meta.events.register(
        "before-send.bedrock-runtime", lambda **kw: seen.append(trace.get_current_span()))
    bedrock_client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())
    span = only_span(bedrock_telemetry)
    assert seen[0].get_span_context().span_id == span.context.span_id
    assert not trace.get_current_span().get_span_context().is_valid
