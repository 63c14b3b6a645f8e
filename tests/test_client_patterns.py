"""Issue #11: counts survive what real client libraries do with what they are handed.

Every consumer below does to the result what a named library (or a common app pattern) does
once it has it: pops keys out of stream events, clears them, replaces ``chunk.bytes``, reads
an InvokeModel body in pieces or by lines, pops the result dict apart, catches a ``ClientError``
and mutates or wraps it. For each operation and family the counts on the span and in the
token metrics must be exactly what the emulator reported, and what the consumer saw must be
the same with and without the instrumentation.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import botocore.exceptions
import pytest

from opentelemetry.instrumentation.bedrock_tokens import names, patch
from opentelemetry.instrumentation.bedrock_tokens.emulator import Scenario

from .helpers import (
    FAMILY_REQUESTS,
    NO_BODY_USAGE,
    STREAMING_FAMILIES,
    body_for,
    converse_messages,
    expected_usage_attrs,
    only_span,
    token_sums,
    usage_attrs,
)
from .test_core import HTTP_ERRORS
from .test_differential import _normalise
from .test_streams import CLAUDE, IN_STREAM_USAGE, NOVA

LLAMA = "meta.llama3-1-8b-instruct-v1:0"
CONVERSE_MODELS = [CLAUDE, NOVA, LLAMA]

Consumer = Callable[[Any], list[Any]]


# -- stream consumers: each returns what it saw, recorded before it mutated anything -------------
def langchain_pop_usage(stream: Any) -> list[Any]:
    """langchain-aws ``ChatBedrockConverse.stream()``: ``event["metadata"].pop("usage")``."""
    seen = []
    for event in stream:
        seen.append(_normalise(event))
        if "metadata" in event:
            seen.append(("usage", _normalise(event["metadata"].pop("usage", None))))
    return seen


def pop_every_key(stream: Any) -> list[Any]:
    """A consumer that converts each event to its own type and empties it (pops every key of
    the event and clears every nested dict), keeping no reference to it."""
    seen = []
    for event in stream:
        seen.append(_normalise(event))
        for key in list(event):
            inner = event.pop(key)
            if isinstance(inner, dict):
                for nested in list(inner.values()):
                    if isinstance(nested, dict):
                        nested.clear()
                inner.clear()
    return seen


def decode_in_place(stream: Any) -> list[Any]:
    """Apps that hand events downstream decoded: ``event["chunk"]["bytes"] = json.loads(...)``
    (InvokeModel streams), or rewrite the delta in place (ConverseStream)."""
    seen = []
    for event in stream:
        seen.append(_normalise(event))
        chunk = event.get("chunk")
        if isinstance(chunk, dict):
            chunk["bytes"] = json.loads(chunk["bytes"])
        for value in event.values():
            if isinstance(value, dict) and "usage" in value:
                value["usage"] = {"inputTokens": -1, "outputTokens": -1, "totalTokens": -1}
    return seen


def break_and_resume(stream: Any) -> list[Any]:
    """pydantic-ai style: iterate a little, break out (to await something else), then carry
    on iterating the same stream to the end; each event is cleared once used."""
    seen = []
    for event in stream:
        seen.append(_normalise(event))
        event.clear()
        break
    for event in stream:
        seen.append(_normalise(event))
        event.clear()
    return seen


STREAM_CONSUMERS: list[Consumer] = [
    langchain_pop_usage, pop_every_key, decode_in_place, break_and_resume,
]


# -- InvokeModel body consumers -------------------------------------------------------------------
def read_in_pieces(result: dict[str, Any]) -> list[Any]:
    """``body.read(7)`` until empty, then the result dict is popped apart."""
    body = result.pop("body")
    parts = []
    while True:
        part = body.read(7)
        if not part:
            break
        parts.append(part)
    meta = result.pop("ResponseMetadata")
    return [_normalise(b"".join(parts)), _normalise(meta), _normalise(result)]


def read_by_lines(result: dict[str, Any]) -> list[Any]:
    """``body.iter_lines()`` (JSON-lines readers)."""
    lines = list(result["body"].iter_lines())
    result.clear()
    return [_normalise(b"\n".join(lines))]


def read_chunks(result: dict[str, Any]) -> list[Any]:
    """``body.iter_chunks(5)``, then ``close()``, as a streaming JSON parser does."""
    body = result["body"]
    data = b"".join(body.iter_chunks(5))
    body.close()
    return [_normalise(data), _normalise(body.read())]


def langchain_chatbedrock(result: dict[str, Any]) -> list[Any]:
    """langchain-aws ``ChatBedrock``: ``json.loads(response.get("body").read().decode())``,
    then the parsed body's ``usage`` is popped out."""
    parsed = json.loads(result.get("body").read().decode())
    usage = parsed.pop("usage", None) if isinstance(parsed, dict) else None
    headers = result["ResponseMetadata"].pop("HTTPHeaders")
    return [_normalise(parsed), _normalise(usage), sorted(k for k in headers if "bedrock" in k)]


