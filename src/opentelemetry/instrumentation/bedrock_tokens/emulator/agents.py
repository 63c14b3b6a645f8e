"""Agents for Amazon Bedrock Runtime (``bedrock-agent-runtime``): agents, flows, knowledge bases.

The six operations, with the paths and shapes of botocore's service model (2023-07-26):

- ``InvokeAgent`` (``POST /agents/{agentId}/agentAliases/{agentAliasId}/sessions/{sessionId}/text``)
  and ``InvokeInlineAgent`` (``POST /agents/{sessionId}``): an event stream of ``trace`` (with
  ``enableTrace``), ``chunk``, ``returnControl`` and ``files`` events;
- ``InvokeFlow`` (``POST /flows/{flowIdentifier}/aliases/{flowAliasIdentifier}``): flow traces
  (with ``enableTrace``), ``flowOutputEvent``, ``flowCompletionEvent``;
- ``RetrieveAndGenerate`` (JSON), ``RetrieveAndGenerateStream`` (``output``, ``citation``,
  ``guardrail`` events) and ``Retrieve`` (``POST /knowledgebases/{knowledgeBaseId}/retrieve``).

An agent run is planned in full before anything is sent (:func:`plan_agent`), so the usage of
every model step is known when the request is recorded. The plan is an orchestration loop: an
optional pre-processing step, a knowledge-base lookup (with its response-generation step), an
action-group call (Lambda, or handed back to the caller with ``returnControl``), the final
answer, and an optional post-processing step. Each model step's input count is the emulator
tokenizer's count of the prompt it shows in ``modelInvocationInput.text``; its output count is
that of ``modelInvocationOutput.rawResponse.content``.
"""

from __future__ import annotations

import base64
import datetime
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from . import eventstream
from .counting import RequestError, parse_json_object
from .recording import StepUsage
from .scenarios import AGENT_OPERATIONS, Scenario
from .streaming import Frame, Sleep, inject_faults
from .tokenizer import count_text_tokens
from .wire import json_bytes, malformed

__all__ = [
    "AGENT_ANSWER",
    "AGENT_MODEL",
    "AGENT_OPERATIONS",
    "KNOWLEDGE_BASE_DOCUMENTS",
    "AgentPlan",
    "AgentRoute",
    "ModelStep",
    "agent_outcome",
    "plan_agent",
    "retrieve_documents",
    "route",
]


# The foundation model of the agents the emulator plays (InvokeAgent names no model), and of
# the flow's agent node.
AGENT_MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
AGENT_INSTRUCTION = "You are the Bedrock emulator's agent. Answer the user's question."
AGENT_ANSWER = "The emulator agent has finished the task and this is its final answer."
AGENT_VERSION = "1"
# The agent's resources when the request does not bring its own (InvokeAgent).
DEFAULT_KNOWLEDGE_BASE = "EMULATORKB"
DEFAULT_ACTION_GROUP = "emulator-actions"
DEFAULT_FUNCTION = "lookup_order"

# The emulator's knowledge base: every knowledge-base id retrieves from these documents.
KNOWLEDGE_BASE_DOCUMENTS: tuple[tuple[str, str], ...] = (
    ("s3://emulator-kb/returns.txt", "Orders can be returned within 30 days of delivery."),
    ("s3://emulator-kb/shipping.txt", "Standard shipping takes three to five business days."),
    ("s3://emulator-kb/warranty.txt", "Every device has a two year limited warranty."),
    ("s3://emulator-kb/support.txt", "Support answers questions about orders every day."),
)

