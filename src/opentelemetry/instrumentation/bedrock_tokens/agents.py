"""Agents for Amazon Bedrock Runtime (``bedrock-agent-runtime``): what a call is, and the
model steps its trace events report. Plain functions and values, no telemetry.

- :data:`AGENT_OPERATIONS` and :func:`describe`: the traced operations, their GenAI operation
  names, span names and request attributes (``gen_ai.agent.id``, ``gen_ai.conversation.id`` =
  the session id, ``gen_ai.data_source.id`` = the knowledge base, ``aws.bedrock.*`` alias,
  flow and memory ids); :func:`response_attributes` for what the response adds.
- :class:`StepCollector`: fed each stream event **before** it is handed to the user, it copies
  out plain values (step type, model, usage, start/end, clientRequestId) and never keeps the
  event. ``InvokeAgent`` / ``InvokeInlineAgent`` send a model step as two ``trace`` events, a
  ``modelInvocationInput`` (type, foundation model) then a ``modelInvocationOutput``
  (``metadata.usage``, ``startTime``, ``endTime``, ``clientRequestId``) with the same
  ``traceId``; flows carry agent trace parts in ``nodeDependencyTrace``.
- :func:`totals`: the call's totals, exact or absent (a step without a count makes that
  direction's total unknown). Agent usage has no cache fields, so totals never have any.

Counts exist only when the caller set ``enableTrace``; without it the stream has no trace
events and nothing is counted.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, NamedTuple, Optional

from . import names
from .usage import Usage, to_count

__all__ = [
    "AGENT_OPERATIONS",
    "AgentDescription",
    "AgentOp",
    "ModelStep",
    "StepCollector",
    "describe",
    "response_attributes",
    "totals",
    "trace_enabled",
    "with_trace_enabled",
]

USAGE_SOURCE = "agent_trace"


class AgentOp(NamedTuple):
    operation: str  # gen_ai.operation.name
    stream_key: Optional[str]  # where botocore puts the EventStream, for streamed operations
    traces: bool  # whether enableTrace exists (and trace events can carry usage)


AGENT_OPERATIONS: Mapping[str, AgentOp] = {
    "InvokeAgent": AgentOp(names.OP_INVOKE_AGENT, "completion", True),
    "InvokeInlineAgent": AgentOp(names.OP_INVOKE_AGENT, "completion", True),
    "InvokeFlow": AgentOp(names.OP_INVOKE_WORKFLOW, "responseStream", True),
    "RetrieveAndGenerate": AgentOp(names.OP_RETRIEVAL, None, False),
    "RetrieveAndGenerateStream": AgentOp(names.OP_RETRIEVAL, "stream", False),
    "Retrieve": AgentOp(names.OP_RETRIEVAL, None, False),
}


class AgentDescription(NamedTuple):
    operation_name: str  # botocore's
    spec: AgentOp
    span_name: str
    model: Optional[str]  # gen_ai.request.model, where the request names one
    attributes: dict[str, Any]  # set at span start
    trace_enabled: bool


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


def _set(attributes: dict[str, Any], key: str, value: Any) -> None:
    text = _text(value)
    if text is not None:
        attributes[key] = text


def trace_enabled(params: Mapping[str, Any]) -> bool:
    """Whether the request asked for trace events (``enableTrace: true``)."""
    return params.get("enableTrace") is True


def with_trace_enabled(operation_name: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The request with ``enableTrace`` set, for the opt-in setting; unchanged when the
    operation has no such parameter or the caller set it (either way) themselves."""
    spec = AGENT_OPERATIONS.get(operation_name)
    if spec is None or not spec.traces or "enableTrace" in params:
        return params
    updated = dict(params)
    updated["enableTrace"] = True
    return updated


def _rag_config(params: Mapping[str, Any]) -> tuple[Optional[str], Optional[str], Any]:
    """Knowledge base id, model ARN and generation configuration of a RetrieveAndGenerate."""
    config = params.get("retrieveAndGenerateConfiguration")
    if not isinstance(config, Mapping):
        return None, None, None
    kb = config.get("knowledgeBaseConfiguration")
    if isinstance(kb, Mapping):
        return (
            _text(kb.get("knowledgeBaseId")),
            _text(kb.get("modelArn")),
            kb.get("generationConfiguration"),
        )
    external = config.get("externalSourcesConfiguration")
    if isinstance(external, Mapping):
        return None, _text(external.get("modelArn")), external.get("generationConfiguration")
    return None, None, None


