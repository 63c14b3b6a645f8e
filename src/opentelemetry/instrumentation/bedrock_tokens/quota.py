"""Quota burn: what a call took from the model's tokens-per-minute quota, as Bedrock counts it.

Bedrock throttles on a per-model tokens-per-minute quota that is not the token count: at the
end of a request it charges ``InputTokenCount + CacheWriteInputTokens + OutputTokenCount x
burndown rate`` (cache reads are free for the quota), and at its start it reserves the input
plus ``max_tokens``. The output burndown rate is 1 for most models and 5 for recent
Anthropic Claude models (one output token takes five tokens of quota). Sources, read
2026-12-01:

* AWS, Amazon Bedrock User Guide, "How tokens are counted in Amazon Bedrock"
  (quotas-token-burndown.html): the formula's terms, and "the burndown rate for the following
  models is 5x for output tokens": Anthropic Claude Opus 4, Claude Sonnet 4, ... (the list as
  retrieved was cut short after those two).
* AWS, aws-samples/sample-quota-dashboard-for-amazon-bedrock (``lib/bedrock-registries.ts``
  and ``lib/bedrock-registries/eu-west-2.ts``): output burndown rate 5 for Claude 3.7 Sonnet,
  Claude Sonnet 4 / 4.5 / 4.6, Claude Opus 4 / 4.1 / 4.5 / 4.6 / 4.7 and Claude Haiku 4.5;
  1 for every other model it lists (Claude 3 and 3.5, Nova, Titan, Llama, Mistral, Cohere,
  AI21, DeepSeek, Qwen, Gemma, NVIDIA, OpenAI gpt-oss, ...). Its README gives the formula and
  the reservation at request start.

A model not matched here is taken at rate 1, AWS's standard rate; a price table's
``burndown`` section (pattern -> rate) overrides or extends these.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Optional

from .models import parse_model_id
from .pricing import uncached_input
from .usage import Usage

DEFAULT_RATE = 1.0

# Base-model-id patterns with a burndown rate above 1 (sources in the module docstring).
DEFAULT_RATES: tuple[tuple[str, float], ...] = (
    ("anthropic.claude-3-7-sonnet-*", 5.0),
    ("anthropic.claude-sonnet-4*", 5.0),
    ("anthropic.claude-opus-4*", 5.0),
    ("anthropic.claude-haiku-4*", 5.0),
)


def burndown_rate(
    model: str,
    resolved: Optional[str] = None,
    overrides: Sequence[tuple[str, float]] = (),
) -> float:
    """The output burndown rate of a model: the user's table first, then the defaults."""
    candidates = [model]
    if resolved:
        candidates.append(resolved)
    base = parse_model_id(model).base_id
    if base:
        candidates.append(base)
    for table in (overrides, DEFAULT_RATES):
        for pattern, rate in table:
            if any(fnmatchcase(candidate, pattern) for candidate in candidates):
                return rate
    return DEFAULT_RATE


def quota_burn(usage: Optional[Usage], rate: float, expect_output: bool = True) -> Optional[float]:
    """Tokens of quota the call consumed; None unless every count it needs is known."""
    if usage is None or usage.empty:
        return None
    uncached = uncached_input(usage)
    if uncached is None:
        return None
    if usage.output is None and expect_output:
        return None
    return uncached + (usage.cache_write or 0) + (usage.output or 0) * rate


def quota_burn_upper_bound(
    input_tokens: Optional[int], max_tokens: Optional[int], rate: float
) -> Optional[float]:
    """The most a call can consume: its (pre-counted) input plus ``max_tokens`` output at
    the burndown rate. None without both figures: a bound from half the figures is no bound."""
    if input_tokens is None or max_tokens is None:
        return None
    return input_tokens + max_tokens * rate
