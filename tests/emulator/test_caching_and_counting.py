"""Prompt caching (write, then read, everywhere the service reports it) and CountTokens
agreeing with the invocation it predicts."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from opentelemetry.instrumentation.bedrock_tokens.emulator import (
    BedrockEmulator,
    Scenario,
    count_text_tokens,
    input_tokens_for,
)

from ..floor import needs_botocore_member, needs_runtime_member
from .support import FAMILIES, MAX, PROMPT, REPLY_TOKENS, converse_messages, raw_request

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
LONG = "You are a careful assistant who answers in one sentence. " * 20
LONG_TOKENS = count_text_tokens(LONG)
_METRICS = "amazon-bedrock-invocationMetrics"


def _claude_body(**extra: Any) -> bytes:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": MAX,
            "system": [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": PROMPT}],
            **extra,
        }
    ).encode()


def test_converse_cache_write_then_read(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    system = [{"text": LONG}, {"cachePoint": {"type": "default"}}]
    first = bedrock_client.converse(modelId=CLAUDE, system=system, messages=converse_messages())
    second = bedrock_client.converse(modelId=CLAUDE, system=system, messages=converse_messages())
    assert first["usage"] == {
        "inputTokens": 10,
        "outputTokens": REPLY_TOKENS,
        "totalTokens": 10 + REPLY_TOKENS + LONG_TOKENS,
        "cacheReadInputTokens": 0,
        "cacheWriteInputTokens": LONG_TOKENS,
    }
    assert second["usage"] == {
        "inputTokens": 10,
        "outputTokens": REPLY_TOKENS,
        "totalTokens": 10 + REPLY_TOKENS + LONG_TOKENS,
        "cacheReadInputTokens": LONG_TOKENS,
        "cacheWriteInputTokens": 0,
    }
    events = list(
        bedrock_client.converse_stream(modelId=CLAUDE, system=system, messages=converse_messages())[
            "stream"
        ]
    )
    assert events[-1]["metadata"]["usage"]["cacheReadInputTokens"] == LONG_TOKENS
    recorded = [
        (r.input_tokens, r.cache_read_tokens, r.cache_write_tokens)
        for r in bedrock_emulator.requests
    ]
    assert recorded == [(10, 0, LONG_TOKENS), (10, LONG_TOKENS, 0), (10, LONG_TOKENS, 0)]
    # reset() forgets the cache
    bedrock_emulator.reset()
    again = bedrock_client.converse(modelId=CLAUDE, system=system, messages=converse_messages())
    assert again["usage"]["cacheWriteInputTokens"] == LONG_TOKENS


def test_invoke_anthropic_cache_control_everywhere(bedrock_client: Any) -> None:
    first = bedrock_client.invoke_model(modelId=CLAUDE, body=_claude_body())
    first_body = json.loads(first["body"].read())
    headers = first["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == "10"
    assert headers["x-amzn-bedrock-cache-write-input-token-count"] == str(LONG_TOKENS)
    assert headers["x-amzn-bedrock-cache-read-input-token-count"] == "0"
    assert first_body["usage"] == {
        "input_tokens": 10,
        "cache_creation_input_tokens": LONG_TOKENS,
        "cache_read_input_tokens": 0,
        "output_tokens": REPLY_TOKENS,
    }
    stream = bedrock_client.invoke_model_with_response_stream(modelId=CLAUDE, body=_claude_body())
    chunks = [json.loads(e["chunk"]["bytes"]) for e in stream["body"]]
    assert chunks[0]["message"]["usage"]["cache_read_input_tokens"] == LONG_TOKENS
    assert chunks[0]["message"]["usage"]["input_tokens"] == 10
    assert chunks[-1][_METRICS]["cacheReadInputTokenCount"] == LONG_TOKENS
    assert chunks[-1][_METRICS]["cacheWriteInputTokenCount"] == 0
    assert chunks[-1][_METRICS]["inputTokenCount"] == 10


def test_nova_invoke_cache_point(bedrock_client: Any) -> None:
    body = json.dumps(
        {
            "schemaVersion": "messages-v1",
            "system": [{"text": LONG}, {"cachePoint": {"type": "default"}}],
            "messages": [{"role": "user", "content": [{"text": PROMPT}]}],
        }
    )
    first = json.loads(
        bedrock_client.invoke_model(modelId="amazon.nova-lite-v1:0", body=body)["body"].read()
    )
    second = bedrock_client.invoke_model(modelId="amazon.nova-lite-v1:0", body=body)
    usage = json.loads(second["body"].read())["usage"]
    assert first["usage"]["cacheWriteInputTokenCount"] == LONG_TOKENS
    assert usage == {
        "inputTokens": 10,
        "outputTokens": REPLY_TOKENS,
        "totalTokens": 10 + LONG_TOKENS + REPLY_TOKENS,
        "cacheReadInputTokenCount": LONG_TOKENS,
        "cacheWriteInputTokenCount": 0,
    }
    headers = second["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-cache-read-input-token-count"] == str(LONG_TOKENS)


def test_longest_cached_prefix_is_read_and_the_rest_written(bedrock_client: Any) -> None:
    base = [{"text": LONG}, {"cachePoint": {"type": "default"}}]
    extended = [*base, {"text": "Extra rules apply."}, {"cachePoint": {"type": "default"}}]
    bedrock_client.converse(modelId=CLAUDE, system=base, messages=converse_messages())
    usage = bedrock_client.converse(modelId=CLAUDE, system=extended, messages=converse_messages())[
        "usage"
    ]
    assert usage["cacheReadInputTokens"] == LONG_TOKENS
    assert usage["cacheWriteInputTokens"] == count_text_tokens("Extra rules apply.") == 4
    assert usage["inputTokens"] == 10


def test_cache_is_per_model(bedrock_client: Any) -> None:
    system = [{"text": LONG}, {"cachePoint": {"type": "default"}}]
    bedrock_client.converse(modelId=CLAUDE, system=system, messages=converse_messages())
    other = bedrock_client.converse(
        modelId="amazon.nova-micro-v1:0", system=system, messages=converse_messages()
    )
    assert other["usage"]["cacheWriteInputTokens"] == LONG_TOKENS


def test_models_without_caching_ignore_cache_points(bedrock_client: Any) -> None:
    old = "anthropic.claude-3-haiku-20240307-v1:0"
    for _ in range(2):
        response = bedrock_client.invoke_model(modelId=old, body=_claude_body())
        usage = json.loads(response["body"].read())["usage"]
        assert usage == {"input_tokens": 10 + LONG_TOKENS, "output_tokens": REPLY_TOKENS}
        assert (
            "x-amzn-bedrock-cache-read-input-token-count"
            not in (response["ResponseMetadata"]["HTTPHeaders"])
        )
    usage = bedrock_client.converse(
        modelId="meta.llama3-1-8b-instruct-v1:0",
        system=[{"text": LONG}, {"cachePoint": {"type": "default"}}],
        messages=converse_messages(),
    )["usage"]
    assert usage == {
        "inputTokens": 10 + LONG_TOKENS,
        "outputTokens": REPLY_TOKENS,
        "totalTokens": 10 + LONG_TOKENS + REPLY_TOKENS,
    }


# ---------------------------------------------------------------- CountTokens


@pytest.mark.parametrize("name", list(FAMILIES))
def test_count_tokens_invoke_body_equals_invoke_input(name: str, bedrock_client: Any) -> None:
    family = FAMILIES[name]
    counted = bedrock_client.count_tokens(
        modelId=family.model_id, input={"invokeModel": {"body": family.raw()}}
    )
    invoked = bedrock_client.invoke_model(modelId=family.model_id, body=family.raw())
    headers = invoked["ResponseMetadata"]["HTTPHeaders"]
    assert counted["inputTokens"] == int(headers["x-amzn-bedrock-input-token-count"])
    assert counted["inputTokens"] == family.input_tokens
    assert counted["inputTokens"] == input_tokens_for(family.model_id, "InvokeModel", family.raw())


@needs_botocore_member("CountTokens", "input", "converse", "toolConfig")
def test_count_tokens_converse_equals_converse_input(bedrock_client: Any) -> None:
    request: dict[str, Any] = {
        "messages": [
            {"role": "user", "content": [{"text": PROMPT}]},
            {
                "role": "assistant",
                "content": [
                    {"text": "Let me look."},
                    {"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {"city": "Paris"}}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"text": "Sunny, 21 C"}]}},
                ],
            },
        ],
        "system": [{"text": "Be brief."}],
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "lookup",
                        "description": "Find the weather.",
                        "inputSchema": {
                            "json": {"type": "object", "properties": {"city": {"type": "string"}}}
                        },
                    }
                }
            ]
        },
    }
    counted = bedrock_client.count_tokens(modelId=CLAUDE, input={"converse": request})
    result = bedrock_client.converse(modelId=CLAUDE, **request)
    texts = [
        PROMPT,
        "Let me look.",
        "lookup",
        "Paris",
        "Sunny, 21 C",
        "Be brief.",
        "lookup",
        "Find the weather.",
    ]
    assert counted["inputTokens"] == result["usage"]["inputTokens"]
    assert counted["inputTokens"] == sum(count_text_tokens(t) for t in texts) == 28
    assert counted["inputTokens"] == BedrockEmulator.input_tokens_for(CLAUDE, "Converse", request)
    assert counted["inputTokens"] == input_tokens_for(
        CLAUDE, "CountTokens", {"input": {"converse": request}}
    )


def test_count_tokens_with_caching_counts_everything(bedrock_client: Any) -> None:
    counted = bedrock_client.count_tokens(
        modelId=CLAUDE, input={"invokeModel": {"body": _claude_body()}}
    )["inputTokens"]
    bedrock_client.invoke_model(modelId=CLAUDE, body=_claude_body())
    read = bedrock_client.invoke_model(modelId=CLAUDE, body=_claude_body())
    usage = json.loads(read["body"].read())["usage"]
    assert counted == 10 + LONG_TOKENS
    assert counted == usage["input_tokens"] + usage["cache_read_input_tokens"]


def test_count_tokens_wire_form_is_base64(bedrock_emulator: BedrockEmulator) -> None:
    family = FAMILIES["llama"]
    encoded = base64.b64encode(family.raw()).decode()
    request = {"input": {"invokeModel": {"body": encoded}}}
    status, headers, raw = raw_request(
        bedrock_emulator.port,
        "POST",
        "/model/meta.llama3-1-8b-instruct-v1%3A0/count-tokens",
        json.dumps(request).encode(),
        {"Content-Type": "application/json"},
    )
    assert (status, json.loads(raw)) == (200, {"inputTokens": family.input_tokens})
    assert headers["content-type"] == "application/json"
    assert input_tokens_for(family.model_id, "CountTokens", request) == family.input_tokens


def test_count_tokens_scenarios(bedrock_client: Any, bedrock_emulator: BedrockEmulator) -> None:
    request = {"converse": {"messages": converse_messages()}}
    bedrock_emulator.set_scenario(Scenario(count_tokens="unsupported"), model_id=CLAUDE)
    with pytest.raises(
        bedrock_client.exceptions.ValidationException,
        match="The provided model doesn't support counting tokens",
    ):
        bedrock_client.count_tokens(modelId=CLAUDE, input=request)
    bedrock_emulator.set_scenario(Scenario(count_tokens="forbidden"), model_id=CLAUDE)
    with pytest.raises(bedrock_client.exceptions.AccessDeniedException):
        bedrock_client.count_tokens(modelId=CLAUDE, input=request)
    bedrock_emulator.set_scenario(Scenario(count_tokens_offset=-3), model_id=CLAUDE)
    assert bedrock_client.count_tokens(modelId=CLAUDE, input=request)["inputTokens"] == 7
    # count_tokens fields leave the other operations alone
    assert (
        bedrock_client.converse(modelId=CLAUDE, messages=converse_messages())["usage"][
            "inputTokens"
        ]
        == 10
    )


def test_count_tokens_delay(bedrock_client: Any, bedrock_emulator: BedrockEmulator) -> None:
    import time

    bedrock_emulator.set_scenario(Scenario(count_tokens_delay=0.05))
    started = time.perf_counter()
    bedrock_client.count_tokens(
        modelId=CLAUDE, input={"converse": {"messages": converse_messages()}}
    )
    assert time.perf_counter() - started >= 0.05
    started = time.perf_counter()
    bedrock_client.converse(modelId=CLAUDE, messages=converse_messages())
    assert time.perf_counter() - started < 0.05


def test_count_tokens_reject_profile_ids(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.set_scenario(Scenario(count_tokens_reject_profile_ids=True))
    request = {"converse": {"messages": converse_messages()}}
    for profile in (
        "us." + CLAUDE,
        "global." + CLAUDE,
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu." + CLAUDE,
    ):
        with pytest.raises(
            bedrock_client.exceptions.ValidationException, match="model identifier is invalid"
        ):
            bedrock_client.count_tokens(modelId=profile, input=request)
    assert bedrock_client.count_tokens(modelId=CLAUDE, input=request)["inputTokens"] == 10
    assert bedrock_client.converse(modelId="us." + CLAUDE, messages=converse_messages())


def test_count_tokens_model_id_pattern(bedrock_client: Any) -> None:
    request = {"converse": {"messages": converse_messages()}}
    with pytest.raises(bedrock_client.exceptions.ValidationException, match="pattern"):
        bedrock_client.count_tokens(modelId="anthropic.claude 3", input=request)


def test_no_cache_fields_when_caching_was_not_asked_for(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    """The recorded Claude 3.5 answers without cache_control carry no cache header, no
    ``cache_*`` usage, none in ``message_start`` nor in the invocation metrics; Converse
    without a cachePoint none in ``usage`` / ``metadata``."""
    body = json.dumps({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": MAX,
        "system": LONG,
        "messages": [{"role": "user", "content": PROMPT}],
    })
    response = bedrock_client.invoke_model(modelId=CLAUDE, body=body)
    assert not [h for h in response["ResponseMetadata"]["HTTPHeaders"] if "cache" in h]
    assert list(json.loads(response["body"].read())["usage"]) == ["input_tokens", "output_tokens"]
    stream = bedrock_client.invoke_model_with_response_stream(modelId=CLAUDE, body=body)
    chunks = [json.loads(e["chunk"]["bytes"]) for e in stream["body"]]
    assert list(chunks[0]["message"]["usage"]) == ["input_tokens", "output_tokens"]
    assert not [k for k in chunks[-1][_METRICS] if "cache" in k.lower()]
    system = [{"text": LONG}]
    converse = bedrock_client.converse(modelId=CLAUDE, messages=converse_messages(), system=system)
    assert set(converse["usage"]) == {"inputTokens", "outputTokens", "totalTokens"}
    events = list(
        bedrock_client.converse_stream(
            modelId=CLAUDE, messages=converse_messages(), system=system
        )["stream"]
    )
    assert set(events[-1]["metadata"]["usage"]) == {"inputTokens", "outputTokens", "totalTokens"}
    assert all(r.cache_read_tokens is None and r.cache_write_tokens is None
               for r in bedrock_emulator.requests)


def test_cache_is_keyed_by_api_and_prefix_position(bedrock_client: Any) -> None:
    """A Converse system prompt written to the cache is not read back by an InvokeModel whose
    *user message* has the same text, nor by a Converse request with that text as its first
    user message: the service caches per model, API and prefix."""
    cache_point = {"cachePoint": {"type": "default"}}
    written = bedrock_client.converse(
        modelId=CLAUDE, system=[{"text": LONG}, cache_point], messages=converse_messages()
    )["usage"]
    assert written["cacheWriteInputTokens"] > 0
    body = json.dumps({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": MAX,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]}],
    })
    usage = json.loads(bedrock_client.invoke_model(modelId=CLAUDE, body=body)["body"].read())
    assert usage["usage"]["cache_read_input_tokens"] == 0
    assert usage["usage"]["cache_creation_input_tokens"] > 0
    moved = bedrock_client.converse(
        modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": LONG}, cache_point]}]
    )["usage"]
    assert moved["cacheReadInputTokens"] == 0 and moved["cacheWriteInputTokens"] > 0
    again = bedrock_client.converse(
        modelId=CLAUDE, system=[{"text": LONG}, cache_point], messages=converse_messages()
    )["usage"]
    assert again["cacheReadInputTokens"] == written["cacheWriteInputTokens"]


@needs_runtime_member("CachePointBlock", "ttl")
@pytest.mark.parametrize("ttl", ["5m", "1h"])
def test_cache_writes_broken_down_by_ttl_when_a_ttl_is_asked_for(
    bedrock_client: Any, ttl: str
) -> None:
    system = [{"text": LONG}, {"cachePoint": {"type": "default", "ttl": ttl}}]
    first = bedrock_client.converse(modelId=CLAUDE, system=system, messages=converse_messages())
    assert first["usage"]["cacheDetails"] == [{"ttl": ttl, "inputTokens": LONG_TOKENS}]
    second = bedrock_client.converse(modelId=CLAUDE, system=system,
                                     messages=converse_messages())
    assert "cacheDetails" not in second["usage"]  # nothing written: no breakdown
    events = list(bedrock_client.converse_stream(
        modelId=CLAUDE, system=[{"text": LONG + " again"},
                                {"cachePoint": {"type": "default", "ttl": ttl}}],
        messages=converse_messages())["stream"])
    metadata = next(e["metadata"] for e in events if "metadata" in e)
    assert metadata["usage"]["cacheDetails"][0]["ttl"] == ttl
    body = json.dumps({
        "anthropic_version": "bedrock-2023-05-31", "max_tokens": MAX,
        "system": [{"type": "text", "text": LONG + " invoke",
                    "cache_control": {"type": "ephemeral", "ttl": ttl}}],
        "messages": [{"role": "user", "content": PROMPT}],
    })
    usage = json.loads(bedrock_client.invoke_model(modelId=CLAUDE, body=body)["body"].read())[
        "usage"]
    written = usage["cache_creation_input_tokens"]
    assert written > 0
    assert usage["cache_creation"] == {
        "ephemeral_5m_input_tokens": written if ttl == "5m" else 0,
        "ephemeral_1h_input_tokens": written if ttl == "1h" else 0,
    }


def test_no_ttl_breakdown_without_an_explicit_ttl(bedrock_client: Any) -> None:
    usage = json.loads(bedrock_client.invoke_model(modelId=CLAUDE, body=_claude_body())[
        "body"].read())["usage"]
    assert usage["cache_creation_input_tokens"] > 0 and "cache_creation" not in usage