def describe(
    operation_name: str, params: Mapping[str, Any], *, top_k_integer: bool = False
) -> Optional[AgentDescription]:
    """What an agent-runtime call is, from its parameters; None for operations not traced.
    ``top_k_integer``: the chosen convention's type for ``gen_ai.request.top_k``."""
    spec = AGENT_OPERATIONS.get(operation_name)
    if spec is None:
        return None
    attributes: dict[str, Any] = {}
    model: Optional[str] = None
    subject: Optional[str] = None
    if operation_name == "InvokeAgent":
        _set(attributes, names.GEN_AI_AGENT_ID, params.get("agentId"))
        _set(attributes, names.AWS_BEDROCK_AGENT_ALIAS_ID, params.get("agentAliasId"))
        _set(attributes, names.GEN_AI_CONVERSATION_ID, params.get("sessionId"))
        _set(attributes, names.AWS_BEDROCK_AGENT_MEMORY_ID, params.get("memoryId"))
        subject = _text(params.get("agentId"))
    elif operation_name == "InvokeInlineAgent":
        _set(attributes, names.GEN_AI_AGENT_NAME, params.get("agentName"))
        _set(attributes, names.GEN_AI_CONVERSATION_ID, params.get("sessionId"))
        model = _text(params.get("foundationModel"))
        guardrail = params.get("guardrailConfiguration")
        if isinstance(guardrail, Mapping):
            _set(attributes, names.AWS_BEDROCK_GUARDRAIL_ID, guardrail.get("guardrailIdentifier"))
        kbs = params.get("knowledgeBases")
        if isinstance(kbs, list) and len(kbs) == 1 and isinstance(kbs[0], Mapping):
            _set(attributes, names.GEN_AI_DATA_SOURCE_ID, kbs[0].get("knowledgeBaseId"))
        subject = _text(params.get("agentName"))
    elif operation_name == "InvokeFlow":
        _set(attributes, names.AWS_BEDROCK_FLOW_ID, params.get("flowIdentifier"))
        _set(attributes, names.AWS_BEDROCK_FLOW_ALIAS_ID, params.get("flowAliasIdentifier"))
        _set(attributes, names.AWS_BEDROCK_FLOW_EXECUTION_ID, params.get("executionId"))
        subject = _text(params.get("flowIdentifier"))
    elif operation_name == "Retrieve":
        kb_id = _text(params.get("knowledgeBaseId"))
        _set(attributes, names.GEN_AI_DATA_SOURCE_ID, kb_id)
        _set(attributes, names.AWS_BEDROCK_KNOWLEDGE_BASE_ID, kb_id)
        config = params.get("retrievalConfiguration")
        search = config.get("vectorSearchConfiguration") if isinstance(config, Mapping) else None
        top_k = to_count(search.get("numberOfResults")) if isinstance(search, Mapping) else None
        if top_k is not None:
            attributes[names.GEN_AI_REQUEST_TOP_K] = top_k if top_k_integer else float(top_k)
        subject = kb_id
    else:  # RetrieveAndGenerate(+Stream)
        kb_id, model, generation = _rag_config(params)
        _set(attributes, names.GEN_AI_DATA_SOURCE_ID, kb_id)
        _set(attributes, names.AWS_BEDROCK_KNOWLEDGE_BASE_ID, kb_id)
        _set(attributes, names.GEN_AI_CONVERSATION_ID, params.get("sessionId"))
        if isinstance(generation, Mapping):
            guardrail = generation.get("guardrailConfiguration")
            if isinstance(guardrail, Mapping):
                _set(attributes, names.AWS_BEDROCK_GUARDRAIL_ID, guardrail.get("guardrailId"))
        subject = kb_id
    if spec.stream_key is not None:
        attributes[names.GEN_AI_REQUEST_STREAM] = True
    traced = spec.traces and trace_enabled(params)
    if spec.traces:
        attributes[names.AWS_BEDROCK_AGENT_TRACE_ENABLED] = traced
    span_name = f"{spec.operation} {subject}" if subject else spec.operation
    return AgentDescription(operation_name, spec, span_name, model, attributes, traced)


