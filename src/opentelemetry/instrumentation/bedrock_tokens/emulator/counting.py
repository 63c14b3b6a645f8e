"""Request parsing and validation shared by the server and the public counting helpers.

Tests compute expected numbers with :func:`input_tokens_for` and :func:`output_tokens_for`; the
server answers with exactly the same functions, so the two can never drift apart.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, Optional, Union

from .families import TOOL_FAMILIES, family_for
from .guardrails import converse_guardrail
from .modelids import parse_model_id
from .reply import Reply, build_reply
from .scenarios import OPERATIONS, Scenario
from .tokenizer import TextPlan, plan_converse, plan_invoke_body

__all__ = [
    "RequestError",
    "RequestLike",
    "count_tokens_target",
    "input_tokens_for",
    "output_text_for",
    "output_tokens_for",
    "parse_json_object",
    "plan_for",
    "tools_apply",
    "validate_converse",
    "validate_invoke",
]

RequestLike = Union[Mapping[str, Any], bytes, str]

_MALFORMED = "Malformed input request, please reformat your input and try again."

_REQUIRED: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "anthropic": (("anthropic_version",), ("max_tokens",), ("messages",)),
    "anthropic-legacy": (("prompt",), ("max_tokens_to_sample",)),
    "titan-text": (("inputText",),),
    "titan-embed": (("inputText", "inputImage"),),
    "nova": (("messages",),),
    "llama": (("prompt",),),
    "cohere-command": (("prompt",),),
    "cohere-command-r": (("message",),),
    "cohere-embed": (("texts", "images"),),
    "mistral": (("prompt",),),
    "mistral-chat": (("messages",),),
    "jamba": (("messages",),),
    "deepseek": (("prompt", "messages"),),
    "openai": (("messages",),),
    "openai-completion": (("prompt",),),
    "ai21-j2": (("prompt",),),
    "cohere-rerank": (("query",), ("documents",)),
    "amazon-image": (("taskType",),),
    "stability": (("prompt",),),
    "stability-sdxl": (("text_prompts",),),
}


class RequestError(Exception):
    """A request the real service would reject: answered as an HTTP error with this code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _validation(message: str) -> RequestError:
    return RequestError(400, "ValidationException", message)


def parse_json_object(raw: RequestLike, *, message: str = _MALFORMED) -> dict[str, Any]:
    """Decode a JSON object from bytes/str, or copy a mapping; RequestError otherwise."""
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _validation(message) from None
    if not isinstance(value, dict):
        raise _validation(message)
    return value


def validate_invoke(family: str, body: Mapping[str, Any]) -> None:
    """Reject bodies missing a key the family requires, in Bedrock's message style."""
    for alternatives in _REQUIRED.get(family, ()):
        if not any(key in body for key in alternatives):
            raise _validation(
                f"Malformed input request: #: required key [{alternatives[0]}] not found, "
                "please reformat your input and try again."
            )


def validate_converse(
    request: Mapping[str, Any], *, family: Optional[str] = None, prompt_arn: bool = False
) -> None:
    """The checks the Converse API makes on ``messages`` before any model runs.

    A Prompt-management ARN brings its own messages: ``messages`` may be absent (variables
    come in ``promptVariables``). Titan Text accepts consecutive user turns (recorded)."""
    messages = request.get("messages")
    if prompt_arn and messages is None:
        return
    if not isinstance(messages, list) or not messages:
        raise _validation(
            "A conversation must start with a user message. "
            "Try again with a conversation that starts with a user message."
        )
    previous: Optional[str] = None
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, Mapping) else None
        if role not in ("user", "assistant"):
            raise _validation(
                f"1 validation error detected: Value at 'messages.{index + 1}.member.role' "
                "failed to satisfy constraint: Member must satisfy enum value set: "
                "[user, assistant]"
            )
        if index == 0 and role != "user":
            raise _validation(
                "A conversation must start with a user message. "
                "Try again with a conversation that starts with a user message."
            )
        if role == previous and not (family == "titan-text" and role == "user"):
            raise _validation("A conversation must alternate between user and assistant roles.")
        previous = role
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise _validation(
                f"The content field in the Message object at messages.{index} is empty. "
                "Add a ContentBlock object to the content field and try again."
            )
    system = request.get("system")
    if system is not None and not isinstance(system, list):
        raise _validation("The system field must be a list of SystemContentBlock objects.")


