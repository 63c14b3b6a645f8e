"""The five data-plane operations as pure request → outcome logic, without any socket code.

:func:`handle` routes a request, picks its scenario, validates it like the service does and
returns an :class:`Outcome`: status, headers and either a body or a lazy iterator of encoded
event-stream frames. Timing (``first_byte_delay``, ``chunk_delay``) happens here, inside the
handler thread, so latency figures in the response include it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape

from .agents import AgentRoute, agent_outcome
from .agents import route as agent_route
from .bodies import invoke_body
from .cache import PromptCache
from .converse import converse_body
from .counting import (
    RequestError,
    count_tokens_target,
    parse_json_object,
    tools_apply,
    validate_converse,
    validate_invoke,
)
from .families import (
    EMBEDDING_FAMILIES,
    IMAGE_FAMILIES,
    NON_STREAMING_FAMILIES,
    RERANK_FAMILIES,
    Turn,
    cache_capable,
    family_for,
)
from .guardrails import converse_guardrail, invoke_guardrail
from .modelids import ModelRef, parse_model_id
from .profiles import PROFILE_PATH, profile_body
from .recording import RecordedRequest, RequestLog, StepUsage
from .reply import build_reply
from .scenarios import SCENARIO_HEADER, Scenario, ScenarioBook
from .streaming import DROP, Frame, converse_frames, invoke_frames
from .tokenizer import TextPlan, plan_converse, plan_invoke_body
from .wire import json_bytes, malformed, ms_since

__all__ = [
    "DROP",
    "EmulatorState",
    "Frame",
    "Incoming",
    "Outcome",
    "Stopping",
    "error_outcome",
    "handle",
]

_OPERATIONS_BY_SUFFIX: Mapping[str, str] = {
    "invoke": "InvokeModel",
    "invoke-with-response-stream": "InvokeModelWithResponseStream",
    "converse": "Converse",
    "converse-stream": "ConverseStream",
    "count-tokens": "CountTokens",
}
_BEDROCK_NS = "http://internal.amazon.com/coral/com.amazon.bedrock/"
_CORAL_NS = "http://internal.amazon.com/coral/com.amazon.coral.service/"
_COUNT_TOKENS_MODEL_ID = re.compile(r"[a-zA-Z_.\-/0-9:]+")
_EVENTSTREAM = "application/vnd.amazon.eventstream"


class Stopping(Exception):
    """Raised inside a handler when the emulator is shutting down mid-request."""


@dataclass(frozen=True)
class Incoming:
    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes
    request_id: str
    started: float


@dataclass
class Outcome:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    frames: Optional[Iterator[Frame]] = None
    drop_partial: bool = False


class EmulatorState:
    """Everything shared by the handler threads; each part guards itself with a lock."""

    def __init__(self, max_requests: int = 10_000, *, scenario_headers: bool = False) -> None:
        self.scenario_headers = scenario_headers
        self.scenarios = ScenarioBook()
        self.cache = PromptCache()
        self.log = RequestLog(max_requests)
        self.stopping = threading.Event()
        self._aliases: dict[str, str] = {}
        self._alias_lock = threading.Lock()

    def register_alias(self, model_id: str, base_model_id: str) -> None:
        with self._alias_lock:
            self._aliases[model_id] = base_model_id

    def alias(self, model_id: str) -> Optional[str]:
        with self._alias_lock:
            return self._aliases.get(model_id)

    def reset(self) -> None:
        self.scenarios.clear()
        self.cache.clear()
        self.log.clear()
        with self._alias_lock:
            self._aliases.clear()

    def sleep(self, seconds: float) -> None:
        if seconds > 0 and self.stopping.wait(seconds):
            raise Stopping()


def _count_header(value: int, scenario: Scenario) -> str:
    return f"{float(value)}" if scenario.float_counts else str(value)


def error_outcome(request_id: str, status: int, code: str, message: str) -> Outcome:
    """An HTTP error the way Bedrock sends it: status, ``x-amzn-ErrorType``, ``{"message"}``."""
    namespace = _CORAL_NS if code == "UnknownOperationException" else _BEDROCK_NS
    headers = [
        ("Content-Type", "application/json"),
        ("x-amzn-RequestId", request_id),
        ("x-amzn-ErrorType", f"{code}:{namespace}"),
    ]
    return Outcome(status, headers, json_bytes({"message": message}))


def _speaks_query_protocol(incoming: Incoming) -> bool:
    """A form-encoded POST is an AWS query-protocol client (STS, SQS...) that hit us by mistake."""
    content_type = incoming.headers.get("content-type", "")
    return content_type.startswith("application/x-www-form-urlencoded")


def _xml_error_outcome(request_id: str, status: int, code: str, message: str) -> Outcome:
    """The same error in the query protocol's XML, so such a client raises a ClientError."""
    body = (
        "<ErrorResponse><Error><Type>Sender</Type>"
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{escape(request_id)}</RequestId></ErrorResponse>"
    )
    headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    return Outcome(status, headers, body.encode("utf-8"))


