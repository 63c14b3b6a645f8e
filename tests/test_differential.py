"""Differential: every scenario run twice, uninstrumented then instrumented, must give the user
the same results, the same events and the same exceptions. Only the values the service makes
different on every call anyway (request ids, ids derived from them, latencies, dates, padding)
are normalised away."""

from __future__ import annotations

import json
import re
from typing import Any, Callable

import pytest

from opentelemetry.instrumentation.bedrock_tokens.emulator import Scenario

from .helpers import FAMILY_REQUESTS, body_for, converse_messages
from .test_core import HTTP_ERRORS
from .test_streams import CLAUDE, INVOKE_EXCEPTIONS

VOLATILE_KEYS = {"id", "response_id", "generation_id", "invocationLatency", "firstByteLatency",
                 "latencyMs", "requestDurationMillis", "p", "RequestId",
                 "created"}  # created: a timestamp in seconds
_UUID = re.compile(
    rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|(?:msg|toolu)_bdrk_[0-9A-Za-z]+"
    rb'|"created": ?[0-9]+'
)
VOLATILE_HEADERS = {"date", "x-amzn-requestid", "content-length",
                    "x-amzn-bedrock-invocation-latency"}


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in VOLATILE_KEYS:
                out[key] = "<volatile>"
            elif key == "HTTPHeaders":
                out[key] = {k: v for k, v in item.items() if k not in VOLATILE_HEADERS}
            else:
                out[key] = _normalise(item)
        return out
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, bytes):
        try:
            return ("json", _normalise(json.loads(value)))
        except ValueError:  # e.g. a truncated body: ids derived from the request id vary
            return ("bytes", _UUID.sub(b"<uuid>", value))
    if hasattr(value, "read"):  # StreamingBody
        return ("body", _normalise(value.read()))
    if hasattr(value, "__iter__") and not isinstance(value, str):  # EventStream
        events: list[Any] = []
        try:
            for event in value:
                events.append(_normalise(event))
        except Exception as exc:
            events.append(_raised(exc))
        return ("stream", events)
    return value


def _raised(exc: Exception) -> tuple[Any, ...]:
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    # ChecksumMismatch quotes CRCs, which vary with the random padding of each response
    message = re.sub(r"0x[0-9a-fA-F]+", "0x?", str(exc))
    return ("raised", type(exc).__module__, type(exc).__name__, message, error)


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        result = call()
    except Exception as exc:
        return _raised(exc)
    return _normalise(result)


def _compare(call: Callable[[], Any], instrument: Any, emulator: Any, scenario: Scenario) -> None:
    emulator.set_scenario(scenario)
    plain = _outcome(call)
    instrument()
    emulator.reset()
    emulator.set_scenario(scenario)
    ours = _outcome(call)
    assert ours == plain


def _invoke(client: Any, model: str) -> Callable[[], Any]:
    return lambda: client.invoke_model(modelId=model, body=body_for(model))


def _invoke_stream(client: Any, model: str) -> Callable[[], Any]:
    return lambda: client.invoke_model_with_response_stream(modelId=model, body=body_for(model))


def _converse(client: Any, model: str) -> Callable[[], Any]:
    return lambda: client.converse(modelId=model, messages=converse_messages())


def _converse_stream(client: Any, model: str) -> Callable[[], Any]:
    return lambda: client.converse_stream(modelId=model, messages=converse_messages())


@pytest.mark.parametrize("model", list(FAMILY_REQUESTS))
@pytest.mark.parametrize("scenario", [
    Scenario(), Scenario(omit_token_headers=True), Scenario(float_counts=True),
    Scenario(malformed_body=True), Scenario(omit_body_usage=True, omit_token_headers=True),
], ids=["plain", "no-headers", "floats", "malformed", "no-usage"])
def test_invoke_model_identical(
    model: str, scenario: Scenario, instrument: Any, bedrock_client: Any, bedrock_emulator: Any
) -> None:
    _compare(_invoke(bedrock_client, model), instrument, bedrock_emulator, scenario)


@pytest.mark.parametrize("model", [m for m in FAMILY_REQUESTS if "embed" not in m])
@pytest.mark.parametrize("scenario", [
    Scenario(), Scenario(omit_invocation_metrics=True), Scenario(drop_after=2),
    Scenario(corrupt_crc_at=1),
], ids=["plain", "no-metrics", "drop", "corrupt"])
def test_invoke_stream_identical(
    model: str, scenario: Scenario, instrument: Any, bedrock_client: Any, bedrock_emulator: Any
) -> None:
    _compare(_invoke_stream(bedrock_client, model), instrument, bedrock_emulator, scenario)


@pytest.mark.parametrize(("operation", "code"), [
    (op, code) for op in ("converse", "converse_stream", "invoke_stream")
    for code, _ in INVOKE_EXCEPTIONS
    if not (op == "converse_stream" and code == "modelTimeoutException")  # no such member
])
def test_stream_exceptions_identical(
    operation: str, code: str, instrument: Any, bedrock_client: Any, bedrock_emulator: Any
) -> None:
    call = {"converse": _converse, "converse_stream": _converse_stream,
            "invoke_stream": _invoke_stream}[operation](bedrock_client, CLAUDE)
    _compare(call, instrument, bedrock_emulator,
             Scenario(stream_exception=code, stream_exception_after=1))


@pytest.mark.parametrize(("status", "code"), HTTP_ERRORS)
@pytest.mark.parametrize("operation", ["invoke", "invoke_stream", "converse", "converse_stream"])
def test_http_errors_identical(
    status: int, code: str, operation: str, instrument: Any, bedrock_client: Any,
    bedrock_emulator: Any,
) -> None:
    call = {"invoke": _invoke, "invoke_stream": _invoke_stream, "converse": _converse,
            "converse_stream": _converse_stream}[operation](bedrock_client, CLAUDE)
    _compare(call, instrument, bedrock_emulator, Scenario(error_status=status))


@pytest.mark.parametrize("scenario", [Scenario(), Scenario(omit_stream_metadata=True),
                                      Scenario(drop_after=2), Scenario(corrupt_crc_at=1)],
                         ids=["plain", "no-metadata", "drop", "corrupt"])
def test_converse_stream_identical(
    scenario: Scenario, instrument: Any, bedrock_client: Any, bedrock_emulator: Any
) -> None:
    _compare(_converse_stream(bedrock_client, CLAUDE), instrument, bedrock_emulator, scenario)