_EVENTSTREAM = "application/vnd.amazon.eventstream"
DEFAULT_AGENT_STEPS = ("knowledge_base", "action_group")
_INFERENCE = {
    "maximumLength": 2048,
    "stopSequences": ["</invoke>", "</answer>", "</error>"],
    "temperature": 0.0,
    "topK": 250,
    "topP": 1.0,
}
_ROUTES: tuple[tuple[re.Pattern[str], str, tuple[str, ...]], ...] = (
    (
        re.compile(r"/agents/([^/]+)/agentAliases/([^/]+)/sessions/([^/]+)/text"),
        "InvokeAgent",
        ("agentId", "agentAliasId", "sessionId"),
    ),
    (re.compile(r"/agents/([^/]+)"), "InvokeInlineAgent", ("sessionId",)),
    (
        re.compile(r"/flows/([^/]+)/aliases/([^/]+)"),
        "InvokeFlow",
        ("flowIdentifier", "flowAliasIdentifier"),
    ),
    (re.compile(r"/retrieveAndGenerate"), "RetrieveAndGenerate", ()),
    (re.compile(r"/retrieveAndGenerateStream"), "RetrieveAndGenerateStream", ()),
    (re.compile(r"/knowledgebases/([^/]+)/retrieve"), "Retrieve", ("knowledgeBaseId",)),
)


@dataclass(frozen=True)
class AgentRoute:
    """An agent-runtime path matched: the operation and its URI members (decoded)."""

    operation: str
    ids: Mapping[str, str]

    @property
    def scenario_key(self) -> Optional[str]:
        """What ``set_scenario(model_id=...)`` is keyed by for this operation."""
        for name in ("agentId", "flowIdentifier", "knowledgeBaseId", "sessionId"):
            if name in self.ids:
                return self.ids[name]
        return None


def route(path: str) -> Optional[AgentRoute]:
    """The agent-runtime operation a (percent-encoded) path names, or None."""
    from urllib.parse import unquote

    for pattern, operation, names in _ROUTES:
        match = pattern.fullmatch(path)
        if match is not None:
            return AgentRoute(operation, {n: unquote(v) for n, v in zip(names, match.groups())})
    return None


def _validation(message: str) -> RequestError:
    return RequestError(400, "ValidationException", message)