@dataclass
class _Record:
    """Mutable draft of a :class:`RecordedRequest`, filled in as the request is understood."""

    operation: Optional[str] = None
    model_id: Optional[str] = None
    error_code: Optional[str] = None
    usage: tuple[Optional[int], ...] = field(default=(None, None, None, None))
    steps: tuple[StepUsage, ...] = ()


def handle(state: EmulatorState, incoming: Incoming) -> Outcome:
    """Answer one request; never raises except :class:`Stopping`."""
    record = _Record()
    try:
        outcome = _dispatch(state, incoming, record)
    except RequestError as exc:
        record.error_code = exc.code
        record.usage = (None, None, None, None)
        record.steps = ()
        if _speaks_query_protocol(incoming):
            outcome = _xml_error_outcome(incoming.request_id, exc.status, exc.code, exc.message)
        else:
            outcome = error_outcome(incoming.request_id, exc.status, exc.code, exc.message)
    state.log.append(
        RecordedRequest(
            operation=record.operation,
            model_id=record.model_id,
            method=incoming.method,
            path=incoming.target,
            headers=dict(incoming.headers),
            body=incoming.body,
            status=outcome.status,
            request_id=incoming.request_id,
            error_code=record.error_code,
            input_tokens=record.usage[0],
            output_tokens=record.usage[1],
            cache_read_tokens=record.usage[2],
            cache_write_tokens=record.usage[3],
            steps=record.steps,
        )
    )
    return outcome


def _route(method: str, target: str) -> tuple[str, str]:
    path = urlsplit(target).path
    operation: Optional[str] = None
    encoded = ""
    if path.startswith(PROFILE_PATH) and method == "GET":
        # the bedrock control plane's GetInferenceProfile (profile resolution)
        return "GetInferenceProfile", unquote(path[len(PROFILE_PATH):])
    if path.startswith("/model/"):
        encoded, sep, suffix = path[len("/model/") :].rpartition("/")
        operation = _OPERATIONS_BY_SUFFIX.get(suffix) if sep else None
    if operation is None or method != "POST":
        # Coral routes on method and path together: anything else is an unknown operation.
        raise RequestError(
            404,
            "UnknownOperationException",
            f"{method} {path} is not a Bedrock Runtime operation this emulator serves.",
        )
    model_id = unquote(encoded)
    if not model_id:
        raise RequestError(
            400,
            "ValidationException",
            "1 validation error detected: Value at 'modelId' failed to satisfy constraint: "
            "Member must have length greater than or equal to 1",
        )
    return operation, model_id


