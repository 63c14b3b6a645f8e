"""Opt-in prompt and completion capture (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``).

Nothing here runs unless the user opted in. Messages follow the convention's JSON shape
(``[{"role": ..., "parts": [{"type": "text", "content": ...}]}]``). A value longer than
``content_max_length`` is cut by message parts, never mid-JSON: whole messages and parts are
kept while they fit, the text part that does not fit is shortened, and the last element kept
carries ``"truncated": true`` (the schemas allow extra properties), so every captured value
parses and says when it is incomplete.

``Capture`` holds the choices made at ``instrument()`` time (limit, span and/or event, the
convention's schema) and emits the ``gen_ai.client.inference.operation.details`` event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Optional

from opentelemetry.trace import Span

from . import names

_logger = logging.getLogger(__name__)

_Parts = list[dict[str, Any]]
TRUNCATED: dict[str, Any] = {"truncated": True}


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _generic(kind: str, generic_type: Optional[str]) -> dict[str, Any]:
    if generic_type is None:
        return {"type": kind}
    return {"type": generic_type, "generic_type": kind}


def _tool_call(block: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    """A tool call request (Converse ``toolUse``, Anthropic ``tool_use``) as a schema part."""
    use = block.get("toolUse")
    if isinstance(use, Mapping):
        return {"type": "tool_call", "id": use.get("toolUseId"), "name": use.get("name"),
                "arguments": use.get("input")}
    if block.get("type") == "tool_use":
        return {"type": "tool_call", "id": block.get("id"), "name": block.get("name"),
                "arguments": block.get("input")}
    return None


def _tool_result(block: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    result = block.get("toolResult")
    if isinstance(result, Mapping):
        return {"type": "tool_call_response", "id": result.get("toolUseId"),
                "response": result.get("content")}
    if block.get("type") == "tool_result":
        return {"type": "tool_call_response", "id": block.get("tool_use_id"),
                "response": block.get("content")}
    return None


def _parts(content: Any, generic_type: Optional[str] = None) -> _Parts:
    """Parts of a message's content in any of the Bedrock shapes: text, tool calls and tool
    results as the schema has them, other blocks by their type only (no bytes)."""
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: _Parts = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                parts.append({"type": "text", "content": block})
            elif isinstance(block, Mapping):
                text = block.get("text")
                if isinstance(text, str):
                    parts.append({"type": "text", "content": text})
                    continue
                part = _tool_call(block) or _tool_result(block)
                if part is not None:
                    parts.append(part)
                    continue
                kind = block.get("type")
                if not isinstance(kind, str):
                    kind = next((k for k in block if isinstance(k, str)), "unknown")
                parts.append(_generic(kind, generic_type))
    return parts


def _messages(messages: Any, generic_type: Optional[str] = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, Mapping):
                role = message.get("role")
                out.append({
                    "role": role if isinstance(role, str) else "user",
                    "parts": _parts(message.get("content"), generic_type),
                })
    return out


def _tools(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Tool definitions of a Converse ``toolConfig`` or an InvokeModel body's ``tools``."""
    tools: list[dict[str, Any]] = []
    config = request.get("toolConfig")
    found = config.get("tools") if isinstance(config, Mapping) else request.get("tools")
    if not isinstance(found, list):
        return tools
    for tool in found:
        if not isinstance(tool, Mapping):
            continue
        spec = tool.get("toolSpec", tool)
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            continue
        definition: dict[str, Any] = {"type": "function", "name": spec["name"]}
        if isinstance(spec.get("description"), str):
            definition["description"] = spec["description"]
        schema = spec.get("inputSchema", spec.get("input_schema"))
        if isinstance(schema, Mapping) and "json" in schema:
            schema = schema["json"]
        if schema is not None:
            definition["parameters"] = schema
        tools.append(definition)
    return tools


# -- truncation ---------------------------------------------------------------------------------
def _cut_text(part: dict[str, Any], room: int) -> Optional[dict[str, Any]]:
    """The longest prefix of a text part whose JSON takes at most ``room`` characters."""
    text = part.get("content")
    if part.get("type") != "text" or not isinstance(text, str):
        return None
    low, high = 0, len(text)
    best: Optional[dict[str, Any]] = None
    while low <= high:  # escaping makes the length non-linear in the prefix: search it
        mid = (low + high) // 2
        candidate = {**part, "content": text[:mid]}
        if len(_dump(candidate)) <= room:
            best, low = candidate, mid + 1
        else:
            high = mid - 1
    return best if best is not None and best["content"] else None


_TRUNCATED_SUFFIX = ',"truncated":true'