def _timestamp(wall: float) -> str:
    moment = datetime.datetime.fromtimestamp(wall, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------------------- agent plans


@dataclass(frozen=True)
class ModelStep:
    """One model invocation the agent makes: its prompt, raw response and what follows it.

    ``action`` is what the orchestration does after the step: ``("KNOWLEDGE_BASE", kb_id,
    query)``, ``("ACTION_GROUP", group, function, execution_type)``, ``("FINISH", answer)``,
    or None (pre-processing, knowledge-base response generation, post-processing).
    """

    step_type: str
    trace_key: str
    prompt: str
    response: str
    model_id: str
    action: Optional[tuple[str, ...]] = None
    observation: str = ""

    @property
    def input_tokens(self) -> int:
        return count_text_tokens(self.prompt)

    @property
    def output_tokens(self) -> int:
        return count_text_tokens(self.response)


@dataclass(frozen=True)
class AgentPlan:
    """Everything one InvokeAgent / InvokeInlineAgent call will send."""

    steps: tuple[ModelStep, ...]
    answer: Optional[str]
    return_control: Optional[tuple[str, str, str]] = None  # invocation id, group, function
    files: bool = False
    kb_query: Optional[tuple[str, str]] = None  # knowledge base id, query
    with_usage: bool = True
    float_counts: bool = False
    stream_answer: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def usage(self, request_id: str) -> tuple[StepUsage, ...]:
        return tuple(
            StepUsage(
                step.step_type,
                step.model_id,
                step.input_tokens,
                step.output_tokens,
                _client_request_id(request_id, index),
            )
            for index, step in enumerate(self.steps)
        )


def _client_request_id(request_id: str, index: int) -> str:
    """The model call's request id: stable for a given request and step, so tests know it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{request_id}/{index}"))


def _first_function(group: Mapping[str, Any]) -> str:
    functions = (group.get("functionSchema") or {}).get("functions") or []
    if functions and isinstance(functions[0], Mapping) and functions[0].get("name"):
        return str(functions[0]["name"])
    return DEFAULT_FUNCTION


def _lines(*parts: str) -> str:
    return "\n".join(p for p in parts if p)


def plan_agent(operation: str, request: Mapping[str, Any], scenario: Scenario) -> AgentPlan:
    """The steps of one agent call, from the request (inline agents) or the scenario."""
    text = request.get("inputText")
    state = request.get("sessionState") or request.get("inlineSessionState") or {}
    results = state.get("returnControlInvocationResults") if isinstance(state, Mapping) else None
    if not results and not (isinstance(text, str) and text):
        raise _validation("inputText must be provided unless returnControlInvocationResults are.")
    if operation == "InvokeInlineAgent":
        model = str(request.get("foundationModel") or "")
        if not model or not request.get("instruction"):
            raise _validation("foundationModel and instruction are required.")
        instruction = str(request["instruction"])
        kbs = [k for k in request.get("knowledgeBases") or [] if isinstance(k, Mapping)]
        groups = [g for g in request.get("actionGroups") or [] if isinstance(g, Mapping)]
        code = any(g.get("parentActionGroupSignature") == "AMAZON.CodeInterpreter" for g in groups)
        groups = [g for g in groups if "parentActionGroupSignature" not in g]
        kb_id = str(kbs[0].get("knowledgeBaseId")) if kbs else None
        group = groups[0] if groups else None
        action: Optional[tuple[str, str, bool]] = None
        if group is not None:
            executor = group.get("actionGroupExecutor") or {}
            control = executor.get("customControl") == "RETURN_CONTROL"
            action = (str(group.get("actionGroupName")), _first_function(group), control)
        steps_wanted = set(scenario.agent_steps or ())
    else:
        model, instruction, code = AGENT_MODEL, AGENT_INSTRUCTION, False
        wanted = scenario.agent_steps if scenario.agent_steps is not None else DEFAULT_AGENT_STEPS
        steps_wanted = set(wanted)
        kb_id = DEFAULT_KNOWLEDGE_BASE if "knowledge_base" in steps_wanted else None
        action = None
        if steps_wanted & {"action_group", "return_control"}:
            control = "return_control" in steps_wanted
            action = (DEFAULT_ACTION_GROUP, DEFAULT_FUNCTION, control)
    answer = scenario.output_text or AGENT_ANSWER
    streaming = request.get("streamingConfigurations") or {}
    common: dict[str, Any] = {
        "with_usage": not scenario.omit_body_usage,
        "float_counts": scenario.float_counts,
        "stream_answer": bool(streaming.get("streamFinalResponse")),
        "files": code,
    }
    steps: list[ModelStep] = []
    if results:
        # The caller ran the action and sent its result back: one orchestration step answers.
        observation = _returned_results(results)
        prompt = _lines(instruction, f"Observation: {observation}")
        steps.append(_finish(model, prompt, answer))
        return AgentPlan(tuple(steps), answer, **common)
    question = str(text)
    if "pre_processing" in steps_wanted:
        prompt = _lines(instruction, f"Classify the user input: {question}")
        response = "<category>D</category> The input is a question the agent can answer."
        steps.append(ModelStep("PRE_PROCESSING", "preProcessingTrace", prompt, response, model))
    history = _lines(instruction, f"User: {question}")
    kb_query = None
    if kb_id is not None:
        response = f"Thought: I will search knowledge base {kb_id} for the answer."
        found = retrieve_documents(question, 2)
        observation = " ".join(doc for _uri, doc, _score in found)
        steps.append(
            ModelStep(
                "ORCHESTRATION",
                "orchestrationTrace",
                history,
                response,
                model,
                ("KNOWLEDGE_BASE", kb_id, question),
                observation,
            )
        )
        generation = _lines(f"Answer from these passages: {observation}", f"Question: {question}")
        steps.append(
            ModelStep(
                "KNOWLEDGE_BASE_RESPONSE_GENERATION",
                "orchestrationTrace",
                generation,
                found[0][1],
                model,
            )
        )
        history = _lines(history, response, f"Observation: {observation}")
        kb_query = (kb_id, question)
    if action is not None:
        group_name, function, control = action
        response = f"Thought: I will call {group_name} {function} to continue."
        kind = "RETURN_CONTROL" if control else "LAMBDA"
        observation = f"{function} completed for the user."
        steps.append(
            ModelStep(
                "ORCHESTRATION",
                "orchestrationTrace",
                history,
                response,
                model,
                ("ACTION_GROUP", group_name, function, kind),
                "" if control else observation,
            )
        )
        if control:
            invocation = str(uuid.uuid4())
            return AgentPlan(
                tuple(steps),
                None,
                (invocation, group_name, function),
                kb_query=kb_query,
                **common,
            )
        history = _lines(history, response, f"Observation: {observation}")
    steps.append(_finish(model, history, answer))
    if "post_processing" in steps_wanted:
        prompt = _lines("Rewrite the agent's answer for the user:", answer)
        steps.append(ModelStep("POST_PROCESSING", "postProcessingTrace", prompt, answer, model))
    return AgentPlan(tuple(steps), answer, kb_query=kb_query, **common)


def _finish(model: str, prompt: str, answer: str) -> ModelStep:
    response = f"Thought: I can answer now. <answer>{answer}</answer>"
    return ModelStep(
        "ORCHESTRATION", "orchestrationTrace", prompt, response, model, ("FINISH", answer)
    )


def _returned_results(results: Sequence[Any]) -> str:
    texts: list[str] = []
    for result in results:
        if not isinstance(result, Mapping):
            continue
        function = result.get("functionResult") or result.get("apiResult") or {}
        body = function.get("responseBody") or {}
        for value in body.values():
            if isinstance(value, Mapping) and isinstance(value.get("body"), str):
                texts.append(value["body"])
    return " ".join(texts) or "The action returned nothing."


# ---------------------------------------------------------------------------- knowledge base


def retrieve_documents(query: str, limit: int) -> list[tuple[str, str, float]]:
    """``(uri, text, score)`` of the best ``limit`` documents for ``query`` (word overlap)."""
    words = set(re.findall(r"\w+", query.lower()))
    scored = []
    for index, (uri, text) in enumerate(KNOWLEDGE_BASE_DOCUMENTS):
        doc_words = set(re.findall(r"\w+", text.lower()))
        score = round(len(words & doc_words) / len(doc_words), 4)
        scored.append((-score, index, uri, text, score))
    scored.sort()
    return [(uri, text, score) for _s, _i, uri, text, score in scored[: max(0, limit)]]


def _reference(uri: str, text: str) -> dict[str, Any]:
    return {
        "content": {"text": text, "type": "TEXT"},
        "location": {"type": "S3", "s3Location": {"uri": uri}},
        "metadata": {"x-amz-bedrock-kb-source-uri": uri},
    }


# ---------------------------------------------------------------------------- outcomes


@dataclass
class AgentOutcome:
    """What :func:`agent_outcome` produces; operations.py turns it into an ``Outcome``."""

    headers: list[tuple[str, str]]
    body: bytes = b""
    frames: Optional[Iterator[Frame]] = None
    model_id: Optional[str] = None
    steps: tuple[StepUsage, ...] = ()
    drop_partial: bool = False


_Maker = Callable[[bool], bytes]


def _event(event_type: str, payload: Mapping[str, Any], scenario: Scenario) -> _Maker:
    def make(corrupt: bool) -> bytes:
        raw = json_bytes(payload)
        if scenario.malformed_body:
            raw = malformed(raw)
        headers = eventstream.event_headers(event_type)
        return eventstream.encode_frame(headers, raw, corrupt_crc=corrupt)

    return make


def agent_outcome(
    agent: AgentRoute,
    raw: bytes,
    request_id: str,
    started: float,
    scenario: Scenario,
    sleep: Sleep,
) -> AgentOutcome:
    """Answer one agent-runtime request (already routed, scenario already chosen)."""
    request = parse_json_object(raw)
    operation = agent.operation
    if operation in ("InvokeAgent", "InvokeInlineAgent"):
        return _invoke_agent(agent, request, request_id, started, scenario, sleep)
    if operation == "InvokeFlow":
        return _invoke_flow(agent, request, request_id, scenario, sleep)
    if operation == "Retrieve":
        return _retrieve(agent, request, request_id, scenario)
    return _retrieve_and_generate(operation, request, request_id, scenario, sleep)


def _invoke_agent(
    agent: AgentRoute,
    request: Mapping[str, Any],
    request_id: str,
    started: float,
    scenario: Scenario,
    sleep: Sleep,
) -> AgentOutcome:
    plan = plan_agent(agent.operation, request, scenario)
    trace = bool(request.get("enableTrace"))
    session = agent.ids["sessionId"]
    headers = [
        ("Content-Type", _EVENTSTREAM),
        ("Transfer-Encoding", "chunked"),
        ("x-amzn-RequestId", request_id),
        ("x-amzn-bedrock-agent-content-type", "application/json"),
        ("x-amz-bedrock-agent-session-id", session),
    ]
    memory = request.get("memoryId")
    if agent.operation == "InvokeAgent" and isinstance(memory, str) and memory:
        headers.append(("x-amz-bedrock-agent-memory-id", memory))
    envelope: dict[str, Any] = {"sessionId": session}
    if agent.operation == "InvokeAgent":
        envelope.update(
            agentId=agent.ids["agentId"],
            agentAliasId=agent.ids["agentAliasId"],
            agentVersion=AGENT_VERSION,
        )
    makers = _agent_events(plan, envelope, request_id, started, trace, scenario)
    model = plan.steps[0].model_id if plan.steps else None
    return AgentOutcome(
        headers,
        frames=inject_faults(scenario, makers, sleep),
        model_id=model,
        steps=plan.usage(request_id) if trace and plan.with_usage else (),
    )


def _agent_events(
    plan: AgentPlan,
    envelope: Mapping[str, Any],
    request_id: str,
    started: float,
    trace: bool,
    scenario: Scenario,
) -> Iterator[_Maker]:
    """The frames of one agent run, built lazily so the trace times are real."""

    def trace_event(step_trace: str, body: Mapping[str, Any]) -> _Maker:
        payload = dict(envelope)
        payload["eventTime"] = _timestamp(time.time())
        payload["trace"] = {step_trace: body}
        return _event("trace", payload, scenario)

    wall_started = time.time() - (time.monotonic() - started)
    for index, step in enumerate(plan.steps):
        trace_id = f"{request_id}-{index}"
        begin = time.time()
        if trace:
            yield trace_event(
                step.trace_key,
                {
                    "modelInvocationInput": {
                        "traceId": trace_id,
                        "type": step.step_type,
                        "text": step.prompt,
                        "foundationModel": step.model_id,
                        "inferenceConfiguration": _INFERENCE,
                        "promptCreationMode": "DEFAULT",
                        "parserMode": "DEFAULT",
                    }
                },
            )
        end = max(time.time(), begin + 0.001)
        if trace:
            output = _model_output(plan, step, request_id, index, begin, end)
            if step.step_type == "PRE_PROCESSING":
                output["parsedResponse"] = {"isValid": True, "rationale": step.response}
            elif step.step_type == "POST_PROCESSING":
                output["parsedResponse"] = {"text": step.response}
            yield trace_event(step.trace_key, {"modelInvocationOutput": output})
            if step.action is not None:
                yield from _orchestration_events(step, trace_id, wall_started, trace_event)
    if plan.return_control is not None:
        invocation, group, function = plan.return_control
        yield _event(
            "returnControl",
            {
                "invocationId": invocation,
                "invocationInputs": [
                    {
                        "functionInvocationInput": {
                            "actionGroup": group,
                            "function": function,
                            "actionInvocationType": "RESULT",
                            "parameters": [
                                {"name": "order_id", "type": "string", "value": "example"}
                            ],
                        }
                    }
                ],
            },
            scenario,
        )
        return
    if plan.files:
        content = base64.b64encode(b"emulator,output\n1,2\n").decode("ascii")
        yield _event(
            "files",
            {"files": [{"name": "output.csv", "type": "text/csv", "bytes": content}]},
            scenario,
        )
    answer = plan.answer or ""
    pieces = re.findall(r"\S+\s*", answer) if plan.stream_answer else [answer]
    for position, piece in enumerate(pieces):
        chunk: dict[str, Any] = {"bytes": base64.b64encode(piece.encode()).decode("ascii")}
        if plan.kb_query is not None and position == len(pieces) - 1:
            found = retrieve_documents(plan.kb_query[1], 1)
            chunk["attribution"] = {
                "citations": [
                    {
                        "generatedResponsePart": {
                            "textResponsePart": {
                                "text": answer,
                                "span": {"start": 0, "end": max(0, len(answer) - 1)},
                            }
                        },
                        "retrievedReferences": [_reference(u, t) for u, t, _s in found],
                    }
                ]
            }
        yield _event("chunk", chunk, scenario)


def _model_output(
    plan: AgentPlan, step: ModelStep, request_id: str, index: int, begin: float, end: float
) -> dict[str, Any]:
    """A step's ``modelInvocationOutput``: its raw response and metadata (usage, times)."""
    metadata: dict[str, Any] = {
        "clientRequestId": _client_request_id(request_id, index),
        "startTime": _timestamp(begin),
        "endTime": _timestamp(end),
        "totalTimeMs": round((end - begin) * 1000),
    }
    if plan.with_usage:
        value = float if plan.float_counts else int
        metadata["usage"] = {
            "inputTokens": value(step.input_tokens),
            "outputTokens": value(step.output_tokens),
        }
    return {
        "traceId": f"{request_id}-{index}",
        "rawResponse": {"content": step.response},
        "metadata": metadata,
    }


def _orchestration_events(
    step: ModelStep,
    trace_id: str,
    wall_started: float,
    trace_event: Callable[[str, Mapping[str, Any]], _Maker],
) -> Iterator[_Maker]:
    assert step.action is not None
    kind = step.action[0]
    key = step.trace_key
    yield trace_event(key, {"rationale": {"traceId": trace_id, "text": step.response}})
    if kind == "KNOWLEDGE_BASE":
        _kind, kb_id, query = step.action
        yield trace_event(
            key,
            {
                "invocationInput": {
                    "traceId": trace_id,
                    "invocationType": "KNOWLEDGE_BASE",
                    "knowledgeBaseLookupInput": {"knowledgeBaseId": kb_id, "text": query},
                }
            },
        )
        found = retrieve_documents(query, 2)
        yield trace_event(
            key,
            {
                "observation": {
                    "traceId": trace_id,
                    "type": "KNOWLEDGE_BASE",
                    "knowledgeBaseLookupOutput": {
                        "retrievedReferences": [_reference(u, t) for u, t, _s in found]
                    },
                }
            },
        )
    elif kind == "ACTION_GROUP":
        _kind, group, function, execution = step.action
        yield trace_event(
            key,
            {
                "invocationInput": {
                    "traceId": trace_id,
                    "invocationType": "ACTION_GROUP",
                    "actionGroupInvocationInput": {
                        "actionGroupName": group,
                        "function": function,
                        "executionType": execution,
                        "parameters": [{"name": "order_id", "type": "string", "value": "example"}],
                    },
                }
            },
        )
        if execution == "LAMBDA":
            yield trace_event(
                key,
                {
                    "observation": {
                        "traceId": trace_id,
                        "type": "ACTION_GROUP",
                        "actionGroupInvocationOutput": {"text": step.observation},
                    }
                },
            )
    elif kind == "FINISH":
        now = time.time()
        yield trace_event(
            key,
            {
                "observation": {
                    "traceId": trace_id,
                    "type": "FINISH",
                    "finalResponse": {
                        "text": step.action[1],
                        "metadata": {
                            "startTime": _timestamp(wall_started),
                            "endTime": _timestamp(now),
                            "operationTotalTimeMs": round((now - wall_started) * 1000),
                        },
                    },
                }
            },
        )


# ---------------------------------------------------------------------------- flows


def _invoke_flow(
    agent: AgentRoute,
    request: Mapping[str, Any],
    request_id: str,
    scenario: Scenario,
    sleep: Sleep,
) -> AgentOutcome:
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs or not isinstance(inputs[0], Mapping):
        raise _validation("inputs must contain one flow input.")
    first = inputs[0]
    document = (first.get("content") or {}).get("document")
    question = document if isinstance(document, str) else json_bytes({"d": document}).decode()
    execution = str(request.get("executionId") or uuid.uuid4())
    trace = bool(request.get("enableTrace"))
    # The flow: input node -> an agent node (one model step) -> output node.
    prompt = _lines(AGENT_INSTRUCTION, f"User: {question}")
    answer = scenario.output_text or AGENT_ANSWER
    step = _finish(AGENT_MODEL, prompt, answer)
    plan = AgentPlan(
        (step,),
        answer,
        with_usage=not scenario.omit_body_usage,
        float_counts=scenario.float_counts,
    )
    headers = [
        ("Content-Type", _EVENTSTREAM),
        ("Transfer-Encoding", "chunked"),
        ("x-amzn-RequestId", request_id),
        ("x-amz-bedrock-flow-execution-id", execution),
    ]

    def flow_trace(body: Mapping[str, Any]) -> _Maker:
        return _event("flowTraceEvent", {"trace": body}, scenario)

    def makers() -> Iterator[_Maker]:
        input_name = str(first.get("nodeName") or "FlowInputNode")
        output_name = str(first.get("nodeOutputName") or "document")
        if trace:
            yield flow_trace(
                {
                    "nodeOutputTrace": {
                        "nodeName": input_name,
                        "timestamp": _timestamp(time.time()),
                        "fields": [
                            {"nodeOutputName": output_name, "content": {"document": question}}
                        ],
                    }
                }
            )
            yield flow_trace(
                {
                    "nodeActionTrace": {
                        "nodeName": "Agent_1",
                        "timestamp": _timestamp(time.time()),
                        "requestId": _client_request_id(request_id, 0),
                        "serviceName": "Amazon Bedrock Agents",
                        "operationName": "InvokeAgent",
                    }
                }
            )
            envelope = {
                "agentId": "FLOWAGENT",
                "agentAliasId": "TSTALIASID",
                "agentVersion": AGENT_VERSION,
                "sessionId": execution,
            }
            parts: list[dict[str, Any]] = []
            for maker_payload in _step_trace_payloads(plan, envelope, request_id):
                parts.append(maker_payload)
            yield flow_trace(
                {
                    "nodeDependencyTrace": {
                        "nodeName": "Agent_1",
                        "timestamp": _timestamp(time.time()),
                        "traceElements": {"agentTraces": parts},
                    }
                }
            )
        yield _event(
            "flowOutputEvent",
            {
                "content": {"document": answer},
                "nodeName": "FlowOutputNode",
                "nodeType": "FlowOutputNode",
            },
            scenario,
        )
        yield _event("flowCompletionEvent", {"completionReason": "SUCCESS"}, scenario)

    return AgentOutcome(
        headers,
        frames=inject_faults(scenario, makers(), sleep),
        model_id=AGENT_MODEL,
        steps=plan.usage(request_id) if trace and plan.with_usage else (),
    )


def _step_trace_payloads(
    plan: AgentPlan, envelope: Mapping[str, Any], request_id: str
) -> Iterator[dict[str, Any]]:
    """Trace parts (the agent stream's ``trace`` payloads) of a flow's agent node."""
    for index, step in enumerate(plan.steps):
        now = time.time()
        output = _model_output(plan, step, request_id, index, now, now + 0.001)
        body = {"modelInvocationOutput": output}
        part = dict(envelope)
        part["eventTime"] = _timestamp(now)
        part["trace"] = {step.trace_key: body}
        yield part


# ---------------------------------------------------------------------------- knowledge bases


def _kb_config(request: Mapping[str, Any]) -> tuple[Optional[str], str, int, bool]:
    """Knowledge base id (None for external sources), model ARN, result count, guardrail."""
    config = request.get("retrieveAndGenerateConfiguration")
    if not isinstance(config, Mapping) or config.get("type") not in (
        "KNOWLEDGE_BASE",
        "EXTERNAL_SOURCES",
    ):
        raise _validation("retrieveAndGenerateConfiguration.type is required.")
    if config["type"] == "KNOWLEDGE_BASE":
        kb = config.get("knowledgeBaseConfiguration") or {}
        if not kb.get("knowledgeBaseId") or not kb.get("modelArn"):
            raise _validation("knowledgeBaseId and modelArn are required.")
        search = (kb.get("retrievalConfiguration") or {}).get("vectorSearchConfiguration") or {}
        generation = kb.get("generationConfiguration") or {}
        return (
            str(kb["knowledgeBaseId"]),
            str(kb["modelArn"]),
            int(search.get("numberOfResults") or 5),
            bool(generation.get("guardrailConfiguration")),
        )
    external = config.get("externalSourcesConfiguration") or {}
    if not external.get("modelArn"):
        raise _validation("externalSourcesConfiguration.modelArn is required.")
    generation = external.get("generationConfiguration") or {}
    return None, str(external["modelArn"]), 5, bool(generation.get("guardrailConfiguration"))


def _generated(query: str, limit: int, scenario: Scenario) -> tuple[str, list[Any]]:
    found = retrieve_documents(query, limit)
    text = scenario.output_text or (found[0][1] if found else AGENT_ANSWER)
    citation = {
        "generatedResponsePart": {
            "textResponsePart": {"text": text, "span": {"start": 0, "end": max(0, len(text) - 1)}}
        },
        "retrievedReferences": [_reference(u, t) for u, t, _s in found],
    }
    return text, [citation]


def _retrieve_and_generate(
    operation: str,
    request: Mapping[str, Any],
    request_id: str,
    scenario: Scenario,
    sleep: Sleep,
) -> AgentOutcome:
    query = (request.get("input") or {}).get("text")
    if not isinstance(query, str) or not query:
        raise _validation("input.text is required.")
    _kb, model, limit, guardrail = _kb_config(request)
    session = str(request.get("sessionId") or uuid.uuid4())
    text, citations = _generated(query, limit, scenario)
    if operation == "RetrieveAndGenerate":
        body: dict[str, Any] = {
            "sessionId": session,
            "output": {"text": text},
            "citations": citations,
        }
        if guardrail:
            body["guardrailAction"] = "NONE"
        raw = json_bytes(body)
        if scenario.malformed_body:
            raw = malformed(raw)
        headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)]
        return AgentOutcome(
            headers, raw, model_id=model, drop_partial=scenario.drop_after is not None
        )

    def makers() -> Iterator[_Maker]:
        for piece in re.findall(r"\S+\s*", text):
            yield _event("output", {"text": piece}, scenario)
        yield _event(
            "citation",
            {
                "citation": citations[0],
                "generatedResponsePart": citations[0]["generatedResponsePart"],
                "retrievedReferences": citations[0]["retrievedReferences"],
            },
            scenario,
        )
        if guardrail:
            yield _event("guardrail", {"action": "NONE"}, scenario)

    headers = [
        ("Content-Type", _EVENTSTREAM),
        ("Transfer-Encoding", "chunked"),
        ("x-amzn-RequestId", request_id),
        ("x-amzn-bedrock-knowledge-base-session-id", session),
    ]
    return AgentOutcome(headers, frames=inject_faults(scenario, makers(), sleep), model_id=model)


def _retrieve(
    agent: AgentRoute, request: Mapping[str, Any], request_id: str, scenario: Scenario
) -> AgentOutcome:
    query = (request.get("retrievalQuery") or {}).get("text")
    if not isinstance(query, str) or not query:
        raise _validation("retrievalQuery.text is required.")
    config = request.get("retrievalConfiguration") or {}
    limit = int((config.get("vectorSearchConfiguration") or {}).get("numberOfResults") or 5)
    results = [
        dict(_reference(uri, text), score=score)
        for uri, text, score in retrieve_documents(query, limit)
    ]
    body: dict[str, Any] = {"retrievalResults": results}
    if request.get("guardrailConfiguration"):
        body["guardrailAction"] = "NONE"
    raw = json_bytes(body)
    if scenario.malformed_body:
        raw = malformed(raw)
    headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)]
    return AgentOutcome(headers, raw, drop_partial=scenario.drop_after is not None)
