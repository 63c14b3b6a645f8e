"""Shapes the recorded service traffic shows that the emulator lacked: guardrail traces and
interventions, AI21 Jurassic-2, Cohere Rerank, imported models (OpenAI completions), Jamba's
request duration, Cohere Command stream chunks, and requests the service accepts (Titan
Converse with two user turns in a row, a Prompt-management ARN with ``promptVariables``)."""

from __future__ import annotations

import base64
import http.client
import json
import struct
from typing import Any

import pytest

from opentelemetry.instrumentation.bedrock_tokens.emulator import (
    BedrockEmulator,
    Scenario,
    count_text_tokens,
    output_tokens_for,
)

TITAN = "amazon.titan-text-express-v1"
GUARDRAIL = {"guardrailIdentifier": "abc123guard", "guardrailVersion": "DRAFT", "trace": "enabled"}
_METRICS = "amazon-bedrock-invocationMetrics"


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"text": text}]}


def _assessment_ok(assessment: dict[str, Any]) -> None:
    metrics = assessment["invocationMetrics"]
    assert set(metrics) == {"guardrailProcessingLatency", "usage", "guardrailCoverage"}
    coverage = metrics["guardrailCoverage"]["textCharacters"]
    assert coverage["guarded"] == coverage["total"] > 0
    assert all(isinstance(v, int) for v in metrics["usage"].values())


# -- guardrails: Converse ----------------------------------------------------------------------


def test_converse_guardrail_trace_and_titan_two_user_turns(bedrock_client: Any) -> None:
    """The recorded request: Titan, two user turns in a row, a guardrail with trace on."""
    messages = [_user("what is the capital of Italy?"), _user("what is the capital of Japan?")]
    reply = bedrock_client.converse(modelId=TITAN, messages=messages, guardrailConfig=GUARDRAIL)
    assert reply["stopReason"] == "end_turn"
    guardrail = reply["trace"]["guardrail"]
    assert set(guardrail) == {"actionReason", "inputAssessment", "outputAssessments"}
    _assessment_ok(guardrail["inputAssessment"]["abc123guard"])
    _assessment_ok(guardrail["outputAssessments"]["abc123guard"][0])
    untraced = dict(GUARDRAIL, trace="disabled")
    reply = bedrock_client.converse(modelId=TITAN, messages=messages, guardrailConfig=untraced)
    assert "trace" not in reply