def fit_parts(parts: list[dict[str, Any]], limit: int) -> Optional[str]:
    """A JSON list of parts (or tool definitions) in at most ``limit`` characters; None if not
    even one element can be kept."""
    full = _dump(parts)
    if len(full) <= limit:
        return full
    kept: list[dict[str, Any]] = []
    used = 2  # the brackets
    for part in parts:
        comma = 1 if kept else 0
        marked = {**part, **TRUNCATED}
        size = len(_dump(marked)) + comma
        if used + size > limit:
            cut = _cut_text(marked, limit - used - comma)
            if cut is not None:
                kept.append(cut)
                return _dump(kept)
            break
        kept.append(part)
        used += size - len(_TRUNCATED_SUFFIX)
    if not kept:
        return None
    kept[-1] = {**kept[-1], **TRUNCATED}  # it fitted with the mark
    return _dump(kept)


def fit_messages(messages: list[dict[str, Any]], limit: int) -> Optional[str]:
    """A JSON message list in at most ``limit`` characters, cut by parts; None if not even the
    first message's role fits."""
    full = _dump(messages)
    if len(full) <= limit:
        return full
    kept: list[dict[str, Any]] = []
    used = 2
    for message in messages:
        shell = {k: v for k, v in message.items() if k != "parts"}
        current: dict[str, Any] = {**shell, "parts": [], **TRUNCATED}
        size = len(_dump(current)) + (1 if kept else 0)
        if used + size > limit:
            break
        kept.append(current)
        used += size
        for part in message.get("parts", ()):
            part_size = len(_dump(part)) + (1 if current["parts"] else 0)
            if used + part_size <= limit:
                current["parts"].append(part)
                used += part_size
                continue
            cut = _cut_text(part, limit - used - (1 if current["parts"] else 0))
            if cut is not None:
                current["parts"].append(cut)
            return _dump(kept)  # the current message keeps its "truncated" mark
        # the whole message fits: the mark moves on to the last message kept
        del current["truncated"]
        used -= len(_TRUNCATED_SUFFIX)
    if not kept:
        return None
    kept[-1]["truncated"] = True
    return _dump(kept)


def finish_reason(raw: str) -> str:
    """Bedrock's raw finish reason as the schema's enum value (unknown ones as sent)."""
    return names.FINISH_REASON_ENUM.get(raw.lower(), raw)


class Capture:
    """What content capture was asked for, decided once at ``instrument()`` time."""

    __slots__ = ("_event_logger", "_generic", "_schema", "limit", "on_event", "on_span")

    def __init__(
        self, limit: int, on_span: bool, on_event: bool, schema: names.Schema,
        event_logger: Any = None,
    ) -> None:
        self.limit = limit
        self.on_span = on_span
        self.on_event = on_event and event_logger is not None
        self._schema = schema
        self._generic = schema.generic_part_type
        self._event_logger = event_logger

    # -- attributes (JSON strings) ---------------------------------------------------------------
    def input_attributes(self, request: Any) -> dict[str, str]:
        """``gen_ai.input.messages``, ``gen_ai.system_instructions`` and
        ``gen_ai.tool.definitions`` from a Converse request or an InvokeModel body."""
        return input_attributes(request, self.limit, self._generic)

    def output_attributes(
        self, text: Optional[str], finish_reasons: Optional[tuple[str, ...]]
    ) -> dict[str, str]:
        return output_attributes(
            text, finish_reasons, self.limit, self._schema.finish_reason_in_messages
        )

    def collector(self) -> TextCollector:
        return TextCollector(self.limit, self)

    # -- the event -------------------------------------------------------------------------------
    def emit_event(self, span: Span, attributes: Mapping[str, Any]) -> None:
        """The content event, in the context of the call's span (for streams, no longer the
        current one), with the content as structured values rather than JSON strings."""
        from opentelemetry import trace

        try:
            from opentelemetry._logs import LogRecord

            attrs: dict[str, Any] = {}
            for key, value in attributes.items():
                if key in names.CONTENT_ATTRIBUTES and isinstance(value, str):
                    attrs[key] = json.loads(value)
                else:
                    attrs[key] = list(value) if isinstance(value, tuple) else value
            context = trace.set_span_in_context(span)
            try:
                record = LogRecord(event_name=names.EVENT_INFERENCE_DETAILS, context=context,
                                   attributes=attrs)
            except TypeError:  # an API before event_name: the attribute it replaced
                attrs["event.name"] = names.EVENT_INFERENCE_DETAILS
                ctx = span.get_span_context()
                record = LogRecord(trace_id=ctx.trace_id, span_id=ctx.span_id,
                                   trace_flags=ctx.trace_flags, attributes=attrs)
            self._event_logger.emit(record)
        except Exception:
            _logger.debug("bedrock-tokens: could not emit the content event", exc_info=True)


