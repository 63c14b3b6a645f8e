"""Tool use: which tool the emulated model calls, and with which arguments.

The policy is deterministic so agent frameworks can be driven through it without special model
ids (``docs/emulator.md``, "Tool use"):

- no tools offered, or tool choice ``none``: text;
- a forced choice names a tool (Converse ``{"tool": {"name"}}``, Anthropic ``{"type": "tool"}``):
  that tool, always;
- ``any``: the next *pending* tool (below), else the first tool not called since the last user
  text, else the first tool;
- ``auto`` (or no choice): the next pending tool, else text. ``Scenario.tool_use="always"``
  calls ``Scenario.tool_name`` (or the first tool) unless the request carries tool results;
  ``"never"`` answers in text unless the choice is forced.

A tool is *pending* when the last user turn that has text names it (its name appears in that
text as a whole word, case-insensitively) and the assistant has not called it since. So "use
get_weather and get_time" gives one call to each, one per turn, then a text answer.

Arguments are generated from the tool's JSON schema: ``Scenario.tool_input`` if given, else
every required property (every property when the schema lists none as required), typed and
within the schema's enums, constants, bounds, formats, nested objects, arrays and ``$ref``s, so
a structured-output tool's arguments validate against its own schema.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Optional

__all__ = [
    "ToolCall",
    "ToolSpec",
    "anthropic_tool_use_id",
    "arguments_for",
    "choose_tool_calls",
    "converse_tool_use_id",
    "json_pieces",
    "nova_tool_use_id",
    "request_tools",
]

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass(frozen=True)
class ToolSpec:
    name: str
    schema: Mapping[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """One tool call: its tool, its arguments, and their compact JSON (what is counted)."""

    name: str
    input: Mapping[str, Any]

    @property
    def input_json(self) -> str:
        return json.dumps(self.input, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class _Conversation:
    tools: tuple[ToolSpec, ...]
    choice: str  # "auto" | "any" | "tool" | "none"
    forced_name: Optional[str]
    last_user_text: str
    called_since: frozenset[str]
    ends_with_result: bool


# -- reading the request ------------------------------------------------------------------------


def request_tools(body: Mapping[str, Any]) -> tuple[ToolSpec, ...]:
    """Tools a request offers: Converse/Nova ``toolConfig.tools[].toolSpec`` or Anthropic
    ``tools[]`` (``input_schema``)."""
    found: list[ToolSpec] = []
    config = body.get("toolConfig")
    if isinstance(config, Mapping):
        for tool in config.get("tools") or ():
            spec = tool.get("toolSpec") if isinstance(tool, Mapping) else None
            if isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
                schema = spec.get("inputSchema")
                schema = schema.get("json") if isinstance(schema, Mapping) else None
                found.append(ToolSpec(spec["name"], schema if isinstance(schema, Mapping) else {}))
    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            if isinstance(tool, Mapping) and isinstance(tool.get("name"), str):
                schema = tool.get("input_schema")
                found.append(ToolSpec(tool["name"], schema if isinstance(schema, Mapping) else {}))
    return tuple(found)


def _choice(body: Mapping[str, Any]) -> tuple[str, Optional[str]]:
    config = body.get("toolConfig")
    raw = config.get("toolChoice") if isinstance(config, Mapping) else None
    if isinstance(raw, Mapping):  # Converse: {"auto": {}} | {"any": {}} | {"tool": {"name"}}
        if isinstance(raw.get("tool"), Mapping):
            return "tool", str(raw["tool"].get("name"))
        if "any" in raw:
            return "any", None
        return "auto", None
    raw = body.get("tool_choice")
    if isinstance(raw, Mapping):  # Anthropic: {"type": "auto" | "any" | "tool" | "none"}
        kind = raw.get("type")
        if kind == "tool":
            return "tool", str(raw.get("name"))
        if kind in ("any", "none"):
            return str(kind), None
    return "auto", None


def _blocks(message: Mapping[str, Any]) -> list[Any]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"text": content}]
    return content if isinstance(content, list) else []


def _text_of(block: Any) -> str:
    if isinstance(block, Mapping) and isinstance(block.get("text"), str):
        return str(block["text"])
    return ""


def _is_result(block: Any) -> bool:
    return isinstance(block, Mapping) and (
        "toolResult" in block or block.get("type") == "tool_result"
    )


def _called(block: Any) -> Optional[str]:
    if not isinstance(block, Mapping):
        return None
    use = block.get("toolUse")
    if isinstance(use, Mapping) and isinstance(use.get("name"), str):
        return str(use["name"])
    if block.get("type") == "tool_use" and isinstance(block.get("name"), str):
        return str(block["name"])
    return None


def _read(body: Mapping[str, Any]) -> _Conversation:
    choice, forced = _choice(body)
    messages = body.get("messages")
    messages = [m for m in messages if isinstance(m, Mapping)] if isinstance(messages, list) else []
    last_text, ends_with_result = "", False
    called: set[str] = set()
    for message in messages:
        blocks = _blocks(message)
        if message.get("role") == "user":
            text = " ".join(_text_of(b) for b in blocks if not _is_result(b)).strip()
            if text:
                last_text, called = text, set()
        else:
            called.update(name for name in map(_called, blocks) if name)
    if messages and messages[-1].get("role") == "user":
        ends_with_result = any(_is_result(b) for b in _blocks(messages[-1]))
    return _Conversation(
        request_tools(body), choice, forced, last_text, frozenset(called), ends_with_result
    )


# -- the policy ---------------------------------------------------------------------------------


def _named_at(name: str, text: str) -> Optional[int]:
    """Where ``text`` names the tool: the name as a whole word, case-insensitively."""
    match = re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE)
    return match.start() if match else None


def _pending(conversation: _Conversation) -> list[ToolSpec]:
    text = conversation.last_user_text
    named = [(at, t) for t in conversation.tools if (at := _named_at(t.name, text)) is not None]
    named.sort(key=lambda pair: pair[0])
    return [t for _at, t in named if t.name not in conversation.called_since]


def _pick(
    conversation: _Conversation, tool_use: Optional[str], tool_name: Optional[str]
) -> Optional[ToolSpec]:
    tools = conversation.tools
    if not tools or conversation.choice == "none":
        return None
    by_name = {t.name: t for t in tools}
    if conversation.choice == "tool":
        return by_name.get(conversation.forced_name or "", tools[0])
    pending = _pending(conversation)
    if conversation.choice == "any":
        if tool_name in by_name:
            return by_name[tool_name]
        if pending:
            return pending[0]
        fresh = [t for t in tools if t.name not in conversation.called_since]
        return fresh[0] if fresh else tools[0]
    if tool_use == "never":
        return None
    if tool_use == "always" and not conversation.ends_with_result:
        return by_name.get(tool_name or "", tools[0])
    return pending[0] if pending else None


def choose_tool_calls(
    body: Mapping[str, Any],
    *,
    tool_use: Optional[str] = None,
    tool_name: Optional[str] = None,
    tool_input: Optional[Mapping[str, Any]] = None,
) -> tuple[tuple[ToolCall, ...], bool]:
    """The tool calls the model makes for ``body`` (at most one) and whether the choice was
    forced (``any``/``tool``: no text precedes the call, as with the real models)."""
    conversation = _read(body)
    tool = _pick(conversation, tool_use, tool_name)
    if tool is None:
        return (), False
    arguments = dict(tool_input) if tool_input is not None else arguments_for(tool.schema)
    forced = conversation.choice in ("any", "tool")
    return (ToolCall(tool.name, arguments),), forced


# -- arguments from a JSON schema ---------------------------------------------------------------

_FORMATS: Mapping[str, str] = {
    "date": "2025-01-01",
    "date-time": "2025-01-01T00:00:00Z",
    "time": "12:00:00",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "192.0.2.1",
}


def arguments_for(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON object that validates against an object ``schema`` (``{}`` for none)."""
    value = _value(schema, schema, "value", 0)
    return value if isinstance(value, dict) else {}


