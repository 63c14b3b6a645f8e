"""Converse and ConverseStream responses: one shape for every model family.

Converse is Bedrock's uniform API, so the family only matters for whether caching is honoured.
``usage.inputTokens`` excludes cached tokens, ``totalTokens`` includes them, and the cache fields
appear when the request asked for caching (a ``cachePoint``) on a cache-capable model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Optional

from .families import Number, Turn
from .tokenizer import split_pieces
from .tools import converse_tool_use_id, json_pieces

__all__ = ["converse_body", "converse_events", "converse_metadata"]


def _stop_reason(turn: Turn) -> str:
    if turn.reply.tool_calls:
        return "tool_use"
    if turn.intervened:
        return "guardrail_intervened"
    return "max_tokens" if turn.reply.truncated else "end_turn"


def _cited_document(turn: Turn) -> Optional[tuple[int, str, str]]:
    """``(document index, name, text)`` of the first document of the last user message with
    ``citations.enabled``, or None: the answer then cites it."""
    messages = turn.body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return None
    documents = [
        block["document"]
        for block in messages[-1].get("content") or ()
        if isinstance(block, dict) and isinstance(block.get("document"), dict)
    ]
    for index, document in enumerate(documents):
        citations = document.get("citations")
        if isinstance(citations, dict) and citations.get("enabled") is True:
            source = document.get("source")
            text = source.get("text") if isinstance(source, dict) else None
            return index, str(document.get("name", "")), text if isinstance(text, str) else ""
    return None


def _citation(turn: Turn, cited: tuple[int, str, str]) -> dict[str, Any]:
    index, name, text = cited
    quoted = text[:80]
    location = {"documentChar": {"documentIndex": index, "start": 0, "end": len(quoted)}}
    return {"title": name, "sourceContent": [{"text": quoted}], "location": location}


def _content(turn: Turn) -> list[dict[str, Any]]:
    reply = turn.reply
    content: list[dict[str, Any]] = []
    if reply.reasoning is not None:
        text = {"text": reply.reasoning, "signature": turn.reasoning_signature}
        content.append({"reasoningContent": {"reasoningText": text}})
    cited = _cited_document(turn)
    if cited is not None and not reply.tool_calls:
        block = {"content": [{"text": reply.text}], "citations": [_citation(turn, cited)]}
        content.append({"citationsContent": block})
    elif reply.events or not reply.tool_calls:
        content.append({"text": reply.text})
    for index, call in enumerate(reply.tool_calls):
        use = {
            "toolUseId": converse_tool_use_id(f"{turn.request_id}/tool/{index}"),
            "name": call.name,
            "input": dict(call.input),
        }
        content.append({"toolUse": use})
    return content


def _usage(turn: Turn) -> dict[str, Number]:
    out = turn.reply.output_tokens
    usage: dict[str, Number] = {
        "inputTokens": turn.n(turn.input_tokens),
        "outputTokens": turn.n(out),
        "totalTokens": turn.n(turn.total_input + out),
    }
    if turn.cache_reported:
        usage["cacheReadInputTokens"] = turn.n(turn.cache_read)
        usage["cacheWriteInputTokens"] = turn.n(turn.cache_write)
        ttl = turn.cache_ttl
        if turn.cache_write and ttl is not None:  # "empty if no cache creation occurred"
            usage["cacheDetails"] = [  # type: ignore[assignment]
                {"ttl": ttl, "inputTokens": turn.n(turn.cache_write)}
            ]
    return usage


def _echo(turn: Turn, target: dict[str, Any]) -> None:
    """Echo the request's performance and service-tier settings, as the service does, and
    add the guardrail trace when the request asked for one."""
    guardrail = turn.guardrail
    if guardrail is not None and guardrail.trace:
        target["trace"] = guardrail.converse_trace(*turn.guardrail_chars())
    for key in ("performanceConfig", "serviceTier"):
        value = turn.body.get(key)
        if isinstance(value, dict):
            target[key] = value


def _additional_fields(turn: Turn) -> Optional[dict[str, Any]]:
    """``additionalModelResponseFields`` for the request's ``additionalModelResponseFieldPaths``
    (JSON pointers into the model's native answer; Anthropic models have ``stop_sequence``,
    ``stop_reason``, ``model`` and ``id``). Paths that name nothing are left out."""
    paths = turn.body.get("additionalModelResponseFieldPaths")
    if not isinstance(paths, list):
        return None
    native: dict[str, Any] = {}
    if turn.family == "anthropic":
        stop = "tool_use" if turn.reply.tool_calls else turn.stop_reason
        native = {"stop_sequence": None, "stop_reason": stop, "model": turn.model_name,
                  "id": turn.uid("msg")}
    fields: dict[str, Any] = {}
    for path in paths:
        if isinstance(path, str) and path.startswith("/") and path[1:] in native:
            fields[path[1:]] = native[path[1:]]
    return fields


def converse_body(turn: Turn, latency_ms: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": _content(turn)}},
        "stopReason": _stop_reason(turn),
        "usage": _usage(turn),
        "metrics": {"latencyMs": latency_ms},
    }
    additional = _additional_fields(turn)
    if additional is not None:
        body["additionalModelResponseFields"] = additional
    _echo(turn, body)
    return body


def converse_events(turn: Turn) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(event type, payload)`` of every ConverseStream event before ``metadata``."""
    reply = turn.reply
    yield "messageStart", {"role": "assistant"}
    index = 0
    if reply.reasoning is not None:
        for piece in split_pieces(reply.reasoning):
            delta = {"reasoningContent": {"text": piece}}
            yield "contentBlockDelta", {"contentBlockIndex": index, "delta": delta}
        signature = {"reasoningContent": {"signature": turn.reasoning_signature}}
        yield "contentBlockDelta", {"contentBlockIndex": index, "delta": signature}
        yield "contentBlockStop", {"contentBlockIndex": index}
        index += 1
    if reply.events or not reply.tool_calls:
        for piece in reply.pieces():
            yield "contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece}}
        cited = _cited_document(turn)
        if cited is not None and not reply.tool_calls:
            delta = {"citation": _citation(turn, cited)}
            yield "contentBlockDelta", {"contentBlockIndex": index, "delta": delta}
        yield "contentBlockStop", {"contentBlockIndex": index}
        index += 1
    for number, call in enumerate(reply.tool_calls):
        tool_use_id = converse_tool_use_id(f"{turn.request_id}/tool/{number}")
        start = {"toolUse": {"toolUseId": tool_use_id, "name": call.name}}
        yield "contentBlockStart", {"contentBlockIndex": index, "start": start}
        # Claude streams the input in pieces, the first one empty; Nova in one delta (recorded)
        pieces = ("", *json_pieces(call.input_json)) if turn.family == "anthropic" else (
            call.input_json,
        )
        for piece in pieces:
            delta = {"toolUse": {"input": piece}}
            yield "contentBlockDelta", {"contentBlockIndex": index, "delta": delta}
        yield "contentBlockStop", {"contentBlockIndex": index}
        index += 1
    stop: dict[str, Any] = {"stopReason": _stop_reason(turn)}
    additional = _additional_fields(turn)
    if additional is not None:
        stop["additionalModelResponseFields"] = additional
    yield "messageStop", stop


def converse_metadata(turn: Turn, latency_ms: int) -> dict[str, Any]:
    """The final ``metadata`` event: the only place a ConverseStream carries counts."""
    metadata: dict[str, Any] = {"usage": _usage(turn), "metrics": {"latencyMs": latency_ms}}
    _echo(turn, metadata)
    return metadata
