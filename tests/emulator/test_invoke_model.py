"""InvokeModel for every family through real boto3: headers, body shapes, counts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from opentelemetry.instrumentation.bedrock_tokens.emulator import (
    DEFAULT_REPLY,
    BedrockEmulator,
    Scenario,
    count_text_tokens,
)

from ..floor import needs_botocore_member
from .support import FAMILIES, REPLY_TOKENS, body_usage, reply_text


@pytest.mark.parametrize("name", list(FAMILIES))
def test_headers_body_and_counts_per_family(
    name: str, bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    family = FAMILIES[name]
    response = bedrock_client.invoke_model(modelId=family.model_id, body=family.raw())
    body = json.loads(response["body"].read())
    headers = response["ResponseMetadata"]["HTTPHeaders"]

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["contentType"] == "application/json"
    assert headers["x-amzn-requestid"] == response["ResponseMetadata"]["RequestId"]
    assert int(headers["x-amzn-bedrock-input-token-count"]) == family.input_tokens
    assert int(headers["x-amzn-bedrock-invocation-latency"]) >= 0
    if family.embedding:
        assert "x-amzn-bedrock-output-token-count" not in headers
    else:
        assert int(headers["x-amzn-bedrock-output-token-count"]) == REPLY_TOKENS
        assert reply_text(name, body) == DEFAULT_REPLY
    cache_headers = {
        "x-amzn-bedrock-cache-read-input-token-count",
        "x-amzn-bedrock-cache-write-input-token-count",
    }
    if family.cache_fields_unasked:
        assert {h: headers[h] for h in cache_headers} == dict.fromkeys(cache_headers, "0")
    else:
        assert not cache_headers & set(headers)

    usage = body_usage(name, body)
    if usage is not None:
        expected_output = None if family.embedding else REPLY_TOKENS
        assert usage == (family.input_tokens, expected_output)
        assert all(type(v) is int for v in usage if v is not None)

    recorded = bedrock_emulator.requests[-1]
    assert recorded.operation == "InvokeModel"
    assert recorded.model_id == family.model_id
    assert recorded.body == family.raw()
    assert recorded.status == 200
    assert recorded.input_tokens == family.input_tokens
    assert recorded.output_tokens == (None if family.embedding else REPLY_TOKENS)
    expected_cache = 0 if family.cache_fields_unasked else None
    assert (recorded.cache_read_tokens, recorded.cache_write_tokens) == (
        expected_cache,
        expected_cache,
    )
    assert recorded.headers["content-length"] == str(len(family.raw()))


def test_families_without_body_usage_have_none(bedrock_client: Any) -> None:
    """Legacy Claude, Cohere Command / R, Mistral text and DeepSeek carry counts in headers only."""
    for name in (
        "anthropic-legacy",
        "cohere-command",
        "cohere-command-r",
        "mistral",
        "deepseek",
        "cohere-embed",
        "mistral-chat",
    ):
        family = FAMILIES[name]
        raw = bedrock_client.invoke_model(modelId=family.model_id, body=family.raw())["body"].read()
        text = raw.decode()
        for key in ("usage", "token_count", "tokenCount", "prompt_tokens", "input_tokens"):
            assert key not in text, (name, key)


def test_family_specific_fields(bedrock_client: Any) -> None:
    def call(name: str) -> dict[str, Any]:
        family = FAMILIES[name]
        raw = bedrock_client.invoke_model(modelId=family.model_id, body=family.raw())["body"]
        return dict(json.loads(raw.read()))

    claude = call("anthropic")
    assert claude["id"].startswith("msg_bdrk_")
    assert claude["type"] == "message" and claude["role"] == "assistant"
    assert claude["model"] == "claude-3-5-haiku-20241022"
    assert claude["stop_reason"] == "end_turn"
    # No cache_control in the request: no cache fields (the recorded Claude 3.5 answers).
    assert list(claude["usage"]) == ["input_tokens", "output_tokens"]
    assert list(call("anthropic-claude3")["usage"]) == ["input_tokens", "output_tokens"]
    legacy = call("anthropic-legacy")
    assert legacy == {
        "type": "completion",
        "completion": DEFAULT_REPLY,
        "stop_reason": "stop_sequence",
        "stop": "\n\nHuman:",
    }
    titan = call("titan-text")
    assert titan["results"][0]["completionReason"] == "FINISH"
    nova = call("nova")
    assert nova["stopReason"] == "end_turn"
    assert nova["usage"] == {
        "inputTokens": 14,
        "outputTokens": REPLY_TOKENS,
        "totalTokens": 14 + REPLY_TOKENS,
        "cacheReadInputTokenCount": 0,
        "cacheWriteInputTokenCount": 0,
    }
    assert len(call("titan-embed")["embedding"]) == 256
    cohere_embed = call("cohere-embed")
    assert cohere_embed["texts"] == FAMILIES["cohere-embed"].body["texts"]
    assert [len(e) for e in cohere_embed["embeddings"]] == [1024, 1024]
    assert call("llama")["stop_reason"] == "stop"
    assert call("cohere-command")["generations"][0]["finish_reason"] == "COMPLETE"
    command_r = call("cohere-command-r")
    assert command_r["finish_reason"] == "COMPLETE"
    assert command_r["chat_history"][-1] == {"role": "CHATBOT", "message": DEFAULT_REPLY}
    assert call("mistral")["outputs"][0]["stop_reason"] == "stop"
    assert call("mistral-chat")["choices"][0]["stop_reason"] == "stop"
    jamba = call("jamba")
    assert jamba["choices"][0]["finish_reason"] == "stop"
    assert jamba["usage"]["total_tokens"] == 10 + REPLY_TOKENS
    assert call("deepseek")["choices"][0]["stop_reason"] == "stop"
    assert call("openai")["object"] == "chat.completion"


@pytest.mark.parametrize(
    ("name", "limit_key", "stop"),
    [
        ("anthropic", {"max_tokens": 4}, ("stop_reason", "max_tokens")),
        ("titan-text", {"textGenerationConfig": {"maxTokenCount": 4}}, None),
        ("nova", {"inferenceConfig": {"max_new_tokens": 4}}, ("stopReason", "max_tokens")),
        ("llama", {"max_gen_len": 4}, ("stop_reason", "length")),
        ("openai", {"max_completion_tokens": 4}, None),
    ],
)
def test_reply_respects_max_tokens(
    name: str, limit_key: dict[str, Any], stop: Any, bedrock_client: Any
) -> None:
    family = FAMILIES[name]
    response = bedrock_client.invoke_model(modelId=family.model_id, body=family.raw(**limit_key))
    body = json.loads(response["body"].read())
    assert reply_text(name, body) == "This is a deterministic"
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-output-token-count"] == "4"
    if stop is not None:
        assert body[stop[0]] == stop[1]
    if name == "titan-text":
        assert body["results"][0]["completionReason"] == "LENGTH"


def test_output_text_override_and_counts(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    family = FAMILIES["anthropic"]
    bedrock_emulator.set_scenario(Scenario(output_text="Short answer: 42!"))
    response = bedrock_client.invoke_model(modelId=family.model_id, body=family.raw())
    body = json.loads(response["body"].read())
    assert body["content"][0]["text"] == "Short answer: 42!"
    assert body["usage"]["output_tokens"] == count_text_tokens("Short answer: 42!") == 5


def test_float_counts(bedrock_client: Any, bedrock_emulator: BedrockEmulator) -> None:
    bedrock_emulator.set_scenario(Scenario(float_counts=True))
    family = FAMILIES["titan-text"]
    response = bedrock_client.invoke_model(modelId=family.model_id, body=family.raw())
    raw = response["body"].read()
    body = json.loads(raw)
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == "10.0"
    assert headers["x-amzn-bedrock-output-token-count"] == f"{float(REPLY_TOKENS)}"
    assert body["inputTextTokenCount"] == 10.0 and type(body["inputTextTokenCount"]) is float
    assert b'"inputTextTokenCount":10.0' in raw


def test_omit_token_headers_and_body_usage(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    family = FAMILIES["anthropic"]
    bedrock_emulator.set_scenario(Scenario(omit_token_headers=True))
    response = bedrock_client.invoke_model(modelId=family.model_id, body=family.raw())
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert not [h for h in headers if h.endswith("-token-count")]
    assert "x-amzn-bedrock-invocation-latency" in headers
    assert "usage" in json.loads(response["body"].read())

    for name in ("anthropic", "titan-text", "nova", "llama", "jamba", "openai", "titan-embed"):
        family = FAMILIES[name]
        bedrock_emulator.set_scenario(Scenario(omit_body_usage=True))
        response = bedrock_client.invoke_model(modelId=family.model_id, body=family.raw())
        headers = response["ResponseMetadata"]["HTTPHeaders"]
        assert int(headers["x-amzn-bedrock-input-token-count"]) == family.input_tokens
        text = response["body"].read().decode()
        for key in ("usage", "TokenCount", "tokenCount", "token_count"):
            assert key not in text, (name, key)


def test_malformed_body(bedrock_client: Any, bedrock_emulator: BedrockEmulator) -> None:
    family = FAMILIES["nova"]
    bedrock_emulator.set_scenario(Scenario(malformed_body=True))
    response = bedrock_client.invoke_model(modelId=family.model_id, body=family.raw())
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    raw = response["body"].read()
    assert raw.startswith(b'{"output"')
    with pytest.raises(ValueError):
        json.loads(raw)
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert int(headers["x-amzn-bedrock-input-token-count"]) == family.input_tokens


@needs_botocore_member("InvokeModel", "serviceTier")
def test_request_headers_defaults_and_echo(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    family = FAMILIES["nova"]
    response = bedrock_client.invoke_model(
        modelId=family.model_id,
        body=family.raw(),
        contentType="application/json",
        accept="application/json",
        performanceConfigLatency="optimized",
        serviceTier="priority",
    )
    assert response["performanceConfigLatency"] == "optimized"
    assert response["serviceTier"] == "priority"
    # botocore sends no Content-Type for InvokeModel unless asked; the emulator defaults to JSON
    bedrock_client.invoke_model(modelId=family.model_id, body=family.raw())
    first, second = bedrock_emulator.requests
    assert first.headers["content-type"] == "application/json"
    assert "content-type" not in second.headers
    assert second.headers["authorization"].startswith("AWS4-HMAC-SHA256 ")


@pytest.mark.parametrize("model_id, body, key, count", [
    ("amazon.nova-canvas-v1:0", {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a"},
                                 "imageGenerationConfig": {"numberOfImages": 2}}, "images", 2),
    ("amazon.titan-image-generator-v2:0",
     {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a"}}, "images", 1),
    ("stability.sd3-large-v1:0", {"prompt": "a"}, "images", 1),
    ("stability.stable-diffusion-xl-v1", {"text_prompts": [{"text": "a"}], "samples": 3},
     "artifacts", 3),
])
def test_image_models_answer_images_and_no_token_counts(
    bedrock_client: Any, model_id: str, body: dict[str, Any], key: str, count: int
) -> None:
    import base64

    response = bedrock_client.invoke_model(modelId=model_id, body=json.dumps(body))
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert not [name for name in headers if "token-count" in name]
    answer = json.loads(response["body"].read())
    images = answer[key]
    assert len(images) == count
    first = images[0] if key == "images" else images[0]["base64"]
    assert base64.b64decode(first).startswith(b"\x89PNG")
    with pytest.raises(bedrock_client.exceptions.ValidationException):
        bedrock_client.invoke_model_with_response_stream(modelId=model_id, body=json.dumps(body))
