"""bedrock-agent-runtime through the instrumentation, against the emulator: one span per call
(``invoke_agent`` / ``invoke_workflow`` / ``retrieval``), one ``chat`` child span per model step
the trace events report (the service's start/end, usage, clientRequestId), token metrics once
per step, totals on the agent span without cache breakdowns, streams ended every way, content
off by default, contrib stepping aside."""

from __future__ import annotations

import datetime
import gc
import json
from typing import Any, Callable

import botocore.exceptions
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from opentelemetry.instrumentation.bedrock_tokens import names
from opentelemetry.instrumentation.bedrock_tokens.emulator import BedrockEmulator, Scenario

from .floor import needs_flow_node_dependency_trace
from .helpers import agent_trace_members

AGENT = {"agentId": "AGENT12345", "agentAliasId": "ALIAS12345", "sessionId": "session-1"}
QUESTION = "How do I return an order?"
INSTRUCTION = "You help customers with their orders, politely and briefly."
KB = "KBEMULATE1"
MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
MODEL_ARN = f"arn:aws:bedrock:us-east-1::foundation-model/{MODEL}"
RAG_CONFIG = {
    "type": "KNOWLEDGE_BASE",
    "knowledgeBaseConfiguration": {"knowledgeBaseId": KB, "modelArn": MODEL_ARN},
}
FLOW_INPUTS = [
    {
        "nodeName": "FlowInputNode",
        "nodeOutputName": "document",
        "content": {"document": "Summarise my order."},
    }
]
OURS = "opentelemetry.instrumentation.bedrock_tokens"


def _by_kind(telemetry: Any) -> tuple[list[Any], list[Any]]:
    """(agent-level spans, chat step spans) of what was exported."""
    spans = telemetry.spans()
    steps = [s for s in spans if s.attributes.get(names.GEN_AI_OPERATION_NAME) == "chat"]
    return [s for s in spans if s not in steps], steps


def _token_points(telemetry: Any, kind: str, **attrs: Any) -> tuple[int, float]:
    found = telemetry.metric_points(names.METRIC_TOKEN_USAGE, gen_ai__token__type=kind, **attrs)
    return sum(p.count for p in found), sum(p.sum for p in found)


def _ns(moment: datetime.datetime) -> int:
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (moment - epoch) // datetime.timedelta(microseconds=1) * 1000


def _invoke(client: Any, **extra: Any) -> list[dict[str, Any]]:
    return list(client.invoke_agent(inputText=QUESTION, **AGENT, **extra)["completion"])


