"""bedrock-agent-runtime under faults, side by side with an uninstrumented run, concurrently,
and over long runs.

- Faults x ways of consuming the stream: what the user sees (events, exception class and code)
  is the same with and without the instrumentation; every span ends once; the agent span's
  totals are the sum of its child steps, which are the steps the emulator reported and the
  user received; token metrics are exactly the child steps' counts.
- Concurrency: threads calling agents at once get their own spans, each child under its own
  agent span, and the metric sums equal the emulator's.
- Leaks: thousands of agent calls, streams dropped and broken out of, keep memory flat and
  leave no object of ours alive.
"""

from __future__ import annotations

import gc
import threading
import tracemalloc
from typing import Any, Callable

import boto3
import pytest
from botocore.config import Config

from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor, names, streams
from opentelemetry.instrumentation.bedrock_tokens.emulator import (
    SCENARIO_HEADER,
    BedrockEmulator,
    Scenario,
)
from opentelemetry.instrumentation.bedrock_tokens.record import CallRecord

from .support import SOAK, Watch, assert_clean, figure, raised

AGENT = {"agentId": "AGENT12345", "agentAliasId": "ALIAS12345", "sessionId": "session-1"}
QUESTION = "How do I return an order?"
KB = "KBEMULATE1"
# Values that differ between two runs of the same request: times, ids the service makes up.
_VOLATILE = frozenset(
    {
        "eventTime",
        "startTime",
        "endTime",
        "totalTimeMs",
        "operationTotalTimeMs",
        "clientRequestId",
        "traceId",
        "invocationId",
        "requestId",
        "timestamp",
        "executionId",
        "sessionId",
        "ResponseMetadata",
    }
)

FAULTS: dict[str, Scenario] = {
    "healthy": Scenario(),
    "throttled": Scenario(error_status=429),
    "dependency-failed": Scenario(error_code="DependencyFailedException"),
    "bad-gateway-mid-stream": Scenario(
        stream_exception="badGatewayException", stream_exception_after=6
    ),
    "throttled-first-event": Scenario(stream_exception="throttlingException"),
    "dropped": Scenario(drop_after=4),
    "corrupt-frame": Scenario(corrupt_crc_at=3),
    "malformed": Scenario(malformed_body=True),
    "no-usage": Scenario(omit_body_usage=True),
    "float-usage": Scenario(float_counts=True),
    "return-control": Scenario(agent_steps=("knowledge_base", "return_control")),
    "every-step": Scenario(
        agent_steps=("pre_processing", "knowledge_base", "action_group", "post_processing")
    ),
}
CONSUME = ("all", "break-then-close", "two-events-then-drop", "never-read", "twice")


def _normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "<v>" if k in _VOLATILE else _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _consume(response: Any, key: str, how: str, seen: list[Any]) -> None:
    stream = response[key]
    if how == "never-read":
        return
    if how == "two-events-then-drop":
        for index, event in enumerate(stream):
            seen.append(_normal(event))
            if index == 1:
                break
        return
    for event in stream:
        seen.append(_normal(event))
        if how == "break-then-close":
            break
    if how == "break-then-close":
        stream.close()
    if how == "twice":
        seen.extend(_normal(event) for event in stream)  # spent: nothing more


def _observe(client: Any, operation: str, how: str) -> list[Any]:
    """What the user sees of one call: the events, then how it ended."""
    seen: list[Any] = []
    response: Any = None
    try:
        if operation == "InvokeAgent":
            response = client.invoke_agent(inputText=QUESTION, enableTrace=True, **AGENT)
            _consume(response, "completion", how, seen)
        elif operation == "InvokeFlow":
            response = client.invoke_flow(
                flowIdentifier="FLOW123456",
                flowAliasIdentifier="FALIAS1234",
                enableTrace=True,
                inputs=[
                    {
                        "nodeName": "FlowInputNode",
                        "nodeOutputName": "document",
                        "content": {"document": "Summarise my order."},
                    }
                ],
            )
            _consume(response, "responseStream", how, seen)
        else:
            seen.append(
                _normal(client.retrieve(knowledgeBaseId=KB, retrievalQuery={"text": "warranty"}))
            )
    except Exception as exc:
        seen.append(raised(exc))
    del response
    gc.collect()  # a dropped stream ends now
    return seen