def test_converse_guardrail_intervention(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.set_scenario(Scenario(guardrail="intervene"))
    reply = bedrock_client.converse(
        modelId=TITAN, messages=[_user("How do I play tennis?")], guardrailConfig=GUARDRAIL
    )
    assert reply["stopReason"] == "guardrail_intervened"
    text = reply["output"]["message"]["content"][0]["text"]
    assert reply["usage"]["outputTokens"] == count_text_tokens(text)
    request = {"messages": [_user("How do I play tennis?")], "guardrailConfig": GUARDRAIL}
    assert output_tokens_for(TITAN, "Converse", request, Scenario(guardrail="intervene")) == (
        reply["usage"]["outputTokens"]
    )
    guardrail = reply["trace"]["guardrail"]
    assert guardrail["actionReason"] == "Guardrail blocked."
    topics = guardrail["inputAssessment"]["abc123guard"]["topicPolicy"]["topics"]
    assert topics[0]["action"] == "BLOCKED" and topics[0]["detected"] is True
    stream = bedrock_client.converse_stream(
        modelId=TITAN, messages=[_user("How do I play tennis?")], guardrailConfig=GUARDRAIL
    )["stream"]
    events = list(stream)
    assert {"messageStop": {"stopReason": "guardrail_intervened"}} in events
    metadata = events[-1]["metadata"]
    assert metadata["trace"]["guardrail"]["actionReason"] == "Guardrail blocked."
    assert metadata["usage"]["outputTokens"] == reply["usage"]["outputTokens"]


# -- guardrails: InvokeModel -------------------------------------------------------------------


def _titan_body(text: str) -> str:
    return json.dumps({"inputText": text, "textGenerationConfig": {"maxTokenCount": 512}})


def _guarded(**extra: Any) -> dict[str, Any]:
    return {"guardrailIdentifier": "abc123guard", "guardrailVersion": "DRAFT", **extra}


def test_invoke_guardrail_action_and_trace(bedrock_client: Any) -> None:
    response = bedrock_client.invoke_model(
        modelId=TITAN, body=_titan_body("Tell me a joke"), **_guarded(trace="ENABLED")
    )
    body = json.loads(response["body"].read())
    assert body["amazon-bedrock-guardrailAction"] == "NONE"
    guardrail = body["amazon-bedrock-trace"]["guardrail"]
    assert set(guardrail) == {"input", "outputs", "actionReason"}
    _assessment_ok(guardrail["input"]["abc123guard"])
    _assessment_ok(guardrail["outputs"][0]["abc123guard"])
    assert type(body["inputTextTokenCount"]) is int  # floats only for an intervention
    plain = bedrock_client.invoke_model(
        modelId=TITAN, body=_titan_body("Tell me a joke"), **_guarded()
    )
    plain_body = json.loads(plain["body"].read())
    assert plain_body["amazon-bedrock-guardrailAction"] == "NONE"
    assert "amazon-bedrock-trace" not in plain_body
    unguarded = json.loads(
        bedrock_client.invoke_model(modelId=TITAN, body=_titan_body("Hi"))["body"].read()
    )
    assert not [k for k in unguarded if k.startswith("amazon-bedrock-")]


def test_intervened_titan_invoke_and_stream(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    """Recorded: an intervened Titan answer has float counts (headers stay integers), and its
    stream is a single chunk with the action and the trace, without invocation metrics."""
    bedrock_emulator.set_scenario(Scenario(guardrail="intervene"))
    prompt = "How do I play tennis in Japan?"
    response = bedrock_client.invoke_model(
        modelId=TITAN, body=_titan_body(prompt), **_guarded(trace="ENABLED")
    )
    body = json.loads(response["body"].read())
    assert body["amazon-bedrock-guardrailAction"] == "INTERVENED"
    assert body["inputTextTokenCount"] == float(count_text_tokens(prompt))
    assert type(body["inputTextTokenCount"]) is float
    assert type(body["results"][0]["tokenCount"]) is float
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == str(count_text_tokens(prompt))

    stream = bedrock_client.invoke_model_with_response_stream(
        modelId=TITAN, body=_titan_body(prompt), **_guarded(trace="ENABLED")
    )["body"]
    chunks = [json.loads(e["chunk"]["bytes"]) for e in stream]
    assert len(chunks) == 1
    (chunk,) = chunks
    assert set(chunk) == {
        "outputText", "index", "totalOutputTextTokenCount", "inputTextTokenCount",
        "amazon-bedrock-guardrailAction", "amazon-bedrock-trace",
    }
    assert chunk["index"] == 0.0 and type(chunk["index"]) is float
    assert chunk["totalOutputTextTokenCount"] == float(count_text_tokens(chunk["outputText"]))
    assert chunk["amazon-bedrock-trace"]["guardrail"]["actionReason"] == "Guardrail blocked."


def test_guarded_stream_marks_every_chunk(bedrock_client: Any) -> None:
    stream = bedrock_client.invoke_model_with_response_stream(
        modelId=TITAN, body=_titan_body("Tell me a story"), **_guarded(trace="ENABLED")
    )["body"]
    chunks = [json.loads(e["chunk"]["bytes"]) for e in stream]
    assert len(chunks) > 2
    assert all(c["amazon-bedrock-guardrailAction"] == "NONE" for c in chunks)
    assert ["amazon-bedrock-trace" in c for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert _METRICS in chunks[-1]


# -- families and shapes -----------------------------------------------------------------------


def test_ai21_j2(bedrock_client: Any) -> None:
    prompt = "Explain like I'm a five-year old: what is a neural network?"
    body = {"prompt": prompt, "temperature": 0.9, "topP": 1.0, "maxTokens": 10,
            "stopSequences": []}
    response = bedrock_client.invoke_model(modelId="ai21.j2-mid-v1", body=json.dumps(body))
    answer = json.loads(response["body"].read())
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert set(answer) == {"id", "prompt", "completions"}
    assert answer["prompt"]["text"] == prompt
    assert len(answer["prompt"]["tokens"]) == count_text_tokens(prompt)
    token = answer["prompt"]["tokens"][0]
    assert set(token) == {"generatedToken", "topTokens", "textRange"}
    assert set(token["generatedToken"]) == {"token", "logprob", "raw_logprob"}
    (completion,) = answer["completions"]
    assert completion["finishReason"] == {"reason": "length", "length": 10}
    assert count_text_tokens(completion["data"]["text"]) == 10
    assert headers["x-amzn-bedrock-input-token-count"] == str(count_text_tokens(prompt))
    assert headers["x-amzn-bedrock-output-token-count"] == "10"
    with pytest.raises(bedrock_client.exceptions.ValidationException):
        bedrock_client.invoke_model_with_response_stream(
            modelId="ai21.j2-mid-v1", body=json.dumps(body)
        )


def test_cohere_rerank(bedrock_client: Any, bedrock_emulator: BedrockEmulator) -> None:
    documents = ["Carson City is in Nevada.", "Saipan is in the Pacific.", "Washington, D.C."]
    body = {"query": "capital of the United States?", "documents": documents, "top_n": 2,
            "api_version": 2}
    response = bedrock_client.invoke_model(modelId="cohere.rerank-v3-5:0", body=json.dumps(body))
    answer = json.loads(response["body"].read())
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert list(answer) == ["results"] and len(answer["results"]) == 2
    assert all(set(r) == {"index", "relevance_score"} for r in answer["results"])
    scores = [r["relevance_score"] for r in answer["results"]]
    assert scores == sorted(scores, reverse=True)
    assert "x-amzn-bedrock-invocation-latency" in headers
    assert not [h for h in headers if h.endswith("-token-count")]  # as recorded
    recorded = bedrock_emulator.requests[-1]
    assert (recorded.input_tokens, recorded.output_tokens) == (None, None)


def test_imported_model_answers_in_openai_completions_shape(bedrock_client: Any) -> None:
    endpoint = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/endpoint-quick-start-abc"
    prompt = "Explain quantum mechanics."
    body = json.dumps({"prompt": prompt, "max_tokens": 100, "topP": 2, "temperature": 0.5})
    response = bedrock_client.invoke_model(modelId=endpoint, body=body)
    answer = json.loads(response["body"].read())
    assert answer["object"] == "text_completion"
    assert set(answer["choices"][0]) == {"index", "text", "logprobs", "finish_reason"}
    usage = answer["usage"]
    assert usage["prompt_tokens"] == count_text_tokens(prompt)
    assert usage["completion_tokens"] == count_text_tokens(answer["choices"][0]["text"])
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    imported = "arn:aws:bedrock:us-east-1:123456789012:imported-model/abcdef123456"
    stream = bedrock_client.invoke_model_with_response_stream(modelId=imported, body=body)
    chunks = [json.loads(e["chunk"]["bytes"]) for e in stream["body"]]
    assert "".join(c["choices"][0]["text"] for c in chunks) == answer["choices"][0]["text"]
    assert chunks[-1]["usage"] == usage


def test_jamba_body_has_request_duration(bedrock_client: Any) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 100})
    answer = json.loads(
        bedrock_client.invoke_model(modelId="ai21.jamba-1-5-mini-v1:0", body=body)["body"].read()
    )
    assert isinstance(answer["meta"]["requestDurationMillis"], int)


def _raw_stream_payloads(port: int, model: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", f"/model/{model}/invoke-with-response-stream", body=json.dumps(body))
    raw = conn.getresponse().read()
    conn.close()
    payloads = []
    while raw:
        total, headers_length = struct.unpack(">II", raw[:8])
        payloads.append(json.loads(raw[12 + headers_length : total - 4]))
        raw = raw[total:]
    return payloads


@pytest.mark.parametrize("generations", [1, 2])
def test_cohere_command_stream_chunks(bedrock_emulator: BedrockEmulator, generations: int) -> None:
    """Recorded: no ``p`` padding; ``index`` only with several generations."""
    body = {"prompt": "What is an LLM chain?", "max_tokens": 10, "num_generations": generations,
            "stream": True}
    payloads = _raw_stream_payloads(bedrock_emulator.port, "cohere.command-light-text-v14", body)
    assert all(list(p) == ["bytes"] for p in payloads)
    chunks = [json.loads(base64.b64decode(p["bytes"])) for p in payloads]
    keys = {"is_finished", "text"} | ({"index"} if generations > 1 else set())
    assert all(set(c) == keys for c in chunks[:-1])
    assert chunks[-1]["is_finished"] is True and chunks[-1]["finish_reason"] == "MAX_TOKENS"


def test_prompt_management_arn_with_variables_and_no_messages(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:prompt/PROMPT12345:1"
    reply = bedrock_client.converse(
        modelId=arn, promptVariables={"topic": {"text": "the weather in Paris"}}
    )
    assert reply["stopReason"] == "end_turn"
    assert reply["usage"]["inputTokens"] == count_text_tokens("the weather in Paris")
    with pytest.raises(bedrock_client.exceptions.ValidationException):
        bedrock_client.converse(modelId="amazon.nova-micro-v1:0", messages=[])
