"""The emulator's deterministic reply: its text, stream pieces, output count and stop state.

A reply is a fixed sentence (or ``Scenario.output_text``), cut at the request's max-tokens
setting. For streams, ``Scenario.stream_events`` asks for an exact number of content deltas;
those are produced by cycling the reply's words lazily, so a stream of a million events never
exists in memory, while its output count is still known up front by arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from .tokenizer import count_text_tokens, split_pieces, truncate_to_tokens

__all__ = ["DEFAULT_REPLY", "Reply", "build_reply", "max_tokens_of"]

DEFAULT_REPLY = "This is a deterministic reply from the Bedrock emulator."

# Where each request form keeps its output limit: (path, ...) in the body.
_MAX_TOKEN_PATHS: tuple[tuple[str, ...], ...] = (
    ("max_tokens",),
    ("max_tokens_to_sample",),
    ("max_gen_len",),
    ("max_completion_tokens",),
    ("max_new_tokens",),
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


@dataclass(frozen=True)
class Reply:
    """One reply, either fixed text or ``events`` pieces cycled from ``base_pieces``."""

    base_pieces: tuple[str, ...]
    events: int
    truncated: bool
    output_tokens: int

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


def build_reply(
    request: Mapping[str, Any],
    output_text: Optional[str] = None,
    stream_events: Optional[int] = None,
) -> Reply:
    """Compute the reply for a request; ``stream_events`` overrides the max-tokens cut."""
    text = DEFAULT_REPLY if output_text is None else output_text
    truncated = False
    if stream_events is None:
        limit = max_tokens_of(request)
        if limit is not None:
            text, truncated = truncate_to_tokens(text, limit)
    base = tuple(split_pieces(text))
    if stream_events is None:
        return Reply(base, len(base), truncated, count_text_tokens(text))
    return Reply(base, stream_events, False, _cycled_tokens(base, stream_events))


def _cycled_tokens(base: tuple[str, ...], events: int) -> int:
    if not base:
        return 0
    counts = [count_text_tokens(piece) for piece in base]
    full, rest = divmod(events, len(base))
    return full * sum(counts) + sum(counts[:rest])