def response_attributes(operation_name: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes the response adds (session, memory and execution ids the service chose)."""
    attributes: dict[str, Any] = {}
    if operation_name in (
        "InvokeAgent",
        "InvokeInlineAgent",
        "RetrieveAndGenerate",
        "RetrieveAndGenerateStream",
    ):
        _set(attributes, names.GEN_AI_CONVERSATION_ID, result.get("sessionId"))
    if operation_name == "InvokeAgent":
        _set(attributes, names.AWS_BEDROCK_AGENT_MEMORY_ID, result.get("memoryId"))
    if operation_name == "InvokeFlow":
        _set(attributes, names.AWS_BEDROCK_FLOW_EXECUTION_ID, result.get("executionId"))
    return attributes


# ---------------------------------------------------------------------------- model steps


class ModelStep(NamedTuple):
    """One model invocation an agent reported, as plain values copied from its trace events.

    ``start_ns`` / ``end_ns`` are the service's ``startTime`` / ``endTime`` (epoch ns), None
    when absent. ``prompt`` and ``response`` are the step's text, kept only when the collector
    was asked to capture content.
    """

    step_type: str
    model: Optional[str]
    usage: Optional[Usage]
    start_ns: Optional[int]
    end_ns: Optional[int]
    client_request_id: Optional[str]
    trace_id: Optional[str]
    agent_id: Optional[str]
    collaborator: Optional[str]
    prompt: Optional[str] = None
    response: Optional[str] = None


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _epoch_ns(value: Any) -> Optional[int]:
    """botocore parses timestamps to datetimes; naive ones are UTC."""
    if not isinstance(value, datetime.datetime):
        return None
    moment: datetime.datetime = value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _usage(metadata: Mapping[str, Any]) -> Optional[Usage]:
    usage = metadata.get("usage")
    if not isinstance(usage, Mapping):
        return None
    found = Usage(
        to_count(usage.get("inputTokens")),
        to_count(usage.get("outputTokens")),
        None,
        None,
        USAGE_SOURCE,
    )
    return None if found.empty else found


# Trace members that hold a model invocation (modelInvocationInput / modelInvocationOutput).
_MODEL_TRACES = frozenset(
    {"preProcessingTrace", "orchestrationTrace", "postProcessingTrace", "routingClassifierTrace"}
)
_STEP_TYPE_BY_TRACE: Mapping[str, str] = {
    "preProcessingTrace": "PRE_PROCESSING",
    "orchestrationTrace": "ORCHESTRATION",
    "postProcessingTrace": "POST_PROCESSING",
    "routingClassifierTrace": "ROUTING_CLASSIFIER",
}


class StepCollector:
    """Copies the model steps out of an agent or flow stream, event by event.

    ``observe(event)`` takes one parsed stream event (a dict with one key) before it is
    handed to the user and returns the model step it completed, if any; the step is also
    appended to ``steps``. Only strings, numbers and the ``Usage`` value are kept: the event
    itself, which the user may mutate, is never referenced afterwards. An input without its
    output (a stream cut between the two) gives no step.
    """

    __slots__ = ("_pending", "capture", "steps", "total_time_ms")

    def __init__(self, capture: bool = False) -> None:
        self.capture = capture
        self.steps: list[ModelStep] = []
        self.total_time_ms: Optional[int] = None
        # traceId -> (step type, foundation model, prompt) of inputs awaiting their output
        self._pending: dict[str, tuple[Optional[str], Optional[str], Optional[str]]] = {}

    def observe(self, event: Any) -> Optional[ModelStep]:
        if not isinstance(event, Mapping):
            return None
        part = event.get("trace")
        if isinstance(part, Mapping):
            return self._trace_part(part)
        flow = event.get("flowTraceEvent")
        if isinstance(flow, Mapping):
            return self._flow_trace(flow)
        return None

    def _flow_trace(self, flow: Mapping[str, Any]) -> Optional[ModelStep]:
        trace = flow.get("trace")
        dependency = trace.get("nodeDependencyTrace") if isinstance(trace, Mapping) else None
        elements = dependency.get("traceElements") if isinstance(dependency, Mapping) else None
        parts = elements.get("agentTraces") if isinstance(elements, Mapping) else None
        last = None
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, Mapping):
                last = self._trace_part(part) or last
        return last

    def _trace_part(self, part: Mapping[str, Any]) -> Optional[ModelStep]:
        trace = part.get("trace")
        if not isinstance(trace, Mapping):
            return None
        for key, body in trace.items():
            if not isinstance(body, Mapping):
                continue
            if key in _MODEL_TRACES:
                return self._model_trace(key, body, part)
            if key == "guardrailTrace":
                return self._guardrail(body, part)
        return None

    def _model_trace(
        self, key: str, body: Mapping[str, Any], part: Mapping[str, Any]
    ) -> Optional[ModelStep]:
        given = body.get("modelInvocationInput")
        if isinstance(given, Mapping):
            trace_id = _text(given.get("traceId"))
            if trace_id is not None and len(self._pending) < 64:
                prompt = _text(given.get("text")) if self.capture else None
                self._pending[trace_id] = (
                    _text(given.get("type")),
                    _text(given.get("foundationModel")),
                    prompt,
                )
            return None
        observation = body.get("observation")
        if isinstance(observation, Mapping):
            final = observation.get("finalResponse")
            metadata = final.get("metadata") if isinstance(final, Mapping) else None
            if isinstance(metadata, Mapping):
                total = to_count(metadata.get("operationTotalTimeMs"))
                if total is not None:
                    self.total_time_ms = total
            return None
        output = body.get("modelInvocationOutput")
        if not isinstance(output, Mapping):
            return None
        metadata = output.get("metadata")
        if not isinstance(metadata, Mapping):
            metadata = {}
        trace_id = _text(output.get("traceId"))
        step_type, model, prompt = (
            self._pending.pop(trace_id, (None, None, None))
            if (trace_id is not None)
            else (None, None, None)
        )
        response = None
        if self.capture:
            raw = output.get("rawResponse")
            response = _text(raw.get("content")) if isinstance(raw, Mapping) else None
        return self._add(
            step_type or _STEP_TYPE_BY_TRACE[key],
            model,
            metadata,
            trace_id,
            part,
            prompt,
            response,
        )

    def _guardrail(self, body: Mapping[str, Any], part: Mapping[str, Any]) -> Optional[ModelStep]:
        metadata = body.get("metadata")
        if not isinstance(metadata, Mapping) or _usage(metadata) is None:
            return None
        return self._add("GUARDRAIL", None, metadata, _text(body.get("traceId")), part, None, None)

    def _add(
        self,
        step_type: str,
        model: Optional[str],
        metadata: Mapping[str, Any],
        trace_id: Optional[str],
        part: Mapping[str, Any],
        prompt: Optional[str],
        response: Optional[str],
    ) -> ModelStep:
        step = ModelStep(
            step_type,
            model,
            _usage(metadata),
            _epoch_ns(metadata.get("startTime")),
            _epoch_ns(metadata.get("endTime")),
            _text(metadata.get("clientRequestId")),
            trace_id,
            _text(part.get("agentId")),
            _text(part.get("collaboratorName")),
            prompt,
            response,
        )
        self.steps.append(step)
        return step


def totals(steps: list[ModelStep]) -> Optional[Usage]:
    """The steps' usage summed per direction; a direction any step lacks is unknown (exact or
    absent). None when there are no steps or no counts at all."""
    if not steps:
        return None
    inputs = [s.usage.input if s.usage is not None else None for s in steps]
    outputs = [s.usage.output if s.usage is not None else None for s in steps]
    total_in = None if None in inputs else sum(i for i in inputs if i is not None)
    total_out = None if None in outputs else sum(o for o in outputs if o is not None)
    found = Usage(total_in, total_out, None, None, USAGE_SOURCE)
    return None if found.empty else found
