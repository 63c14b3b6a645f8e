"""The emulator's deterministic reply: its text, reasoning, tool calls, output count and stop.

A reply is a fixed paragraph (``DEFAULT_REPLY``, 64 words, or its first ``Scenario.reply_words``
words, or ``Scenario.output_text``), cut at the request's max-tokens setting. For streams,
``Scenario.stream_events`` asks for an exact number of content deltas; those are produced by
cycling the reply's words lazily, so a stream of a million events never exists in memory, while
its output count is still known up front by arithmetic.

When the request offers tools, :mod:`.tools` decides whether the model calls one; a call
replaces the answer by a short preface (none when the choice was forced) and the call itself.
When the request enables reasoning, a fixed reasoning text comes first. The output count covers
all of it: text, reasoning and each call's tool name and input JSON.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from .guardrails import BLOCKED_MESSAGE
from .tokenizer import count_text_tokens, split_pieces, truncate_to_tokens
from .tools import ToolCall, choose_tool_calls

if TYPE_CHECKING:
    from .scenarios import Scenario

__all__ = [
    "DEFAULT_REPLY",
    "REASONING_TEXT",
    "Reply",
    "build_reply",
    "max_tokens_of",
    "reasoning_enabled",
]

DEFAULT_REPLY = (
    "This is a deterministic reply from the Bedrock emulator. It is long enough to stream "
    "like a real model, one word per delta, so that code reading a stream sees tens of events "
    "instead of a handful. Every word is counted by the same public rule the emulator uses for "
    "the prompt, which keeps the token counts exact and easy to check in a test."
)

REASONING_TEXT = (
    "The user wants an answer. I will think it through step by step, check what the "
    "conversation already contains, and then reply briefly."
)

# Where each request form keeps its output limit: (path, ...) in the body.
_MAX_TOKEN_PATHS: tuple[tuple[str, ...], ...] = (
    ("max_tokens",),
    ("max_tokens_to_sample",),
    ("max_gen_len",),
    ("max_completion_tokens",),
    ("max_new_tokens",),
    ("maxTokens",),
    ("textGenerationConfig", "maxTokenCount"),
    ("inferenceConfig", "max_new_tokens"),
    ("inferenceConfig", "maxTokens"),
)


def max_tokens_of(request: Mapping[str, Any]) -> Optional[int]:
    """The output limit a request sets, whatever its family's spelling; None when unset."""
    for path in _MAX_TOKEN_PATHS:
        node: Any = request
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            return int(node)
    return None


def reasoning_enabled(request: Mapping[str, Any]) -> bool:
    """Whether a request turns on reasoning: Anthropic ``thinking`` (InvokeModel body, or
    Converse ``additionalModelRequestFields``), or ``reasoningConfig`` / ``reasoning_config``."""
    sources: list[Any] = [request, request.get("additionalModelRequestFields")]
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        for key in ("thinking", "reasoningConfig", "reasoning_config"):
            value = source.get(key)
            if isinstance(value, Mapping) and value.get("type") == "enabled":
                return True
    return False


@dataclass(frozen=True)
class Reply:
    """One reply, either fixed text or ``events`` pieces cycled from ``base_pieces``, plus the
    reasoning text (or None) and the tool calls."""

    base_pieces: tuple[str, ...]
    events: int
    truncated: bool
    output_tokens: int
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: Optional[str] = None

    @property
    def uses_tools(self) -> bool:
        return bool(self.tool_calls)

    def pieces(self) -> Iterator[str]:
        """The content deltas in order; lazily generated."""
        base = self.base_pieces
        if not base:
            for _ in range(self.events):
                yield ""
            return
        size = len(base)
        spaced = tuple(" " + piece.lstrip() for piece in base)
        for index in range(self.events):
            yield base[index] if index < size else spaced[index % size]

    @property
    def text(self) -> str:
        """The whole reply (joins every piece: avoid on very long streams)."""
        return "".join(self.pieces())


def _answer_text(scenario: Optional[Scenario]) -> str:
    if scenario is not None and scenario.output_text is not None:
        return scenario.output_text
    if scenario is not None and scenario.reply_words is not None:
        words = DEFAULT_REPLY.split()
        return " ".join(words[index % len(words)] for index in range(scenario.reply_words))
    return DEFAULT_REPLY


def build_reply(
    request: Mapping[str, Any],
    scenario: Optional[Scenario] = None,
    *,
    stream: bool = False,
    tools: bool = True,
    blocked: bool = False,
) -> Reply:
    """Compute the reply for a request. ``tools`` is False for families without tool use;
    ``blocked`` when a guardrail blocked the input (the answer is its message); in streams
    ``Scenario.stream_events`` overrides the max-tokens cut."""
    if blocked:
        text = BLOCKED_MESSAGE
        if scenario is not None and scenario.output_text is not None:
            text = scenario.output_text
        base = tuple(split_pieces(text))
        return Reply(base, len(base), False, count_text_tokens(text))
    calls: tuple[ToolCall, ...] = ()
    forced = False
    if tools:
        calls, forced = choose_tool_calls(
            request,
            tool_use=scenario.tool_use if scenario is not None else None,
            tool_name=scenario.tool_name if scenario is not None else None,
            tool_input=scenario.tool_input if scenario is not None else None,
        )
    reasoning = REASONING_TEXT if reasoning_enabled(request) else None
    extra = sum(count_text_tokens(c.name) + count_text_tokens(c.input_json) for c in calls)
    if reasoning is not None:
        extra += count_text_tokens(reasoning)
    if calls:
        text = "" if forced else f"I will use the {calls[0].name} tool."
        base = tuple(split_pieces(text))
        return Reply(base, len(base), False, count_text_tokens(text) + extra, calls, reasoning)
    text = _answer_text(scenario)
    stream_events = scenario.stream_events if (stream and scenario is not None) else None
    truncated = False
    if stream_events is None:
        limit = max_tokens_of(request)
        if limit is not None:
            text, truncated = truncate_to_tokens(text, limit)
    base = tuple(split_pieces(text))
    if stream_events is None:
        return Reply(base, len(base), truncated, count_text_tokens(text) + extra, (), reasoning)
    tokens = _cycled_tokens(base, stream_events) + extra
    return Reply(base, stream_events, False, tokens, (), reasoning)


def _cycled_tokens(base: tuple[str, ...], events: int) -> int:
    if not base:
        return 0
    counts = [count_text_tokens(piece) for piece in base]
    full, rest = divmod(events, len(base))
    return full * sum(counts) + sum(counts[:rest])
