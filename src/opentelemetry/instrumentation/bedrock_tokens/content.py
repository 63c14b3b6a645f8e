"""Opt-in prompt and completion capture (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``).

Nothing here runs unless the user opted in. Messages follow the convention's JSON shape
(``[{"role": ..., "parts": [{"type": "text", "content": ...}]}]``) and every attribute is cut
to ``content_max_length`` characters, so a huge prompt cannot blow up a span.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Optional

from . import names

_Parts = list[dict[str, Any]]


def _parts(content: Any) -> _Parts:
    """Text parts of a message's content in any of the Bedrock shapes; other parts by type."""
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
                else:
                    kind = block.get("type")
                    if not isinstance(kind, str):
                        kind = next((k for k in block if isinstance(k, str)), "unknown")
                    parts.append({"type": kind})
    return parts


def _messages(messages: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, Mapping):
                role = message.get("role")
                out.append({
                    "role": role if isinstance(role, str) else "user",
                    "parts": _parts(message.get("content")),
                })
    return out


def _cap(value: Any, limit: int) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit]


def input_attributes(request: Any, limit: int) -> dict[str, str]:
    """``gen_ai.input.messages`` and ``gen_ai.system_instructions`` from a Converse request or
    an InvokeModel body (messages, prompt or inputText shapes)."""
    attrs: dict[str, str] = {}
    if not isinstance(request, Mapping):
        return attrs
    messages = _messages(request.get("messages"))
    if not messages:
        for key in ("prompt", "inputText", "message"):
            text = request.get(key)
            if isinstance(text, str):
                messages = [{"role": "user", "parts": [{"type": "text", "content": text}]}]
                break
    if messages:
        attrs[names.GEN_AI_INPUT_MESSAGES] = _cap(messages, limit)
    system = request.get("system")
    if system is not None:
        parts = _parts(system)
        if parts:
            attrs[names.GEN_AI_SYSTEM_INSTRUCTIONS] = _cap(parts, limit)
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
    text: Optional[str], finish_reasons: Optional[tuple[str, ...]], limit: int
) -> dict[str, str]:
    if text is None:
        return {}
    message: dict[str, Any] = {
        "role": "assistant",
        "parts": [{"type": "text", "content": text}],
    }
    if finish_reasons:
        message["finish_reason"] = finish_reasons[0]
    return {names.GEN_AI_OUTPUT_MESSAGES: _cap([message], limit)}


class TextCollector:
    """Collects streamed reply text in a list, joined once, capped: never ``str +=``."""

    __slots__ = ("_length", "_parts", "limit")

    def __init__(self, limit: int) -> None:
        self._parts: list[str] = []
        self._length = 0
        self.limit = limit

    def add(self, text: Any) -> None:
        if isinstance(text, str) and self._length < self.limit:
            self._parts.append(text)
            self._length += len(text)

    def text(self) -> Optional[str]:
        return "".join(self._parts)[: self.limit] if self._parts else None


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
