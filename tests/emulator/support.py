"""Request bodies per family and readers of what each family's responses carry.

The readers are written independently of the emulator's builders, from the wire reference, so
a test compares two separate accounts of the same shape. Expected input counts come from the
texts listed here and the public tokenizer rule, not from the emulator's request walker.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any, Optional

from opentelemetry.instrumentation.bedrock_tokens.emulator import DEFAULT_REPLY, count_text_tokens

PROMPT = "Count the tokens of this short prompt, please."
SYSTEM = "You answer briefly."
MAX = 500  # above the default reply, so replies are whole (cuts have their own tests)


@dataclass(frozen=True)
class Family:
    name: str
    model_id: str
    body: dict[str, Any]
    texts: tuple[str, ...]  # every text the request carries, for the expected input count
    # Reports cache counts (0) even when the request asks for no caching: Nova InvokeModel
    # does, Claude does only with cache_control (both as recorded).
    cache_fields_unasked: bool = False
    embedding: bool = False

    @property
    def input_tokens(self) -> int:
        return sum(count_text_tokens(t) for t in self.texts)

    def raw(self, **overrides: Any) -> bytes:
        return json.dumps({**self.body, **overrides}).encode()


def _chat(content: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "anthropic",
            "anthropic.claude-3-5-haiku-20241022-v1:0",
            {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": MAX,
                "system": SYSTEM,
                "messages": _chat(PROMPT),
            },
            (SYSTEM, PROMPT),
        ),
        Family(
            "anthropic-claude3",
            "anthropic.claude-3-haiku-20240307-v1:0",
            {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": MAX,
                "messages": _chat([{"type": "text", "text": PROMPT}]),
            },
            (PROMPT,),
        ),
        Family(
            "anthropic-legacy",
            "anthropic.claude-v2:1",
            {"prompt": f"\n\nHuman: {PROMPT}\n\nAssistant:", "max_tokens_to_sample": MAX},
            (f"\n\nHuman: {PROMPT}\n\nAssistant:",),
        ),
        Family(
            "titan-text",
            "amazon.titan-text-express-v1",
            {"inputText": PROMPT, "textGenerationConfig": {"maxTokenCount": MAX}},
            (PROMPT,),
        ),
        Family(
            "titan-embed",
            "amazon.titan-embed-text-v2:0",
            {"inputText": PROMPT, "dimensions": 256},
            (PROMPT,),
            embedding=True,
        ),
        Family(
            "nova",
            "amazon.nova-micro-v1:0",
            {
                "schemaVersion": "messages-v1",
                "system": [{"text": SYSTEM}],
                "messages": _chat([{"text": PROMPT}]),
                "inferenceConfig": {"max_new_tokens": MAX},
            },
            (SYSTEM, PROMPT),
            cache_fields_unasked=True,
        ),
        Family(
            "llama",
            "meta.llama3-1-8b-instruct-v1:0",
            {"prompt": PROMPT, "max_gen_len": MAX},
            (PROMPT,),
        ),
        Family(
            "cohere-command",
            "cohere.command-text-v14",
            {"prompt": PROMPT, "max_tokens": MAX},
            (PROMPT,),
        ),
        Family(
            "cohere-command-r",
            "cohere.command-r-plus-v1:0",
            {
                "message": PROMPT,
                "preamble": SYSTEM,
                "max_tokens": MAX,
                "chat_history": [
                    {"role": "USER", "message": "Hi"},
                    {"role": "CHATBOT", "message": "Hello!"},
                ],
            },
            (SYSTEM, "Hi", "Hello!", PROMPT),
        ),
        Family(
            "cohere-embed",
            "cohere.embed-english-v3",
            {"texts": [PROMPT, SYSTEM], "input_type": "search_document"},
            (PROMPT, SYSTEM),
            embedding=True,
        ),
        Family(
            "mistral",
            "mistral.mistral-7b-instruct-v0:2",
            {"prompt": f"<s>[INST] {PROMPT} [/INST]", "max_tokens": MAX},
            (f"<s>[INST] {PROMPT} [/INST]",),
        ),
        Family(
            "mistral-chat",
            "mistral.mistral-large-2407-v1:0",
            {
                "messages": [{"role": "system", "content": SYSTEM}, *_chat(PROMPT)],
                "max_tokens": MAX,
            },
            (SYSTEM, PROMPT),
        ),
        Family(
            "jamba",
            "ai21.jamba-1-5-mini-v1:0",
            {"messages": _chat(PROMPT), "max_tokens": MAX},
            (PROMPT,),
        ),
        Family(
            "deepseek",
            "us.deepseek.r1-v1:0",
            {"prompt": PROMPT, "max_tokens": MAX},
            (PROMPT,),
        ),
        Family(
            "openai",
            "openai.gpt-oss-20b-1:0",
            {
                "messages": [{"role": "system", "content": SYSTEM}, *_chat(PROMPT)],
                "max_completion_tokens": MAX,
            },
            (SYSTEM, PROMPT),
        ),
    )
}
TEXT_FAMILIES = [name for name, f in FAMILIES.items() if not f.embedding]
REPLY_TOKENS = count_text_tokens(DEFAULT_REPLY)
REPLY_PIECES = len(DEFAULT_REPLY.split())  # streams send one delta per word


def reply_text(family: str, body: dict[str, Any]) -> Optional[str]:
    """The reply text of a non-streaming InvokeModel body (None for embeddings)."""
    readers = {
        "anthropic": lambda b: b["content"][0]["text"],
        "anthropic-claude3": lambda b: b["content"][0]["text"],
        "anthropic-legacy": lambda b: b["completion"],
        "titan-text": lambda b: b["results"][0]["outputText"],
        "nova": lambda b: b["output"]["message"]["content"][0]["text"],
        "llama": lambda b: b["generation"],
        "cohere-command": lambda b: b["generations"][0]["text"],
        "cohere-command-r": lambda b: b["text"],
        "mistral": lambda b: b["outputs"][0]["text"],
        "mistral-chat": lambda b: b["choices"][0]["message"]["content"],
        "jamba": lambda b: b["choices"][0]["message"]["content"],
        "deepseek": lambda b: b["choices"][0]["text"],
        "openai": lambda b: b["choices"][0]["message"]["content"],
    }
    reader = readers.get(family)
    return None if reader is None else str(reader(body))


def body_usage(family: str, body: dict[str, Any]) -> Optional[tuple[Any, Any]]:
    """``(input, output)`` as the family's InvokeModel body states them, or None."""
    if family in ("anthropic", "anthropic-claude3"):
        return body["usage"]["input_tokens"], body["usage"]["output_tokens"]
    if family == "titan-text":
        return body["inputTextTokenCount"], body["results"][0]["tokenCount"]
    if family == "titan-embed":
        return body["inputTextTokenCount"], None
    if family == "nova":
        return body["usage"]["inputTokens"], body["usage"]["outputTokens"]
    if family == "llama":
        return body["prompt_token_count"], body["generation_token_count"]
    if family in ("jamba", "openai"):
        return body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]
    return None