def input_attributes(
    request: Any, limit: int, generic_type: Optional[str] = None
) -> dict[str, str]:
    """``gen_ai.input.messages``, ``gen_ai.system_instructions`` and ``gen_ai.tool.definitions``
    from a Converse request or an InvokeModel body (messages, prompt or inputText shapes)."""
    attrs: dict[str, str] = {}
    if not isinstance(request, Mapping):
        return attrs
    messages = _messages(request.get("messages"), generic_type)
    if not messages:
        for key in ("prompt", "inputText", "message"):
            text = request.get(key)
            if isinstance(text, str):
                messages = [{"role": "user", "parts": [{"type": "text", "content": text}]}]
                break
    if messages:
        fitted = fit_messages(messages, limit)
        if fitted is not None:
            attrs[names.GEN_AI_INPUT_MESSAGES] = fitted
    system = request.get("system")
    if system is not None:
        # system instructions hold text parts only (main, #257)
        parts = [p for p in _parts(system, generic_type) if p.get("type") == "text"]
        fitted = fit_parts(parts, limit) if parts else None
        if fitted is not None:
            attrs[names.GEN_AI_SYSTEM_INSTRUCTIONS] = fitted
    tools = _tools(request)
    if tools:
        fitted = fit_parts(tools, limit)
        if fitted is not None:
            attrs[names.GEN_AI_TOOL_DEFINITIONS] = fitted
    return attrs


# Where each response shape keeps the reply text (InvokeModel bodies and Converse output).
_TEXT_PATHS: tuple[tuple[str, ...], ...] = (
    ("output", "message", "content"),  # Converse, Nova
    ("content",),  # Anthropic messages
    ("completion",),  # Anthropic legacy
    ("results",),  # Titan: [{outputText}]
    ("generation",),  # Llama
    ("generations",),  # Cohere
    ("text",),  # Cohere Command R
    ("outputs",),  # Mistral
    ("choices",),  # OpenAI, Jamba, DeepSeek
)


def _text_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    texts: list[str] = []
    if isinstance(value, list):
        for item in value:
            texts.extend(_text_of(item))
    elif isinstance(value, Mapping):
        for key in ("text", "outputText", "content"):
            if key in value:
                texts.extend(_text_of(value[key]))
                break
        else:
            message = value.get("message")
            if message is not None:
                texts.extend(_text_of(message))
    return texts


def reply_text(body: Any) -> Optional[str]:
    if not isinstance(body, Mapping):
        return None
    for path in _TEXT_PATHS:
        value: Any = body
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is not None:
            texts = _text_of(value)
            if texts:
                return "".join(texts)
    return None


def output_attributes(
    text: Optional[str],
    finish_reasons: Optional[tuple[str, ...]],
    limit: int,
    with_finish_reason: bool = True,
) -> dict[str, str]:
    """``gen_ai.output.messages``: the reply, with the finish reason as the schema's enum
    (the raw values stay in ``gen_ai.response.finish_reasons``)."""
    if text is None:
        return {}
    message: dict[str, Any] = {
        "role": "assistant",
        "parts": [{"type": "text", "content": text}],
    }
    if with_finish_reason and finish_reasons:
        message["finish_reason"] = finish_reason(finish_reasons[0])
    fitted = fit_messages([message], limit)
    return {names.GEN_AI_OUTPUT_MESSAGES: fitted} if fitted is not None else {}


class TextCollector:
    """Collects streamed reply text in a list, joined once, capped: never ``str +=``."""

    __slots__ = ("_capture", "_length", "_parts", "failed", "limit")

    def __init__(self, limit: int, capture: Optional[Capture] = None) -> None:
        self._parts: list[str] = []
        self._length = 0
        self.limit = limit
        self._capture = capture
        self.failed = False  # the stream ended in an error: the message's finish is "error"

    def add(self, text: Any) -> None:
        if isinstance(text, str) and self._length < self.limit:
            self._parts.append(text)
            self._length += len(text)

    def text(self) -> Optional[str]:
        return "".join(self._parts)[: self.limit] if self._parts else None

    def output_attributes(self, finish_reasons: Optional[tuple[str, ...]]) -> dict[str, str]:
        if self.failed:
            finish_reasons = ("error",)
        if self._capture is not None:
            return self._capture.output_attributes(self.text(), finish_reasons)
        return output_attributes(self.text(), finish_reasons, self.limit)


def stream_delta_text(event: Any) -> Any:
    """Reply text carried by one parsed stream chunk or ConverseStream event, if any."""
    if not isinstance(event, Mapping):
        return None
    delta = event.get("contentBlockDelta") or event
    inner = delta.get("delta") if isinstance(delta, Mapping) else None
    if isinstance(inner, Mapping):
        return inner.get("text")
    for key in ("completion", "outputText", "generation", "text"):
        value = event.get(key)
        if isinstance(value, str):
            return value
    texts = _text_of(event.get("outputs") or event.get("choices"))
    return "".join(texts) if texts else None
