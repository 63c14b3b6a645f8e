"""Extras.start / finish: what the call flow adds to a span and its metrics (no flow here;
the end-to-end tests are in test_cost_e2e.py)."""

from __future__ import annotations

from typing import Any

import pytest

from opentelemetry.instrumentation.bedrock_tokens import names
from opentelemetry.instrumentation.bedrock_tokens.config import load_settings
from opentelemetry.instrumentation.bedrock_tokens.extras import NO_START, Extras
from opentelemetry.instrumentation.bedrock_tokens.tiers import TierInfo
from opentelemetry.instrumentation.bedrock_tokens.usage import Usage

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
PRICES = {"models": {HAIKU: {"input": 0.8, "output": 4.0,
                             "tiers": {"flex": {"input": 0.4, "output": 2.0}}}}}


class _Meta:
    region_name = "us-east-1"
    endpoint_url = "http://127.0.0.1:1"


class _Client:
    meta = _Meta()


def test_nothing_configured_is_one_shared_constant_and_burn_only() -> None:
    extras = Extras(load_settings({}, {}))
    start = extras.start(_Client(), "converse", HAIKU, {"messages": []})
    assert start is NO_START
    assert dict(extras.start_attributes(start)) == {}
    got = extras.finish(start, HAIKU, names.OP_CHAT, Usage(10, 5, None, None, "converse"))
    assert got.attributes == {names.AWS_BEDROCK_USAGE_QUOTA_TOKENS: 15}
    assert got.metric_extra == () and got.counter_extra == () and got.cost is None


def test_tier_dimensions_cost_and_metric_extras() -> None:
    extras = Extras(load_settings({"prices": PRICES, "request_metadata_keys": "tenant"}, {}))
    params = {"serviceTier": {"type": "flex"}, "requestMetadata": {"tenant": "acme"}}
    start = extras.start(_Client(), "converse", "us." + HAIKU, params)
    assert dict(extras.start_attributes(start)) == {
        names.AWS_BEDROCK_REQUEST_SERVICE_TIER: "flex",
        "aws.bedrock.request_metadata.tenant": "acme",
    }
    got = extras.finish(start, "us." + HAIKU, names.OP_CHAT,
                        Usage(1000, 100, None, None, "converse"),
                        response_tier=TierInfo("flex", None))
    assert got.cost == pytest.approx((1000 * 0.4 + 100 * 2.0) / 1e6)
    assert got.attributes[names.AWS_BEDROCK_USAGE_COST] == got.cost
    assert got.attributes[names.AWS_BEDROCK_RESPONSE_SERVICE_TIER] == "flex"
    assert got.metric_extra == ((names.AWS_BEDROCK_SERVICE_TIER, "flex"),)
    assert got.counter_extra == ((names.AWS_BEDROCK_SERVICE_TIER, "flex"),
                                 ("aws.bedrock.request_metadata.tenant", "acme"))


def test_attribution_alone_gives_its_pairs_with_prices_on() -> None:
    extras = Extras(load_settings({"prices": PRICES, "request_metadata_keys": "tenant"}, {}))
    start = extras.start(_Client(), "converse", HAIKU, {"requestMetadata": {"tenant": "acme"}})
    assert dict(extras.start_attributes(start)) == {"aws.bedrock.request_metadata.tenant": "acme"}
    plain = extras.start(_Client(), "converse", HAIKU, {})
    assert plain is not NO_START  # the region, for prices
    assert dict(extras.start_attributes(plain)) == {}


def test_estimates_only_without_counts_and_never_as_usage() -> None:
    calls: list[Any] = []

    def estimator(model: str, prompt: Any, reply: Any) -> Any:
        calls.append((model, prompt, reply))
        return (7, 3)

    extras = Extras(load_settings({"estimator": estimator}, {}))
    start = extras.start(_Client(), "invoke", "stability.sd3-large-v1:0", {})
    got = extras.finish(start, "stability.sd3-large-v1:0", names.OP_CHAT, None,
                        images=1, request_body={"prompt": "a cat"},
                        response_body={"images": ["aaa"]})
    assert got.attributes == {
        names.AWS_BEDROCK_USAGE_OUTPUT_IMAGES: 1,
        names.AWS_BEDROCK_USAGE_ESTIMATED_INPUT_TOKENS: 7,
        names.AWS_BEDROCK_USAGE_ESTIMATED_OUTPUT_TOKENS: 3,
    }
    assert calls == [("stability.sd3-large-v1:0", "a cat", None)]
    with_counts = extras.finish(start, HAIKU, names.OP_CHAT, Usage(1, 1, None, None, "h"))
    assert names.AWS_BEDROCK_USAGE_ESTIMATED_INPUT_TOKENS not in with_counts.attributes
    assert len(calls) == 1


def test_precount_bounds_use_the_request_tier() -> None:
    extras = Extras(load_settings({"prices": PRICES}, {}))
    start = extras.start(_Client(), "invoke", HAIKU, {"serviceTier": "flex"})
    bounds = extras.precount_bounds(start, HAIKU, 1000, 100)
    assert bounds.cost == pytest.approx((1000 * 0.4 + 100 * 2.0) / 1e6)
    assert bounds.quota_tokens == 1100