def stream_text(family: str, chunks: list[dict[str, Any]]) -> str:
    """Concatenated reply text of a family's stream chunks."""
    parts: list[str] = []
    for c in chunks:
        if family.startswith("anthropic") and family != "anthropic-legacy":
            if c["type"] == "content_block_delta":
                parts.append(c["delta"]["text"])
        elif family == "anthropic-legacy":
            parts.append(c["completion"])
        elif family == "titan-text":
            parts.append(c["outputText"])
        elif family == "nova":
            if "contentBlockDelta" in c:
                parts.append(c["contentBlockDelta"]["delta"]["text"])
        elif family == "llama":
            parts.append(c["generation"])
        elif family == "cohere-command":
            parts.append(c.get("text", ""))
        elif family == "cohere-command-r":
            if c["event_type"] == "text-generation":
                parts.append(c["text"])
        elif family == "mistral":
            parts.append(c["outputs"][0]["text"])
        elif family in ("mistral-chat", "jamba", "openai"):
            parts.append(c["choices"][0]["delta"].get("content", ""))
        elif family == "deepseek":
            parts.append(c["choices"][0]["text"])
    return "".join(parts)


def stream_usage(family: str, chunks: list[dict[str, Any]]) -> Optional[tuple[Any, Any]]:
    """``(input, output)`` from the family's own in-stream usage, or None if it has none."""
    first, last = chunks[0], chunks[-1]
    if family in ("anthropic", "anthropic-claude3"):
        deltas = [c for c in chunks if c["type"] == "message_delta"]
        return first["message"]["usage"]["input_tokens"], deltas[-1]["usage"]["output_tokens"]
    if family == "titan-text":
        return first["inputTextTokenCount"], last["totalOutputTextTokenCount"]
    if family == "nova":
        usage = last["metadata"]["usage"]
        return usage["inputTokens"], usage["outputTokens"]
    if family == "llama":
        return first["prompt_token_count"], last["generation_token_count"]
    if family in ("jamba", "openai"):
        return last["usage"]["prompt_tokens"], last["usage"]["completion_tokens"]
    return None


def raw_request(
    endpoint_port: int,
    method: str,
    path: str,
    body: bytes = b"",
    headers: Optional[dict[str, str]] = None,
) -> tuple[int, dict[str, str], bytes]:
    """One plain HTTP request, for what boto3 would never send."""
    conn = http.client.HTTPConnection("127.0.0.1", endpoint_port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def converse_messages(text: str = PROMPT) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]