def _resolve(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def _value(schema: Mapping[str, Any], root: Mapping[str, Any], name: str, depth: int) -> Any:
    if depth > 12:
        return None
    if isinstance(schema.get("$ref"), str):
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return _value({**_resolve(schema["$ref"], root), **rest}, root, name, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            usable = [o for o in options if isinstance(o, Mapping) and o.get("type") != "null"]
            return _value(usable[0] if usable else options[0], root, name, depth + 1)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            if isinstance(part, Mapping):
                part = _resolve(part["$ref"], root) if isinstance(part.get("$ref"), str) else part
                for key, item in part.items():
                    if isinstance(item, Mapping) and isinstance(merged.get(key), Mapping):
                        merged[key] = {**merged[key], **item}
                    elif isinstance(item, list) and isinstance(merged.get(key), list):
                        merged[key] = [*merged[key], *item]
                    else:
                        merged[key] = item
        return _value(merged, root, name, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        return _object(schema, root, depth)
    if kind == "array":
        items = schema.get("items")
        count = max(1, int(schema.get("minItems", 1) or 0))
        if isinstance(schema.get("maxItems"), int):
            count = min(count, schema["maxItems"])
        item_schema = items if isinstance(items, Mapping) else {}
        return [_value(item_schema, root, name, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, name)


def _object(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> dict[str, Any]:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    required = schema.get("required")
    names = (
        [n for n in required if isinstance(n, str)]
        if isinstance(required, list)
        else list(properties)
    )
    result: dict[str, Any] = {}
    for prop in names:
        sub = properties.get(prop)
        result[prop] = _value(sub if isinstance(sub, Mapping) else {}, root, prop, depth + 1)
    return result


def _number(schema: Mapping[str, Any], integer: bool) -> Any:
    low = schema.get("minimum")
    if isinstance(schema.get("exclusiveMinimum"), (int, float)) and not isinstance(
        schema.get("exclusiveMinimum"), bool
    ):
        low = schema["exclusiveMinimum"] + 1
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float = low if isinstance(low, (int, float)) else 1
    if isinstance(high, (int, float)) and value > high:
        value = high
    if integer:
        return int(value)
    return value


def _string(schema: Mapping[str, Any], name: str) -> str:
    fmt = schema.get("format")
    text = _FORMATS.get(fmt, f"example {name}") if isinstance(fmt, str) else f"example {name}"
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(text) < low:
        text = text + "x" * (low - len(text))
    if isinstance(high, int) and len(text) > high:
        text = text[:high]
    return text


# -- ids in the service's formats ---------------------------------------------------------------


def _digits(seed: str, alphabet: str, count: int) -> str:
    raw = hashlib.sha256(seed.encode("utf-8")).digest()
    return "".join(alphabet[byte % len(alphabet)] for byte in raw[:count])


def converse_tool_use_id(seed: str) -> str:
    """``tooluse_`` + 22 URL-safe base64 characters (Converse, ConverseStream)."""
    return "tooluse_" + _digits(seed, _B64URL, 22)


def anthropic_tool_use_id(seed: str) -> str:
    """``toolu_bdrk_01`` + 22 base58 characters (Anthropic Messages on Bedrock)."""
    return "toolu_bdrk_01" + _digits(seed, _B58, 22)


def nova_tool_use_id(seed: str) -> str:
    """A UUID (Nova InvokeModel)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))


def json_pieces(text: str, size: int = 12) -> Iterator[str]:
    """Split tool-input JSON into stream deltas of at most ``size`` characters."""
    for start in range(0, len(text), size):
        yield text[start : start + size]
