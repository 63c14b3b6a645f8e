"""Tool use, reasoning and the longer reply: each shape field by field, as the recorded service
traffic shows it (Converse, ConverseStream, Anthropic Messages and Nova over InvokeModel,
streamed and not), and the documented tool-choice policy.

Facts from the recordings used here: Converse ``toolUse`` blocks carry ``toolUseId``
(``tooluse_`` + 22 URL-safe characters), ``name`` and ``input`` (an object), and the answer
stops with ``tool_use``; ConverseStream opens a tool block with ``contentBlockStart``
(``start.toolUse`` = id and name) and sends the input as a JSON *string* in
``delta.toolUse.input``; Claude's ``tool_use`` blocks have ids ``toolu_bdrk_01`` + 22 base58
characters, and stream as ``content_block_start`` (``input: {}``) then ``input_json_delta``
pieces, the first one empty; Nova InvokeModel ids are UUIDs and its usage keeps the cache
counts (0) even without caching; a Claude request without ``cache_control`` gets no cache
fields anywhere.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from opentelemetry.instrumentation.bedrock_tokens.emulator import (
    DEFAULT_REPLY,
    BedrockEmulator,
    Scenario,
    count_text_tokens,
    output_tokens_for,
)
from opentelemetry.instrumentation.bedrock_tokens.emulator.tools import arguments_for

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
NOVA = "amazon.nova-micro-v1:0"
_METRICS = "amazon-bedrock-invocationMetrics"
CONVERSE_ID = re.compile(r"^tooluse_[A-Za-z0-9_-]{22}$")
CLAUDE_ID = re.compile(r"^toolu_bdrk_01[1-9A-HJ-NP-Za-km-z]{22}$")
MESSAGE_ID = re.compile(r"^msg_bdrk_01[1-9A-HJ-NP-Za-km-z]{22}$")

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"location": {"type": "string", "description": "The name of the city"}},
    "required": ["location"],
}
CONVERSE_TOOLS = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_current_weather",
                "description": "Get the current weather in a given location.",
                "inputSchema": {"json": WEATHER_SCHEMA},
            }
        },
        {
            "toolSpec": {
                "name": "get_time",
                "description": "The local time.",
                "inputSchema": {"json": {"type": "object", "properties": {}}},
            }
        },
    ]
}
ANTHROPIC_TOOLS = [
    {"name": "get_current_weather", "description": "Weather.", "input_schema": WEATHER_SCHEMA}
]
ASK = "What is the weather in Seattle? Use get_current_weather."


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"text": text}]}


def _expected_tool_output(text: str, name: str, arguments: dict[str, Any]) -> int:
    """The documented output count: the text, the tool's name and its compact input JSON."""
    compact = json.dumps(arguments, separators=(",", ":"))
    return count_text_tokens(text) + count_text_tokens(name) + count_text_tokens(compact)


# -- Converse ------------------------------------------------------------------------------------


def test_converse_tool_call_then_answer(bedrock_client: Any, bedrock_emulator: Any) -> None:
    first = bedrock_client.converse(modelId=NOVA, messages=[_user(ASK)], toolConfig=CONVERSE_TOOLS)
    assert first["stopReason"] == "tool_use"
    content = first["output"]["message"]["content"]
    assert [list(block) for block in content] == [["text"], ["toolUse"]]
    use = content[1]["toolUse"]
    assert set(use) == {"toolUseId", "name", "input"}
    assert CONVERSE_ID.match(use["toolUseId"])
    assert use["name"] == "get_current_weather"
    assert isinstance(use["input"], dict) and isinstance(use["input"]["location"], str)
    expected = _expected_tool_output(content[0]["text"], use["name"], use["input"])
    assert first["usage"]["outputTokens"] == expected
    assert set(first["usage"]) == {"inputTokens", "outputTokens", "totalTokens"}
    assert bedrock_emulator.requests[-1].output_tokens == expected

    result = {"toolResult": {"toolUseId": use["toolUseId"], "content": [{"text": "50F, rain"}]}}
    messages = [_user(ASK), first["output"]["message"], {"role": "user", "content": [result]}]
    second = bedrock_client.converse(modelId=NOVA, messages=messages, toolConfig=CONVERSE_TOOLS)
    assert second["stopReason"] == "end_turn"
    assert second["output"]["message"]["content"] == [{"text": DEFAULT_REPLY}]
    assert (
        output_tokens_for(NOVA, "Converse", {"messages": messages, "toolConfig": CONVERSE_TOOLS})
        == (second["usage"]["outputTokens"])
    )


