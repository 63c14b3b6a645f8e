"""InvokeModelWithResponseStream chunks, one generator per model family.

Each generator yields the inner JSON of every ``chunk`` event in order, lazily, so a stream of
any length costs constant memory. The family's own in-stream usage is included as the service
sends it (Anthropic ``message_start``/``message_delta``, Nova ``metadata``, Llama and Titan
counts...); the server adds ``amazon-bedrock-invocationMetrics`` to the last chunk.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Callable, Optional

from .bodies import (
    anthropic_legacy_body,
    anthropic_message_id,
    anthropic_usage,
    command_r_response,
    nova_usage,
    openai_usage,
)
from .families import Turn
from .tokenizer import count_text_tokens, split_pieces
from .tools import anthropic_tool_use_id, json_pieces, nova_tool_use_id

__all__ = ["invoke_stream"]


def _anthropic_blocks(turn: Turn) -> Iterator[dict[str, Any]]:
    reply = turn.reply
    index = 0
    if reply.reasoning is not None:
        block: dict[str, Any] = {"type": "thinking", "thinking": ""}
        yield {"type": "content_block_start", "index": index, "content_block": block}
        for piece in split_pieces(reply.reasoning):
            delta = {"type": "thinking_delta", "thinking": piece}
            yield {"type": "content_block_delta", "index": index, "delta": delta}
        delta = {"type": "signature_delta", "signature": turn.reasoning_signature}
        yield {"type": "content_block_delta", "index": index, "delta": delta}
        yield {"type": "content_block_stop", "index": index}
        index += 1
    if reply.events or not reply.tool_calls:
        block = {"type": "text", "text": ""}
        yield {"type": "content_block_start", "index": index, "content_block": block}
        for piece in reply.pieces():
            delta = {"type": "text_delta", "text": piece}
            yield {"type": "content_block_delta", "index": index, "delta": delta}
        yield {"type": "content_block_stop", "index": index}
        index += 1
    for number, call in enumerate(reply.tool_calls):
        block = {
            "type": "tool_use",
            "id": anthropic_tool_use_id(f"{turn.request_id}/tool/{number}"),
            "name": call.name,
            "input": {},
        }
        yield {"type": "content_block_start", "index": index, "content_block": block}
        for piece in ("", *json_pieces(call.input_json)):
            delta = {"type": "input_json_delta", "partial_json": piece}
            yield {"type": "content_block_delta", "index": index, "delta": delta}
        yield {"type": "content_block_stop", "index": index}
        index += 1


def _stream_anthropic(turn: Turn) -> Iterator[dict[str, Any]]:
    message: dict[str, Any] = {
        "id": anthropic_message_id(turn),
        "type": "message",
        "role": "assistant",
        "model": turn.model_name,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    if not turn.omit_body_usage:
        message["usage"] = anthropic_usage(turn, 1)
    yield {"type": "message_start", "message": message}
    yield from _anthropic_blocks(turn)
    final: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": turn.stop_reason, "stop_sequence": None},
    }
    if not turn.omit_body_usage:
        final["usage"] = {"output_tokens": turn.n(turn.reply.output_tokens)}
    yield final
    yield {"type": "message_stop"}


def _stream_anthropic_legacy(turn: Turn) -> Iterator[dict[str, Any]]:
    for piece in turn.reply.pieces():
        yield {"completion": piece, "stop_reason": None, "stop": None}
    final = anthropic_legacy_body(turn)
    yield {"completion": "", "stop_reason": final["stop_reason"], "stop": final["stop"]}


def _stream_titan_text(turn: Turn) -> Iterator[dict[str, Any]]:
    if turn.intervened:  # one chunk, as recorded (the server adds no invocation metrics)
        yield {
            "outputText": turn.reply.text,
            "index": turn.n(0),
            "totalOutputTextTokenCount": turn.n(turn.reply.output_tokens),
            "inputTextTokenCount": turn.n(turn.input_tokens),
        }
        return
    counts = not turn.omit_body_usage
    first = True
    for piece in turn.reply.pieces():
        chunk: dict[str, Any] = {"outputText": piece, "index": turn.n(0)}
        if counts:
            chunk["totalOutputTextTokenCount"] = None
        chunk["completionReason"] = None
        if counts:
            chunk["inputTextTokenCount"] = turn.n(turn.input_tokens) if first else None
        first = False
        yield chunk
    final: dict[str, Any] = {"outputText": "", "index": turn.n(0)}
    if counts:
        final["totalOutputTextTokenCount"] = turn.n(turn.reply.output_tokens)
    final["completionReason"] = turn.stop_reason
    if counts:
        final["inputTextTokenCount"] = turn.n(turn.input_tokens) if first else None
    yield final


def _stream_nova(turn: Turn) -> Iterator[dict[str, Any]]:
    reply = turn.reply
    yield {"messageStart": {"role": "assistant"}}
    index = 0
    if reply.events or not reply.tool_calls:
        for piece in reply.pieces():
            yield {"contentBlockDelta": {"delta": {"text": piece}, "contentBlockIndex": index}}
        yield {"contentBlockStop": {"contentBlockIndex": index}}
        index += 1
    for number, call in enumerate(reply.tool_calls):
        tool_use_id = nova_tool_use_id(f"{turn.request_id}/tool/{number}")
        start = {"toolUse": {"toolUseId": tool_use_id, "name": call.name}}
        yield {"contentBlockStart": {"start": start, "contentBlockIndex": index}}
        delta = {"toolUse": {"input": call.input_json}}
        yield {"contentBlockDelta": {"delta": delta, "contentBlockIndex": index}}
        yield {"contentBlockStop": {"contentBlockIndex": index}}
        index += 1
    yield {"messageStop": {"stopReason": turn.stop_reason}}
    metadata: dict[str, Any] = {}
    if not turn.omit_body_usage:
        metadata["usage"] = nova_usage(turn, total=False)
    metadata["metrics"] = {}
    metadata["trace"] = {}
    yield {"metadata": metadata}


def _stream_llama(turn: Turn) -> Iterator[dict[str, Any]]:
    counts = not turn.omit_body_usage
    generated = 0
    first = True
    for piece in turn.reply.pieces():
        chunk: dict[str, Any] = {"generation": piece}
        if counts:
            generated += count_text_tokens(piece)
            chunk["prompt_token_count"] = turn.n(turn.input_tokens) if first else None
            chunk["generation_token_count"] = turn.n(generated)
        chunk["stop_reason"] = None
        first = False
        yield chunk
    final: dict[str, Any] = {"generation": ""}
    if counts:
        final["prompt_token_count"] = turn.n(turn.input_tokens) if first else None
        final["generation_token_count"] = turn.n(turn.reply.output_tokens)
    final["stop_reason"] = turn.stop_reason
    yield final


def _stream_cohere_command(turn: Turn) -> Iterator[dict[str, Any]]:
    generations = turn.body.get("num_generations")
    several = isinstance(generations, int) and generations > 1
    for piece in turn.reply.pieces():
        # recorded: "index" only when several generations were asked for
        yield {"index": 0, "is_finished": False, "text": piece} if several else {
            "is_finished": False,
            "text": piece,
        }
    yield {"finish_reason": turn.stop_reason, "is_finished": True}


def _stream_cohere_command_r(turn: Turn) -> Iterator[dict[str, Any]]:
    yield {"is_finished": False, "event_type": "stream-start", "generation_id": turn.uid("gen")}
    for piece in turn.reply.pieces():
        yield {"is_finished": False, "event_type": "text-generation", "text": piece}
    yield {
        "is_finished": True,
        "event_type": "stream-end",
        "response": command_r_response(turn, turn.reply.text),
        "finish_reason": turn.stop_reason,
    }


def _stream_mistral(turn: Turn) -> Iterator[dict[str, Any]]:
    for piece in turn.reply.pieces():
        yield {"outputs": [{"text": piece, "stop_reason": None}]}
    yield {"outputs": [{"text": "", "stop_reason": turn.stop_reason}]}


def _chat_chunk(turn: Turn, delta: dict[str, Any], stop: Optional[str], key: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-" + turn.uid("chat"),
        "object": "chat.completion.chunk",
        "created": turn.created,
        "model": turn.base_id or turn.family,
        "choices": [{"index": 0, "delta": delta, key: stop}],
    }


def _stream_chat(turn: Turn, stop_key: str, usage: bool) -> Iterator[dict[str, Any]]:
    yield _chat_chunk(turn, {"role": "assistant", "content": ""}, None, stop_key)
    for piece in turn.reply.pieces():
        yield _chat_chunk(turn, {"content": piece}, None, stop_key)
    final = _chat_chunk(turn, {}, turn.stop_reason, stop_key)
    if usage and not turn.omit_body_usage:
        final["usage"] = openai_usage(turn)
    yield final


def _stream_openai_completion(turn: Turn) -> Iterator[dict[str, Any]]:
    def chunk(text: str, stop: Optional[str]) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": stop}
        return {"object": "text_completion", "id": "", "created": turn.created,
                "model": "/opt/ml/model", "choices": [choice]}

    for piece in turn.reply.pieces():
        yield chunk(piece, None)
    final = chunk("", turn.stop_reason)
    if not turn.omit_body_usage:
        final["usage"] = openai_usage(turn)
    yield final


def _stream_deepseek(turn: Turn) -> Iterator[dict[str, Any]]:
    for piece in turn.reply.pieces():
        yield {"choices": [{"text": piece, "stop_reason": None}]}
    yield {"choices": [{"text": "", "stop_reason": turn.stop_reason}]}


_STREAMS: Mapping[str, Callable[[Turn], Iterator[dict[str, Any]]]] = {
    "anthropic": _stream_anthropic,
    "anthropic-legacy": _stream_anthropic_legacy,
    "titan-text": _stream_titan_text,
    "nova": _stream_nova,
    "llama": _stream_llama,
    "cohere-command": _stream_cohere_command,
    "cohere-command-r": _stream_cohere_command_r,
    "mistral": _stream_mistral,
    "mistral-chat": lambda turn: _stream_chat(turn, "stop_reason", usage=False),
    "jamba": lambda turn: _stream_chat(turn, "finish_reason", usage=True),
    "deepseek": _stream_deepseek,
    "openai": lambda turn: _stream_chat(turn, "finish_reason", usage=True),
    "openai-completion": _stream_openai_completion,
}


def invoke_stream(turn: Turn) -> Iterator[dict[str, Any]]:
    """Inner JSON of each stream chunk, without the final invocation metrics."""
    return _STREAMS[turn.family](turn)
