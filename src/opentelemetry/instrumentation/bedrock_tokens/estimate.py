"""Estimates for calls whose response carries no token counts at all.

Some models report nothing (image models, Cohere Rerank, a family without body usage when the
headers are missing). The usual advice for them is an approximate tokenizer; this is its home:

* ``instrument(estimator=callable)``: ``callable(model_id, prompt_text, reply_text)`` returns
  ``(input_tokens, output_tokens)``, either of them None;
* or ``OTEL_INSTRUMENTATION_BEDROCK_TOKENS_ESTIMATOR_TOKENIZER``: a tokenizer JSON file the
  user supplies, loaded with the ``tokenizers`` package if it is installed (it is optional;
  without it the setting is reported once and ignored).

An estimate is labelled as one, always: it goes to ``aws.bedrock.usage.estimated_*_tokens``,
never to ``gen_ai.usage.*`` or the token metric, and it is used only where neither headers nor
body gave a count. Text is handed to the user's own code in-process and never recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Callable, NamedTuple, Optional

from .usage import to_count

_logger = logging.getLogger(__name__)

Estimator = Callable[[str, Optional[str], Optional[str]], Any]

# Keys under which request and response bodies of the known families carry text; keys that
# hold binary data (base64 images, documents) are never walked.
_TEXT_KEYS = frozenset({
    "text", "prompt", "inputText", "content", "system", "messages", "message", "query",
    "documents", "texts", "outputText", "generation", "completion", "output", "outputs",
    "results", "generations", "choices", "textToImageParams", "negativeText",
    "text_prompts", "negative_prompt",
})
_BINARY_KEYS = frozenset({"bytes", "image", "images", "source", "base64", "artifacts", "data"})
_MAX_TEXT = 1 << 20  # characters handed to an estimator, at most


class Estimated(NamedTuple):
    input: Optional[int]
    output: Optional[int]

    @property
    def empty(self) -> bool:
        return self.input is None and self.output is None


def text_of(body: Any) -> Optional[str]:
    """The text of a request or response body (any family, Converse included), joined."""
    parts: list[str] = []
    size = 0

    def walk(value: Any, depth: int) -> None:
        nonlocal size
        if size >= _MAX_TEXT or depth > 32:
            return
        if isinstance(value, str):
            parts.append(value)
            size += len(value)
        elif isinstance(value, list):
            for item in value:
                walk(item, depth + 1)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if key in _TEXT_KEYS and key not in _BINARY_KEYS:
                    walk(item, depth + 1)

    walk(body, 0)
    return "\n".join(parts)[:_MAX_TEXT] if parts else None


class TokenizerEstimator:
    """Counts with a ``tokenizers`` tokenizer file (an approximation for any other model)."""

    def __init__(self, path: str) -> None:
        from tokenizers import Tokenizer  # optional dependency; ImportError is the caller's

        self.path = path
        self._tokenizer = Tokenizer.from_file(path)

    def count(self, text: Optional[str]) -> Optional[int]:
        if text is None:
            return None
        return len(self._tokenizer.encode(text).ids)

    def __call__(
        self, model_id: str, prompt: Optional[str], reply: Optional[str]
    ) -> tuple[Optional[int], Optional[int]]:
        return self.count(prompt), self.count(reply)


def load_estimator(
    option: Optional[Estimator], tokenizer_path: Optional[str]
) -> Optional[Estimator]:
    """``instrument(estimator=...)`` (config checked it is callable) wins; else a tokenizer
    file. Never raises: a file that cannot be used is one warning and no estimator."""
    if option is not None:
        return option
    if not tokenizer_path:
        return None
    try:
        return TokenizerEstimator(tokenizer_path)
    except ImportError:
        _logger.warning(
            "bedrock-tokens: a tokenizer file is set (%s) but the 'tokenizers' package is not "
            "installed; no estimates.", tokenizer_path,
        )
    except Exception as exc:
        _logger.warning(
            "bedrock-tokens: cannot load the tokenizer file %s (%s: %s); no estimates.",
            tokenizer_path, type(exc).__name__, exc,
        )
    return None


def run(
    estimator: Estimator, model_id: str, request_body: Any, response_body: Any
) -> Optional[Estimated]:
    """Ask the estimator; its result goes through ``to_count`` like any count, and its
    failure is logged, never raised."""
    try:
        result = estimator(model_id, text_of(request_body), text_of(response_body))
    except Exception:
        _logger.debug("bedrock-tokens: the estimator failed", exc_info=True)
        return None
    if not isinstance(result, Sequence) or isinstance(result, (str, bytes)) or len(result) != 2:
        _logger.debug("bedrock-tokens: the estimator returned %r, not a pair", type(result))
        return None
    found = Estimated(to_count(result[0]), to_count(result[1]))
    return None if found.empty else found
