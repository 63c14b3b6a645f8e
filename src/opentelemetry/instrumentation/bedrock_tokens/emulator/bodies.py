"""Non-streaming InvokeModel bodies, one builder per model family.

Shapes follow recorded service traffic where it exists and the AWS model-parameter
documentation otherwise (``docs/emulator.md`` says which). Usage fields appear exactly where the
family has them; families with no usage in the body (legacy Claude, Cohere, Mistral, DeepSeek)
have none, and ``Scenario.omit_body_usage`` removes the others.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Mapping
from typing import Any, Callable

from .families import Number, Turn
from .tokenizer import TOKEN_PATTERN
from .tools import anthropic_tool_use_id, nova_tool_use_id

__all__ = [
    "anthropic_content",
    "anthropic_legacy_body",
    "anthropic_message_id",
    "anthropic_usage",
    "command_r_response",
    "invoke_body",
    "nova_usage",
    "openai_usage",
]


def anthropic_usage(turn: Turn, output: int) -> dict[str, Number]:
    usage: dict[str, Number] = {"input_tokens": turn.n(turn.input_tokens)}
    if turn.cache_reported:
        usage["cache_creation_input_tokens"] = turn.n(turn.cache_write)
        usage["cache_read_input_tokens"] = turn.n(turn.cache_read)
        ttl = turn.cache_ttl
        if ttl is not None:
            long_ttl = ttl == "1h"
            usage["cache_creation"] = {  # type: ignore[assignment]
                "ephemeral_5m_input_tokens": turn.n(0 if long_ttl else turn.cache_write),
                "ephemeral_1h_input_tokens": turn.n(turn.cache_write if long_ttl else 0),
            }
    usage["output_tokens"] = turn.n(output)
    return usage


def openai_usage(turn: Turn) -> dict[str, Number]:
    out = turn.reply.output_tokens
    return {
        "prompt_tokens": turn.n(turn.input_tokens),
        "completion_tokens": turn.n(out),
        "total_tokens": turn.n(turn.input_tokens + out),
    }


def nova_usage(turn: Turn, *, total: bool) -> dict[str, Number]:
    out = turn.reply.output_tokens
    usage: dict[str, Number] = {
        "inputTokens": turn.n(turn.input_tokens),
        "outputTokens": turn.n(out),
    }
    if total:
        usage["totalTokens"] = turn.n(turn.total_input + out)
    if turn.cache_reported:
        usage["cacheReadInputTokenCount"] = turn.n(turn.cache_read)
        usage["cacheWriteInputTokenCount"] = turn.n(turn.cache_write)
    return usage


def _embedding(seed: str, dimensions: int) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.uniform(-1.0, 1.0), 6) for _ in range(dimensions)]


def anthropic_message_id(turn: Turn) -> str:
    """``msg_bdrk_01`` + 22 base58 characters, as Claude on Bedrock names its messages."""
    return "msg_bdrk_01" + anthropic_tool_use_id(f"{turn.request_id}/msg")[len("toolu_bdrk_01") :]


def anthropic_content(turn: Turn) -> list[dict[str, Any]]:
    """The content blocks of an Anthropic message: thinking, text, tool uses."""
    reply = turn.reply
    content: list[dict[str, Any]] = []
    if reply.reasoning is not None:
        signature = turn.reasoning_signature
        content.append({"type": "thinking", "thinking": reply.reasoning, "signature": signature})
    if reply.events or not reply.tool_calls:
        content.append({"type": "text", "text": reply.text})
    for index, call in enumerate(reply.tool_calls):
        content.append(
            {
                "type": "tool_use",
                "id": anthropic_tool_use_id(f"{turn.request_id}/tool/{index}"),
                "name": call.name,
                "input": dict(call.input),
            }
        )
    return content


def _body_anthropic(turn: Turn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": anthropic_message_id(turn),
        "type": "message",
        "role": "assistant",
        "model": turn.model_name,
        "content": anthropic_content(turn),
        "stop_reason": turn.stop_reason,
        "stop_sequence": None,
        "usage": anthropic_usage(turn, turn.reply.output_tokens),
    }
    return body


def anthropic_legacy_body(turn: Turn) -> dict[str, Any]:
    natural = not turn.reply.truncated
    return {
        "type": "completion",
        "completion": turn.reply.text,
        "stop_reason": turn.stop_reason,
        "stop": "\n\nHuman:" if natural else None,
    }


def _body_titan_text(turn: Turn) -> dict[str, Any]:
    result: dict[str, Any] = {
        "tokenCount": turn.n(turn.reply.output_tokens),
        "outputText": turn.reply.text,
        "completionReason": turn.stop_reason,
    }
    return {"inputTextTokenCount": turn.n(turn.input_tokens), "results": [result]}


def _body_titan_embed(turn: Turn) -> dict[str, Any]:
    default = 1536 if (turn.base_id or "").startswith("amazon.titan-embed-text-v1") else 1024
    dimensions = turn.body.get("dimensions", default)
    if not isinstance(dimensions, int) or dimensions <= 0:
        dimensions = default
    text = str(turn.body.get("inputText", ""))
    return {
        "embedding": _embedding(text, dimensions),
        "inputTextTokenCount": turn.n(turn.input_tokens),
    }


def _body_cohere_embed(turn: Turn) -> dict[str, Any]:
    texts = turn.body.get("texts")
    items = [str(t) for t in texts] if isinstance(texts, list) else []
    return {
        "id": turn.uid("embed"),
        "embeddings": [_embedding(t, 1024) for t in items],
        "response_type": "embeddings_floats",
        "texts": items,
    }


def nova_content(turn: Turn) -> list[dict[str, Any]]:
    reply = turn.reply
    content: list[dict[str, Any]] = []
    if reply.events or not reply.tool_calls:
        content.append({"text": reply.text})
    for index, call in enumerate(reply.tool_calls):
        use = {
            "name": call.name,
            "toolUseId": nova_tool_use_id(f"{turn.request_id}/tool/{index}"),
            "input": dict(call.input),
        }
        content.append({"toolUse": use})
    return content


def _body_nova(turn: Turn) -> dict[str, Any]:
    return {
        "output": {"message": {"content": nova_content(turn), "role": "assistant"}},
        "stopReason": turn.stop_reason,
        "usage": nova_usage(turn, total=True),
    }


def _body_llama(turn: Turn) -> dict[str, Any]:
    return {
        "generation": turn.reply.text,
        "prompt_token_count": turn.n(turn.input_tokens),
        "generation_token_count": turn.n(turn.reply.output_tokens),
        "stop_reason": turn.stop_reason,
    }


def _body_cohere_command(turn: Turn) -> dict[str, Any]:
    generation = {"id": turn.uid("gen"), "text": turn.reply.text, "finish_reason": turn.stop_reason}
    return {"id": turn.uid("resp"), "generations": [generation], "prompt": turn.body.get("prompt")}


def command_r_response(turn: Turn, text: str) -> dict[str, Any]:
    history = turn.body.get("chat_history")
    chat = list(history) if isinstance(history, list) else []
    chat.append({"role": "USER", "message": turn.body.get("message")})
    chat.append({"role": "CHATBOT", "message": text})
    return {
        "response_id": turn.uid("resp"),
        "text": text,
        "generation_id": turn.uid("gen"),
        "chat_history": chat,
        "finish_reason": turn.stop_reason,
    }


def _body_cohere_command_r(turn: Turn) -> dict[str, Any]:
    return command_r_response(turn, turn.reply.text)


def _body_mistral(turn: Turn) -> dict[str, Any]:
    return {"outputs": [{"text": turn.reply.text, "stop_reason": turn.stop_reason}]}


def _body_mistral_chat(turn: Turn) -> dict[str, Any]:
    message = {"role": "assistant", "content": turn.reply.text, "tool_calls": None}
    return {
        "id": turn.uid("chat"),
        "object": "chat.completion",
        "created": turn.created,
        "model": turn.base_id or "mistral",
        "choices": [{"index": 0, "message": message, "stop_reason": turn.stop_reason}],
    }


def _body_jamba(turn: Turn) -> dict[str, Any]:
    message = {"role": "assistant", "content": turn.reply.text, "tool_calls": None}
    return {
        "id": "chatcmpl-" + turn.uid("chat"),
        "choices": [{"index": 0, "message": message, "finish_reason": turn.stop_reason}],
        "usage": openai_usage(turn),
        "model": turn.model_name,
    }


def _body_deepseek(turn: Turn) -> dict[str, Any]:
    return {"choices": [{"text": turn.reply.text, "stop_reason": turn.stop_reason}]}


def _body_openai(turn: Turn) -> dict[str, Any]:
    message = {"role": "assistant", "content": turn.reply.text}
    return {
        "id": "chatcmpl-" + turn.uid("chat"),
        "object": "chat.completion",
        "created": turn.created,
        "model": turn.base_id or "openai",
        "choices": [{"index": 0, "message": message, "finish_reason": turn.stop_reason}],
        "usage": openai_usage(turn),
    }


def _body_openai_completion(turn: Turn) -> dict[str, Any]:
    """Imported models (SageMaker endpoints): the OpenAI completions shape, as recorded."""
    choice = {"index": 0, "text": turn.reply.text, "logprobs": None,
              "finish_reason": turn.stop_reason}
    return {
        "object": "text_completion",
        "id": "",
        "created": turn.created,
        "model": "/opt/ml/model",
        "system_fingerprint": "emulator",
        "choices": [choice],
        "usage": openai_usage(turn),
    }


def _j2_tokens(text: str) -> list[dict[str, Any]]:
    tokens: list[dict[str, Any]] = []
    for match in TOKEN_PATTERN.finditer(text):
        generated = {"token": "\u2581" + match.group(), "logprob": -1.0, "raw_logprob": -1.0}
        tokens.append({
            "generatedToken": generated,
            "topTokens": None,
            "textRange": {"start": match.start(), "end": match.end()},
        })
    return tokens


def _body_ai21_j2(turn: Turn) -> dict[str, Any]:
    """AI21 Jurassic-2: per-token prompt and completion detail, as recorded (no usage)."""
    prompt = str(turn.body.get("prompt", ""))
    reason: dict[str, Any] = {"reason": turn.stop_reason}
    if turn.reply.truncated:
        reason["length"] = turn.reply.output_tokens
    completion = {"data": {"text": turn.reply.text, "tokens": _j2_tokens(turn.reply.text)},
                  "finishReason": reason}
    return {
        "id": 1234,
        "prompt": {"text": prompt, "tokens": _j2_tokens(prompt)},
        "completions": [completion],
    }


def _body_cohere_rerank(turn: Turn) -> dict[str, Any]:
    """Cohere Rerank: relevance scores, best first, at most ``top_n`` (no usage anywhere)."""
    documents = turn.body.get("documents")
    count = len(documents) if isinstance(documents, list) else 0
    top_n = turn.body.get("top_n")
    limit = top_n if isinstance(top_n, int) and top_n > 0 else count
    results = [
        {"index": index, "relevance_score": round(0.9 / (index + 1), 7)}
        for index in range(min(count, limit))
    ]
    return {"results": results}


def _fake_image(turn: Turn, index: int) -> str:
    """A base64 PNG signature plus the request id: an image by shape, a few bytes in size."""
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + f"{turn.request_id}/{index}".encode()).decode()


def _images_asked(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def _body_amazon_image(turn: Turn) -> dict[str, Any]:
    """Titan Image Generator and Nova Canvas: ``images`` (``numberOfImages`` of them)."""
    config = turn.body.get("imageGenerationConfig")
    count = _images_asked(config.get("numberOfImages") if isinstance(config, Mapping) else None)
    return {"images": [_fake_image(turn, n) for n in range(count)]}


def _body_stability(turn: Turn) -> dict[str, Any]:
    """Stability AI SD3 / Stable Image Ultra / Core: one image, its seed and finish reason."""
    return {"seeds": [42], "finish_reasons": [None], "images": [_fake_image(turn, 0)]}


def _body_stability_sdxl(turn: Turn) -> dict[str, Any]:
    """Stability AI SDXL 1.0: ``artifacts`` (``samples`` of them)."""
    count = _images_asked(turn.body.get("samples"))
    artifacts = [{"seed": 42 + n, "base64": _fake_image(turn, n), "finishReason": "SUCCESS"}
                 for n in range(count)]
    return {"result": "success", "artifacts": artifacts}


# Usage keys each family carries at the top level of its body (for ``omit_body_usage``).
_BODY_USAGE_KEYS: Mapping[str, tuple[str, ...]] = {
    "anthropic": ("usage",),
    "titan-text": ("inputTextTokenCount",),
    "titan-embed": ("inputTextTokenCount",),
    "nova": ("usage",),
    "llama": ("prompt_token_count", "generation_token_count"),
    "jamba": ("usage",),
    "openai": ("usage",),
    "openai-completion": ("usage",),
}

_BODIES: Mapping[str, Callable[[Turn], dict[str, Any]]] = {
    "anthropic": _body_anthropic,
    "anthropic-legacy": anthropic_legacy_body,
    "titan-text": _body_titan_text,
    "titan-embed": _body_titan_embed,
    "nova": _body_nova,
    "llama": _body_llama,
    "cohere-command": _body_cohere_command,
    "cohere-command-r": _body_cohere_command_r,
    "cohere-embed": _body_cohere_embed,
    "mistral": _body_mistral,
    "mistral-chat": _body_mistral_chat,
    "jamba": _body_jamba,
    "deepseek": _body_deepseek,
    "openai": _body_openai,
    "openai-completion": _body_openai_completion,
    "ai21-j2": _body_ai21_j2,
    "cohere-rerank": _body_cohere_rerank,
    "amazon-image": _body_amazon_image,
    "stability": _body_stability,
    "stability-sdxl": _body_stability_sdxl,
}


def invoke_body(turn: Turn) -> dict[str, Any]:
    """The non-streaming InvokeModel body of ``turn.family``."""
    body = _BODIES[turn.family](turn)
    guardrail = turn.guardrail
    if guardrail is not None:
        if guardrail.trace:
            body["amazon-bedrock-trace"] = guardrail.invoke_trace(*turn.guardrail_chars())
        body["amazon-bedrock-guardrailAction"] = guardrail.action
    if turn.omit_body_usage:
        for key in _BODY_USAGE_KEYS.get(turn.family, ()):
            body.pop(key, None)
        if turn.family == "titan-text":
            for result in body["results"]:
                result.pop("tokenCount", None)
    return body
