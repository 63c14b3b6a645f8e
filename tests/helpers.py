"""Small readers over what the real SDK exporters captured, and the request bodies each model
family accepts. Shared by the core, stream and coexistence tests."""

from __future__ import annotations

import json
from typing import Any, Optional

from opentelemetry.instrumentation.bedrock_tokens import names

PROMPT = "Count the tokens of this short prompt, please."

# model id -> (InvokeModel request body, expected gen_ai.operation.name)
FAMILY_REQUESTS: dict[str, tuple[dict[str, Any], str]] = {
    "anthropic.claude-3-5-haiku-20241022-v1:0": (
        {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 40,
         "messages": [{"role": "user", "content": PROMPT}]}, "chat"),
    "anthropic.claude-v2:1": (
        {"prompt": f"\n\nHuman: {PROMPT}\n\nAssistant:", "max_tokens_to_sample": 40},
        "text_completion"),
    "amazon.titan-text-express-v1": (
        {"inputText": PROMPT, "textGenerationConfig": {"maxTokenCount": 40}}, "text_completion"),
    "amazon.titan-embed-text-v2:0": ({"inputText": PROMPT}, "embeddings"),
    "amazon.nova-micro-v1:0": (
        {"schemaVersion": "messages-v1",
         "messages": [{"role": "user", "content": [{"text": PROMPT}]}],
         "inferenceConfig": {"max_new_tokens": 40}}, "chat"),
    "meta.llama3-1-8b-instruct-v1:0": ({"prompt": PROMPT, "max_gen_len": 40}, "text_completion"),
    "cohere.command-text-v14": ({"prompt": PROMPT, "max_tokens": 40}, "text_completion"),
    "cohere.command-r-v1:0": ({"message": PROMPT, "max_tokens": 40}, "chat"),
    "cohere.embed-english-v3": (
        {"texts": [PROMPT], "input_type": "search_document"}, "embeddings"),
    "mistral.mistral-7b-instruct-v0:2": (
        {"prompt": f"<s>[INST] {PROMPT} [/INST]", "max_tokens": 40}, "text_completion"),
    "ai21.jamba-1-5-mini-v1:0": (
        {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 40}, "chat"),
    "deepseek.r1-v1:0": ({"prompt": PROMPT, "max_tokens": 40}, "text_completion"),
    "openai.gpt-oss-20b-1:0": (
        {"messages": [{"role": "user", "content": PROMPT}], "max_completion_tokens": 40}, "chat"),
}

STREAMING_FAMILIES = [m for m in FAMILY_REQUESTS if "embed" not in m]
# Families whose InvokeModel body carries no usage at all: only headers give counts.
NO_BODY_USAGE = {
    "anthropic.claude-v2:1", "cohere.command-text-v14", "cohere.command-r-v1:0",
    "mistral.mistral-7b-instruct-v0:2", "deepseek.r1-v1:0", "cohere.embed-english-v3",
}


def body_for(model_id: str) -> bytes:
    return json.dumps(FAMILY_REQUESTS[model_id][0]).encode()


def converse_messages(text: str = PROMPT) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def points(telemetry: Any, name: str) -> list[Any]:
    """All data points of one metric, across scopes."""
    return list(telemetry.metric_points(name))


def hist(telemetry: Any, name: str, **attrs: Any) -> tuple[int, float]:
    """(count, sum) over the points of a histogram whose attributes include ``attrs``
    (keys with dots given with ``__`` for ``.``)."""
    wanted = {k.replace("__", "."): v for k, v in attrs.items()}
    count, total = 0, 0.0
    for point in points(telemetry, name):
        if all(point.attributes.get(k) == v for k, v in wanted.items()):
            count += point.count
            total += point.sum
    return count, total


def token_sums(telemetry: Any) -> dict[str, tuple[int, float]]:
    return {
        kind: hist(telemetry, names.METRIC_TOKEN_USAGE, gen_ai__token__type=kind)
        for kind in ("input", "output")
    }


def expected_usage_attrs(recorded: Any) -> dict[str, int]:
    """The span attributes the usage the emulator reported for a request must produce
    (the semconv input count includes cached tokens; Bedrock's own excludes them)."""
    attrs: dict[str, int] = {}
    if recorded.input_tokens is not None:
        attrs[names.GEN_AI_USAGE_INPUT_TOKENS] = (
            recorded.input_tokens + (recorded.cache_read_tokens or 0)
            + (recorded.cache_write_tokens or 0)
        )
    if recorded.output_tokens is not None:
        attrs[names.GEN_AI_USAGE_OUTPUT_TOKENS] = recorded.output_tokens
    if recorded.cache_read_tokens is not None:
        attrs[names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = recorded.cache_read_tokens
    if recorded.cache_write_tokens is not None:
        attrs[names.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = recorded.cache_write_tokens
    return attrs


def only_span(telemetry: Any) -> Any:
    spans = telemetry.spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def usage_attrs(span: Any) -> dict[str, Optional[int]]:
    keys = (
        names.GEN_AI_USAGE_INPUT_TOKENS, names.GEN_AI_USAGE_OUTPUT_TOKENS,
        names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, names.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    )
    return {k: span.attributes[k] for k in keys if k in span.attributes}


def agent_trace_members(events: list[Any], member: str) -> list[Any]:
    """From agent stream events as botocore parses them: the ``member`` (modelInvocationInput,
    modelInvocationOutput, observation, ...) of every trace event that has one."""
    return [
        body[member]
        for event in events
        if "trace" in event
        for body in event["trace"]["trace"].values()
        if member in body
    ]