def test_tool_choice_policy(bedrock_client: Any) -> None:
    def answer(text: str, choice: Any = None, scenario: Any = None) -> list[dict[str, Any]]:
        config = dict(CONVERSE_TOOLS, **({"toolChoice": choice} if choice else {}))
        kwargs = {"modelId": CLAUDE, "messages": [_user(text)], "toolConfig": config}
        return list(bedrock_client.converse(**kwargs)["output"]["message"]["content"])

    # auto, no tool named: text
    assert answer("Hello there") == [{"text": DEFAULT_REPLY}]
    # a name inside a longer word does not name the tool
    assert answer("what would get_timezone return?") == [{"text": DEFAULT_REPLY}]
    # auto, a tool named in the last user turn: that tool
    assert answer("please call get_time")[-1]["toolUse"]["name"] == "get_time"
    # any: a tool call, no text before it
    forced = answer("Hello there", {"any": {}})
    assert [list(b) for b in forced] == [["toolUse"]]
    assert forced[0]["toolUse"]["name"] == "get_current_weather"
    # a named tool: that one, always
    named = answer("use get_current_weather", {"tool": {"name": "get_time"}})
    assert [b["toolUse"]["name"] for b in named] == ["get_time"]
    assert named[0]["toolUse"]["input"] == {}


def test_two_named_tools_are_called_one_per_turn(bedrock_client: Any) -> None:
    messages: list[dict[str, Any]] = [_user("Use get_time, then get_current_weather.")]
    called = []
    for _ in range(3):
        reply = bedrock_client.converse(
            modelId=CLAUDE, messages=messages, toolConfig=CONVERSE_TOOLS
        )
        message = reply["output"]["message"]
        uses = [b["toolUse"] for b in message["content"] if "toolUse" in b]
        if reply["stopReason"] != "tool_use":
            break
        called += [u["name"] for u in uses]
        results = [
            {"toolResult": {"toolUseId": u["toolUseId"], "content": [{"json": {"ok": True}}]}}
            for u in uses
        ]
        messages += [message, {"role": "user", "content": results}]
    assert called == ["get_time", "get_current_weather"]
    assert reply["stopReason"] == "end_turn"


def test_scenario_tool_fields(bedrock_client: Any, bedrock_emulator: BedrockEmulator) -> None:
    def content() -> list[dict[str, Any]]:
        reply = bedrock_client.converse(
            modelId=NOVA, messages=[_user("Hello there")], toolConfig=CONVERSE_TOOLS
        )
        return list(reply["output"]["message"]["content"])

    bedrock_emulator.set_scenario(
        Scenario(tool_use="always", tool_name="get_time", tool_input={"zone": "UTC"})
    )
    use = content()[-1]["toolUse"]
    assert (use["name"], use["input"]) == ("get_time", {"zone": "UTC"})
    bedrock_emulator.set_scenario(Scenario(tool_use="never"))
    reply = bedrock_client.converse(
        modelId=NOVA, messages=[_user("use get_time")], toolConfig=CONVERSE_TOOLS
    )
    assert reply["stopReason"] == "end_turn"
    with pytest.raises(ValueError, match="tool_use"):
        Scenario(tool_use="sometimes")