# Retrieve answers JSON: one way to consume it.
CASES = [(op, how) for op in ("InvokeAgent", "InvokeFlow") for how in CONSUME] + [
    ("Retrieve", "all")]


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize(("operation", "how"), CASES)
def test_fault_matrix_differential(
    operation: str,
    fault: str,
    how: str,
    instrument: Callable[..., Any],
    bedrock_agent_client: Any,
    bedrock_emulator: BedrockEmulator,
    bedrock_telemetry: Any,
    watch: Watch,
) -> None:
    bedrock_emulator.set_scenario(FAULTS[fault])
    plain = _observe(bedrock_agent_client, operation, how)
    instrument()
    traced = _observe(bedrock_agent_client, operation, how)
    assert traced == plain
    spans = bedrock_telemetry.spans()
    tops = [s for s in spans if s.attributes[names.GEN_AI_OPERATION_NAME] != "chat"]
    steps = [s for s in spans if s not in tops]
    assert len(tops) == 1
    (top,) = tops
    assert all(s.parent.span_id == top.context.span_id for s in steps)
    recorded = bedrock_emulator.requests[-1]
    reported = {r.client_request_id: r for r in recorded.steps}
    for step in steps:  # each child is a step the service reported, with its own counts
        request_id = step.attributes[names.AWS_BEDROCK_AGENT_CLIENT_REQUEST_ID]
        if names.GEN_AI_USAGE_INPUT_TOKENS in step.attributes:
            assert step.attributes[names.GEN_AI_USAGE_INPUT_TOKENS] == (
                reported[request_id].input_tokens
            )
            assert step.attributes[names.GEN_AI_USAGE_OUTPUT_TOKENS] == (
                reported[request_id].output_tokens
            )
    counted = [s for s in steps if names.GEN_AI_USAGE_INPUT_TOKENS in s.attributes]
    if counted and len(counted) == len(steps):
        assert top.attributes[names.GEN_AI_USAGE_INPUT_TOKENS] == sum(
            s.attributes[names.GEN_AI_USAGE_INPUT_TOKENS] for s in counted
        )
    else:
        assert names.GEN_AI_USAGE_INPUT_TOKENS not in top.attributes
    inputs = bedrock_telemetry.metric_points(names.METRIC_TOKEN_USAGE, gen_ai__token__type="input")
    assert sum(p.count for p in inputs) == len(counted)
    assert sum(p.sum for p in inputs) == sum(
        s.attributes[names.GEN_AI_USAGE_INPUT_TOKENS] for s in counted
    )
    assert not any(".cache" in key for key in top.attributes)
    if traced and isinstance(traced[-1], tuple):  # the user got an exception: so does the span
        assert top.attributes[names.ERROR_TYPE]
    assert_clean(watch)


def test_concurrent_agent_calls(
    instrumented: Any,
    bedrock_agent_client: Any,
    bedrock_emulator: BedrockEmulator,
    bedrock_telemetry: Any,
    watch: Watch,
) -> None:
    threads, calls = 8, 5  # within the client's 10 pooled connections
    client = bedrock_agent_client  # botocore clients are thread-safe
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for call in range(calls):
                list(
                    client.invoke_agent(
                        inputText=f"{QUESTION} {index} {call}",
                        enableTrace=True,
                        agentId="AGENT12345",
                        agentAliasId="ALIAS12345",
                        sessionId=f"session-{index}-{call}",
                    )["completion"]
                )
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert errors == []
    spans = bedrock_telemetry.spans()
    tops = {s.context.span_id: s for s in spans if s.name.startswith("invoke_agent")}
    assert len(tops) == threads * calls
    children: dict[int, list[Any]] = {}
    for span in spans:
        if span.context.span_id not in tops:
            children.setdefault(span.parent.span_id, []).append(span)
    for span_id, top in tops.items():  # each agent's steps sum to its own total
        assert (
            sum(c.attributes[names.GEN_AI_USAGE_INPUT_TOKENS] for c in children[span_id])
            == (top.attributes[names.GEN_AI_USAGE_INPUT_TOKENS])
        )
        assert {c.context.trace_id for c in children[span_id]} == {top.context.trace_id}
    reported = bedrock_emulator.requests
    expected = sum(r.input_tokens for r in reported)
    assert (
        bedrock_telemetry.histogram_sum(names.METRIC_TOKEN_USAGE, gen_ai__token__type="input")
        == expected
    )
    assert bedrock_telemetry.histogram_count(
        names.METRIC_TOKEN_USAGE, gen_ai__token__type="input"
    ) == sum(len(r.steps) for r in reported)
    assert_clean(watch)


def _our_live() -> int:
    return sum(isinstance(o, (CallRecord, streams._StreamState)) for o in gc.get_objects())


def test_long_agent_run_keeps_memory_flat(bedrock_telemetry: Any) -> None:
    calls = 3000 if SOAK else 300
    with BedrockEmulator(max_recorded_requests=20, scenario_headers=True) as emulator:
        client = boto3.session.Session().client(
            "bedrock-agent-runtime",
            config=Config(retries={"total_max_attempts": 1}, signature_version="v4", proxies={}),
            **emulator.client_kwargs(),
        )
        throttled = Scenario(
            stream_exception="throttlingException", stream_exception_after=3
        ).to_json()
        state = {"i": 0}

        def faults(request: Any, **_: Any) -> None:
            if state["i"] % 7 == 0:
                request.headers[SCENARIO_HEADER] = throttled

        client.meta.events.register("before-sign.bedrock-agent-runtime", faults)
        instrumentor = BedrockTokensInstrumentor()
        instrumentor.instrument(
            tracer_provider=bedrock_telemetry.tracer_provider,
            meter_provider=bedrock_telemetry.meter_provider,
        )

        def run(count: int) -> None:
            for _ in range(count):
                state["i"] += 1
                response = client.invoke_agent(inputText=QUESTION, enableTrace=True, **AGENT)
                stream = response["completion"]
                try:
                    for index, _event in enumerate(stream):
                        if state["i"] % 3 == 0 and index == 2:
                            break  # dropped half-read
                except Exception:
                    pass
                del response, stream
                bedrock_telemetry.clear_spans()  # the exporter holding spans is not our leak

        try:
            run(calls // 10)
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.take_snapshot()
            run(calls)
            gc.collect()
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
            ours = [
                tracemalloc.Filter(True, "*bedrock_tokens*"),
                tracemalloc.Filter(False, "*bedrock_tokens/emulator*"),
            ]
            grown = sum(
                s.size_diff
                for s in after.filter_traces(ours).compare_to(
                    before.filter_traces(ours), "filename"
                )
            )
            live = _our_live()
        finally:
            instrumentor.uninstrument()
            client.close()
    figure("agent long run", f"{calls} InvokeAgent calls, our allocations grew {grown} bytes")
    assert live == 0
    assert not streams._open
    assert grown < 64 * 1024
