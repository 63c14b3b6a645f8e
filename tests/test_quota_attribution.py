"""Quota burn, service tiers and attribution dimensions (the pieces without the call flow)."""

from __future__ import annotations

import json
import threading

import pytest

from opentelemetry import baggage, context
from opentelemetry.instrumentation.bedrock_tokens import names, quota, tiers
from opentelemetry.instrumentation.bedrock_tokens.attribution import (
    Attribution,
    CardinalityGuard,
)
from opentelemetry.instrumentation.bedrock_tokens.pricing import PriceTable
from opentelemetry.instrumentation.bedrock_tokens.usage import Usage

SONNET4 = "anthropic.claude-sonnet-4-20250514-v1:0"


# -- quota burn -------------------------------------------------------------------------------
@pytest.mark.parametrize("model, rate", [
    (SONNET4, 5.0),
    ("us." + SONNET4, 5.0),
    ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", 5.0),
    ("anthropic.claude-opus-4-1-20250805-v1:0", 5.0),
    ("anthropic.claude-haiku-4-5-20251001-v1:0", 5.0),
    ("anthropic.claude-3-7-sonnet-20250219-v1:0", 5.0),
    ("anthropic.claude-3-5-haiku-20241022-v1:0", 1.0),
    ("amazon.nova-pro-v1:0", 1.0),
    ("meta.llama3-8b-instruct-v1:0", 1.0),
])
def test_documented_burndown_rates(model: str, rate: float) -> None:
    assert quota.burndown_rate(model) == rate


def test_burndown_of_a_resolved_profile_and_user_overrides() -> None:
    arn = "arn:aws:bedrock:us-east-1:1:application-inference-profile/x"
    assert quota.burndown_rate(arn) == 1.0
    assert quota.burndown_rate(arn, resolved=SONNET4) == 5.0
    table = PriceTable({"models": {}, "burndown": {"amazon.nova-pro-*": 2, "anthropic.*": 3}})
    assert quota.burndown_rate("amazon.nova-pro-v1:0", overrides=table.burndown) == 2.0
    assert quota.burndown_rate(SONNET4, overrides=table.burndown) == 3.0


def test_quota_burn_counts_input_cache_writes_and_output_times_the_rate() -> None:
    u = Usage(100, 40, 5000, 300, "converse")
    # cache reads do not count against the quota; output at 5x
    assert quota.quota_burn(u, 5.0) == 100 + 300 + 40 * 5
    assert quota.quota_burn(u, 1.0) == 100 + 300 + 40
    assert quota.quota_burn(Usage(100, None, None, None, "h"), 5.0) is None
    assert quota.quota_burn(Usage(100, None, None, None, "h"), 5.0, expect_output=False) == 100
    assert quota.quota_burn(Usage(None, 10, None, None, "h"), 5.0) is None
    assert quota.quota_burn(None, 5.0) is None


def test_quota_burn_upper_bound_from_precount_and_max_tokens() -> None:
    assert quota.quota_burn_upper_bound(1000, 4096, 5.0) == 1000 + 4096 * 5
    assert quota.quota_burn_upper_bound(1000, None, 5.0) is None
    assert quota.quota_burn_upper_bound(None, 10, 5.0) is None


# -- service tier and latency mode -------------------------------------------------------------
def test_tiers_from_requests() -> None:
    assert tiers.from_request("invoke", {
        "serviceTier": "flex", "performanceConfigLatency": "optimized",
    }) == ("flex", "optimized")
    assert tiers.from_request("converse", {
        "serviceTier": {"type": "priority"}, "performanceConfig": {"latency": "standard"},
    }) == ("priority", "standard")
    assert tiers.from_request("converse", {}) == (None, None)
    assert tiers.from_request("count", {"serviceTier": "flex"}) == (None, None)


def test_tiers_from_responses_are_bounded_to_the_enums() -> None:
    got = tiers.from_invoke_response({}, {
        "x-amzn-bedrock-service-tier": "default",
        "x-amzn-bedrock-performanceconfig-latency": "turbo",
    })
    assert got == ("default", names.ATTRIBUTION_OTHER)
    assert tiers.from_invoke_response({"serviceTier": "reserved"}, {}) == ("reserved", None)
    got = tiers.from_converse_response({"serviceTier": {"type": "flex"}})
    assert got == ("flex", None)
    assert tiers.from_converse_response({"serviceTier": {"type": "x" * 500}}).tier == "_OTHER"
    assert tiers.from_converse_response({"serviceTier": "flex"}) == (None, None)


