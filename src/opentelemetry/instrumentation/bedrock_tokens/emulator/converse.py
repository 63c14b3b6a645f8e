"""Converse and ConverseStream responses: one shape for every model family.

Converse is Bedrock's uniform API, so the family only matters for whether caching is honoured.
``usage.inputTokens`` excludes cached tokens, ``totalTokens`` includes them, and the cache fields
appear when the request asked for caching (a ``cachePoint``) on a cache-capable model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .families import Number, Turn

__all__ = ["converse_body", "converse_events", "converse_metadata"]


def _stop_reason(turn: Turn) -> str:
    return "max_tokens" if turn.reply.truncated else "end_turn"


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
    return usage


def _echo(turn: Turn, target: dict[str, Any]) -> None:
    """Echo the request's performance and service-tier settings, as the service does."""
    for key in ("performanceConfig", "serviceTier"):
        value = turn.body.get(key)
        if isinstance(value, dict):
            target[key] = value


def converse_body(turn: Turn, latency_ms: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": [{"text": turn.reply.text}]}},
        "stopReason": _stop_reason(turn),
        "usage": _usage(turn),
        "metrics": {"latencyMs": latency_ms},
    }
    _echo(turn, body)
    return body


def converse_events(turn: Turn) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(event type, payload)`` of every ConverseStream event before ``metadata``."""
    yield "messageStart", {"role": "assistant"}
    for piece in turn.reply.pieces():
        yield "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}
    yield "contentBlockStop", {"contentBlockIndex": 0}
    yield "messageStop", {"stopReason": _stop_reason(turn)}


def converse_metadata(turn: Turn, latency_ms: int) -> dict[str, Any]:
    """The final ``metadata`` event: the only place a ConverseStream carries counts."""
    metadata: dict[str, Any] = {"usage": _usage(turn), "metrics": {"latencyMs": latency_ms}}
    _echo(turn, metadata)
    return metadata