BODY_CONSUMERS = [read_in_pieces, read_by_lines, read_chunks, langchain_chatbedrock]


def langchain_converse(result: dict[str, Any]) -> list[Any]:
    """langchain-aws ``ChatBedrockConverse._parse_response``: pops ``output``, ``usage``,
    ``metrics`` and ``ResponseMetadata`` out of the Converse result."""
    popped = [result.pop(key, None) for key in ("output", "usage", "metrics", "stopReason")]
    meta = result.pop("ResponseMetadata")
    meta.clear()
    return [_normalise(popped), _normalise(result)]


def _differential(run: Callable[[], list[Any]], instrument: Any, emulator: Any,
                  scenario: Scenario) -> None:
    """What the consumer saw uninstrumented, then instrumented, must be the same."""
    emulator.set_scenario(scenario)
    plain = run()
    instrument()
    emulator.reset()
    emulator.set_scenario(scenario)
    ours = run()
    assert ours == plain


def _assert_exact(span: Any, recorded: Any, telemetry: Any, partial: bool = False) -> None:
    got = usage_attrs(span)
    expected = expected_usage_attrs(recorded)
    if partial:  # in-stream usage without invocationMetrics: input and output, exactly
        keys = (names.GEN_AI_USAGE_INPUT_TOKENS, names.GEN_AI_USAGE_OUTPUT_TOKENS)
        expected = {k: expected[k] for k in keys}
        got = {k: got.get(k) for k in keys}
    assert got == expected
    sums = token_sums(telemetry)
    assert sums["input"] == (1, expected[names.GEN_AI_USAGE_INPUT_TOKENS])
    if names.GEN_AI_USAGE_OUTPUT_TOKENS in expected:
        assert sums["output"] == (1, expected[names.GEN_AI_USAGE_OUTPUT_TOKENS])


