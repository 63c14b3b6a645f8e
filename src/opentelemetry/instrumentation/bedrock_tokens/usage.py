"""The ``Usage`` value and the source-independent extractors (headers, Converse usage,
stream ``invocationMetrics``). Family-specific body shapes live in ``families``.

Counts are exact or absent: ``to_count`` accepts only non-negative integral values (``28.0``
from a Titan body is 28, ``28.5`` or ``-1`` or ``"abc"`` is nothing), so a bad value can never
become a wrong number. Absence is ``None``; ``0`` is a real count.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple, Optional

from . import names

_MAX_COUNT = 2**63 - 1  # OpenTelemetry int attributes are 64-bit


# Above 2**53 a float no longer tells which integer was sent: 2**53 + 1 reads as 2**53.
_MAX_EXACT_FLOAT = 2**53
# What the service sends as a count: ASCII digits, or (float counts) digits, ".", digits.
# No sign, no exponent ("1e3"), no "_", no other digits: anything else is not a count.
_COUNT_TEXT = re.compile(r"([0-9]+)(?:\.([0-9]+))?", re.ASCII)


def to_count(value: Any) -> Optional[int]:
    """An exact, non-negative token count from a header string or a JSON number, else None."""
    kind = type(value)
    if kind is int:  # the usual JSON count (bool, an int subclass, is not one)
        return value if 0 <= value <= _MAX_COUNT else None
    if kind is str and value.isascii() and value.isdigit():  # the usual header: plain digits
        count = int(value)
        return count if count <= _MAX_COUNT else None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= _MAX_COUNT else None
    if isinstance(value, float):
        if math.isfinite(value) and 0 <= value <= _MAX_EXACT_FLOAT and value.is_integer():
            return int(value)
        return None
    if isinstance(value, (str, bytes)):
        text = value.strip() if isinstance(value, str) else value.strip().decode("ascii", "replace")
        found = _COUNT_TEXT.fullmatch(text)
        if found is None:
            return None
        whole, fraction = found.groups()
        count = int(whole)
        if fraction is not None and (
            fraction.strip("0") or count > _MAX_EXACT_FLOAT  # 12.0000000000000001, 2**53+1.0
        ):
            return None
        return count if count <= _MAX_COUNT else None
    return None


class Usage(NamedTuple):
    """Token counts of one call. ``input`` is Bedrock's own count, which excludes cached
    tokens; ``total_input`` is set only where the service reports an all-inclusive figure."""

    input: Optional[int]
    output: Optional[int]
    cache_read: Optional[int]
    cache_write: Optional[int]
    source: str
    total_input: Optional[int] = None

    @property
    def empty(self) -> bool:
        return self.input is None and self.output is None and self.cache_read is None and (
            self.cache_write is None
        )

    def semconv_input(self) -> Optional[int]:
        """``gen_ai.usage.input_tokens``: all input tokens, cached ones included."""
        if self.total_input is not None:
            return self.total_input
        if self.input is None:
            return None
        total = self.input + (self.cache_read or 0) + (self.cache_write or 0)
        return total if total <= _MAX_COUNT else None


def merge(primary: Optional[Usage], fallback: Optional[Usage]) -> Optional[Usage]:
    """Field by field, the more trusted source wins; the other fills what it lacks."""
    if primary is None or primary.empty:
        return fallback if fallback is not None and not fallback.empty else primary
    if fallback is None or fallback.empty:
        return primary
    return Usage(
        primary.input if primary.input is not None else fallback.input,
        primary.output if primary.output is not None else fallback.output,
        primary.cache_read if primary.cache_read is not None else fallback.cache_read,
        primary.cache_write if primary.cache_write is not None else fallback.cache_write,
        primary.source,
        primary.total_input if primary.input is not None else fallback.total_input,
    )


def from_headers(headers: Mapping[str, str]) -> Optional[Usage]:
    """InvokeModel's ``x-amzn-bedrock-*-token-count`` headers (botocore lower-cases keys)."""
    usage = Usage(
        to_count(headers.get(names.H_INPUT_TOKENS)),
        to_count(headers.get(names.H_OUTPUT_TOKENS)),
        to_count(headers.get(names.H_CACHE_READ)),
        to_count(headers.get(names.H_CACHE_WRITE)),
        "headers",
    )
    return None if usage.empty else usage


def from_converse(usage: Any, source: str = "converse") -> Optional[Usage]:
    """Converse ``usage`` / ConverseStream ``metadata.usage`` (TokenUsage shape)."""
    if not isinstance(usage, Mapping):
        return None
    inp = to_count(usage.get("inputTokens"))
    out = to_count(usage.get("outputTokens"))
    read = to_count(usage.get("cacheReadInputTokens"))
    write = to_count(usage.get("cacheWriteInputTokens"))
    total = to_count(usage.get("totalTokens"))
    total_input = None
    # totalTokens includes the cached tokens, so total - output is the all-inclusive input. It is
    # also right for models whose inputTokens already include cache writes (seen in the field),
    # where adding the cache counts again would over-count. Used only when consistent.
    if total is not None and out is not None and inp is not None and total - out >= inp:
        total_input = total - out
    result = Usage(inp, out, read, write, source, total_input)
    return None if result.empty else result


def from_invocation_metrics(metrics: Any) -> Optional[Usage]:
    """The ``amazon-bedrock-invocationMetrics`` object of a stream's last chunk."""
    if not isinstance(metrics, Mapping):
        return None
    result = Usage(
        to_count(metrics.get("inputTokenCount")),
        to_count(metrics.get("outputTokenCount")),
        to_count(metrics.get("cacheReadInputTokenCount")),
        to_count(metrics.get("cacheWriteInputTokenCount")),
        "invocation_metrics",
    )
    return None if result.empty else result
