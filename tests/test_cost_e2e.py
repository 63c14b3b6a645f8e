"""Cost, quota burn, tiers, attribution, profile resolution, images and estimates, end to end:
real botocore against the emulator, telemetry through the SDK's in-memory exporters.

Every expected cost is computed here from the counts the emulator says it reported
(``bedrock_emulator.requests``) and the test's own price table, never copied from the span.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

import pytest

from opentelemetry import baggage, context
from opentelemetry.instrumentation.bedrock_tokens import doctor, names
from opentelemetry.instrumentation.bedrock_tokens.emulator import Scenario

from .floor import needs_runtime_member
from .helpers import converse_messages, only_span

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
SONNET4 = "anthropic.claude-sonnet-4-20250514-v1:0"
APP = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/app1"
P = {"input": 0.8, "output": 4.0, "cache_read": 0.08, "cache_write": 1.0, "cache_write_1h": 1.6}
FLEX = {"input": 0.4, "output": 2.0}
PRICES = {"models": {
    HAIKU: {**P, "tiers": {"flex": FLEX}},
    SONNET4: {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75},
    "amazon.nova-canvas-v1:0": {"image": 0.04},
}}
LONG = "You are a careful assistant who answers in one short sentence. " * 30
CLAUDE_BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 40,
               "messages": [{"role": "user", "content": "Say hello."}]}


def _expected(recorded: Any, prices: dict[str, float] = P,
              ttl: Optional[str] = None) -> float:
    write_price = prices["cache_write_1h"] if ttl == "1h" else prices.get("cache_write", 0.0)
    return ((recorded.input_tokens or 0) * prices["input"]
            + (recorded.output_tokens or 0) * prices["output"]
            + (recorded.cache_read_tokens or 0) * prices.get("cache_read", 0.0)
            + (recorded.cache_write_tokens or 0) * write_price) / 1e6


def _last(emulator: Any, operation: str) -> Any:
    return [r for r in emulator.requests if r.operation == operation][-1]


def _cost_points(telemetry: Any, **attrs: Any) -> float:
    return sum(p.value for p in telemetry.metric_points(names.METRIC_USAGE_COST, **attrs))


# -- cost = counts x prices, for every source ---------------------------------------------
def test_cost_from_invoke_model_headers(instrument: Any, bedrock_client: Any,
                                        bedrock_emulator: Any, bedrock_telemetry: Any) -> None:
    instrument(prices=PRICES)
    bedrock_client.invoke_model(modelId="us." + HAIKU, body=json.dumps(CLAUDE_BODY))["body"].read()
    recorded = _last(bedrock_emulator, "InvokeModel")
    span = only_span(bedrock_telemetry)
    assert span.attributes[names.AWS_BEDROCK_USAGE_SOURCE] == "headers"
    assert span.attributes[names.AWS_BEDROCK_USAGE_COST] == pytest.approx(_expected(recorded))
    assert _cost_points(bedrock_telemetry, gen_ai__request__model="us." + HAIKU) == (
        pytest.approx(_expected(recorded)))


def test_cost_from_the_body_when_headers_are_missing(
    instrument: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    instrument(prices=PRICES)
    bedrock_emulator.set_scenario(Scenario(omit_token_headers=True))
    bedrock_client.invoke_model(modelId=HAIKU, body=json.dumps(CLAUDE_BODY))["body"].read()
    span = only_span(bedrock_telemetry)
    assert span.attributes[names.AWS_BEDROCK_USAGE_SOURCE] == "body"
    expected = _expected(_last(bedrock_emulator, "InvokeModel"))
    assert span.attributes[names.AWS_BEDROCK_USAGE_COST] == pytest.approx(expected)


@pytest.mark.parametrize("operation", ["InvokeModelWithResponseStream", "ConverseStream"])
def test_cost_from_streams(instrument: Any, bedrock_client: Any, bedrock_emulator: Any,
                           bedrock_telemetry: Any, operation: str) -> None:
    instrument(prices=PRICES)
    if operation == "ConverseStream":
        stream = bedrock_client.converse_stream(modelId=HAIKU, messages=converse_messages())
        events = list(stream["stream"])
    else:
        stream = bedrock_client.invoke_model_with_response_stream(
            modelId=HAIKU, body=json.dumps(CLAUDE_BODY))
        events = list(stream["body"])
    assert events
    span = only_span(bedrock_telemetry)
    expected = _expected(_last(bedrock_emulator, operation))
    assert span.attributes[names.AWS_BEDROCK_USAGE_COST] == pytest.approx(expected)
    assert _cost_points(bedrock_telemetry) == pytest.approx(expected)


def test_cost_of_converse_with_cache_writes_then_reads(
    instrument: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    instrument(prices=PRICES)
    system = [{"text": LONG}, {"cachePoint": {"type": "default"}}]
    for _ in range(2):
        bedrock_client.converse(modelId=HAIKU, system=system, messages=converse_messages())
    first, second = [r for r in bedrock_emulator.requests if r.operation == "Converse"]
    assert first.cache_write_tokens and second.cache_read_tokens  # the emulator cached
    costs = [s.attributes[names.AWS_BEDROCK_USAGE_COST] for s in bedrock_telemetry.spans()]
    assert costs == [pytest.approx(_expected(first)), pytest.approx(_expected(second))]
    # cached input priced as cache, not at the input price
    assert costs[1] < costs[0]


@needs_runtime_member("CachePointBlock", "ttl")
@pytest.mark.parametrize("ttl", ["5m", "1h"])
def test_cache_writes_priced_by_ttl(instrument: Any, bedrock_client: Any,
                                    bedrock_emulator: Any, bedrock_telemetry: Any,
                                    ttl: str) -> None:
    instrument(prices=PRICES)
    system = [{"text": LONG}, {"cachePoint": {"type": "default", "ttl": ttl}}]
    bedrock_client.converse(modelId=HAIKU, system=system, messages=converse_messages())
    list(bedrock_client.converse_stream(
        modelId=HAIKU, system=[{"text": LONG + " (stream)"},
                               {"cachePoint": {"type": "default", "ttl": ttl}}],
        messages=converse_messages())["stream"])
    body = {**CLAUDE_BODY, "system": [{"type": "text", "text": LONG + " (invoke)",
                                       "cache_control": {"type": "ephemeral", "ttl": ttl}}]}
    bedrock_client.invoke_model(modelId=HAIKU, body=json.dumps(body))["body"].read()
    spans = bedrock_telemetry.spans()
    assert len(spans) == 3
    for span, operation in zip(spans, ("Converse", "ConverseStream", "InvokeModel")):
        recorded = _last(bedrock_emulator, operation)
        assert recorded.cache_write_tokens
        assert span.attributes[names.AWS_BEDROCK_USAGE_COST] == pytest.approx(
            _expected(recorded, ttl=ttl)), operation


@needs_runtime_member("ConverseRequest", "serviceTier")
def test_service_tier_prices_and_metric_attribute(
    instrument: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    instrument(prices=PRICES)
    bedrock_client.converse(modelId=HAIKU, messages=converse_messages(),
                            serviceTier={"type": "flex"},
                            performanceConfig={"latency": "optimized"})
    span = only_span(bedrock_telemetry)
    attrs = span.attributes
    assert attrs[names.AWS_BEDROCK_REQUEST_SERVICE_TIER] == "flex"
    assert attrs[names.AWS_BEDROCK_RESPONSE_SERVICE_TIER] == "flex"  # echoed by the service
    assert attrs[names.AWS_BEDROCK_REQUEST_LATENCY_MODE] == "optimized"
    expected = _expected(_last(bedrock_emulator, "Converse"), FLEX)
    assert attrs[names.AWS_BEDROCK_USAGE_COST] == pytest.approx(expected)
    assert _cost_points(bedrock_telemetry, aws__bedrock__service_tier="flex") == (
        pytest.approx(expected))
    tokens = bedrock_telemetry.metric_points(names.METRIC_TOKEN_USAGE,
                                             aws__bedrock__service_tier="flex")
    assert {p.attributes[names.GEN_AI_TOKEN_TYPE] for p in tokens} == {"input", "output"}
    # the duration keeps the convention's attributes only
    for point in bedrock_telemetry.metric_points(names.METRIC_OPERATION_DURATION):
        assert names.AWS_BEDROCK_SERVICE_TIER not in point.attributes


@needs_runtime_member("InvokeModelRequest", "serviceTier")
def test_a_tier_without_a_price_gives_no_cost(
    instrument: Any, bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    instrument(prices=PRICES)
    bedrock_client.invoke_model(modelId=HAIKU, body=json.dumps(CLAUDE_BODY),
                                serviceTier="priority")["body"].read()
    attrs = only_span(bedrock_telemetry).attributes
    assert attrs[names.AWS_BEDROCK_RESPONSE_SERVICE_TIER] == "priority"
    assert names.AWS_BEDROCK_USAGE_COST not in attrs
    assert bedrock_telemetry.metric_points(names.METRIC_USAGE_COST) == []


def test_unknown_price_gives_no_cost_and_doctor_lists_the_model(
    instrument: Any, bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    instrument(prices=PRICES)
    bedrock_client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())
    attrs = only_span(bedrock_telemetry).attributes
    assert attrs[names.GEN_AI_USAGE_INPUT_TOKENS] > 0
    assert names.AWS_BEDROCK_USAGE_COST not in attrs
    assert bedrock_telemetry.metric_points(names.METRIC_USAGE_COST) == []
    text = doctor.explain()
    assert "1 model(s) called without a price" in text and "amazon.nova-micro-v1:0" in text


def test_an_invalid_table_is_one_warning_and_the_call_is_unchanged(
    instrument: Any, bedrock_client: Any, bedrock_telemetry: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {HAIKU: {"input": "cheap"}}}))
    monkeypatch.setenv("OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRICES", str(path))
    with caplog.at_level(logging.WARNING):
        instrument()
    warnings = [r for r in caplog.records if "price table" in r.getMessage()]
    assert len(warnings) == 1
    response = bedrock_client.converse(modelId=HAIKU, messages=converse_messages())
    assert response["usage"]["outputTokens"] > 0
    assert names.AWS_BEDROCK_USAGE_COST not in only_span(bedrock_telemetry).attributes


# -- profile / ARN resolution --------------------------------------------------------------
def test_application_profile_resolved_through_the_emulator(
    instrument: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    bedrock_emulator.register_alias(APP, "us." + HAIKU)
    instrument(prices=PRICES, resolve_profiles=True, resolve_profiles_timeout=10)
    bedrock_client.converse(modelId=APP, messages=converse_messages())
    bedrock_client.converse(modelId=APP, messages=converse_messages())
    lookups = [r for r in bedrock_emulator.requests if r.operation == "GetInferenceProfile"]
    assert len(lookups) == 1  # cached after the first call
    spans = bedrock_telemetry.spans()
    assert len(spans) == 2  # the lookup itself is not traced
    recorded = _last(bedrock_emulator, "Converse")
    for span in spans:
        attrs = span.attributes
        assert attrs[names.GEN_AI_REQUEST_MODEL] == APP
        assert attrs[names.AWS_BEDROCK_RESOLVED_MODEL] == HAIKU
        assert attrs[names.GEN_AI_RESPONSE_MODEL] == HAIKU  # Converse does not name it
        assert attrs[names.AWS_BEDROCK_USAGE_COST] == pytest.approx(_expected(recorded))


def test_without_resolution_an_application_profile_has_no_price(
    instrument: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    bedrock_emulator.register_alias(APP, HAIKU)
    instrument(prices=PRICES)
    bedrock_client.converse(modelId=APP, messages=converse_messages())
    attrs = only_span(bedrock_telemetry).attributes
    assert names.AWS_BEDROCK_USAGE_COST not in attrs
    assert names.AWS_BEDROCK_RESOLVED_MODEL not in attrs
    assert not [r for r in bedrock_emulator.requests if r.operation == "GetInferenceProfile"]


# -- attribution -------------------------------------------------------------------------------
@needs_runtime_member("InvokeModelRequest", "requestMetadata")
def test_request_metadata_and_baggage_dimensions(
    instrument: Any, bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    instrument(prices=PRICES, request_metadata_keys="tenant", baggage_keys=["team"])
    token = context.attach(baggage.set_baggage("team", "search"))
    try:
        bedrock_client.converse(modelId=HAIKU, messages=converse_messages(),
                                requestMetadata={"tenant": "acme", "secret": "s3"})
        bedrock_client.invoke_model(modelId=HAIKU, body=json.dumps(CLAUDE_BODY),
                                    requestMetadata=json.dumps({"tenant": "globex"}))[
            "body"].read()
    finally:
        context.detach(token)
    converse, invoke = bedrock_telemetry.spans()
    assert converse.attributes["aws.bedrock.request_metadata.tenant"] == "acme"
    assert invoke.attributes["aws.bedrock.request_metadata.tenant"] == "globex"
    for span in (converse, invoke):
        assert span.attributes["baggage.team"] == "search"
        assert "aws.bedrock.request_metadata.secret" not in span.attributes
    for tenant in ("acme", "globex"):
        found = {"aws.bedrock.request_metadata.tenant": tenant, "baggage.team": "search"}
        assert bedrock_telemetry.metric_points(names.METRIC_USAGE_COST, found)
        assert bedrock_telemetry.metric_points(names.METRIC_QUOTA_TOKENS, found)
    # histograms stay per model: a tenant there would multiply every bucket series
    for point in bedrock_telemetry.metric_points(names.METRIC_TOKEN_USAGE):
        assert "baggage.team" not in point.attributes
        assert "aws.bedrock.request_metadata.tenant" not in point.attributes


def test_cardinality_guard_end_to_end(
    instrument: Any, bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    instrument(prices=PRICES, request_metadata_keys="tenant", attribution_max_values=2)
    for n in range(5):
        bedrock_client.converse(modelId=HAIKU, messages=converse_messages(),
                                requestMetadata={"tenant": f"t{n}"})
    key = "aws.bedrock.request_metadata.tenant"
    on_metrics = {p.attributes[key]
                  for p in bedrock_telemetry.metric_points(names.METRIC_USAGE_COST)}
    assert on_metrics == {"t0", "t1", "_OTHER"}
    assert [s.attributes[key] for s in bedrock_telemetry.spans()] == [f"t{n}" for n in range(5)]


# -- quota burn ----------------------------------------------------------------------------------
def test_quota_burn_with_a_burndown_rate_above_one(
    instrument: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    instrument()
    system = [{"text": LONG}, {"cachePoint": {"type": "default"}}]
    bedrock_client.converse(modelId="us." + SONNET4, system=system, messages=converse_messages())
    bedrock_client.converse(modelId="us." + HAIKU, messages=converse_messages())
    sonnet, haiku = [r for r in bedrock_emulator.requests if r.operation == "Converse"]
    s_span, h_span = bedrock_telemetry.spans()
    assert sonnet.cache_write_tokens
    burn = sonnet.input_tokens + sonnet.cache_write_tokens + sonnet.output_tokens * 5
    assert s_span.attributes[names.AWS_BEDROCK_USAGE_QUOTA_TOKENS] == burn
    assert h_span.attributes[names.AWS_BEDROCK_USAGE_QUOTA_TOKENS] == (
        haiku.input_tokens + haiku.output_tokens)
    points = bedrock_telemetry.metric_points(names.METRIC_QUOTA_TOKENS,
                                             gen_ai__request__model="us." + SONNET4)
    assert sum(p.value for p in points) == burn


# -- models without token counts ---------------------------------------------------------------
def test_image_counts_and_image_prices(
    instrument: Any, bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    instrument(prices=PRICES)
    body = {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a lighthouse"},
            "imageGenerationConfig": {"numberOfImages": 3}}
    bedrock_client.invoke_model(modelId="amazon.nova-canvas-v1:0", body=json.dumps(body))[
        "body"].read()
    attrs = only_span(bedrock_telemetry).attributes
    assert attrs[names.AWS_BEDROCK_USAGE_OUTPUT_IMAGES] == 3
    assert attrs[names.AWS_BEDROCK_USAGE_COST] == pytest.approx(3 * 0.04)
    assert names.GEN_AI_USAGE_INPUT_TOKENS not in attrs
    images = bedrock_telemetry.metric_points(names.METRIC_OUTPUT_IMAGES)
    assert sum(p.value for p in images) == 3


def test_estimator_is_labelled_and_never_usage(
    instrument: Any, bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    seen: list[Any] = []

    def estimator(model: str, prompt: Optional[str], reply: Optional[str]) -> Any:
        seen.append((model, prompt))
        return (len((prompt or "").split()), 0)

    instrument(estimator=estimator)
    bedrock_client.invoke_model(modelId="stability.sd3-large-v1:0",
                                body=json.dumps({"prompt": "a red lighthouse at dusk"}))[
        "body"].read()
    bedrock_client.converse(modelId=HAIKU, messages=converse_messages())  # has counts
    image, chat = bedrock_telemetry.spans()
    assert image.attributes[names.AWS_BEDROCK_USAGE_ESTIMATED_INPUT_TOKENS] == 5
    assert image.attributes[names.AWS_BEDROCK_USAGE_ESTIMATED_OUTPUT_TOKENS] == 0
    assert image.attributes[names.AWS_BEDROCK_USAGE_OUTPUT_IMAGES] == 1
    for key in (names.GEN_AI_USAGE_INPUT_TOKENS, names.GEN_AI_USAGE_OUTPUT_TOKENS):
        assert key not in image.attributes
    assert names.AWS_BEDROCK_USAGE_ESTIMATED_INPUT_TOKENS not in chat.attributes
    assert seen == [("stability.sd3-large-v1:0", "a red lighthouse at dusk")]
    token_points = bedrock_telemetry.metric_points(
        names.METRIC_TOKEN_USAGE, gen_ai__request__model="stability.sd3-large-v1:0")
    assert token_points == []


# -- the pre-count hook --------------------------------------------------------------------------
def test_precount_hook_gets_upper_bounds_and_old_hooks_still_work(
    instrument: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    new_calls: list[Any] = []
    old_calls: list[Any] = []

    def new_hook(model: str, operation: str, estimate: int, *, estimated_cost: Any = None,
                 quota_burn: Any = None) -> None:
        new_calls.append((estimate, estimated_cost, quota_burn))

    def old_hook(model: str, operation: str, estimate: int) -> None:
        old_calls.append(estimate)

    instrument(precount="blocking", precount_timeout=5, precount_hook=new_hook, prices=PRICES)
    bedrock_client.converse(modelId="us." + SONNET4, messages=converse_messages(),
                            inferenceConfig={"maxTokens": 100})
    ((estimate, cost, burn),) = new_calls
    assert estimate > 0
    assert cost == pytest.approx((estimate * 3.0 + 100 * 15.0) / 1e6)
    assert burn == estimate + 100 * 5
    instrument(precount="blocking", precount_timeout=5, precount_hook=old_hook, prices=PRICES)
    bedrock_client.converse(modelId=HAIKU, messages=converse_messages())
    assert len(old_calls) == 1 and old_calls[0] > 0


# -- the async driver ------------------------------------------------------------------------
@needs_runtime_member("ConverseRequest", "serviceTier")
async def test_async_clients_get_the_same_cost_tier_and_attribution(
    instrument: Any, bedrock_async_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    instrument(prices=PRICES, request_metadata_keys="tenant")
    await bedrock_async_client.converse(modelId=HAIKU, messages=converse_messages(),
                                        serviceTier={"type": "flex"},
                                        requestMetadata={"tenant": "acme"})
    response = await bedrock_async_client.invoke_model(modelId=HAIKU,
                                                       body=json.dumps(CLAUDE_BODY))
    await response["body"].read()
    converse, invoke = bedrock_telemetry.spans()
    assert converse.attributes[names.AWS_BEDROCK_USAGE_COST] == pytest.approx(
        _expected(_last(bedrock_emulator, "Converse"), FLEX))
    assert converse.attributes["aws.bedrock.request_metadata.tenant"] == "acme"
    assert invoke.attributes[names.AWS_BEDROCK_USAGE_COST] == pytest.approx(
        _expected(_last(bedrock_emulator, "InvokeModel")))
    assert _cost_points(bedrock_telemetry, aws__bedrock__service_tier="flex") > 0