# -- streams --------------------------------------------------------------------------------------
def test_plain_boto3_repro_of_langchain_pop(
    instrumented: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    """The issue's repro, verbatim."""
    stream = bedrock_client.converse_stream(modelId=CLAUDE, messages=converse_messages())
    for ev in stream["stream"]:
        ev.get("metadata", {}).pop("usage", None)
    span = only_span(bedrock_telemetry)
    assert span.attributes[names.AWS_BEDROCK_STREAM_OUTCOME] == "completed"
    assert span.attributes[names.AWS_BEDROCK_USAGE_SOURCE] == "stream_metadata"
    _assert_exact(span, bedrock_emulator.requests[-1], bedrock_telemetry)


@pytest.mark.parametrize("consumer", STREAM_CONSUMERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("model", CONVERSE_MODELS)
def test_converse_stream_consumers(
    consumer: Consumer, model: str, instrument: Any, bedrock_client: Any,
    bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    def run() -> list[Any]:
        result = bedrock_client.converse_stream(modelId=model, messages=converse_messages())
        return consumer(result.pop("stream"))

    _differential(run, instrument, bedrock_emulator, Scenario())
    span = only_span(bedrock_telemetry)
    assert span.attributes[names.AWS_BEDROCK_STREAM_OUTCOME] == "completed"
    assert span.attributes[names.GEN_AI_RESPONSE_FINISH_REASONS]
    assert span.attributes[names.AWS_BEDROCK_CONVERSE_LATENCY] >= 0
    _assert_exact(span, bedrock_emulator.requests[-1], bedrock_telemetry)


@pytest.mark.parametrize("consumer", STREAM_CONSUMERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(("model", "metrics"), [
    *((m, True) for m in STREAMING_FAMILIES),
    *((m, False) for m in STREAMING_FAMILIES if m in IN_STREAM_USAGE),
])
def test_invoke_stream_consumers(
    consumer: Consumer, model: str, metrics: bool, instrument: Any, bedrock_client: Any,
    bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    """With ``metrics`` the counts come from the final invocationMetrics chunk; without, from
    the family's own usage chunks (Anthropic message_start + message_delta, Nova metadata,
    Llama and Titan final chunks)."""
    def run() -> list[Any]:
        result = bedrock_client.invoke_model_with_response_stream(
            modelId=model, body=body_for(model))
        return consumer(result.pop("body"))

    _differential(run, instrument, bedrock_emulator,
                  Scenario() if metrics else Scenario(omit_invocation_metrics=True))
    span = only_span(bedrock_telemetry)
    assert span.attributes[names.AWS_BEDROCK_STREAM_OUTCOME] == "completed"
    assert span.attributes[names.AWS_BEDROCK_USAGE_SOURCE] == (
        "invocation_metrics" if metrics else "stream_body")
    _assert_exact(span, bedrock_emulator.requests[-1], bedrock_telemetry, partial=not metrics)


@pytest.mark.parametrize("operation", ["invoke", "converse"])
def test_stream_content_capture_survives_mutation(
    operation: str, instrument: Any, bedrock_client: Any, bedrock_emulator: Any,
    bedrock_telemetry: Any,
) -> None:
    """Content capture reads each delta before the event is handed over, too."""
    instrument(capture_content=True)
    if operation == "invoke":
        stream = bedrock_client.invoke_model_with_response_stream(
            modelId=CLAUDE, body=body_for(CLAUDE))["body"]
    else:
        stream = bedrock_client.converse_stream(
            modelId=CLAUDE, messages=converse_messages())["stream"]
    pop_every_key(stream)
    span = only_span(bedrock_telemetry)
    recorded = bedrock_emulator.requests[-1]
    output = json.loads(span.attributes[names.GEN_AI_OUTPUT_MESSAGES])
    text = "".join(part.get("content", "") for m in output for part in m["parts"])
    request: Any = (json.loads(body_for(CLAUDE)) if operation == "invoke"
                    else {"messages": converse_messages()})
    op = "InvokeModelWithResponseStream" if operation == "invoke" else "ConverseStream"
    assert text == bedrock_emulator.output_text_for(CLAUDE, op, request)
    _assert_exact(span, recorded, bedrock_telemetry)


# -- non-streamed results -------------------------------------------------------------------------
@pytest.mark.parametrize("consumer", BODY_CONSUMERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("model", [m for m in FAMILY_REQUESTS if m not in NO_BODY_USAGE])
@pytest.mark.parametrize("headers", [True, False], ids=["headers", "body-only"])
def test_invoke_model_body_consumers(
    consumer: Callable[[dict[str, Any]], list[Any]], model: str, headers: bool,
    instrument: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    """Without the token headers the counts come from the body the instrumentation read and
    replayed; either way the consumer's reads give the same bytes."""
    scenario = Scenario() if headers else Scenario(omit_token_headers=True)
    _differential(
        lambda: consumer(bedrock_client.invoke_model(modelId=model, body=body_for(model))),
        instrument, bedrock_emulator, scenario)
    span = only_span(bedrock_telemetry)
    assert span.attributes[names.AWS_BEDROCK_USAGE_SOURCE] == ("headers" if headers else "body")
    recorded = bedrock_emulator.requests[-1]
    expected = expected_usage_attrs(recorded)
    assert usage_attrs(span) == expected
    assert token_sums(bedrock_telemetry)["input"] == (
        1, expected[names.GEN_AI_USAGE_INPUT_TOKENS])


@pytest.mark.parametrize("model", CONVERSE_MODELS)
def test_converse_result_popped_apart(
    model: str, instrument: Any, bedrock_client: Any, bedrock_emulator: Any,
    bedrock_telemetry: Any,
) -> None:
    _differential(
        lambda: langchain_converse(
            bedrock_client.converse(modelId=model, messages=converse_messages())),
        instrument, bedrock_emulator, Scenario())
    span = only_span(bedrock_telemetry)
    assert span.attributes[names.AWS_REQUEST_ID]
    assert span.attributes[names.GEN_AI_RESPONSE_FINISH_REASONS]
    _assert_exact(span, bedrock_emulator.requests[-1], bedrock_telemetry)


def test_count_tokens_result_popped(
    instrumented: Any, bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    result = bedrock_client.count_tokens(
        modelId=CLAUDE, input={"converse": {"messages": converse_messages()}})
    tokens = result.pop("inputTokens")
    result.clear()
    span = only_span(bedrock_telemetry)
    assert span.attributes[names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS] == tokens


def test_background_precount_counts_the_messages_as_sent(
    instrument: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    """An agent loop appends the reply and the next turn to its ``messages`` list as soon as
    the call returns; the background pre-count must count the messages the call sent."""
    instrument(precount="background")
    messages = converse_messages()
    sent = json.loads(json.dumps(messages))
    # the count is still queued or under way when the call returns
    bedrock_emulator.set_scenario(Scenario(count_tokens_delay=0.05))
    result = bedrock_client.converse(modelId=CLAUDE, messages=messages)
    messages.append(result["output"]["message"])
    messages.append({"role": "user", "content": [{"text": "and now a much longer turn " * 40}]})
    handler = patch.active
    assert handler is not None and handler.precounter is not None
    assert handler.precounter.flush(5.0)  # type: ignore[attr-defined]
    expected = bedrock_emulator.input_tokens_for(CLAUDE, "Converse", {"messages": sent})
    counts = [s for s in bedrock_telemetry.spans() if s.name.startswith("count_tokens")]
    assert len(counts) == 1
    assert counts[0].attributes[names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS] == expected


# -- errors -------------------------------------------------------------------------------------
def _call(client: Any, operation: str) -> Any:
    if operation == "invoke_model":
        return client.invoke_model(modelId=CLAUDE, body=body_for(CLAUDE))
    if operation == "invoke_stream":
        return client.invoke_model_with_response_stream(modelId=CLAUDE, body=body_for(CLAUDE))
    if operation == "converse_stream":
        return client.converse_stream(modelId=CLAUDE, messages=converse_messages())
    if operation == "count_tokens":
        return client.count_tokens(
            modelId=CLAUDE, input={"converse": {"messages": converse_messages()}})
    return client.converse(modelId=CLAUDE, messages=converse_messages())


class ModelThrottledError(Exception):
    pass


@pytest.mark.parametrize(("status", "code"), HTTP_ERRORS)
@pytest.mark.parametrize("operation", [
    "invoke_model", "invoke_stream", "converse", "converse_stream", "count_tokens"])
def test_error_spans_carry_the_request_id(
    status: int, code: str, operation: str, instrumented: Any, bedrock_client: Any,
    bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    """strands-agents style: catch the ClientError, read its code, wrap it in the library's
    own exception; then the app clears the error response it was handed."""
    bedrock_emulator.set_scenario(Scenario(error_status=status))
    with pytest.raises(ModelThrottledError) as raised:
        try:
            _call(bedrock_client, operation)
        except botocore.exceptions.ClientError as exc:
            request_id = exc.response["ResponseMetadata"]["RequestId"]
            assert exc.response["Error"]["Code"] == code
            exc.response["Error"].clear()
            exc.response["ResponseMetadata"].clear()
            raise ModelThrottledError(str(exc)) from exc
    assert isinstance(raised.value.__cause__, botocore.exceptions.ClientError)
    span = only_span(bedrock_telemetry)
    assert request_id
    assert span.attributes[names.AWS_REQUEST_ID] == request_id
    assert span.attributes[names.ERROR_TYPE] == code


def test_stream_error_span_keeps_the_request_id(
    instrumented: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    """A mid-stream exception event has no RequestId of its own: the span keeps the one of
    the HTTP response that opened the stream, which the user can read from the result."""
    bedrock_emulator.set_scenario(
        Scenario(stream_exception="throttlingException", stream_exception_after=1))
    result = bedrock_client.converse_stream(modelId=CLAUDE, messages=converse_messages())
    request_id = result["ResponseMetadata"]["RequestId"]
    with pytest.raises(botocore.exceptions.EventStreamError):
        for event in result["stream"]:
            event.clear()
    span = only_span(bedrock_telemetry)
    assert span.attributes[names.AWS_REQUEST_ID] == request_id
    assert span.attributes[names.ERROR_TYPE] == "ThrottlingException"