def test_effective_tier_and_span_attributes() -> None:
    asked, served = tiers.TierInfo("priority", None), tiers.TierInfo("default", "standard")
    assert tiers.effective_tier(asked, served) == "default"
    assert tiers.effective_tier(asked, tiers.NO_TIER) == "priority"
    assert tiers.span_attributes(asked, served) == {
        names.AWS_BEDROCK_REQUEST_SERVICE_TIER: "priority",
        names.AWS_BEDROCK_RESPONSE_SERVICE_TIER: "default",
        names.AWS_BEDROCK_RESPONSE_LATENCY_MODE: "standard",
    }


# -- attribution -------------------------------------------------------------------------------
def test_allowlisted_request_metadata_from_converse_and_invoke() -> None:
    attribution = Attribution(request_metadata_keys=["tenant", "feature"])
    converse = {"requestMetadata": {"tenant": "acme", "feature": "chat", "secret": "x"}}
    got = attribution.extract(converse)
    assert got.span == (
        ("aws.bedrock.request_metadata.tenant", "acme"),
        ("aws.bedrock.request_metadata.feature", "chat"),
    )
    assert got.metric == got.span
    invoke = {"requestMetadata": json.dumps({"tenant": "globex", "secret": "x"})}
    assert attribution.extract(invoke).span == (
        ("aws.bedrock.request_metadata.tenant", "globex"),
    )
    assert attribution.extract({"requestMetadata": "{not json"}).span == ()
    assert attribution.extract({"requestMetadata": json.dumps(["a"])}).span == ()
    assert attribution.extract({"requestMetadata": {"tenant": 7}}).span == ()


def test_nothing_is_read_unless_allowlisted() -> None:
    params = {"requestMetadata": {"tenant": "acme"}, "projectIdentifier": "p1"}
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        assert Attribution().extract(params).span == ()
        assert not Attribution().enabled
    finally:
        context.detach(token)


def test_project_identifier_and_baggage() -> None:
    attribution = Attribution(baggage_keys=["tenant", "team"], project=True)
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        got = attribution.extract({"projectIdentifier": "proj-1"})
    finally:
        context.detach(token)
    assert got.span == (
        (names.AWS_BEDROCK_PROJECT_IDENTIFIER, "proj-1"),
        ("baggage.tenant", "acme"),
    )
    ctx = baggage.set_baggage("team", "search")
    assert attribution.extract({}, ctx).span == (("baggage.team", "search"),)


def test_cardinality_guard_per_key() -> None:
    attribution = Attribution(request_metadata_keys=["tenant", "feature"], max_values=3)
    seen = [attribution.extract({"requestMetadata": {"tenant": f"t{i}", "feature": "f"}})
            for i in range(10)]
    metric_tenants = [dict(d.metric)["aws.bedrock.request_metadata.tenant"] for d in seen]
    assert metric_tenants == ["t0", "t1", "t2"] + ["_OTHER"] * 7
    # the span keeps the value as sent; the other key has its own budget
    assert dict(seen[9].span)["aws.bedrock.request_metadata.tenant"] == "t9"
    assert {dict(d.metric)["aws.bedrock.request_metadata.feature"] for d in seen} == {"f"}
    # a value admitted earlier stays admitted
    again = attribution.extract({"requestMetadata": {"tenant": "t1"}})
    assert dict(again.metric)["aws.bedrock.request_metadata.tenant"] == "t1"


def test_repeated_calls_give_the_same_result_as_the_first() -> None:
    """extract() caches by the raw values it selects; a repeat must answer as a fresh
    computation would, for every kind of source and past the guard's budget."""
    attribution = Attribution(request_metadata_keys=["tenant"], baggage_keys=["team"],
                              project=True, max_values=2)
    calls = [
        {"requestMetadata": {"tenant": "a"}},
        {"requestMetadata": json.dumps({"tenant": "b"})},
        {"requestMetadata": {"tenant": "c"}},  # past the budget of 2: _OTHER
        {"requestMetadata": {"tenant": {"not": "a string"}}},  # unhashable: never cached
        {"requestMetadata": json.dumps({"tenant": "x" * 2000})},  # too long to cache
        {"projectIdentifier": "p1"},
    ]
    ctx = baggage.set_baggage("team", "search")
    first = [attribution.extract(params, ctx) for params in calls]
    assert [attribution.extract(params, ctx) for params in calls] == first
    assert dict(first[2].metric)["aws.bedrock.request_metadata.tenant"] == "_OTHER"
    assert dict(first[2].span)["aws.bedrock.request_metadata.tenant"] == "c"
    assert len(dict(first[4].span)["aws.bedrock.request_metadata.tenant"]) == 256
    # the baggage is part of the key: another team is not answered from the cache
    other = attribution.extract(calls[0], baggage.set_baggage("team", "ads"))
    assert dict(other.span)["baggage.team"] == "ads"
    assert attribution.extract(calls[0]).span == (("aws.bedrock.request_metadata.tenant", "a"),)