def test_invoke_agent_steps_and_totals(
    instrumented: Any,
    bedrock_agent_client: Any,
    bedrock_emulator: BedrockEmulator,
    bedrock_telemetry: Any,
) -> None:
    events = _invoke(bedrock_agent_client, enableTrace=True, memoryId="memory-1")
    reported = bedrock_emulator.requests[-1].steps
    (agent,), steps = _by_kind(bedrock_telemetry)
    assert agent.name == "invoke_agent AGENT12345" and agent.kind == SpanKind.CLIENT
    attrs = agent.attributes
    assert attrs[names.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert attrs[names.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    assert attrs[names.GEN_AI_AGENT_ID] == "AGENT12345"
    assert attrs[names.GEN_AI_CONVERSATION_ID] == "session-1"
    assert attrs[names.AWS_BEDROCK_AGENT_ALIAS_ID] == "ALIAS12345"
    assert attrs[names.AWS_BEDROCK_AGENT_MEMORY_ID] == "memory-1"
    assert attrs[names.AWS_BEDROCK_STREAM_OUTCOME] == "completed"
    assert attrs[names.AWS_BEDROCK_AGENT_MODEL_STEPS] == len(reported) == 4
    assert attrs[names.AWS_BEDROCK_AGENT_TOTAL_TIME] >= 0
    assert attrs[names.GEN_AI_USAGE_INPUT_TOKENS] == sum(r.input_tokens for r in reported)
    assert attrs[names.GEN_AI_USAGE_OUTPUT_TOKENS] == sum(r.output_tokens for r in reported)
    # an aggregate: no cache breakdown
    assert not any(".cache" in key for key in attrs)
    # one child per model step, in order, each with the service's own figures and times
    assert [s.parent.span_id for s in steps] == [agent.context.span_id] * 4
    assert [
        (
            s.name,
            s.attributes[names.AWS_BEDROCK_AGENT_STEP_TYPE],
            s.attributes[names.GEN_AI_USAGE_INPUT_TOKENS],
            s.attributes[names.GEN_AI_USAGE_OUTPUT_TOKENS],
            s.attributes[names.AWS_BEDROCK_AGENT_CLIENT_REQUEST_ID],
        )
        for s in steps
    ] == [
        (f"chat {MODEL}", r.step_type, r.input_tokens, r.output_tokens, r.client_request_id)
        for r in reported
    ]
    outputs = [m["metadata"] for m in agent_trace_members(events, "modelInvocationOutput")]
    for span, metadata in zip(steps, outputs):
        assert span.start_time == _ns(metadata["startTime"])
        assert span.end_time == _ns(metadata["endTime"])
        assert span.attributes[names.GEN_AI_REQUEST_MODEL] == MODEL
        assert span.attributes[names.GEN_AI_AGENT_ID] == "AGENT12345"
    # token metrics once per step (never again for the total), under chat and the step's model
    assert _token_points(bedrock_telemetry, "input") == (4, sum(r.input_tokens for r in reported))
    assert _token_points(bedrock_telemetry, "output") == (4, sum(r.output_tokens for r in reported))
    assert _token_points(bedrock_telemetry, "input", gen_ai__operation__name="invoke_agent")[0] == 0
    assert _token_points(bedrock_telemetry, "input", gen_ai__request__model=MODEL)[0] == 4
    durations = bedrock_telemetry.metric_points(names.METRIC_OPERATION_DURATION)
    assert [(p.attributes[names.GEN_AI_OPERATION_NAME], p.count) for p in durations] == [
        ("invoke_agent", 1)
    ]


def test_without_enable_trace_no_counts(
    instrumented: Any, bedrock_agent_client: Any, bedrock_telemetry: Any
) -> None:
    events = _invoke(bedrock_agent_client)
    assert [next(iter(e)) for e in events] == ["chunk"]
    (agent,), steps = _by_kind(bedrock_telemetry)
    assert steps == []
    assert agent.attributes[names.AWS_BEDROCK_AGENT_TRACE_ENABLED] is False
    assert names.GEN_AI_USAGE_INPUT_TOKENS not in agent.attributes
    assert bedrock_telemetry.metric_points(names.METRIC_TOKEN_USAGE) == []


def test_agent_enable_trace_setting(
    instrument: Callable[..., Any],
    bedrock_agent_client: Any,
    bedrock_emulator: BedrockEmulator,
    bedrock_telemetry: Any,
) -> None:
    instrument(agent_enable_trace=True)
    events = _invoke(bedrock_agent_client)
    assert any("trace" in e for e in events)  # delivered to the caller too, as documented
    assert json.loads(bedrock_emulator.requests[-1].body)["enableTrace"] is True
    (agent,), steps = _by_kind(bedrock_telemetry)
    assert len(steps) == 4 and agent.attributes[names.AWS_BEDROCK_AGENT_TRACE_ENABLED] is True
    # a caller's explicit False is theirs
    bedrock_telemetry.clear_spans()
    _invoke(bedrock_agent_client, enableTrace=False)
    assert _by_kind(bedrock_telemetry)[1] == []


def test_content_is_off_by_default_and_on_when_asked(
    instrument: Callable[..., Any], bedrock_agent_client: Any, bedrock_telemetry: Any
) -> None:
    instrument()
    _invoke(bedrock_agent_client, enableTrace=True)
    for span in bedrock_telemetry.spans():
        for value in span.attributes.values():
            assert "return an order" not in str(value) and "Thought:" not in str(value)
    bedrock_telemetry.clear_spans()
    instrument(capture_content=True)
    _invoke(bedrock_agent_client, enableTrace=True)
    _agents, steps = _by_kind(bedrock_telemetry)
    assert QUESTION in steps[0].attributes[names.GEN_AI_INPUT_MESSAGES]
    assert "Thought:" in steps[0].attributes[names.GEN_AI_OUTPUT_MESSAGES]


def test_a_stream_error_ends_the_span_once_with_the_steps_so_far(
    instrumented: Any,
    bedrock_agent_client: Any,
    bedrock_emulator: BedrockEmulator,
    bedrock_telemetry: Any,
) -> None:
    # step 1 is 5 trace events (input, output, rationale, lookup, observation), step 2 is 2:
    # the exception after 7 events cuts the run before step 3
    bedrock_emulator.push_scenario(
        Scenario(stream_exception="dependencyFailedException", stream_exception_after=7)
    )
    response = bedrock_agent_client.invoke_agent(inputText=QUESTION, enableTrace=True, **AGENT)
    with pytest.raises(botocore.exceptions.EventStreamError):
        for _event in response["completion"]:
            pass
    (agent,), steps = _by_kind(bedrock_telemetry)
    assert agent.status.status_code == StatusCode.ERROR
    assert agent.attributes[names.ERROR_TYPE] == "DependencyFailedException"
    assert agent.attributes[names.AWS_BEDROCK_STREAM_OUTCOME] == "error"
    reported = bedrock_emulator.requests[-1].steps
    assert len(steps) == 2  # the steps whose output arrived
    assert agent.attributes[names.GEN_AI_USAGE_INPUT_TOKENS] == sum(
        r.input_tokens for r in reported[:2]
    )
    assert _token_points(bedrock_telemetry, "input")[0] == 2


def test_closed_and_abandoned_agent_streams(
    instrumented: Any, bedrock_agent_client: Any, bedrock_telemetry: Any
) -> None:
    response = bedrock_agent_client.invoke_agent(inputText=QUESTION, enableTrace=True, **AGENT)
    stream = response["completion"]
    for _event in stream:
        break  # not an end
    assert bedrock_telemetry.spans() == []
    stream.close()
    stream.close()
    response = bedrock_agent_client.invoke_agent(inputText=QUESTION, enableTrace=True, **AGENT)
    next(iter(response["completion"]))
    del response, stream
    gc.collect()
    agents, _steps = _by_kind(bedrock_telemetry)
    assert [a.attributes[names.AWS_BEDROCK_STREAM_OUTCOME] for a in agents] == [
        "closed",
        "abandoned",
    ]


def test_http_errors_are_typed(
    instrumented: Any,
    bedrock_agent_client: Any,
    bedrock_emulator: BedrockEmulator,
    bedrock_telemetry: Any,
) -> None:
    bedrock_emulator.push_scenario(Scenario(error_status=429))
    with pytest.raises(bedrock_agent_client.exceptions.ThrottlingException):
        bedrock_agent_client.invoke_agent(inputText=QUESTION, **AGENT)
    (agent,) = bedrock_telemetry.spans()
    assert agent.attributes[names.ERROR_TYPE] == "ThrottlingException"
    assert agent.attributes[names.AWS_REQUEST_ID] == bedrock_emulator.requests[-1].request_id


def test_inline_agent_and_return_control(
    instrumented: Any,
    bedrock_agent_client: Any,
    bedrock_emulator: BedrockEmulator,
    bedrock_telemetry: Any,
) -> None:
    group = {
        "actionGroupName": "orders",
        "actionGroupExecutor": {"customControl": "RETURN_CONTROL"},
        "functionSchema": {"functions": [{"name": "get_order_status"}]},
    }
    response = bedrock_agent_client.invoke_inline_agent(
        sessionId="inline-1",
        inputText="Status of order 7?",
        enableTrace=True,
        foundationModel="amazon.nova-micro-v1:0",
        instruction=INSTRUCTION,
        agentName="helper",
        actionGroups=[group],
    )
    events = list(response["completion"])
    assert "returnControl" in events[-1]
    (agent,), steps = _by_kind(bedrock_telemetry)
    assert agent.name == "invoke_agent helper"
    assert agent.attributes[names.GEN_AI_AGENT_NAME] == "helper"
    assert agent.attributes[names.GEN_AI_REQUEST_MODEL] == "amazon.nova-micro-v1:0"
    assert agent.attributes[names.GEN_AI_CONVERSATION_ID] == "inline-1"
    reported = bedrock_emulator.requests[-1].steps
    assert [s.attributes[names.GEN_AI_USAGE_INPUT_TOKENS] for s in steps] == [
        r.input_tokens for r in reported
    ]
    assert steps[0].name == "chat amazon.nova-micro-v1:0"


@needs_flow_node_dependency_trace
def test_invoke_flow(
    instrumented: Any,
    bedrock_agent_client: Any,
    bedrock_emulator: BedrockEmulator,
    bedrock_telemetry: Any,
) -> None:
    response = bedrock_agent_client.invoke_flow(
        flowIdentifier="FLOW123456",
        flowAliasIdentifier="FALIAS1234",
        inputs=FLOW_INPUTS,
        enableTrace=True,
    )
    list(response["responseStream"])
    (flow,), steps = _by_kind(bedrock_telemetry)
    assert flow.name == "invoke_workflow FLOW123456"
    assert flow.attributes[names.AWS_BEDROCK_FLOW_ALIAS_ID] == "FALIAS1234"
    assert flow.attributes[names.AWS_BEDROCK_FLOW_EXECUTION_ID] == response["executionId"]
    (reported,) = bedrock_emulator.requests[-1].steps
    (step,) = steps
    assert step.parent.span_id == flow.context.span_id
    assert step.attributes[names.GEN_AI_USAGE_INPUT_TOKENS] == reported.input_tokens
    assert flow.attributes[names.GEN_AI_USAGE_OUTPUT_TOKENS] == reported.output_tokens


def test_knowledge_base_operations(
    instrumented: Any, bedrock_agent_client: Any, bedrock_telemetry: Any
) -> None:
    answer = bedrock_agent_client.retrieve_and_generate(
        input={"text": "How many days does shipping take?"},
        retrieveAndGenerateConfiguration=RAG_CONFIG,
    )
    streamed = bedrock_agent_client.retrieve_and_generate_stream(
        input={"text": "warranty"},
        retrieveAndGenerateConfiguration=RAG_CONFIG,
    )
    text = "".join(e["output"]["text"] for e in streamed["stream"] if "output" in e)
    assert text
    bedrock_agent_client.retrieve(
        knowledgeBaseId=KB,
        retrievalQuery={"text": "warranty"},
        retrievalConfiguration={"vectorSearchConfiguration": {"numberOfResults": 2}},
    )
    spans = bedrock_telemetry.spans()
    assert [s.name for s in spans] == [f"retrieval {KB}"] * 3
    for span in spans:
        assert span.attributes[names.GEN_AI_OPERATION_NAME] == "retrieval"
        assert span.attributes[names.GEN_AI_DATA_SOURCE_ID] == KB
        assert names.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes  # the API has none
    rag, rag_stream, retrieve = spans
    assert rag.attributes[names.GEN_AI_CONVERSATION_ID] == answer["sessionId"]
    assert rag.attributes[names.GEN_AI_REQUEST_MODEL] == MODEL_ARN
    assert rag_stream.attributes[names.AWS_BEDROCK_STREAM_OUTCOME] == "completed"
    assert rag_stream.attributes[names.GEN_AI_CONVERSATION_ID] == streamed["sessionId"]
    assert retrieve.attributes[names.GEN_AI_REQUEST_TOP_K] == 2
    assert bedrock_telemetry.metric_points(names.METRIC_TOKEN_USAGE) == []


@pytest.mark.parametrize("order", ["ours-first", "contrib-first"])
def test_contrib_steps_aside_for_agent_runtime(
    order: str, both: tuple[Any, Any], bedrock_agent_client: Any, bedrock_telemetry: Any
) -> None:
    ours, contrib = both
    for instrumentor in both if order == "ours-first" else (contrib, ours):
        instrumentor.instrument(
            tracer_provider=bedrock_telemetry.tracer_provider,
            meter_provider=bedrock_telemetry.meter_provider,
        )
    _invoke(bedrock_agent_client, enableTrace=True)
    bedrock_agent_client.retrieve(knowledgeBaseId=KB, retrievalQuery={"text": "warranty"})
    spans = bedrock_telemetry.spans()
    assert {s.instrumentation_scope.name for s in spans} == {OURS}
    assert sorted(s.name for s in spans if s.attributes[names.GEN_AI_OPERATION_NAME] != "chat") == [
        "invoke_agent AGENT12345",
        f"retrieval {KB}",
    ]
    # Uninstrumenting ours gives the service back to contrib.
    ours.uninstrument()
    bedrock_telemetry.clear_spans()
    bedrock_agent_client.retrieve(knowledgeBaseId=KB, retrievalQuery={"text": "warranty"})
    assert [s.instrumentation_scope.name for s in bedrock_telemetry.spans()] == [
        "opentelemetry.instrumentation.botocore"
    ]


async def test_async_agent_calls_equal_the_sync_ones(
    instrumented: Any,
    bedrock_agent_client: Any,
    bedrock_async_agent_client: Any,
    bedrock_emulator: BedrockEmulator,
    bedrock_telemetry: Any,
) -> None:
    sync_events = _invoke(bedrock_agent_client, enableTrace=True)
    response = await bedrock_async_agent_client.invoke_agent(
        inputText=QUESTION, enableTrace=True, **AGENT
    )
    async_events = [event async for event in response["completion"]]
    assert [next(iter(e)) for e in async_events] == [next(iter(e)) for e in sync_events]
    sync_steps, async_steps = (r.steps for r in bedrock_emulator.requests[-2:])
    agents_, steps = _by_kind(bedrock_telemetry)
    assert [a.name for a in agents_] == ["invoke_agent AGENT12345"] * 2
    assert [s.attributes[names.GEN_AI_USAGE_INPUT_TOKENS] for s in steps] == [
        r.input_tokens for r in (*sync_steps, *async_steps)
    ]
    assert {s.parent.span_id for s in steps[len(sync_steps) :]} == {agents_[1].context.span_id}
    assert _token_points(bedrock_telemetry, "input")[0] == len(sync_steps) + len(async_steps)
    # a mid-stream error, async
    bedrock_emulator.push_scenario(Scenario(stream_exception="throttlingException"))
    response = await bedrock_async_agent_client.invoke_agent(
        inputText=QUESTION, enableTrace=True, **AGENT
    )
    with pytest.raises(botocore.exceptions.EventStreamError):
        async for _event in response["completion"]:
            pass
    assert bedrock_telemetry.spans()[-1].attributes[names.ERROR_TYPE] == "ThrottlingException"
    answer = await bedrock_async_agent_client.retrieve(
        knowledgeBaseId=KB, retrievalQuery={"text": "warranty"}
    )
    assert answer["retrievalResults"]
    assert bedrock_telemetry.spans()[-1].name == f"retrieval {KB}"


@pytest.mark.parametrize("bedrock_async_agent_client", ["httpx"], indirect=True)
async def test_async_httpx_knowledge_base_call(
    instrumented: Any, bedrock_async_agent_client: Any, bedrock_telemetry: Any
) -> None:
    """(aiobotocore cannot read event streams over httpx, with or without us: test_async.py.)"""
    answer = await bedrock_async_agent_client.retrieve_and_generate(
        input={"text": "warranty"}, retrieveAndGenerateConfiguration=RAG_CONFIG
    )
    (span,) = bedrock_telemetry.spans()
    assert span.name == f"retrieval {KB}"
    assert span.attributes[names.GEN_AI_CONVERSATION_ID] == answer["sessionId"]