def test_converse_stream_tool_events(bedrock_client: Any, bedrock_emulator: Any) -> None:
    response = bedrock_client.converse_stream(
        modelId=NOVA, messages=[_user(ASK)], toolConfig=CONVERSE_TOOLS
    )
    events = list(response["stream"])
    kinds = [next(iter(e)) for e in events]
    text_deltas = kinds.count("contentBlockDelta") - 1
    assert kinds == [
        "messageStart",
        *["contentBlockDelta"] * text_deltas,
        "contentBlockStop",
        "contentBlockStart",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    start = events[text_deltas + 2]["contentBlockStart"]
    assert start["contentBlockIndex"] == 1
    assert set(start["start"]["toolUse"]) == {"toolUseId", "name"}
    assert CONVERSE_ID.match(start["start"]["toolUse"]["toolUseId"])
    delta = events[text_deltas + 3]["contentBlockDelta"]
    assert delta["contentBlockIndex"] == 1
    raw_input = delta["delta"]["toolUse"]["input"]
    assert isinstance(raw_input, str) and isinstance(json.loads(raw_input)["location"], str)
    assert events[-2] == {"messageStop": {"stopReason": "tool_use"}}
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events[1 : 1 + text_deltas])
    usage = events[-1]["metadata"]["usage"]
    name = start["start"]["toolUse"]["name"]
    assert usage["outputTokens"] == _expected_tool_output(text, name, json.loads(raw_input))
    assert set(usage) == {"inputTokens", "outputTokens", "totalTokens"}
    assert bedrock_emulator.requests[-1].output_tokens == usage["outputTokens"]


# -- Anthropic Messages over InvokeModel ------------------------------------------------------


def _claude(messages: list[dict[str, Any]], **extra: Any) -> str:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 1000,
        "messages": messages,
        "tools": ANTHROPIC_TOOLS,
        **extra,
    }
    return json.dumps(body)


def test_anthropic_tool_use_then_answer(bedrock_client: Any, bedrock_emulator: Any) -> None:
    ask = [{"role": "user", "content": [{"type": "text", "text": ASK}]}]
    response = bedrock_client.invoke_model(modelId=CLAUDE, body=_claude(ask))
    body = json.loads(response["body"].read())
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert MESSAGE_ID.match(body["id"])
    assert body["stop_reason"] == "tool_use" and body["stop_sequence"] is None
    assert [b["type"] for b in body["content"]] == ["text", "tool_use"]
    use = body["content"][1]
    assert set(use) == {"type", "id", "name", "input"}
    assert CLAUDE_ID.match(use["id"]) and use["name"] == "get_current_weather"
    expected = _expected_tool_output(body["content"][0]["text"], use["name"], use["input"])
    assert body["usage"] == {
        "input_tokens": bedrock_emulator.requests[-1].input_tokens,
        "output_tokens": expected,
    }
    assert headers["x-amzn-bedrock-output-token-count"] == str(expected)
    assert not [h for h in headers if "cache" in h]  # caching was not asked for

    result = {"type": "tool_result", "tool_use_id": use["id"], "content": "50 degrees"}
    follow = [
        *ask,
        {"role": "assistant", "content": body["content"]},
        {"role": "user", "content": [result]},
    ]
    answer = json.loads(
        bedrock_client.invoke_model(modelId=CLAUDE, body=_claude(follow))["body"].read()
    )
    assert answer["stop_reason"] == "end_turn"
    assert answer["content"] == [{"type": "text", "text": DEFAULT_REPLY}]


def test_anthropic_forced_tool_choice(bedrock_client: Any) -> None:
    messages = [{"role": "user", "content": "Hello there"}]
    body = _claude(messages, tool_choice={"type": "tool", "name": "get_current_weather"})
    answer = json.loads(bedrock_client.invoke_model(modelId=CLAUDE, body=body)["body"].read())
    assert [b["type"] for b in answer["content"]] == ["tool_use"]
    none = _claude([{"role": "user", "content": ASK}], tool_choice={"type": "none"})
    answer = json.loads(bedrock_client.invoke_model(modelId=CLAUDE, body=none)["body"].read())
    assert answer["stop_reason"] == "end_turn"


