"""The emulator's bedrock-agent-runtime operations: paths, shapes (field by field against
botocore's model), deterministic per-step usage in trace events, multi-step agents,
return-control, flows, knowledge bases, errors and mid-stream faults."""

from __future__ import annotations

import base64
import json
from typing import Any

import botocore.eventstream
import botocore.exceptions
import pytest
import urllib3.exceptions

from opentelemetry.instrumentation.bedrock_tokens.emulator import (
    BedrockEmulator,
    Scenario,
    count_text_tokens,
)

from ..floor import needs_flow_node_dependency_trace
from ..helpers import agent_trace_members
from .agent_shapes import check, check_stream, output_shape, shape
from .support import raw_request

AGENT_PATH = "/agents/AGENT12345/agentAliases/ALIAS12345/sessions/session-1/text"
KB = "KBEMULATE1"
MODEL_ARN = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0"
INSTRUCTION = "You help customers with their orders, politely and briefly."
RAG_CONFIG = {
    "type": "KNOWLEDGE_BASE",
    "knowledgeBaseConfiguration": {"knowledgeBaseId": KB, "modelArn": MODEL_ARN},
}


def _post(emulator: BedrockEmulator, path: str, body: dict[str, Any], **headers: str) -> Any:
    status, response_headers, raw = raw_request(
        emulator.port,
        "POST",
        path,
        json.dumps(body).encode(),
        {"content-type": "application/json", **headers},
    )
    return status, response_headers, raw