def count_tokens_target(request: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Unwrap a CountTokens request into ``("InvokeModel", body)`` or ``("Converse", req)``.

    Accepts the wire form (``invokeModel.body`` base64) and the boto3 form (bytes).
    """
    source = request.get("input")
    if not isinstance(source, Mapping):
        raise _validation(
            "1 validation error detected: Value null at 'input' failed to satisfy "
            "constraint: Member must not be null"
        )
    members = [key for key in ("invokeModel", "converse") if key in source]
    if len(members) != 1:
        raise _validation("CountTokensInput must contain exactly one of invokeModel, converse.")
    if members[0] == "converse":
        converse = source["converse"]
        if not isinstance(converse, Mapping):
            raise _validation(_MALFORMED)
        validate_converse(converse)
        return "Converse", dict(converse)
    invoke = source["invokeModel"]
    raw = invoke.get("body") if isinstance(invoke, Mapping) else None
    if isinstance(raw, str) and not raw.lstrip().startswith("{"):
        try:
            raw = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise _validation(_MALFORMED) from None
    if raw is None:
        raise _validation("Malformed input request: #: required key [body] not found.")
    return "InvokeModel", parse_json_object(raw)


def _normalise(operation: str, request: RequestLike) -> tuple[str, dict[str, Any]]:
    if operation not in OPERATIONS:
        raise ValueError(f"operation must be one of {OPERATIONS}")
    body = parse_json_object(request)
    if operation == "CountTokens":
        return count_tokens_target(body)
    if operation in ("Converse", "ConverseStream"):
        return "Converse", body
    return "InvokeModel", body


def plan_for(operation: str, request: Mapping[str, Any]) -> TextPlan:
    """The text plan of an already unwrapped ``InvokeModel`` body or ``Converse`` request."""
    if operation == "Converse":
        return plan_converse(request)
    return plan_invoke_body(request)


def input_tokens_for(model_id: str, operation: str, request: RequestLike) -> int:
    """Tokens of all the text a request carries: what CountTokens answers for it.

    ``request`` is the body as sent on the wire (bytes/str) or as a mapping: the InvokeModel
    body, the Converse keyword arguments (``messages``, ``system``, ``toolConfig``...), or a
    CountTokens request ``{"input": {...}}``. The count does not depend on ``model_id`` today
    (every family uses the same rule); it is part of the signature so it may. With prompt
    caching, the invocation reports ``input = this - cache_read - cache_write``.
    """
    kind, body = _normalise(operation, request)
    del model_id
    return plan_for(kind, body).total_tokens


def tools_apply(kind: str, family: Optional[str]) -> bool:
    """Whether the model can answer with tool calls: Converse always (the service translates),
    InvokeModel for the families whose native body has tools (Anthropic Messages, Nova)."""
    return kind == "Converse" or family in TOOL_FAMILIES


def _reply_for(
    model_id: str, operation: str, request: RequestLike, scenario: Optional[Scenario]
) -> Reply:
    kind, body = _normalise(operation, request)
    stream = operation in ("InvokeModelWithResponseStream", "ConverseStream")
    family = None if kind == "Converse" else family_for(parse_model_id(model_id).base_id, body)
    # A Converse guardrail is in the request; an InvokeModel one is in headers, not seen here.
    blocked = (
        scenario is not None
        and scenario.guardrail == "intervene"
        and kind == "Converse"
        and converse_guardrail(body, True) is not None
    )
    tools = tools_apply(kind, family)
    return build_reply(body, scenario, stream=stream, tools=tools, blocked=blocked)


def output_text_for(
    model_id: str, operation: str, request: RequestLike, scenario: Optional[Scenario] = None
) -> str:
    """The reply text the emulator sends for this request (after any max-tokens cut)."""
    return _reply_for(model_id, operation, request, scenario).text


def output_tokens_for(
    model_id: str, operation: str, request: RequestLike, scenario: Optional[Scenario] = None
) -> int:
    """The output count the emulator reports for this request."""
    return _reply_for(model_id, operation, request, scenario).output_tokens