def _scenario_for(
    state: EmulatorState, incoming: Incoming, key: Optional[str], operation: str
) -> Scenario:
    """The request's scenario (header, pushed, per key, global), after its first-byte delay;
    raises the scenario's HTTP error if it has one."""
    header = incoming.headers.get(SCENARIO_HEADER)
    if header is not None and not state.scenario_headers:
        raise RequestError(
            400,
            "ValidationException",
            f"The {SCENARIO_HEADER} header is disabled on this emulator; start it with "
            "BedrockEmulator(scenario_headers=True) or `bedrock-tokens emulator "
            "--scenario-headers` to let clients choose scenarios.",
        )
    try:
        scenario = state.scenarios.resolve(key, operation, header)
    except ValueError as exc:
        raise RequestError(
            400, "ValidationException", f"Invalid {SCENARIO_HEADER}: {exc}"
        ) from None
    state.sleep(scenario.first_byte_delay)
    injected = scenario.error
    if injected is not None:
        raise RequestError(*injected)
    return scenario


def _agent_runtime(
    state: EmulatorState, incoming: Incoming, record: _Record, agent: AgentRoute
) -> Outcome:
    """A bedrock-agent-runtime operation (see :mod:`.agents`)."""
    record.operation = agent.operation
    scenario = _scenario_for(state, incoming, agent.scenario_key, agent.operation)
    answer = agent_outcome(
        agent, incoming.body, incoming.request_id, incoming.started, scenario, state.sleep
    )
    record.model_id, record.steps = answer.model_id, answer.steps
    if answer.steps:
        inputs = sum(step.input_tokens for step in answer.steps)
        outputs = sum(step.output_tokens for step in answer.steps)
        record.usage = (inputs, outputs, None, None)
    return Outcome(200, answer.headers, answer.body, answer.frames, answer.drop_partial)


def _dispatch(state: EmulatorState, incoming: Incoming, record: _Record) -> Outcome:
    agent = agent_route(urlsplit(incoming.target).path)
    if agent is not None and incoming.method == "POST":
        return _agent_runtime(state, incoming, record, agent)
    operation, model_id = _route(incoming.method, incoming.target)
    record.operation, record.model_id = operation, model_id
    scenario = _scenario_for(state, incoming, model_id, operation)
    if operation == "GetInferenceProfile":
        return _get_inference_profile(state, incoming, model_id)
    if operation == "CountTokens":
        return _count_tokens(state, incoming, record, scenario, model_id)
    if operation in ("Converse", "ConverseStream"):
        return _converse(state, incoming, record, scenario, model_id, operation)
    return _invoke(state, incoming, record, scenario, model_id, operation)


_INVALID_MODEL = "The provided model identifier is invalid."


def _get_inference_profile(state: EmulatorState, incoming: Incoming, identifier: str) -> Outcome:
    body = profile_body(identifier, state.alias(identifier))
    if body is None:
        raise RequestError(
            404, "ResourceNotFoundException", f"Inference profile {identifier} not found."
        )
    headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", incoming.request_id)]
    return Outcome(200, headers, json_bytes(body))


def _resolve(state: EmulatorState, model_id: str) -> tuple[ModelRef, Optional[str]]:
    """The parsed id and the base model id, from a registered alias if there is one."""
    ref = parse_model_id(model_id)
    alias = state.alias(model_id)
    base = parse_model_id(alias).base_id if alias is not None else ref.base_id
    return ref, base


def _invoke_family(base: Optional[str], body: Mapping[str, Any], model_id: str) -> str:
    family = family_for(base, body)
    if family is None:
        if base is None:
            raise RequestError(
                400,
                "ValidationException",
                f"The Bedrock emulator cannot tell the model family of {model_id!r} from the "
                "request body; register an alias with BedrockEmulator.register_alias().",
            )
        raise RequestError(400, "ValidationException", _INVALID_MODEL)
    validate_invoke(family, body)
    return family


def _converse_family(base: Optional[str]) -> Optional[str]:
    family = family_for(base, None)
    if base is not None and family is None:
        raise RequestError(400, "ValidationException", _INVALID_MODEL)
    if family in EMBEDDING_FAMILIES or family in RERANK_FAMILIES or family in IMAGE_FAMILIES:
        raise RequestError(
            400,
            "ValidationException",
            "This action doesn't support the model that you provided. "
            "Try again with a supported text or chat model.",
        )
    return family


