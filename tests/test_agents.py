"""agents.py: describing agent-runtime calls and copying model steps out of trace events.

The events are the emulator's, parsed by a real botocore client, so the collector sees what it
will see in a call; a few hand-made events cover what the emulator never sends."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest

from opentelemetry.instrumentation.bedrock_tokens import agents, names
from opentelemetry.instrumentation.bedrock_tokens.emulator import BedrockEmulator, Scenario
from opentelemetry.instrumentation.bedrock_tokens.usage import Usage

from .floor import needs_flow_node_dependency_trace

AGENT = {"agentId": "AGENT12345", "agentAliasId": "ALIAS12345", "sessionId": "session-1"}


def _agent_events(client: Any, **extra: Any) -> list[dict[str, Any]]:
    response = client.invoke_agent(inputText="How do I return an order?", **AGENT, **extra)
    return list(response["completion"])


def _collected(client: Any, capture: bool = False) -> agents.StepCollector:
    """A collector fed every event of one traced agent call."""
    collector = agents.StepCollector(capture=capture)
    for event in _agent_events(client, enableTrace=True):
        collector.observe(event)
    return collector


def test_steps_equal_what_the_emulator_reported(
    bedrock_agent_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    collector = agents.StepCollector()
    returned = [collector.observe(e) for e in _agent_events(bedrock_agent_client, enableTrace=True)]
    reported = bedrock_emulator.requests[-1].steps
    assert [s for s in returned if s is not None] == collector.steps
    assert [
        (s.step_type, s.model, s.usage.input, s.usage.output, s.client_request_id)
        for s in collector.steps
        if s.usage is not None
    ] == [
        (r.step_type, r.model_id, r.input_tokens, r.output_tokens, r.client_request_id)
        for r in reported
    ]
    for step in collector.steps:
        assert step.start_ns is not None and step.end_ns is not None
        assert step.start_ns <= step.end_ns
        assert step.agent_id == "AGENT12345"
        assert step.prompt is None and step.response is None  # content off by default
    assert collector.total_time_ms is not None
    total = agents.totals(collector.steps)
    assert total == Usage(
        sum(r.input_tokens for r in reported),
        sum(r.output_tokens for r in reported),
        None,
        None,
        "agent_trace",
    )


def test_capture_keeps_the_step_text(bedrock_agent_client: Any) -> None:
    collector = _collected(bedrock_agent_client, capture=True)
    first = collector.steps[0]
    assert first.prompt is not None and "How do I return an order?" in first.prompt
    assert first.response is not None and first.response.startswith("Thought:")


def test_events_mutated_after_observation_change_nothing(bedrock_agent_client: Any) -> None:
    collector = agents.StepCollector()
    for event in _agent_events(bedrock_agent_client, enableTrace=True):
        collector.observe(event)
        event.clear()  # what the user does with an event is theirs
    assert collector.steps and all(s.usage is not None for s in collector.steps)


def test_without_enable_trace_no_steps(bedrock_agent_client: Any) -> None:
    collector = agents.StepCollector()
    for event in _agent_events(bedrock_agent_client):
        assert collector.observe(event) is None
    assert collector.steps == [] and agents.totals(collector.steps) is None


def test_usage_left_out_gives_steps_without_counts(
    bedrock_agent_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.push_scenario(Scenario(omit_body_usage=True))
    collector = _collected(bedrock_agent_client)
    assert collector.steps and all(s.usage is None for s in collector.steps)
    assert agents.totals(collector.steps) is None


def test_a_step_without_a_count_makes_the_total_unknown() -> None:
    def step(usage: Any) -> agents.ModelStep:
        return agents.ModelStep("ORCHESTRATION", None, usage, None, None, None, None, None, None)

    known = Usage(3, 4, None, None, "agent_trace")
    assert agents.totals([step(known), step(known)]) == Usage(6, 8, None, None, "agent_trace")
    assert agents.totals([step(known), step(Usage(5, None, None, None, "agent_trace"))]) == Usage(
        8, None, None, None, "agent_trace"
    )
    assert agents.totals([step(known), step(None)]) is None


def test_float_and_bad_counts_follow_to_count(
    bedrock_agent_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.push_scenario(Scenario(float_counts=True))
    collector = _collected(bedrock_agent_client)
    # 28.0 is 28: the counts are the emulator's, as integers
    assert [(s.usage.input, s.usage.output) for s in collector.steps if s.usage] == [
        (r.input_tokens, r.output_tokens) for r in bedrock_emulator.requests[-1].steps
    ]
    assert all(isinstance(s.usage.input, int) for s in collector.steps if s.usage)
    bad = {
        "trace": {
            "trace": {
                "orchestrationTrace": {
                    "modelInvocationOutput": {
                        "traceId": "t-0",
                        "metadata": {"usage": {"inputTokens": 2.5, "outputTokens": -1}},
                    }
                }
            }
        }
    }
    assert agents.StepCollector().observe(bad) == agents.ModelStep(
        "ORCHESTRATION", None, None, None, None, None, "t-0", None, None
    )


def test_guardrail_and_routing_traces_are_steps() -> None:
    start = datetime.datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=datetime.timezone.utc)
    end = start + datetime.timedelta(milliseconds=250)
    metadata = {"usage": {"inputTokens": 7, "outputTokens": 0}, "startTime": start, "endTime": end}
    guardrail = {"trace": {"trace": {"guardrailTrace": {"traceId": "g", "metadata": metadata}}}}
    routing = {
        "trace": {
            "collaboratorName": "billing",
            "trace": {
                "routingClassifierTrace": {
                    "modelInvocationOutput": {"traceId": "r", "metadata": dict(metadata)}
                }
            },
        }
    }
    collector = agents.StepCollector()
    first = collector.observe(guardrail)
    second = collector.observe(routing)
    assert first is not None and first.step_type == "GUARDRAIL"
    assert first.start_ns == 1767323045006000000
    assert first.end_ns == first.start_ns + 250_000_000
    assert second is not None and second.step_type == "ROUTING_CLASSIFIER"
    assert second.collaborator == "billing"
    # A guardrail trace without usage is no model step.
    assert collector.observe({"trace": {"trace": {"guardrailTrace": {"action": "NONE"}}}}) is None


@needs_flow_node_dependency_trace
def test_flow_agent_node_traces_are_steps(
    bedrock_agent_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    response = bedrock_agent_client.invoke_flow(
        flowIdentifier="FLOW123456",
        flowAliasIdentifier="FALIAS1234",
        inputs=[
            {
                "nodeName": "FlowInputNode",
                "nodeOutputName": "document",
                "content": {"document": "Summarise my order."},
            }
        ],
        enableTrace=True,
    )
    collector = agents.StepCollector()
    for event in response["responseStream"]:
        collector.observe(event)
    reported = bedrock_emulator.requests[-1].steps
    assert [(s.usage.input, s.usage.output) for s in collector.steps if s.usage] == [
        (r.input_tokens, r.output_tokens) for r in reported
    ]
    assert len(collector.steps) == len(reported) == 1


def test_odd_events_are_ignored() -> None:
    collector = agents.StepCollector()
    for event in (
        None,
        [],
        {"chunk": {"bytes": b"x"}},
        {"trace": "x"},
        {"trace": {"trace": 1}},
        {"flowTraceEvent": {"trace": {"nodeDependencyTrace": {"traceElements": 3}}}},
        {"trace": {"trace": {"orchestrationTrace": {"modelInvocationInput": 5}}}},
    ):
        assert collector.observe(event) is None
    assert collector.steps == []


# ---------------------------------------------------------------------------- descriptions


def test_describe_invoke_agent() -> None:
    described = agents.describe("InvokeAgent", {**AGENT, "memoryId": "m-1", "enableTrace": True})
    assert described is not None
    assert described.span_name == "invoke_agent AGENT12345"
    assert described.spec.operation == names.OP_INVOKE_AGENT
    assert described.model is None and described.trace_enabled
    assert described.attributes == {
        names.GEN_AI_AGENT_ID: "AGENT12345",
        names.AWS_BEDROCK_AGENT_ALIAS_ID: "ALIAS12345",
        names.GEN_AI_CONVERSATION_ID: "session-1",
        names.AWS_BEDROCK_AGENT_MEMORY_ID: "m-1",
        names.GEN_AI_REQUEST_STREAM: True,
        names.AWS_BEDROCK_AGENT_TRACE_ENABLED: True,
    }
    assert not agents.describe("InvokeAgent", AGENT).trace_enabled  # type: ignore[union-attr]


def test_describe_inline_agent_flow_and_knowledge_bases() -> None:
    inline = agents.describe(
        "InvokeInlineAgent",
        {
            "sessionId": "s-1",
            "foundationModel": "amazon.nova-micro-v1:0",
            "agentName": "helper",
            "knowledgeBases": [{"knowledgeBaseId": "KB1"}],
            "guardrailConfiguration": {"guardrailIdentifier": "gr", "guardrailVersion": "1"},
        },
    )
    assert inline is not None and inline.span_name == "invoke_agent helper"
    assert inline.model == "amazon.nova-micro-v1:0"
    assert inline.attributes[names.GEN_AI_DATA_SOURCE_ID] == "KB1"
    assert inline.attributes[names.AWS_BEDROCK_GUARDRAIL_ID] == "gr"
    flow = agents.describe("InvokeFlow", {"flowIdentifier": "F1", "flowAliasIdentifier": "A1"})
    assert flow is not None and flow.span_name == "invoke_workflow F1"
    assert flow.attributes[names.AWS_BEDROCK_FLOW_ALIAS_ID] == "A1"
    rag = agents.describe(
        "RetrieveAndGenerateStream",
        {
            "input": {"text": "q"},
            "retrieveAndGenerateConfiguration": {
                "type": "KNOWLEDGE_BASE",
                "knowledgeBaseConfiguration": {"knowledgeBaseId": "KB2", "modelArn": "arn:m"},
            },
        },
    )
    assert rag is not None and rag.span_name == "retrieval KB2" and rag.model == "arn:m"
    assert rag.attributes[names.GEN_AI_DATA_SOURCE_ID] == "KB2"
    assert names.AWS_BEDROCK_AGENT_TRACE_ENABLED not in rag.attributes
    retrieve = agents.describe(
        "Retrieve",
        {
            "knowledgeBaseId": "KB3",
            "retrievalQuery": {"text": "q"},
            "retrievalConfiguration": {"vectorSearchConfiguration": {"numberOfResults": 3}},
        },
        top_k_integer=True,
    )
    assert retrieve is not None and retrieve.span_name == "retrieval KB3"
    assert retrieve.attributes[names.GEN_AI_REQUEST_TOP_K] == 3
    assert names.GEN_AI_REQUEST_STREAM not in retrieve.attributes
    assert agents.describe("GetAgentMemory", {}) is None
    assert agents.describe("InvokeAgent", {}).span_name == "invoke_agent"  # type: ignore[union-attr]


def test_response_attributes() -> None:
    assert agents.response_attributes(
        "InvokeAgent", {"sessionId": "s", "memoryId": "m", "completion": object()}
    ) == {names.GEN_AI_CONVERSATION_ID: "s", names.AWS_BEDROCK_AGENT_MEMORY_ID: "m"}
    assert agents.response_attributes("InvokeFlow", {"executionId": "e"}) == {
        names.AWS_BEDROCK_FLOW_EXECUTION_ID: "e"
    }
    assert agents.response_attributes("Retrieve", {"retrievalResults": []}) == {}


@pytest.mark.parametrize("operation", ["InvokeAgent", "InvokeInlineAgent", "InvokeFlow"])
def test_with_trace_enabled_sets_it_only_where_unset(operation: str) -> None:
    params = {"inputText": "x"}
    updated = agents.with_trace_enabled(operation, params)
    assert updated == {"inputText": "x", "enableTrace": True} and params == {"inputText": "x"}
    chosen = {"enableTrace": False}
    assert agents.with_trace_enabled(operation, chosen) is chosen
    untouched = copy.deepcopy(params)
    assert agents.with_trace_enabled("Retrieve", untouched) is untouched