def test_anthropic_stream_tool_use(bedrock_client: Any, bedrock_emulator: Any) -> None:
    response = bedrock_client.invoke_model_with_response_stream(
        modelId=CLAUDE, body=_claude([{"role": "user", "content": ASK}])
    )
    chunks = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
    assert chunks[0]["type"] == "message_start"
    assert chunks[0]["message"]["usage"] == {
        "input_tokens": bedrock_emulator.requests[-1].input_tokens,
        "output_tokens": 1,
    }
    starts = [c for c in chunks if c["type"] == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == ["text", "tool_use"]
    tool_start = starts[1]
    assert tool_start["index"] == 1
    assert set(tool_start["content_block"]) == {"type", "id", "name", "input"}
    assert tool_start["content_block"]["input"] == {}
    assert CLAUDE_ID.match(tool_start["content_block"]["id"])
    json_deltas = [
        c["delta"] for c in chunks if c["type"] == "content_block_delta" and c["index"] == 1
    ]
    assert all(d["type"] == "input_json_delta" for d in json_deltas)
    assert json_deltas[0]["partial_json"] == "" and len(json_deltas) > 2
    arguments = json.loads("".join(d["partial_json"] for d in json_deltas))
    assert isinstance(arguments["location"], str)
    final = chunks[-2]
    assert final["type"] == "message_delta"
    assert final["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    text = "".join(
        c["delta"]["text"] for c in chunks if c["type"] == "content_block_delta" and c["index"] == 0
    )
    expected = _expected_tool_output(text, "get_current_weather", arguments)
    assert final["usage"] == {"output_tokens": expected}
    metrics = chunks[-1][_METRICS]
    assert metrics["outputTokenCount"] == expected
    assert not [k for k in metrics if k.startswith("cache")]


# -- Nova over InvokeModel ---------------------------------------------------------------------


def _nova(messages: list[dict[str, Any]]) -> str:
    return json.dumps(
        {
            "schemaVersion": "messages-v1",
            "messages": messages,
            "inferenceConfig": {"max_new_tokens": 1000},
            "toolConfig": CONVERSE_TOOLS,
        }
    )


def test_nova_invoke_tool_use(bedrock_client: Any) -> None:
    response = bedrock_client.invoke_model(modelId=NOVA, body=_nova([_user(ASK)]))
    body = json.loads(response["body"].read())
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    message = body["output"]["message"]
    assert message["role"] == "assistant" and body["stopReason"] == "tool_use"
    use = message["content"][-1]["toolUse"]
    assert set(use) == {"name", "toolUseId", "input"}
    assert str(uuid.UUID(use["toolUseId"])) == use["toolUseId"]
    expected = _expected_tool_output(message["content"][0]["text"], use["name"], use["input"])
    assert body["usage"]["outputTokens"] == expected
    # Nova keeps its cache counts (0) without caching, in the body and the headers
    assert body["usage"]["cacheReadInputTokenCount"] == 0
    assert body["usage"]["cacheWriteInputTokenCount"] == 0
    assert headers["x-amzn-bedrock-cache-read-input-token-count"] == "0"


def test_nova_stream_tool_use(bedrock_client: Any) -> None:
    response = bedrock_client.invoke_model_with_response_stream(
        modelId=NOVA, body=_nova([_user(ASK)])
    )
    chunks = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
    starts = [c["contentBlockStart"] for c in chunks if "contentBlockStart" in c]
    assert len(starts) == 1
    tool = starts[0]["start"]["toolUse"]
    assert set(tool) == {"toolUseId", "name"} and tool["name"] == "get_current_weather"
    index = starts[0]["contentBlockIndex"]
    deltas = [
        c["contentBlockDelta"]
        for c in chunks
        if "contentBlockDelta" in c and c["contentBlockDelta"]["contentBlockIndex"] == index
    ]
    assert len(deltas) == 1
    assert isinstance(json.loads(deltas[0]["delta"]["toolUse"]["input"])["location"], str)
    assert {"messageStop": {"stopReason": "tool_use"}} in chunks
    usage = chunks[-1]["metadata"]["usage"]
    assert set(usage) == {
        "inputTokens",
        "outputTokens",
        "cacheReadInputTokenCount",
        "cacheWriteInputTokenCount",
    }
    assert chunks[-1][_METRICS]["outputTokenCount"] == usage["outputTokens"]


# -- reasoning ---------------------------------------------------------------------------------


def test_converse_reasoning_blocks(bedrock_client: Any, bedrock_emulator: Any) -> None:
    fields = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    reply = bedrock_client.converse(
        modelId=CLAUDE, messages=[_user("Hello there")], additionalModelRequestFields=fields
    )
    content = reply["output"]["message"]["content"]
    assert [list(b) for b in content] == [["reasoningContent"], ["text"]]
    reasoning = content[0]["reasoningContent"]["reasoningText"]
    assert set(reasoning) == {"text", "signature"} and reasoning["signature"]
    assert reply["usage"]["outputTokens"] == (
        count_text_tokens(reasoning["text"]) + count_text_tokens(content[1]["text"])
    )
    stream = bedrock_client.converse_stream(
        modelId=CLAUDE, messages=[_user("Hello there")], additionalModelRequestFields=fields
    )["stream"]
    events = list(stream)
    thinking = [
        e["contentBlockDelta"]["delta"]["reasoningContent"]
        for e in events
        if "contentBlockDelta" in e and "reasoningContent" in e["contentBlockDelta"]["delta"]
    ]
    assert "".join(t.get("text", "") for t in thinking) == reasoning["text"]
    assert "signature" in thinking[-1]
    assert events[-1]["metadata"]["usage"]["outputTokens"] == reply["usage"]["outputTokens"]


def test_anthropic_thinking_blocks(bedrock_client: Any) -> None:
    body = json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 2000,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [{"role": "user", "content": "Hello there"}],
        }
    )
    answer = json.loads(bedrock_client.invoke_model(modelId=CLAUDE, body=body)["body"].read())
    assert [b["type"] for b in answer["content"]] == ["thinking", "text"]
    assert set(answer["content"][0]) == {"type", "thinking", "signature"}
    stream = bedrock_client.invoke_model_with_response_stream(modelId=CLAUDE, body=body)["body"]
    chunks = [json.loads(e["chunk"]["bytes"]) for e in stream]
    delta_types = [
        c["delta"]["type"] for c in chunks if c["type"] == "content_block_delta" and c["index"] == 0
    ]
    assert set(delta_types[:-1]) == {"thinking_delta"} and delta_types[-1] == "signature_delta"
    assert chunks[-2]["usage"]["output_tokens"] == answer["usage"]["output_tokens"]


