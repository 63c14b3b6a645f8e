"""Captured content is valid JSON at every length limit, and says when it was cut."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

from opentelemetry.instrumentation.bedrock_tokens import config, content, names

from .helpers import converse_messages

REQUEST: dict[str, Any] = {
    "system": [{"text": "Be brief. \"Quoted\" \\ back\\slash"}, {"text": "Second rule: é ü 漢字"}],
    "messages": [
        {"role": "user", "content": [{"text": "Hello \"there\"\n" * 3},
                                     {"image": {"format": "png", "source": {"bytes": b"x"}}}]},
        {"role": "assistant", "content": [
            {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Oslo"}}}]},
        {"role": "user", "content": [
            {"toolResult": {"toolUseId": "t1", "content": [{"text": "rain"}]}},
            {"text": "and tomorrow? \u2603 \U0001F600"}]},
    ],
    "toolConfig": {"tools": [
        {"toolSpec": {"name": "get_weather", "description": "Weather \"now\"",
                      "inputSchema": {"json": {"type": "object", "properties": {
                          "city": {"type": "string"}}}}}},
        {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object"}}}},
    ]},
}


def _truncated(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and any(
        isinstance(item, dict) and item.get("truncated") is True for item in value)


def _texts(value: Any) -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        if value.get("type") == "text" and isinstance(value.get("content"), str):
            found.append(value["content"])
        for item in value.values():
            found.extend(_texts(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_texts(item))
    return found


def test_input_content_parses_at_every_length() -> None:
    full = content.input_attributes(REQUEST, 10**9)
    assert set(full) == {names.GEN_AI_INPUT_MESSAGES, names.GEN_AI_SYSTEM_INSTRUCTIONS,
                         names.GEN_AI_TOOL_DEFINITIONS}
    whole = {k: json.loads(v) for k, v in full.items()}
    longest = max(len(v) for v in full.values())
    for limit in range(1, longest + 2):
        attrs = content.input_attributes(REQUEST, limit)
        for key, text in attrs.items():
            assert len(text) <= limit, (key, limit)
            value = json.loads(text)  # always parses
            if len(full[key]) <= limit:
                assert value == whole[key]  # not cut
                continue
            assert _truncated(value), (key, limit, text)  # says it was cut
            # what is kept is the start of the original, part by part
            kept, original = _texts(value), _texts(whole[key])
            if kept:
                assert kept[:-1] == original[: len(kept) - 1]
                assert original[len(kept) - 1].startswith(kept[-1])
        if limit >= config.MIN_CONTENT_LENGTH:  # the smallest limit settings allow
            assert set(attrs) == set(full), limit


def test_output_content_parses_at_every_length() -> None:
    reply = 'The "answer" is\n42 \\o/ ' * 20 + "\U0001F600 end"
    full = content.output_attributes(reply, ("max_tokens",), 10**9)[names.GEN_AI_OUTPUT_MESSAGES]
    assert json.loads(full)[0]["finish_reason"] == "length"
    for limit in range(1, len(full) + 2):
        out = content.output_attributes(reply, ("max_tokens",), limit)
        if limit >= config.MIN_CONTENT_LENGTH:
            assert names.GEN_AI_OUTPUT_MESSAGES in out
        if not out:
            continue
        text = out[names.GEN_AI_OUTPUT_MESSAGES]
        assert len(text) <= limit
        (message,) = json.loads(text)
        assert message["role"] == "assistant" and message["finish_reason"] == "length"
        assert message.get("truncated", False) is (len(full) > limit)
        kept = message["parts"][0]["content"] if message["parts"] else ""
        assert reply.startswith(kept)


def test_content_max_length_below_the_minimum_is_refused(caplog: Any) -> None:
    env = {"OTEL_INSTRUMENTATION_BEDROCK_TOKENS_CONTENT_MAX_LENGTH": "20"}
    settings = config.load_settings({}, env)
    assert settings.content_max_length == config.Settings().content_max_length
    assert "CONTENT_MAX_LENGTH" in caplog.text


@pytest.mark.parametrize("raw,mapped", [
    ("end_turn", "stop"), ("max_tokens", "length"), ("tool_use", "tool_call"),
    ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter"),
    ("stop_sequence", "stop"), ("FINISH", "stop"), ("LENGTH", "length"),
    ("CONTENT_FILTERED", "content_filter"), ("COMPLETE", "stop"), ("MAX_TOKENS", "length"),
    ("tool_calls", "tool_call"), ("length", "length"), ("something_new", "something_new"),
])
def test_finish_reasons_map_to_the_schema_enum(raw: str, mapped: str) -> None:
    assert content.finish_reason(raw) == mapped


def test_tool_calls_and_definitions_are_schema_parts() -> None:
    attrs = content.input_attributes(REQUEST, 10**9)
    messages = json.loads(attrs[names.GEN_AI_INPUT_MESSAGES])
    assert messages[1]["parts"] == [{"type": "tool_call", "id": "t1", "name": "get_weather",
                                     "arguments": {"city": "Oslo"}}]
    assert messages[2]["parts"][0]["type"] == "tool_call_response"
    assert messages[0]["parts"][1] == {"type": "image"}  # no bytes, only the kind
    tools = json.loads(attrs[names.GEN_AI_TOOL_DEFINITIONS])
    assert tools[0] == {"type": "function", "name": "get_weather", "description": 'Weather "now"',
                        "parameters": {"type": "object",
                                       "properties": {"city": {"type": "string"}}}}
    latest = content.input_attributes(REQUEST, 10**9, "generic")
    assert json.loads(latest[names.GEN_AI_INPUT_MESSAGES])[0]["parts"][1] == {
        "type": "generic", "generic_type": "image"}


def test_truncated_content_on_a_real_call_parses(
    instrument: Callable[..., Any], bedrock_client: Any, bedrock_telemetry: Any,
) -> None:
    instrument(capture_content=True, content_max_length=config.MIN_CONTENT_LENGTH)
    long_prompt = 'Tell me "everything"\n' * 100
    bedrock_client.converse(modelId="amazon.nova-micro-v1:0",
                            messages=converse_messages(long_prompt),
                            system=[{"text": "rules " * 100}])
    attrs = bedrock_telemetry.spans()[-1].attributes
    for key in (names.GEN_AI_INPUT_MESSAGES, names.GEN_AI_SYSTEM_INSTRUCTIONS):
        assert len(attrs[key]) <= config.MIN_CONTENT_LENGTH
        assert _truncated(json.loads(attrs[key]))
    json.loads(attrs[names.GEN_AI_OUTPUT_MESSAGES])