def test_cardinality_guard_holds_under_threads() -> None:
    guard = CardinalityGuard(50)
    out: list[str] = []
    lock = threading.Lock()

    def work(start: int) -> None:
        for i in range(start, start + 200):
            value = guard.admit("k", str(i))
            with lock:
                out.append(value)

    threads = [threading.Thread(target=work, args=(n * 200,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(out) - {"_OTHER"}) == 50


def test_long_values_are_truncated_and_key_lists_parsed() -> None:
    attribution = Attribution(baggage_keys=[" tenant", "", "tenant", "team "])
    assert attribution.baggage_keys == ("tenant", "team")
    ctx = baggage.set_baggage("tenant", "x" * 1000)
    assert len(dict(attribution.extract({}, ctx).span)["baggage.tenant"]) == 256


# -- the accountant ------------------------------------------------------------------------------
def test_accountant_prices_burns_and_remembers_unpriced_models() -> None:
    from opentelemetry.instrumentation.bedrock_tokens.costing import Accountant

    table = PriceTable({"models": {SONNET4: {"input": 3.0, "output": 15.0}}})
    accountant = Accountant(table)
    got = accountant.account("us." + SONNET4, Usage(1000, 100, None, None, "converse"))
    assert got.cost == pytest.approx((1000 * 3.0 + 100 * 15.0) / 1e6)
    assert got.quota_tokens == 1000 + 100 * 5
    other = accountant.account("amazon.nova-pro-v1:0", Usage(10, 10, None, None, "converse"))
    assert other.cost is None and other.quota_tokens == 20
    # known model, unknown tier: no cost, but the model is not "unpriced"
    accountant.account(SONNET4, Usage(1, 1, None, None, "converse"), tier="flex")
    assert accountant.unpriced_models() == ["amazon.nova-pro-v1:0"]
    # without a price table: burn only, and nothing is "unpriced"
    bare = Accountant(None)
    assert bare.account(SONNET4, Usage(10, 10, None, None, "h")) == (None, 60)
    assert bare.unpriced_models() == []


def test_accountant_upper_bounds_for_the_precount_hook() -> None:
    from opentelemetry.instrumentation.bedrock_tokens.costing import Accountant

    table = PriceTable({"models": {SONNET4: {"input": 3.0, "output": 15.0}}})
    got = Accountant(table).upper_bounds(SONNET4, 2000, 1000)
    assert got.cost == pytest.approx((2000 * 3.0 + 1000 * 15.0) / 1e6)
    assert got.quota_tokens == 2000 + 1000 * 5
    assert Accountant(table).upper_bounds(SONNET4, 2000, None) == (None, None)
    assert Accountant(None).upper_bounds(SONNET4, 2000, 10) == (None, 2050)


# -- settings ------------------------------------------------------------------------------------
def test_cost_and_attribution_settings_from_keywords_and_environment() -> None:
    from opentelemetry.instrumentation.bedrock_tokens.config import PREFIX, load_settings

    table = {"models": {}}
    got = load_settings({"prices": table, "request_metadata_keys": ["tenant", "feature"],
                         "project_identifier": True}, {
        PREFIX + "BAGGAGE_KEYS": "team, tenant,,team",
        PREFIX + "RESOLVE_PROFILES": "true",
        PREFIX + "RESOLVE_PROFILES_TIMEOUT": "0.2",
        PREFIX + "ATTRIBUTION_MAX_VALUES": "7",
    })
    assert got.prices is table
    assert got.request_metadata_keys == ("tenant", "feature")
    assert got.baggage_keys == ("team", "tenant")
    assert got.project_identifier and got.resolve_profiles
    assert got.resolve_profiles_timeout == 0.2 and got.attribution_max_values == 7
    assert load_settings({}, {PREFIX + "PRICES": " /tmp/p.json "}).prices == "/tmp/p.json"


def test_invalid_cost_settings_fall_back_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from opentelemetry.instrumentation.bedrock_tokens.config import PREFIX, load_settings

    with caplog.at_level("WARNING"):
        got = load_settings({}, {PREFIX + "ATTRIBUTION_MAX_VALUES": "0",
                                 PREFIX + "RESOLVE_PROFILES_TIMEOUT": "-1",
                                 PREFIX + "PRICES": "  "})
    assert got.attribution_max_values == 100 and got.resolve_profiles_timeout == 0.5
    assert got.prices is None
    assert len(caplog.records) == 3