def _cache_counts(
    state: EmulatorState, capable: bool, api: str, model_id: str, plan: TextPlan
) -> tuple[int, int]:
    """Cache read/write for a request. Entries are per model and API (a Converse prefix is
    not an InvokeModel one: the service renders them differently) and per prefix, which
    includes where each text sits (tools, system or messages)."""
    if not capable:
        return 0, 0
    return state.cache.lookup_and_store(f"{api}\x00{model_id}", plan.prefixes)


def _make_turn(
    incoming: Incoming,
    base: Optional[str],
    family: str,
    body: Mapping[str, Any],
    plan: TextPlan,
    cache: tuple[int, int],
    cache_reported: bool,
    scenario: Scenario,
    stream: bool,
    kind: str,
) -> Turn:
    read, write = cache
    intervene = scenario.guardrail == "intervene"
    if kind == "Converse":
        guardrail = converse_guardrail(body, intervene)
    else:
        guardrail = invoke_guardrail(incoming.headers, intervene)
    blocked = guardrail is not None and guardrail.intervened
    # An intervened Titan Text answer reports its counts as floats (as recorded).
    floats = scenario.float_counts or (blocked and family == "titan-text")
    return Turn(
        request_id=incoming.request_id,
        base_id=base,
        family=family,
        body=body,
        input_tokens=plan.total_tokens - read - write,
        cache_read=read,
        cache_write=write,
        cache_reported=cache_reported,
        reply=build_reply(
            body, scenario, stream=stream, tools=tools_apply(kind, family), blocked=blocked
        ),
        omit_body_usage=scenario.omit_body_usage,
        float_counts=floats,
        created=int(time.time()),
        guardrail=guardrail,
    )


def _invoke(
    state: EmulatorState,
    incoming: Incoming,
    record: _Record,
    scenario: Scenario,
    model_id: str,
    operation: str,
) -> Outcome:
    body = parse_json_object(incoming.body)
    _ref, base = _resolve(state, model_id)
    family = _invoke_family(base, body, model_id)
    stream = operation == "InvokeModelWithResponseStream"
    embedding = family in EMBEDDING_FAMILIES
    rerank = family in RERANK_FAMILIES or family in IMAGE_FAMILIES  # no counts at all
    if stream and family in NON_STREAMING_FAMILIES:
        raise RequestError(400, "ValidationException", "The model is unsupported for streaming.")
    plan = plan_invoke_body(body)
    capable = cache_capable(family, base)
    cache = _cache_counts(state, capable, "InvokeModel", model_id, plan)
    # Nova reports its cache counts on every InvokeModel answer (0 without caching); Claude
    # only when the request asked for caching (cache_control), as the recordings show.
    reported = capable and (family == "nova" or bool(plan.prefixes))
    turn = _make_turn(
        incoming, base, family, body, plan, cache, reported, scenario, stream, "InvokeModel"
    )
    out = None if embedding or rerank else turn.reply.output_tokens
    record.usage = (
        None if rerank else turn.input_tokens,
        out,
        turn.cache_read if reported else None,
        turn.cache_write if reported else None,
    )
    echo = [
        (name, incoming.headers[name.lower()])
        for name in ("X-Amzn-Bedrock-PerformanceConfig-Latency", "X-Amzn-Bedrock-Service-Tier")
        if name.lower() in incoming.headers
    ]
    if stream:
        headers = [
            ("Content-Type", _EVENTSTREAM),
            ("Transfer-Encoding", "chunked"),
            ("x-amzn-RequestId", incoming.request_id),
            ("X-Amzn-Bedrock-Content-Type", "application/json"),
            *echo,
        ]
        first_byte = ms_since(incoming.started)
        return Outcome(
            200,
            headers,
            frames=invoke_frames(turn, scenario, incoming.started, first_byte, state.sleep),
        )
    body_out = invoke_body(turn)
    if family == "jamba":  # recorded: Jamba bodies end with the request duration
        body_out["meta"] = {"requestDurationMillis": ms_since(incoming.started)}
    raw = json_bytes(body_out)
    headers = [
        ("Content-Type", "application/json"),
        ("x-amzn-RequestId", incoming.request_id),
        ("X-Amzn-Bedrock-Invocation-Latency", str(ms_since(incoming.started))),
    ]
    if not scenario.omit_token_headers and not rerank:
        if out is not None:
            headers.append(("X-Amzn-Bedrock-Output-Token-Count", _count_header(out, scenario)))
        headers.append(
            ("X-Amzn-Bedrock-Input-Token-Count", _count_header(turn.input_tokens, scenario))
        )
        if reported:
            headers.append(
                (
                    "X-Amzn-Bedrock-Cache-Read-Input-Token-Count",
                    _count_header(turn.cache_read, scenario),
                )
            )
            headers.append(
                (
                    "X-Amzn-Bedrock-Cache-Write-Input-Token-Count",
                    _count_header(turn.cache_write, scenario),
                )
            )
    headers.extend(echo)
    if scenario.malformed_body:
        raw = malformed(raw)
    return Outcome(200, headers, raw, drop_partial=scenario.drop_after is not None)


