"""Scenario control: how the emulator should misbehave (or not) for a given request.

A :class:`Scenario` is a plain value. The emulator picks one per request, most specific first:
the ``x-bedrock-emulator-scenario`` request header, then the oldest pushed one-shot scenario,
then the one set for the model id, then the one set for every model, else the default
``Scenario()``. The chosen scenario applies as a whole; fields are never merged across levels,
so what a request gets is always visible in one place.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = [
    "AGENT_OPERATIONS",
    "AGENT_STEPS",
    "AGENT_STREAM_EXCEPTIONS",
    "ERROR_STATUS",
    "OPERATIONS",
    "SCENARIO_HEADER",
    "STREAM_EXCEPTIONS",
    "Scenario",
    "ScenarioBook",
    "default_error_message",
    "error_code_for_status",
]

SCENARIO_HEADER = "x-bedrock-emulator-scenario"

# bedrock-agent-runtime (see agents.py)
AGENT_OPERATIONS = (
    "InvokeAgent",
    "InvokeInlineAgent",
    "InvokeFlow",
    "RetrieveAndGenerate",
    "RetrieveAndGenerateStream",
    "Retrieve",
)
OPERATIONS = (
    "InvokeModel",
    "InvokeModelWithResponseStream",
    "Converse",
    "ConverseStream",
    "CountTokens",
    *AGENT_OPERATIONS,
    "GetInferenceProfile",  # the bedrock control plane's, for profile resolution
)

# Modelled Bedrock Runtime errors and their HTTP status (service model 2023-09-30), plus the
# generic Coral one the service answers for unknown paths.
ERROR_STATUS: Mapping[str, int] = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 400,
    "ConflictException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "UnknownOperationException": 404,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ModelStreamErrorException": 424,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
    # bedrock-agent-runtime only (2023-07-26)
    "DependencyFailedException": 424,
    "BadGatewayException": 502,
}

_CODE_FOR_STATUS: Mapping[int, str] = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}

_MESSAGES: Mapping[str, str] = {
    "ValidationException": "The provided request is not valid.",
    "ServiceQuotaExceededException": "Your request exceeds the service quota for your account.",
    "ConflictException": "The request conflicts with the current state of the resource.",
    "AccessDeniedException": "You don't have access to the model with the specified model ID.",
    "ResourceNotFoundException": "The specified resource ARN was not found.",
    "ModelTimeoutException": (
        "Model has timed out in processing the request. Try your request again."
    ),
    "ModelErrorException": "The system encountered an unexpected error during processing.",
    "ModelStreamErrorException": "The model encountered an error while streaming the response.",
    "ThrottlingException": "Too many tokens, please wait before trying again.",
    "ModelNotReadyException": "Model is not ready to serve inference requests.",
    "InternalServerException": "The system encountered an unexpected error during processing.",
    "ServiceUnavailableException": "Bedrock is unable to process your request.",
    "DependencyFailedException": "A dependency of the agent failed: the Lambda function.",
    "BadGatewayException": "There was an issue with a dependency due to a server issue.",
}

# Exception members of the ResponseStream / ConverseStreamOutput unions (lowerCamel on the
# wire). ``modelTimeoutException`` exists only in ResponseStream.
STREAM_EXCEPTIONS = frozenset(
    {
        "modelStreamErrorException",
        "throttlingException",
        "internalServerException",
        "validationException",
        "serviceUnavailableException",
        "modelTimeoutException",
    }
)
# Exception members of the agent-runtime stream unions (ResponseStream, FlowResponseStream,
# RetrieveAndGenerateStreamResponseOutput) that Bedrock Runtime streams do not have.
AGENT_STREAM_EXCEPTIONS = frozenset(
    {
        "accessDeniedException",
        "badGatewayException",
        "conflictException",
        "dependencyFailedException",
        "modelNotReadyException",
        "resourceNotFoundException",
        "serviceQuotaExceededException",
    }
)
AGENT_STEPS = frozenset(
    {"pre_processing", "knowledge_base", "action_group", "return_control", "post_processing"}
)

_COUNT_TOKENS_MODES = frozenset({"ok", "unsupported", "forbidden"})
_TOOL_USE_MODES = frozenset({"auto", "always", "never"})


def error_code_for_status(status: int) -> str:
    """The modelled error code a status maps to (4xx→Validation, 5xx→InternalServer otherwise)."""
    if status in _CODE_FOR_STATUS:
        return _CODE_FOR_STATUS[status]
    return "ValidationException" if status < 500 else "InternalServerException"


def default_error_message(code: str) -> str:
    """A message in the style the real service uses for ``code`` (PascalCase or lowerCamel)."""
    pascal = code[:1].upper() + code[1:]
    return _MESSAGES.get(pascal, "The request failed.")


@dataclass(frozen=True)
class Scenario:
    """Fault injection and response variations for one request. Every field is optional.

    See ``docs/emulator.md`` for the meaning of each field; the defaults reproduce a healthy
    service.
    """

    # Answer with an HTTP error before any body (status, error code, message).
    error_status: Optional[int] = None
    error_code: Optional[str] = None
    error_message: Optional[str] = None
    # Mid-stream modelled exception (lowerCamel union member) after N events.
    stream_exception: Optional[str] = None
    stream_exception_after: int = 0
    # Close the connection after N stream events (non-stream: after half the body).
    drop_after: Optional[int] = None
    # Event index (0-based) whose message CRC is wrong.
    corrupt_crc_at: Optional[int] = None
    first_byte_delay: float = 0.0
    chunk_delay: float = 0.0
    omit_token_headers: bool = False
    omit_body_usage: bool = False
    omit_invocation_metrics: bool = False
    omit_stream_metadata: bool = False
    float_counts: bool = False
    malformed_body: bool = False
    count_tokens: str = "ok"
    count_tokens_offset: int = 0
    count_tokens_delay: float = 0.0
    count_tokens_reject_profile_ids: bool = False
    # Number of content delta events in a stream (generated lazily).
    stream_events: Optional[int] = None
    output_text: Optional[str] = None
    # Length of the default reply in words (cycled from DEFAULT_REPLY).
    reply_words: Optional[int] = None
    # Tool use: "auto" (the documented policy), "always" or "never"; which tool; its input.
    tool_use: str = "auto"
    tool_name: Optional[str] = None
    tool_input: Optional[Mapping[str, Any]] = None
    # Guardrails: "intervene" makes the request's guardrail block the input; whether a trace
    # is sent is the request's own choice (guardrailConfig.trace, X-Amzn-Bedrock-Trace).
    guardrail: Optional[str] = None
    # Restrict the scenario to these operations; others behave as if it were not set.
    operations: Optional[tuple[str, ...]] = field(default=None)
    # InvokeAgent: the agent's steps, some of "pre_processing", "knowledge_base",
    # "action_group", "return_control", "post_processing" (None: knowledge base + action
    # group); InvokeInlineAgent: only "pre_processing" / "post_processing" apply (the
    # request's own knowledge bases and action groups decide the rest).
    agent_steps: Optional[tuple[str, ...]] = None

    def __post_init__(self) -> None:
        if self.operations is not None:
            ops = tuple(self.operations)
            object.__setattr__(self, "operations", ops)
            unknown = [op for op in ops if op not in OPERATIONS]
            if unknown:
                raise ValueError(f"unknown operations {unknown}; expected some of {OPERATIONS}")
        if self.error_status is not None and not 400 <= self.error_status <= 599:
            raise ValueError("error_status must be an HTTP error status (400-599)")
        known = STREAM_EXCEPTIONS | AGENT_STREAM_EXCEPTIONS
        if self.stream_exception is not None and self.stream_exception not in known:
            raise ValueError(f"stream_exception must be one of {sorted(known)} (lowerCamel)")
        if self.agent_steps is not None:
            steps = tuple(self.agent_steps)
            object.__setattr__(self, "agent_steps", steps)
            unknown_steps = sorted(set(steps) - AGENT_STEPS)
            if unknown_steps:
                raise ValueError(
                    f"unknown agent_steps {unknown_steps}; expected some of {sorted(AGENT_STEPS)}"
                )
        if self.count_tokens not in _COUNT_TOKENS_MODES:
            raise ValueError(f"count_tokens must be one of {sorted(_COUNT_TOKENS_MODES)}")
        if self.tool_use not in _TOOL_USE_MODES:
            raise ValueError(f"tool_use must be one of {sorted(_TOOL_USE_MODES)}")
        if self.tool_input is not None and not isinstance(self.tool_input, Mapping):
            raise ValueError("tool_input must be a JSON object")
        if self.guardrail not in (None, "intervene"):
            raise ValueError("guardrail must be None or 'intervene'")
        for name in (
            "stream_exception_after",
            "drop_after",
            "corrupt_crc_at",
            "stream_events",
            "reply_words",
        ):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative integer")
        for name in ("first_byte_delay", "chunk_delay", "count_tokens_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    @property
    def error(self) -> Optional[tuple[int, str, str]]:
        """``(status, code, message)`` of the injected HTTP error, or None."""
        if self.error_status is None and self.error_code is None:
            return None
        if self.error_status is not None:
            status = self.error_status
            code = self.error_code or error_code_for_status(status)
        else:
            code = self.error_code or "ValidationException"
            status = ERROR_STATUS.get(code, 400)
        return status, code, self.error_message or default_error_message(code)

    def applies_to(self, operation: str) -> bool:
        return self.operations is None or operation in self.operations

    def to_json(self) -> str:
        """The JSON for the ``x-bedrock-emulator-scenario`` header (only non-default fields)."""
        defaults = Scenario()
        values = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(defaults, f.name)
        }
        return json.dumps(values, separators=(",", ":"))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Scenario:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown scenario fields: {', '.join(unknown)}")
        kwargs = dict(values)
        for name in ("operations", "agent_steps"):
            if kwargs.get(name) is not None:
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> Scenario:
        """Parse the header form; raises ValueError on bad JSON or unknown fields."""
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"scenario is not valid JSON: {exc}") from None
        if not isinstance(values, dict):
            raise ValueError("scenario must be a JSON object")
        try:
            return cls.from_mapping(values)
        except TypeError as exc:
            raise ValueError(str(exc)) from None


_DEFAULT = Scenario()


class ScenarioBook:
    """Thread-safe store of per-model, all-model and one-shot scenarios."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_model: dict[Optional[str], Scenario] = {}
        self._queue: deque[Scenario] = deque()

    def set(self, scenario: Optional[Scenario], model_id: Optional[str] = None) -> None:
        with self._lock:
            if scenario is None:
                self._by_model.pop(model_id, None)
            else:
                self._by_model[model_id] = scenario

    def push(self, scenarios: Iterable[Scenario]) -> None:
        with self._lock:
            self._queue.extend(scenarios)

    def clear(self) -> None:
        with self._lock:
            self._by_model.clear()
            self._queue.clear()

    def resolve(
        self, model_id: Optional[str], operation: str, header: Optional[str]
    ) -> Scenario:
        """Pick the scenario for one request, consuming a pushed one if it applies.

        Raises ValueError when the header is present but invalid.
        """
        if header is not None:
            scenario = Scenario.from_json(header)
            if scenario.applies_to(operation):
                return scenario
        with self._lock:
            if self._queue and self._queue[0].applies_to(operation):
                return self._queue.popleft()
            for key in (model_id, None):
                scenario_for = self._by_model.get(key)
                if scenario_for is not None and scenario_for.applies_to(operation):
                    return scenario_for
        return _DEFAULT
