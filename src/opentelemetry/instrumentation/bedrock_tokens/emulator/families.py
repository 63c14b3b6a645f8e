"""Model families: how a model id or request body picks one, and what a response needs.

The response shapes themselves live in :mod:`.bodies` (InvokeModel) and :mod:`.chunks`
(InvokeModelWithResponseStream); :class:`Turn` carries everything they need about one request.

Family choice, in order: a registered alias or the base id inside the model id decides by vendor
and model name (Anthropic and Mistral also look at the body to tell text-completion from
messages requests); opaque ids (application inference profiles, provisioned models, ...) without
an alias fall back to the body shape (:func:`family_from_body`).
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

from .guardrails import Guardrail, text_characters
from .reply import Reply

__all__ = [
    "EMBEDDING_FAMILIES",
    "FAMILIES",
    "IMAGE_FAMILIES",
    "NON_STREAMING_FAMILIES",
    "RERANK_FAMILIES",
    "TOOL_FAMILIES",
    "Number",
    "Turn",
    "cache_capable",
    "family_for",
    "family_from_body",
]

Number = Union[int, float]

FAMILIES = (
    "anthropic",
    "anthropic-legacy",
    "titan-text",
    "titan-embed",
    "nova",
    "llama",
    "cohere-command",
    "cohere-command-r",
    "cohere-embed",
    "mistral",
    "mistral-chat",
    "jamba",
    "deepseek",
    "openai",
    "openai-completion",
    "ai21-j2",
    "cohere-rerank",
    "amazon-image",
    "stability",
    "stability-sdxl",
)
EMBEDDING_FAMILIES = frozenset({"titan-embed", "cohere-embed"})
# Families without InvokeModelWithResponseStream (answered with a 400), and the rerankers,
# which report no token counts at all (only the invocation latency header).
RERANK_FAMILIES = frozenset({"cohere-rerank"})
# Image generation (Titan Image Generator, Nova Canvas, Stability AI): no token counts at all,
# the images in the body (CloudWatch counts them as OutputImageCount).
IMAGE_FAMILIES = frozenset({"amazon-image", "stability", "stability-sdxl"})
NON_STREAMING_FAMILIES = EMBEDDING_FAMILIES | RERANK_FAMILIES | IMAGE_FAMILIES | {"ai21-j2"}
# Families whose native InvokeModel body has tools (and answers with tool calls).
TOOL_FAMILIES = frozenset({"anthropic", "nova"})

# (natural stop, stop at the max-tokens limit) per family, as each API spells them.
_STOP: Mapping[str, tuple[str, str]] = {
    "anthropic": ("end_turn", "max_tokens"),
    "anthropic-legacy": ("stop_sequence", "max_tokens"),
    "titan-text": ("FINISH", "LENGTH"),
    "nova": ("end_turn", "max_tokens"),
    "llama": ("stop", "length"),
    "cohere-command": ("COMPLETE", "MAX_TOKENS"),
    "cohere-command-r": ("COMPLETE", "MAX_TOKENS"),
    "mistral": ("stop", "length"),
    "mistral-chat": ("stop", "length"),
    "jamba": ("stop", "length"),
    "deepseek": ("stop", "length"),
    "openai": ("stop", "length"),
    "openai-completion": ("stop", "length"),
    "ai21-j2": ("endoftext", "length"),
}

# Stand-in base id for imported models and SageMaker endpoints (see modelids).
IMPORTED = "imported-model"

_OLD_CLAUDE = re.compile(r"claude-(v\d|instant|3-(haiku|sonnet|opus))")


def family_from_body(body: Mapping[str, Any]) -> Optional[str]:
    """Guess the family of an InvokeModel body whose model id names no model.

    Rules, first match wins: ``anthropic_version`` → Anthropic (messages, or legacy with
    ``prompt``); ``prompt`` + ``max_tokens_to_sample`` → legacy Anthropic; ``inputText`` →
    Titan embeddings if ``dimensions``/``normalize``/``embeddingTypes`` is present, else Titan
    text; ``texts`` → Cohere embed; ``schemaVersion`` or ``inferenceConfig`` → Nova;
    ``messages`` → Nova when content is a list of ``{"text": ...}`` blocks, else OpenAI chat;
    ``message`` → Cohere Command R; ``max_gen_len`` → Llama; ``prompt`` with Cohere's ``p``/``k``/
    ``num_generations``/``return_likelihoods`` → Cohere Command; other ``prompt`` → Llama.
    """
    if "anthropic_version" in body:
        return "anthropic" if "messages" in body else "anthropic-legacy"
    if "prompt" in body and "max_tokens_to_sample" in body:
        return "anthropic-legacy"
    if "inputText" in body:
        embed_keys = ("dimensions", "normalize", "embeddingTypes")
        return "titan-embed" if any(k in body for k in embed_keys) else "titan-text"
    if "texts" in body:
        return "cohere-embed"
    if "schemaVersion" in body or "inferenceConfig" in body:
        return "nova"
    if "messages" in body:
        return "nova" if _has_converse_blocks(body["messages"]) else "openai"
    if "message" in body:
        return "cohere-command-r"
    if "max_gen_len" in body:
        return "llama"
    if "prompt" in body:
        cohere_keys = ("p", "k", "num_generations", "return_likelihoods")
        return "cohere-command" if any(k in body for k in cohere_keys) else "llama"
    return None


def _has_converse_blocks(messages: Any) -> bool:
    if not isinstance(messages, list) or not messages:
        return False
    first = messages[0]
    content = first.get("content") if isinstance(first, Mapping) else None
    return (
        isinstance(content, list)
        and bool(content)
        and all(isinstance(b, Mapping) and "type" not in b for b in content)
    )


def family_for(base_id: Optional[str], body: Optional[Mapping[str, Any]]) -> Optional[str]:
    """The family for a base model id (``None`` → body shape), or None if unknown.

    ``body`` is the InvokeModel body, or None for Converse/CountTokens-converse requests.
    """
    if base_id is None:
        return family_from_body(body) if body is not None else None
    if base_id == IMPORTED:
        # Imported models and SageMaker endpoints answer in the OpenAI completions shape.
        return "openai-completion" if body is None or "prompt" in body else "openai"
    vendor, _, name = base_id.partition(".")
    if vendor == "anthropic":
        if body is None:
            legacy = re.match(r"claude-(v\d|instant)", name) is not None
        else:
            legacy = "prompt" in body and "messages" not in body
        return "anthropic-legacy" if legacy else "anthropic"
    if vendor == "amazon":
        if name.startswith(("titan-image", "nova-canvas")):
            return "amazon-image"
        if name.startswith("titan-embed"):
            return "titan-embed"
        if name.startswith("titan-"):
            return "titan-text"
        if name.startswith("nova"):
            return "nova"
        return None
    if vendor == "cohere":
        if name.startswith("embed"):
            return "cohere-embed"
        if name.startswith("rerank"):
            return "cohere-rerank"
        if name.startswith("command-r"):
            return "cohere-command-r"
        return "cohere-command" if name.startswith("command") else None
    if vendor == "mistral":
        if body is not None and "messages" in body:
            return "mistral-chat"
        if body is None or "prompt" in body:
            return "mistral"
        return "mistral-chat" if "large-2407" in name else "mistral"
    if vendor == "ai21":
        if name.startswith("j2-"):
            return "ai21-j2"
        return "jamba" if name.startswith("jamba") else None
    if vendor == "stability":
        return "stability-sdxl" if name.startswith("stable-diffusion-xl") else "stability"
    simple = {"meta": "llama", "deepseek": "deepseek", "openai": "openai"}
    return simple.get(vendor)


def cache_capable(family: Optional[str], base_id: Optional[str]) -> bool:
    """Whether the model reports cache counts (Nova, Claude 3.5 and later, opaque ids)."""
    if family == "nova":
        return True
    if family == "anthropic":
        return base_id is None or _OLD_CLAUDE.search(base_id) is None
    return family is None


def _explicit_ttls(value: Any, found: set[str], depth: int = 0) -> None:
    """The ``ttl`` values of the cache points in a request (none: no TTL was asked for)."""
    if depth > 32:
        return
    if isinstance(value, list):
        for item in value:
            _explicit_ttls(item, found, depth + 1)
    elif isinstance(value, Mapping):
        for key in ("cachePoint", "cache_control"):
            marker = value.get(key)
            if isinstance(marker, Mapping) and marker.get("ttl") in ("5m", "1h"):
                found.add(marker["ttl"])
        for item in value.values():
            _explicit_ttls(item, found, depth + 1)


@dataclass(frozen=True)
class Turn:
    """Everything a response builder needs about one answered request."""

    request_id: str
    base_id: Optional[str]
    family: str
    body: Mapping[str, Any]
    input_tokens: int
    cache_read: int
    cache_write: int
    cache_reported: bool
    reply: Reply
    omit_body_usage: bool
    float_counts: bool
    created: int
    guardrail: Optional[Guardrail] = None

    @property
    def intervened(self) -> bool:
        return self.guardrail is not None and self.guardrail.intervened

    def guardrail_chars(self) -> tuple[int, int]:
        """Characters the guardrail assessed: the request's messages/prompt, the reply."""
        source = {k: self.body.get(k) for k in ("system", "messages", "prompt", "inputText")}
        output = 0 if self.intervened else len(self.reply.text)
        return text_characters(source), output

    @property
    def cache_ttl(self) -> Optional[str]:
        """The TTL the request's cache points ask for explicitly (``ttl`` of a Converse
        ``cachePoint`` or an Anthropic ``cache_control``; ``1h`` wins), else None. Responses
        break cache writes down by TTL only then: recorded traffic without a ``ttl`` has no
        breakdown."""
        found: set[str] = set()
        _explicit_ttls(self.body, found)
        if not found:
            return None
        return "1h" if "1h" in found else "5m"

    def n(self, value: int) -> Number:
        """A count as the scenario wants it on the wire (``28`` or ``28.0``)."""
        return float(value) if self.float_counts else value

    @property
    def stop_reason(self) -> str:
        if self.reply.tool_calls:
            return "tool_use"
        natural, limited = _STOP.get(self.family, ("end_turn", "max_tokens"))
        return limited if self.reply.truncated else natural

    @property
    def model_name(self) -> str:
        """The base id without vendor and version suffix (``claude-3-5-haiku-20241022``)."""
        if self.base_id is None:
            return self.family
        name = self.base_id.partition(".")[2] or self.base_id
        return re.sub(r"-v\d+(:\d+)?$", "", name)

    @property
    def reasoning_signature(self) -> str:
        """An opaque signature for the reasoning block, deterministic per request."""
        raw = hashlib.sha256(f"{self.request_id}/reasoning".encode()).digest() * 4
        return base64.b64encode(raw).decode("ascii")

    def uid(self, salt: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.request_id}/{salt}"))

    @property
    def total_input(self) -> int:
        return self.input_tokens + self.cache_read + self.cache_write
