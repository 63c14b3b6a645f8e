"""A deterministic stand-in tokenizer and the rule that says which request text is counted.

Real models tokenize with private vocabularies, so no local count can match Bedrock's. The
emulator instead uses one public, trivial rule that a test can reproduce by hand: a token is a
run of word characters or a single other non-space character (``\\w+|[^\\w\\s]``). What matters
for an instrumentation test is that every place the emulator reports a count (headers, body
usage, stream metrics, CountTokens) agrees with this rule, not that the rule resembles BPE.

The second half of the module walks a request body and yields its text in a fixed order,
interleaved with the prompt-cache points the request sets. The same walk serves InvokeModel
bodies of every family, Converse requests and both CountTokens input forms, which is what makes
CountTokens agree with the later invocation.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Union

__all__ = [
    "TOKEN_PATTERN",
    "CachePoint",
    "Segment",
    "TextPlan",
    "count_text_tokens",
    "plan_converse",
    "plan_invoke_body",
    "split_pieces",
    "truncate_to_tokens",
]

TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")
_PIECE_PATTERN = re.compile(r"\s*\S+")


def count_text_tokens(text: str) -> int:
    """Return the emulator's token count of ``text``: matches of ``\\w+|[^\\w\\s]``.

    Counts are additive over any split made at whitespace, so the sum over stream deltas
    always equals the count of the whole reply.
    """
    return sum(1 for _ in TOKEN_PATTERN.finditer(text))


def truncate_to_tokens(text: str, max_tokens: int) -> tuple[str, bool]:
    """Cut ``text`` after its ``max_tokens``-th token; say whether anything was cut."""
    if max_tokens <= 0:
        return "", bool(TOKEN_PATTERN.search(text))
    for index, match in enumerate(TOKEN_PATTERN.finditer(text), start=1):
        if index == max_tokens:
            rest = text[match.end() :]
            return text[: match.end()], TOKEN_PATTERN.search(rest) is not None
    return text, False


def split_pieces(text: str) -> list[str]:
    """Split a reply into stream deltas, each a word with its leading whitespace."""
    return _PIECE_PATTERN.findall(text)


@dataclass(frozen=True)
class CachePoint:
    """End of a cacheable prefix (Converse ``cachePoint``, Anthropic ``cache_control``)."""


@dataclass(frozen=True)
class Section:
    """Start of a top-level request part (``system``, ``messages``...): enters the prefix
    digest, so the same text in another part is another prefix. Counts nothing."""

    name: str


Segment = Union[str, CachePoint, Section]

# Keys whose values are structure, identifiers or binary data, never prompt text.
_SKIP_KEYS = frozenset(
    {
        "role",
        "type",
        "id",
        "toolUseId",
        "tool_use_id",
        "tool_call_id",
        "status",
        "format",
        "media_type",
        "mediaType",
        "source",
        "bytes",
        "data",
        "image",
        "image_url",
        "video",
        "signature",
        "redactedContent",
        "cache_control",
        "cachePoint",
        "ttl",
    }
)

# Top-level request keys that carry prompt text, in the order a model sees them (tools first,
# then system, then the conversation), which is also the order cache prefixes follow.
_INVOKE_TEXT_KEYS = (
    "tools",
    "toolConfig",
    "system",
    "preamble",
    "documents",
    "chat_history",
    "messages",
    "message",
    "prompt",
    "inputText",
    "texts",
)
_CONVERSE_TEXT_KEYS = ("toolConfig", "system", "messages", "promptVariables")


def _walk(value: Any) -> Iterator[Segment]:
    """Yield the string leaves of ``value`` in document order, and cache points where set."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, Mapping):
        if "cachePoint" in value:
            yield CachePoint()
        for key, item in value.items():
            if key not in _SKIP_KEYS:
                yield from _walk(item)
        if isinstance(value.get("cache_control"), Mapping):
            yield CachePoint()


@dataclass(frozen=True)
class TextPlan:
    """The countable text of a request: token counts per segment and the cache prefixes.

    ``prefixes`` holds, for each cache point in order, the prefix token count and a digest of
    the prefix text, so the prompt cache keeps fixed-size keys however long the prompt.
    """

    total_tokens: int
    prefixes: tuple[tuple[int, str], ...]


def _plan(segments: Iterator[Segment]) -> TextPlan:
    total = 0
    digest = hashlib.sha256()
    prefixes: list[tuple[int, str]] = []
    for segment in segments:
        if isinstance(segment, CachePoint):
            prefixes.append((total, digest.hexdigest()))
        elif isinstance(segment, Section):
            digest.update(b"\x01" + segment.name.encode("ascii") + b"\x01")
        else:
            total += count_text_tokens(segment)
            digest.update(segment.encode("utf-8", "surrogatepass") + b"\x00")
    return TextPlan(total, tuple(prefixes))


def plan_invoke_body(body: Mapping[str, Any]) -> TextPlan:
    """Count an InvokeModel body of any family (also CountTokens ``invokeModel.body``)."""

    def segments() -> Iterator[Segment]:
        for key in _INVOKE_TEXT_KEYS:
            if key in body:
                yield Section(key)
                yield from _walk(body[key])

    return _plan(segments())


def plan_converse(request: Mapping[str, Any]) -> TextPlan:
    """Count a Converse/ConverseStream request (also CountTokens ``converse``)."""

    def segments() -> Iterator[Segment]:
        for key in _CONVERSE_TEXT_KEYS:
            if key in request:
                yield Section(key)
                yield from _walk(request[key])

    return _plan(segments())
