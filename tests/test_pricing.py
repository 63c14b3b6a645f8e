"""The price table: format, validation, lookup, and cost = counts x prices / 1e6."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from opentelemetry.instrumentation.bedrock_tokens import pricing
from opentelemetry.instrumentation.bedrock_tokens.pricing import (
    InvalidPriceTable,
    PriceTable,
    load_prices,
)
from opentelemetry.instrumentation.bedrock_tokens.usage import Usage, from_converse

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
SIMPLE = {"models": {HAIKU: {"input": 0.8, "output": 4.0, "cache_read": 0.08,
                             "cache_write": 1.0}}}


def usage(inp: int | None, out: int | None, read: int | None = None,
          write: int | None = None) -> Usage:
    return Usage(inp, out, read, write, "headers")


def test_simple_case_is_counts_times_prices() -> None:
    table = PriceTable(SIMPLE)
    got = table.cost(usage(1000, 200), HAIKU)
    assert got == pytest.approx(1000 * 0.8 / 1e6 + 200 * 4.0 / 1e6)


def test_cached_input_is_priced_as_cache_and_only_uncached_at_input_price() -> None:
    table = PriceTable(SIMPLE)
    # Bedrock's input count excludes cached tokens: 100 uncached, 3000 read, 500 written
    got = table.cost(usage(100, 50, read=3000, write=500), HAIKU)
    expected = (100 * 0.8 + 50 * 4.0 + 3000 * 0.08 + 500 * 1.0) / 1e6
    assert got == pytest.approx(expected)


def test_converse_total_tokens_decides_the_uncached_input() -> None:
    table = PriceTable(SIMPLE)
    # a model whose inputTokens include the cache writes: total - output - read - write
    found = from_converse({"inputTokens": 600, "outputTokens": 50, "cacheReadInputTokens": 0,
                           "cacheWriteInputTokens": 500, "totalTokens": 650})
    assert found is not None
    got = table.cost(found, HAIKU)
    assert got == pytest.approx((100 * 0.8 + 50 * 4.0 + 500 * 1.0) / 1e6)


@pytest.mark.parametrize("model", [
    "us.anthropic.claude-3-5-haiku-20241022-v1:0",
    "global.anthropic.claude-3-5-haiku-20241022-v1:0",
    "apac.anthropic.claude-3-5-haiku-20241022-v1:0",
    "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
    "eu.anthropic.claude-3-5-haiku-20241022-v1:0",
])
def test_profile_ids_and_arns_use_the_base_model_prices(model: str) -> None:
    table = PriceTable(SIMPLE)
    assert table.cost(usage(1000, 0), model) == pytest.approx(1000 * 0.8 / 1e6)


def test_resolved_application_profile_uses_its_base_model_and_an_arn_key_wins() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
    table = PriceTable(SIMPLE)
    assert table.cost(usage(1000, 0), arn) is None
    assert table.cost(usage(1000, 0), arn, resolved=HAIKU) == pytest.approx(0.0008)
    table = PriceTable({"models": {**SIMPLE["models"], arn: {"input": 2.0, "output": 8.0}}})
    assert table.cost(usage(1000, 0), arn, resolved=HAIKU) == pytest.approx(0.002)


def test_unknown_model_gives_no_cost() -> None:
    assert PriceTable(SIMPLE).cost(usage(10, 10), "meta.llama3-8b-instruct-v1:0") is None


@pytest.mark.parametrize("missing", ["input", "output", "cache_read", "cache_write"])
def test_a_needed_price_missing_gives_no_cost_never_a_partial_one(missing: str) -> None:
    entry = dict(SIMPLE["models"][HAIKU])
    del entry[missing]
    table = PriceTable({"models": {HAIKU: entry}})
    assert table.cost(usage(10, 10, read=10, write=10), HAIKU) is None
    # a price whose count is zero or absent is not needed
    counts = {"input": (0, 10), "output": (10, 0), "cache_read": (10, 10),
              "cache_write": (10, 10)}[missing]
    assert table.cost(usage(*counts), HAIKU) is not None


def test_unknown_counts_give_no_cost() -> None:
    table = PriceTable(SIMPLE)
    assert table.cost(usage(None, 10), HAIKU) is None
    assert table.cost(usage(10, None), HAIKU) is None
    assert table.cost(None, HAIKU) is None
    # embeddings produce no output: a missing output count is not an unknown one
    assert table.cost(usage(10, None), HAIKU, expect_output=False) == pytest.approx(8e-6)


def test_cache_writes_by_ttl() -> None:
    table = PriceTable({"models": {HAIKU: {
        "input": 1.0, "output": 5.0, "cache_read": 0.1, "cache_write": 1.25,
        "cache_write_1h": 2.0,
    }}})
    got = table.cost(usage(0, 0, write=300), HAIKU, cache_ttl={"5m": 100, "1h": 200})
    assert got == pytest.approx((100 * 1.25 + 200 * 2.0) / 1e6)
    # writes the breakdown does not cover are plain cache writes
    got = table.cost(usage(0, 0, write=350), HAIKU, cache_ttl={"1h": 200})
    assert got == pytest.approx((150 * 1.25 + 200 * 2.0) / 1e6)
    # an explicit 5-minute price is used for 5-minute writes
    table5 = PriceTable({"models": {HAIKU: {"input": 1, "output": 1, "cache_write": 1.25,
                                            "cache_write_5m": 1.5, "cache_write_1h": 2}}})
    got = table5.cost(usage(0, 0, write=100), HAIKU, cache_ttl={"5m": 100})
    assert got == pytest.approx(100 * 1.5 / 1e6)


def test_one_hour_writes_without_a_one_hour_price_give_no_cost() -> None:
    table = PriceTable(SIMPLE)
    assert table.cost(usage(0, 0, write=200), HAIKU, cache_ttl={"1h": 200}) is None
    assert table.cost(usage(0, 0, write=200), HAIKU, cache_ttl={"5m": 200}) == pytest.approx(
        200 * 1.0 / 1e6
    )


def test_ttl_breakdowns_from_converse_and_anthropic_bodies() -> None:
    assert pricing.ttl_breakdown_from_converse({"cacheDetails": [
        {"ttl": "1h", "inputTokens": 200}, {"ttl": "5m", "inputTokens": 100},
    ]}) == {"1h": 200, "5m": 100}
    assert pricing.ttl_breakdown_from_converse({"cacheDetails": []}) is None
    assert pricing.ttl_breakdown_from_converse(
        {"cacheDetails": [{"ttl": "2h", "inputTokens": 1}]}
    ) is None
    assert pricing.ttl_breakdown_from_converse(
        {"cacheDetails": [{"ttl": "5m", "inputTokens": 1.5}]}
    ) is None
    assert pricing.ttl_breakdown_from_anthropic({"cache_creation": {
        "ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 0,
    }}) == {"5m": 10, "1h": 0}
    assert pricing.ttl_breakdown_from_anthropic({"input_tokens": 3}) is None


def test_tiers_scopes_and_regions_override_field_by_field() -> None:
    table = PriceTable({"models": {HAIKU: {
        "input": 1.0, "output": 5.0,
        "scopes": {"geo": {"input": 1.1, "output": 5.5}},
        "tiers": {"flex": {"input": 0.5, "output": 2.5}, "priority": {"output": 9.0}},
        "regions": {"eu-west-3": {"input": 1.2, "tiers": {"flex": {"output": 3.0}}}},
    }}})
    u = usage(1_000_000, 1_000_000)
    assert table.cost(u, HAIKU) == pytest.approx(6.0)
    assert table.cost(u, HAIKU, tier="default") == pytest.approx(6.0)
    assert table.cost(u, "us." + HAIKU) == pytest.approx(6.6)
    assert table.cost(u, "global." + HAIKU) == pytest.approx(6.0)  # no global override
    assert table.cost(u, HAIKU, tier="flex") == pytest.approx(3.0)
    assert table.cost(u, HAIKU, tier="priority") == pytest.approx(10.0)
    assert table.cost(u, HAIKU, region="eu-west-3") == pytest.approx(6.2)
    assert table.cost(u, HAIKU, region="eu-west-3", tier="flex") == pytest.approx(1.2 + 3.0)
    assert table.cost(u, HAIKU, region="us-east-1") == pytest.approx(6.0)


@pytest.mark.parametrize("tier", ["flex", "priority", "reserved", "_OTHER"])
def test_a_tier_the_table_does_not_price_gives_no_cost(tier: str) -> None:
    assert PriceTable(SIMPLE).cost(usage(10, 10), HAIKU, tier=tier) is None


def test_null_in_an_override_says_the_price_is_unknown_there() -> None:
    table = PriceTable({"models": {HAIKU: {
        "input": 1.0, "output": 5.0, "cache_read": 0.1,
        "scopes": {"geo": {"input": 1.1, "output": 5.5, "cache_read": None}},
    }}})
    assert table.cost(usage(10, 10, read=10), HAIKU) is not None
    assert table.cost(usage(10, 10, read=10), "eu." + HAIKU) is None
    assert table.cost(usage(10, 10), "eu." + HAIKU) == pytest.approx((11 + 55) / 1e6)


def test_patterns_exact_wins_then_most_specific() -> None:
    table = PriceTable({"models": {
        "meta.llama3-*": {"input": 1.0, "output": 1.0},
        "meta.llama3-1-*": {"input": 2.0, "output": 2.0},
        "meta.llama3-1-8b-instruct-v1:0": {"input": 3.0, "output": 3.0},
    }})
    u = usage(1_000_000, 0)
    assert table.cost(u, "meta.llama3-8b-instruct-v1:0") == pytest.approx(1.0)
    assert table.cost(u, "us.meta.llama3-1-70b-instruct-v1:0") == pytest.approx(2.0)
    assert table.cost(u, "meta.llama3-1-8b-instruct-v1:0") == pytest.approx(3.0)
    assert table.knows("us.meta.llama3-1-70b-instruct-v1:0")
    assert not table.knows("mistral.mistral-large-2407-v1:0")


def test_images_are_priced_per_image() -> None:
    table = PriceTable({"models": {"amazon.nova-canvas-v1:0": {"image": 0.04}}})
    assert table.cost(None, "amazon.nova-canvas-v1:0", images=3) == pytest.approx(0.12)
    assert table.cost(None, "amazon.nova-canvas-v1:0", images=0) is None
    assert PriceTable(SIMPLE).cost(None, HAIKU, images=1) is None


@pytest.mark.parametrize("table, where", [
    ([], "expected an object"),
    ({}, "models"),
    ({"models": {HAIKU: {"input": -1}}}, ">= 0"),
    ({"models": {HAIKU: {"input": "0.8"}}}, "must be a number"),
    ({"models": {HAIKU: {"input": True}}}, "must be a number"),
    ({"models": {HAIKU: {"input": float("nan")}}}, "finite"),
    ({"models": {HAIKU: {"ouput": 4.0}}}, "unknown field 'ouput'"),
    ({"models": {HAIKU: {"tiers": {"fast": {}}}}}, "unknown key 'fast'"),
    ({"models": {HAIKU: {"scopes": {"eu": {}}}}}, "unknown key 'eu'"),
    ({"models": {HAIKU: {"regions": {"eu-west-1": {"scopes": {}}}}}}, "unknown field"),
    ({"models": {HAIKU: {}}, "currency": "EUR"}, "USD"),
    ({"models": {HAIKU: {}}, "unit": "per_thousand_tokens"}, "per million"),
    ({"modles": {}}, "unknown field 'modles'"),
    ({"models": {}, "burndown": {"anthropic.*": 0.5}}, ">= 1"),
])
def test_invalid_tables_say_where(table: Any, where: str) -> None:
    with pytest.raises(InvalidPriceTable, match=where):
        PriceTable(table)


def test_load_from_option_env_and_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(SIMPLE))
    assert load_prices(SIMPLE, {}) is not None
    assert load_prices(str(path), {}) is not None
    assert load_prices(path, {}) is not None
    found = load_prices(None, {pricing.PRICES_ENV: str(path)})
    assert found is not None and found.knows(HAIKU)
    assert load_prices(None, {}) is None
    assert load_prices(None, {pricing.PRICES_ENV: "  "}) is None


@pytest.mark.parametrize("content", ["{not json", json.dumps({"models": {HAIKU: {"x": 1}}})])
def test_an_invalid_table_is_one_warning_and_no_cost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    with caplog.at_level(logging.WARNING):
        assert load_prices(None, {pricing.PRICES_ENV: str(path)}) is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cost is not recorded" in warnings[0].getMessage()


def test_a_missing_file_or_odd_option_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert load_prices(str(tmp_path / "nope.json"), {}) is None
        assert load_prices(42, {}) is None  # type: ignore[arg-type]
    assert len(caplog.records) == 2


def test_the_shipped_example_table_is_valid_and_every_entry_is_sourced() -> None:
    table = pricing.example_table()
    PriceTable(table)
    assert table["as_of"]
    for key, entry in table["models"].items():
        assert entry.get("source"), key
        assert entry.get("as_of"), key
    # the simple case, as shipped
    assert table["models"][HAIKU] == {**SIMPLE["models"][HAIKU],
                                      "source": table["models"][HAIKU]["source"],
                                      "as_of": table["models"][HAIKU]["as_of"]}


def test_scope_of_model_ids() -> None:
    assert pricing.scope_of(HAIKU) == "in_region"
    assert pricing.scope_of("us." + HAIKU) == "geo"
    assert pricing.scope_of("global." + HAIKU) == "global"
    assert pricing.scope_of(
        "arn:aws:bedrock:us-east-1:1:inference-profile/global." + HAIKU
    ) == "global"
    assert pricing.scope_of(
        "arn:aws:bedrock:us-east-1:1:application-inference-profile/x"
    ) is None