# -- reply length --------------------------------------------------------------------------------


def test_default_stream_has_tens_of_deltas_and_reply_words_sets_more(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    def deltas() -> int:
        stream = bedrock_client.converse_stream(modelId=NOVA, messages=[_user("Hi")])["stream"]
        return sum(1 for e in stream if "contentBlockDelta" in e)

    assert deltas() == len(DEFAULT_REPLY.split()) >= 50
    bedrock_emulator.set_scenario(Scenario(reply_words=300))
    assert deltas() == 300


# -- arguments from schemas --------------------------------------------------------------------


def test_arguments_follow_the_schema() -> None:
    schema = {
        "type": "object",
        "$defs": {
            "Address": {
                "type": "object",
                "properties": {
                    "street": {"type": "string"},
                    "zip": {"type": "string", "minLength": 5},
                },
                "required": ["street", "zip"],
            }
        },
        "properties": {
            "name": {"type": "string", "maxLength": 4},
            "age": {"type": "integer", "minimum": 18, "maximum": 99},
            "score": {"type": "number", "exclusiveMinimum": 0},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "address": {"$ref": "#/$defs/Address"},
            "nickname": {"anyOf": [{"type": "null"}, {"type": "string"}]},
            "when": {"type": "string", "format": "date-time"},
            "ok": {"type": "boolean"},
            "optional": {"type": "string"},
        },
        "required": ["name", "age", "score", "unit", "tags", "address", "nickname", "when", "ok"],
    }
    value = arguments_for(schema)
    assert set(value) == set(schema["required"])  # required properties only
    assert isinstance(value["name"], str) and len(value["name"]) <= 4
    assert isinstance(value["age"], int) and 18 <= value["age"] <= 99
    assert value["score"] > 0
    assert value["unit"] in ("celsius", "fahrenheit")
    assert len(value["tags"]) == 2 and all(isinstance(t, str) for t in value["tags"])
    assert set(value["address"]) == {"street", "zip"} and len(value["address"]["zip"]) >= 5
    assert isinstance(value["nickname"], str)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", value["when"])
    assert value["ok"] is True
    assert arguments_for({}) == {}


def test_additional_model_response_fields(bedrock_client: Any) -> None:
    """Converse returns the native fields the request asks for by JSON pointer (Claude's
    ``stop_sequence``), in the body and in ConverseStream's ``messageStop``."""
    kwargs: dict[str, Any] = {
        "modelId": CLAUDE,
        "messages": [_user("Hello there")],
        "additionalModelResponseFieldPaths": ["/stop_sequence", "/no_such_field"],
    }
    reply = bedrock_client.converse(**kwargs)
    assert reply["additionalModelResponseFields"] == {"stop_sequence": None}
    events = list(bedrock_client.converse_stream(**kwargs)["stream"])
    stop = next(e["messageStop"] for e in events if "messageStop" in e)
    assert stop == {
        "stopReason": "end_turn",
        "additionalModelResponseFields": {"stop_sequence": None},
    }
    assert "additionalModelResponseFields" not in bedrock_client.converse(
        modelId=CLAUDE, messages=[_user("Hello there")]
    )


def test_citations_when_a_document_enables_them(bedrock_client: Any) -> None:
    """A document block with ``citations.enabled`` gets a ``citationsContent`` answer citing it
    by character range (ConverseStream: a ``delta.citation`` after the text deltas)."""
    text = "The Eiffel Tower is 330 metres tall and stands in Paris."
    document = {
        "format": "txt",
        "name": "tower",
        "source": {"text": text},
        "citations": {"enabled": True},
    }
    messages = [{"role": "user", "content": [{"document": document}, {"text": "How tall?"}]}]
    reply = bedrock_client.converse(modelId=CLAUDE, messages=messages)
    (block,) = reply["output"]["message"]["content"]
    cited = block["citationsContent"]
    assert cited["content"] == [{"text": DEFAULT_REPLY}]
    (citation,) = cited["citations"]
    assert citation["title"] == "tower"
    assert citation["sourceContent"] == [{"text": text}]
    assert citation["location"] == {
        "documentChar": {"documentIndex": 0, "start": 0, "end": len(text)}
    }
    assert reply["usage"]["outputTokens"] == count_text_tokens(DEFAULT_REPLY)
    events = list(bedrock_client.converse_stream(modelId=CLAUDE, messages=messages)["stream"])
    deltas = [e["contentBlockDelta"]["delta"] for e in events if "contentBlockDelta" in e]
    assert deltas[-1] == {"citation": citation}
    assert "".join(d.get("text", "") for d in deltas) == DEFAULT_REPLY
    uncited = dict(document, citations={"enabled": False})
    plain = bedrock_client.converse(
        modelId=CLAUDE,
        messages=[{"role": "user", "content": [{"document": uncited}, {"text": "How tall?"}]}],
    )
    assert plain["output"]["message"]["content"] == [{"text": DEFAULT_REPLY}]


def test_converse_stream_claude_tool_input_in_pieces(bedrock_client: Any) -> None:
    """Recorded: through ConverseStream, Claude sends the tool input as several string pieces,
    the first one empty (Nova sends it whole, as above)."""
    response = bedrock_client.converse_stream(
        modelId=CLAUDE, messages=[_user(ASK)], toolConfig=CONVERSE_TOOLS
    )
    events = list(response["stream"])
    start = next(e["contentBlockStart"] for e in events if "contentBlockStart" in e)
    index = start["contentBlockIndex"]
    pieces = [
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in events
        if "contentBlockDelta" in e and e["contentBlockDelta"]["contentBlockIndex"] == index
    ]
    assert pieces[0] == "" and len(pieces) > 2
    assert isinstance(json.loads("".join(pieces))["location"], str)