def _model_steps(events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Pair each modelInvocationInput with its modelInvocationOutput (by traceId)."""
    inputs: dict[str, dict[str, Any]] = {}
    steps = []
    for name, payload in events:
        if name != "trace":
            continue
        ((_key, body),) = payload["trace"].items()
        if "modelInvocationInput" in body:
            inputs[body["modelInvocationInput"]["traceId"]] = body["modelInvocationInput"]
        if "modelInvocationOutput" in body:
            output = body["modelInvocationOutput"]
            steps.append({"input": inputs[output["traceId"]], "output": output})
    return steps


def _trace_members(events: list[tuple[str, dict[str, Any]]], member: str) -> list[Any]:
    """The ``member`` (invocationInput, observation, ...) of every trace event that has one."""
    return [
        body[member]
        for name, payload in events
        if name == "trace"
        for body in payload["trace"].values()
        if member in body
    ]


def _agent_call(emulator: BedrockEmulator, **body: Any) -> list[tuple[str, dict[str, Any]]]:
    status, headers, raw = _post(emulator, AGENT_PATH, body)
    assert status == 200, raw
    assert headers["content-type"] == "application/vnd.amazon.eventstream"
    return check_stream(shape("ResponseStream"), raw)


# ---------------------------------------------------------------------------- InvokeAgent


def test_invoke_agent_multi_step_trace_is_the_model_field_by_field(
    bedrock_emulator: BedrockEmulator,
) -> None:
    events = _agent_call(bedrock_emulator, inputText="How do I return an order?", enableTrace=True)
    names = [name for name, _ in events]
    assert names[-1] == "chunk" and set(names[:-1]) == {"trace"}
    steps = _model_steps(events)
    assert [s["input"]["type"] for s in steps] == [
        "ORCHESTRATION",
        "KNOWLEDGE_BASE_RESPONSE_GENERATION",
        "ORCHESTRATION",
        "ORCHESTRATION",
    ]
    # Usage is the tokenizer's count of the prompt and raw response each step shows.
    for step in steps:
        usage = step["output"]["metadata"]["usage"]
        assert usage["inputTokens"] == count_text_tokens(step["input"]["text"])
        assert usage["outputTokens"] == count_text_tokens(step["output"]["rawResponse"]["content"])
    recorded = bedrock_emulator.requests[-1]
    assert recorded.operation == "InvokeAgent"
    assert [
        (s.step_type, s.input_tokens, s.output_tokens, s.client_request_id) for s in recorded.steps
    ] == [
        (
            s["input"]["type"],
            s["output"]["metadata"]["usage"]["inputTokens"],
            s["output"]["metadata"]["usage"]["outputTokens"],
            s["output"]["metadata"]["clientRequestId"],
        )
        for s in steps
    ]
    assert recorded.input_tokens == sum(s.input_tokens for s in recorded.steps)
    assert recorded.output_tokens == sum(s.output_tokens for s in recorded.steps)
    assert len({s.client_request_id for s in recorded.steps}) == 4
    # The orchestration loop: a knowledge-base lookup, an action group, the final answer.
    invocations = [b["invocationType"] for b in _trace_members(events, "invocationInput")]
    assert invocations == ["KNOWLEDGE_BASE", "ACTION_GROUP"]
    observations = [b["type"] for b in _trace_members(events, "observation")]
    assert observations == ["KNOWLEDGE_BASE", "ACTION_GROUP", "FINISH"]
    final = next(
        b["finalResponse"] for b in _trace_members(events, "observation") if "finalResponse" in b
    )
    assert final["metadata"]["operationTotalTimeMs"] >= 0
    envelope = events[0][1]
    assert (envelope["agentId"], envelope["agentAliasId"], envelope["sessionId"]) == (
        "AGENT12345",
        "ALIAS12345",
        "session-1",
    )


def test_invoke_agent_through_botocore(bedrock_agent_client: Any, bedrock_emulator: Any) -> None:
    response = bedrock_agent_client.invoke_agent(
        agentId="AGENT12345",
        agentAliasId="ALIAS12345",
        sessionId="session-2",
        inputText="Where is my order?",
        enableTrace=True,
        memoryId="memory-1",
    )
    assert (response["sessionId"], response["memoryId"]) == ("session-2", "memory-1")
    assert response["contentType"] == "application/json"
    events = list(response["completion"])
    outputs = agent_trace_members(events, "modelInvocationOutput")
    recorded = bedrock_emulator.requests[-1]
    assert [o["metadata"]["usage"]["inputTokens"] for o in outputs] == [
        s.input_tokens for s in recorded.steps
    ]
    for output in outputs:
        metadata = output["metadata"]
        assert metadata["startTime"] <= metadata["endTime"]  # parsed to datetimes
        assert metadata["totalTimeMs"] >= 0
    answer = b"".join(e["chunk"]["bytes"] for e in events if "chunk" in e).decode()
    assert answer.startswith("The emulator agent has finished")
    assert events[-1]["chunk"]["attribution"]["citations"][0]["retrievedReferences"]


def test_without_enable_trace_there_are_no_traces_and_no_usage(
    bedrock_emulator: BedrockEmulator,
) -> None:
    events = _agent_call(bedrock_emulator, inputText="How do I return an order?")
    assert [name for name, _ in events] == ["chunk"]
    recorded = bedrock_emulator.requests[-1]
    assert (recorded.input_tokens, recorded.output_tokens, recorded.steps) == (None, None, ())


def test_every_agent_step_kind(bedrock_emulator: BedrockEmulator) -> None:
    bedrock_emulator.push_scenario(
        Scenario(
            agent_steps=("pre_processing", "knowledge_base", "action_group", "post_processing")
        )
    )
    events = _agent_call(bedrock_emulator, inputText="Return my order", enableTrace=True)
    keys = [next(iter(p["trace"])) for name, p in events if name == "trace"]
    assert keys[0] == "preProcessingTrace" and keys[-1] == "postProcessingTrace"
    steps = _model_steps(events)
    assert next(s["input"]["type"] for s in steps) == "PRE_PROCESSING"
    assert steps[0]["output"]["parsedResponse"]["isValid"] is True
    assert [s["input"]["type"] for s in steps][-1] == "POST_PROCESSING"
    assert len(bedrock_emulator.requests[-1].steps) == 6


def test_a_direct_answer_is_one_step(bedrock_emulator: BedrockEmulator) -> None:
    bedrock_emulator.push_scenario(Scenario(agent_steps=()))
    events = _agent_call(bedrock_emulator, inputText="Hello", enableTrace=True)
    assert [s["input"]["type"] for s in _model_steps(events)] == ["ORCHESTRATION"]


def test_return_control_then_the_result_goes_back(
    bedrock_agent_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    group = {
        "actionGroupName": "orders",
        "actionGroupExecutor": {"customControl": "RETURN_CONTROL"},
        "functionSchema": {"functions": [{"name": "get_order_status"}]},
    }
    common = {"foundationModel": "amazon.nova-micro-v1:0", "instruction": INSTRUCTION}
    first = bedrock_agent_client.invoke_inline_agent(
        sessionId="inline-1",
        inputText="Status of order 7?",
        enableTrace=True,
        actionGroups=[group],
        **common,
    )
    events = list(first["completion"])
    assert "chunk" not in {k for e in events for k in e}
    control = events[-1]["returnControl"]
    call = control["invocationInputs"][0]["functionInvocationInput"]
    assert (call["actionGroup"], call["function"]) == ("orders", "get_order_status")
    assert bedrock_emulator.requests[-1].model_id == "amazon.nova-micro-v1:0"
    result = {
        "functionResult": {
            "actionGroup": "orders",
            "function": "get_order_status",
            "responseBody": {"TEXT": {"body": "Order 7 has shipped."}},
        }
    }
    second = bedrock_agent_client.invoke_inline_agent(
        sessionId="inline-1",
        enableTrace=True,
        actionGroups=[group],
        inlineSessionState={
            "invocationId": control["invocationId"],
            "returnControlInvocationResults": [result],
        },
        **common,
    )
    events = list(second["completion"])
    prompts = [m["text"] for m in agent_trace_members(events, "modelInvocationInput")]
    assert len(prompts) == 1 and "Order 7 has shipped." in prompts[0]
    assert "chunk" in events[-1]


def test_inline_agent_uses_its_own_knowledge_base_and_code_interpreter(
    bedrock_emulator: BedrockEmulator,
) -> None:
    body = {
        "foundationModel": "amazon.nova-micro-v1:0",
        "instruction": INSTRUCTION,
        "inputText": "How long does shipping take?",
        "enableTrace": True,
        "knowledgeBases": [{"knowledgeBaseId": KB, "description": "shipping facts"}],
        "actionGroups": [
            {"actionGroupName": "code", "parentActionGroupSignature": "AMAZON.CodeInterpreter"}
        ],
        "streamingConfigurations": {"streamFinalResponse": True},
    }
    status, _headers, raw = _post(bedrock_emulator, "/agents/inline-2", body)
    assert status == 200
    events = check_stream(shape("InlineAgentResponseStream"), raw)
    lookups = [
        b["knowledgeBaseLookupInput"]["knowledgeBaseId"]
        for b in _trace_members(events, "invocationInput")
    ]
    assert lookups == [KB]
    assert "agentId" not in events[0][1]  # inline agents have no agent id
    assert "files" in [n for n, _ in events]
    chunks = [base64.b64decode(p["bytes"]).decode() for n, p in events if n == "chunk"]
    assert len(chunks) > 1  # streamed final response: one chunk per word
    assert (
        "".join(chunks) == "The emulator agent has finished the task and this is its final answer."
    )


# ---------------------------------------------------------------------------- faults


def test_agent_http_errors_are_typed(bedrock_agent_client: Any, bedrock_emulator: Any) -> None:
    bedrock_emulator.push_scenario(Scenario(error_code="DependencyFailedException"))
    with pytest.raises(bedrock_agent_client.exceptions.DependencyFailedException):
        bedrock_agent_client.invoke_agent(
            agentId="AGENT12345", agentAliasId="ALIAS12345", sessionId="session-3", inputText="hi"
        )
    assert bedrock_emulator.requests[-1].status == 424
    bedrock_emulator.set_scenario(Scenario(error_status=429), model_id=KB)
    with pytest.raises(bedrock_agent_client.exceptions.ThrottlingException):
        bedrock_agent_client.retrieve(knowledgeBaseId=KB, retrievalQuery={"text": "warranty"})
    # keyed by knowledge base: another one is served
    bedrock_agent_client.retrieve(knowledgeBaseId="KBOTHER123", retrievalQuery={"text": "x"})


def test_an_agent_request_without_input_is_rejected(bedrock_emulator: BedrockEmulator) -> None:
    status, headers, _raw = _post(bedrock_emulator, AGENT_PATH, {"enableTrace": True})
    assert status == 400
    assert headers["x-amzn-errortype"].startswith("ValidationException")


@pytest.mark.parametrize(
    "exception", ["dependencyFailedException", "throttlingException", "badGatewayException"]
)
def test_mid_stream_exception(
    bedrock_agent_client: Any, bedrock_emulator: BedrockEmulator, exception: str
) -> None:
    bedrock_emulator.push_scenario(Scenario(stream_exception=exception, stream_exception_after=3))
    response = bedrock_agent_client.invoke_agent(
        agentId="AGENT12345",
        agentAliasId="ALIAS12345",
        sessionId="session-3",
        inputText="hi",
        enableTrace=True,
    )
    seen = []
    with pytest.raises(botocore.exceptions.EventStreamError) as info:
        for event in response["completion"]:
            seen.append(event)
    assert len(seen) == 3
    assert info.value.response["Error"]["Code"] == exception


def test_dropped_and_corrupt_agent_streams(
    bedrock_agent_client: Any, bedrock_emulator: Any
) -> None:
    kwargs = {
        "agentId": "AGENT12345",
        "agentAliasId": "ALIAS12345",
        "sessionId": "session-3",
        "inputText": "hi",
        "enableTrace": True,
    }
    bedrock_emulator.push_scenario(Scenario(drop_after=2))
    with pytest.raises(
        (urllib3.exceptions.ProtocolError, botocore.exceptions.ResponseStreamingError)
    ):
        list(bedrock_agent_client.invoke_agent(**kwargs)["completion"])
    bedrock_emulator.push_scenario(Scenario(corrupt_crc_at=1))
    with pytest.raises(botocore.eventstream.ChecksumMismatch):
        list(bedrock_agent_client.invoke_agent(**kwargs)["completion"])


def test_usage_can_be_left_out_or_sent_as_floats(bedrock_emulator: BedrockEmulator) -> None:
    bedrock_emulator.push_scenario(Scenario(omit_body_usage=True))
    steps = _model_steps(_agent_call(bedrock_emulator, inputText="hi", enableTrace=True))
    assert all("usage" not in s["output"]["metadata"] for s in steps)
    assert bedrock_emulator.requests[-1].steps == ()
    bedrock_emulator.push_scenario(Scenario(float_counts=True))
    _status, _h, raw = _post(bedrock_emulator, AGENT_PATH, {"inputText": "hi", "enableTrace": True})
    with pytest.raises(AssertionError):  # Usage members are integers in the model
        check_stream(shape("ResponseStream"), raw)


# ---------------------------------------------------------------------------- flows


@needs_flow_node_dependency_trace
def test_invoke_flow(bedrock_agent_client: Any, bedrock_emulator: BedrockEmulator) -> None:
    body = {
        "inputs": [
            {
                "nodeName": "FlowInputNode",
                "nodeOutputName": "document",
                "content": {"document": "Summarise my order."},
            }
        ],
        "enableTrace": True,
    }
    status, headers, raw = _post(bedrock_emulator, "/flows/FLOW123456/aliases/FALIAS1234", body)
    assert status == 200 and headers["x-amz-bedrock-flow-execution-id"]
    events = check_stream(shape("FlowResponseStream"), raw)
    names = [n for n, _ in events]
    assert names[-2:] == ["flowOutputEvent", "flowCompletionEvent"]
    dependency = [
        p["trace"]["nodeDependencyTrace"]
        for n, p in events
        if n == "flowTraceEvent" and "nodeDependencyTrace" in p["trace"]
    ]
    parts = dependency[0]["traceElements"]["agentTraces"]
    usage = [
        next(iter(p["trace"].values()))["modelInvocationOutput"]["metadata"]["usage"] for p in parts
    ]
    recorded = bedrock_emulator.requests[-1]
    assert recorded.operation == "InvokeFlow"
    assert [(u["inputTokens"], u["outputTokens"]) for u in usage] == [
        (s.input_tokens, s.output_tokens) for s in recorded.steps
    ]
    parsed = bedrock_agent_client.invoke_flow(
        flowIdentifier="FLOW123456", flowAliasIdentifier="FALIAS1234", inputs=body["inputs"]
    )
    events = list(parsed["responseStream"])
    assert [next(iter(e)) for e in events] == ["flowOutputEvent", "flowCompletionEvent"]
    assert events[1]["flowCompletionEvent"]["completionReason"] == "SUCCESS"
    assert bedrock_emulator.requests[-1].steps == ()


# ---------------------------------------------------------------------------- knowledge bases


def test_retrieve_and_generate(bedrock_agent_client: Any, bedrock_emulator: Any) -> None:
    status, _h, raw = _post(
        bedrock_emulator,
        "/retrieveAndGenerate",
        {
            "input": {"text": "How many days does shipping take?"},
            "retrieveAndGenerateConfiguration": RAG_CONFIG,
        },
    )
    assert status == 200
    body = json.loads(raw)
    check(output_shape("RetrieveAndGenerate"), body)
    assert body["output"]["text"] == "Standard shipping takes three to five business days."
    parsed = bedrock_agent_client.retrieve_and_generate(
        input={"text": "How many days does shipping take?"},
        retrieveAndGenerateConfiguration=RAG_CONFIG,
        sessionId="kb-session",
    )
    assert parsed["sessionId"] == "kb-session"
    assert parsed["output"] == body["output"]
    assert bedrock_emulator.requests[-1].model_id == MODEL_ARN
    assert bedrock_emulator.requests[-1].input_tokens is None  # the API reports no usage


def test_retrieve_and_generate_stream(bedrock_agent_client: Any, bedrock_emulator: Any) -> None:
    config = dict(RAG_CONFIG)
    config["knowledgeBaseConfiguration"] = dict(
        RAG_CONFIG["knowledgeBaseConfiguration"],  # type: ignore[arg-type]
        generationConfiguration={
            "guardrailConfiguration": {"guardrailId": "gr1", "guardrailVersion": "1"}
        },
    )
    request = {
        "input": {"text": "warranty of a device"},
        "retrieveAndGenerateConfiguration": config,
    }
    status, headers, raw = _post(bedrock_emulator, "/retrieveAndGenerateStream", request)
    assert status == 200 and headers["x-amzn-bedrock-knowledge-base-session-id"]
    events = check_stream(shape("RetrieveAndGenerateStreamResponseOutput"), raw)
    assert [n for n, _ in events][-2:] == ["citation", "guardrail"]
    parsed = bedrock_agent_client.retrieve_and_generate_stream(**request)
    text = "".join(e["output"]["text"] for e in parsed["stream"] if "output" in e)
    assert text == "Every device has a two year limited warranty."


def test_retrieve(bedrock_agent_client: Any, bedrock_emulator: BedrockEmulator) -> None:
    request = {
        "retrievalQuery": {"text": "return an order"},
        "retrievalConfiguration": {"vectorSearchConfiguration": {"numberOfResults": 3}},
    }
    status, _h, raw = _post(bedrock_emulator, f"/knowledgebases/{KB}/retrieve", request)
    assert status == 200
    check(output_shape("Retrieve"), json.loads(raw))
    parsed = bedrock_agent_client.retrieve(knowledgeBaseId=KB, **request)
    results = parsed["retrievalResults"]
    assert len(results) == 3
    assert results[0]["content"]["text"] == "Orders can be returned within 30 days of delivery."
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert bedrock_emulator.requests[-1].operation == "Retrieve"


def test_agent_fixture_configuration(bedrock_agent_client: Any, bedrock_emulator: Any) -> None:
    assert bedrock_agent_client.meta.service_model.service_name == "bedrock-agent-runtime"
    assert bedrock_agent_client.meta.endpoint_url == bedrock_emulator.endpoint_url
    assert bedrock_agent_client.meta.config.retries["total_max_attempts"] == 1