def _converse(
    state: EmulatorState,
    incoming: Incoming,
    record: _Record,
    scenario: Scenario,
    model_id: str,
    operation: str,
) -> Outcome:
    request = parse_json_object(incoming.body)
    ref, base = _resolve(state, model_id)
    family = _converse_family(base)
    validate_converse(request, family=family, prompt_arn=ref.kind == "prompt")
    stream = operation == "ConverseStream"
    plan = plan_converse(request)
    capable = cache_capable(family, base)
    cache = _cache_counts(state, capable, "Converse", model_id, plan)
    reported = capable and bool(plan.prefixes)
    turn = _make_turn(
        incoming,
        base,
        family or "converse",
        request,
        plan,
        cache,
        reported,
        scenario,
        stream,
        "Converse",
    )
    record.usage = (
        turn.input_tokens,
        turn.reply.output_tokens,
        turn.cache_read if reported else None,
        turn.cache_write if reported else None,
    )
    if stream:
        headers = [
            ("Content-Type", _EVENTSTREAM),
            ("Transfer-Encoding", "chunked"),
            ("x-amzn-RequestId", incoming.request_id),
        ]
        return Outcome(
            200, headers, frames=converse_frames(turn, scenario, incoming.started, state.sleep)
        )
    raw = json_bytes(converse_body(turn, ms_since(incoming.started)))
    if scenario.malformed_body:
        raw = malformed(raw)
    headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", incoming.request_id)]
    return Outcome(200, headers, raw, drop_partial=scenario.drop_after is not None)


def _count_tokens(
    state: EmulatorState,
    incoming: Incoming,
    record: _Record,
    scenario: Scenario,
    model_id: str,
) -> Outcome:
    if len(model_id) > 256 or not _COUNT_TOKENS_MODEL_ID.fullmatch(model_id):
        raise RequestError(
            400,
            "ValidationException",
            f"1 validation error detected: Value '{model_id}' at 'modelId' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: [a-zA-Z_.\\-/0-9:]+",
        )
    if scenario.count_tokens == "unsupported":
        raise RequestError(
            400, "ValidationException", "The provided model doesn't support counting tokens"
        )
    if scenario.count_tokens == "forbidden":
        raise RequestError(
            403,
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        )
    ref, base = _resolve(state, model_id)
    if scenario.count_tokens_reject_profile_ids and ref.is_cross_region_profile:
        raise RequestError(400, "ValidationException", _INVALID_MODEL)
    kind, body = count_tokens_target(parse_json_object(incoming.body))
    if kind == "Converse":
        _converse_family(base)
        plan = plan_converse(body)
    else:
        _invoke_family(base, body, model_id)
        plan = plan_invoke_body(body)
    count = plan.total_tokens + scenario.count_tokens_offset
    record.usage = (count, None, None, None)
    state.sleep(scenario.count_tokens_delay)
    headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", incoming.request_id)]
    raw = json_bytes({"inputTokens": count})
    if scenario.malformed_body:
        raw = malformed(raw)
    return Outcome(200, headers, raw, drop_partial=scenario.drop_after is not None)
