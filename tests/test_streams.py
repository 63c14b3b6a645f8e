"""Issue #4: streamed calls get exact counts and time to first chunk, and end exactly once,
however the stream ends, with memory flat over 100,000 events."""

from __future__ import annotations

import gc
import json
import tracemalloc
from typing import Any, Callable

import botocore.eventstream
import botocore.exceptions
import pytest
import urllib3.exceptions
from opentelemetry.trace import StatusCode

from opentelemetry import trace
from opentelemetry.instrumentation.bedrock_tokens import names
from opentelemetry.instrumentation.bedrock_tokens.emulator import Scenario

from .helpers import (
    PROMPT,
    STREAMING_FAMILIES,
    body_for,
    converse_messages,
    expected_usage_attrs,
    hist,
    only_span,
    token_sums,
    usage_attrs,
)

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
NOVA = "amazon.nova-micro-v1:0"
# Families whose chunks carry their own usage, used when invocationMetrics are missing.
IN_STREAM_USAGE = {CLAUDE, NOVA, "meta.llama3-1-8b-instruct-v1:0", "amazon.titan-text-express-v1"}


def open_stream(client: Any, operation: str, model: str) -> Any:
    if operation == "invoke":
        return client.invoke_model_with_response_stream(modelId=model, body=body_for(model))["body"]
    return client.converse_stream(modelId=model, messages=converse_messages())["stream"]


def duration_count(telemetry: Any) -> int:
    return hist(telemetry, names.METRIC_OPERATION_DURATION)[0]


def assert_recorded_once(telemetry: Any) -> Any:
    span = only_span(telemetry)
    assert duration_count(telemetry) == 1
    assert span.attributes[names.GEN_AI_REQUEST_STREAM] is True
    return span


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize("model", STREAMING_FAMILIES)
@pytest.mark.parametrize("final_metrics", [True, False], ids=["metrics", "no-metrics"])
def test_invoke_stream_every_family(
    model: str, final_metrics: bool, bedrock_client: Any, bedrock_emulator: Any,
    bedrock_telemetry: Any,
) -> None:
    if not final_metrics:
        bedrock_emulator.set_scenario(Scenario(omit_invocation_metrics=True))
    events = list(open_stream(bedrock_client, "invoke", model))
    assert events
    span = assert_recorded_once(bedrock_telemetry)
    recorded = bedrock_emulator.requests[-1]
    assert span.name.endswith(model)
    assert span.attributes[names.AWS_BEDROCK_STREAM_OUTCOME] == "completed"
    assert span.status.status_code is StatusCode.UNSET
    ttfc = span.attributes[names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert 0 < ttfc < (span.end_time - span.start_time) / 1e9
    assert hist(bedrock_telemetry, names.METRIC_TIME_TO_FIRST_CHUNK)[0] == 1
    got = usage_attrs(span)
    if final_metrics:
        assert span.attributes[names.AWS_BEDROCK_USAGE_SOURCE] == "invocation_metrics"
        assert got == expected_usage_attrs(recorded)
        assert span.attributes[names.AWS_BEDROCK_INVOCATION_LATENCY] >= 0
        assert span.attributes[names.AWS_BEDROCK_FIRST_BYTE_LATENCY] >= 0
    elif model in IN_STREAM_USAGE:
        assert span.attributes[names.AWS_BEDROCK_USAGE_SOURCE] == "stream_body"
        assert got[names.GEN_AI_USAGE_OUTPUT_TOKENS] == recorded.output_tokens
        assert got[names.GEN_AI_USAGE_INPUT_TOKENS] == expected_usage_attrs(recorded)[
            names.GEN_AI_USAGE_INPUT_TOKENS]
    else:
        # exact or absent: whatever the family's chunks carry must match the service exactly
        expected = expected_usage_attrs(recorded)
        assert all(got[k] == expected[k] for k in got)
    sums = token_sums(bedrock_telemetry)
    if names.GEN_AI_USAGE_OUTPUT_TOKENS in got:
        assert sums["output"] == (1, got[names.GEN_AI_USAGE_OUTPUT_TOKENS])
    if final_metrics:
        assert span.attributes[names.GEN_AI_RESPONSE_FINISH_REASONS]


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize("model", [CLAUDE, NOVA, "meta.llama3-1-8b-instruct-v1:0"])
@pytest.mark.parametrize("metadata", [True, False], ids=["metadata", "no-metadata"])
def test_converse_stream_counts(
    model: str, metadata: bool, bedrock_client: Any, bedrock_emulator: Any,
    bedrock_telemetry: Any,
) -> None:
    if not metadata:
        bedrock_emulator.set_scenario(Scenario(omit_stream_metadata=True))
    events = list(open_stream(bedrock_client, "converse", model))
    span = assert_recorded_once(bedrock_telemetry)
    recorded = bedrock_emulator.requests[-1]
    stop = next(e["messageStop"]["stopReason"] for e in events if "messageStop" in e)
    assert span.attributes[names.GEN_AI_RESPONSE_FINISH_REASONS] == (stop,)
    assert span.attributes[names.AWS_BEDROCK_STREAM_OUTCOME] == "completed"
    if metadata:
        usage = events[-1]["metadata"]["usage"]
        assert span.attributes[names.AWS_BEDROCK_USAGE_SOURCE] == "stream_metadata"
        assert usage_attrs(span) == expected_usage_attrs(recorded)
        assert span.attributes[names.GEN_AI_USAGE_OUTPUT_TOKENS] == usage["outputTokens"]
        assert span.attributes[names.AWS_BEDROCK_CONVERSE_LATENCY] == events[-1]["metadata"][
            "metrics"]["latencyMs"]
        assert token_sums(bedrock_telemetry)["input"] == (
            1, span.attributes[names.GEN_AI_USAGE_INPUT_TOKENS])
    else:
        assert usage_attrs(span) == {}  # never estimated
        assert token_sums(bedrock_telemetry) == {"input": (0, 0.0), "output": (0, 0.0)}


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize("operation", ["invoke", "converse"])
def test_stream_cache_tokens(
    operation: str, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    if operation == "invoke":
        body = json.dumps({
            "anthropic_version": "bedrock-2023-05-31", "max_tokens": 20,
            "system": [{"type": "text", "text": "Shared context. " * 50,
                        "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": PROMPT}],
        })

        def call() -> None:
            stream = bedrock_client.invoke_model_with_response_stream(modelId=CLAUDE, body=body)
            list(stream["body"])
    else:
        system = [{"text": "Shared context. " * 50}, {"cachePoint": {"type": "default"}}]

        def call() -> None:
            stream = bedrock_client.converse_stream(
                modelId=CLAUDE, system=system, messages=converse_messages())
            list(stream["stream"])

    call()
    call()
    first, second = bedrock_telemetry.spans()
    recorded = [r for r in bedrock_emulator.requests if r.operation and "Stream" in r.operation]
    assert first.attributes[names.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] > 0
    assert second.attributes[names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == first.attributes[
        names.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS]
    assert usage_attrs(first) == expected_usage_attrs(recorded[0])
    assert usage_attrs(second) == expected_usage_attrs(recorded[1])


INVOKE_EXCEPTIONS = [
    ("modelStreamErrorException", "ModelStreamErrorException"),
    ("throttlingException", "ThrottlingException"),
    ("internalServerException", "InternalServerException"),
    ("validationException", "ValidationException"),
    ("serviceUnavailableException", "ServiceUnavailableException"),
    ("modelTimeoutException", "ModelTimeoutException"),
]


# ConverseStream has no modelTimeoutException member (service model): not a case there.
STREAM_EXCEPTION_CASES = [("invoke", c, n) for c, n in INVOKE_EXCEPTIONS] + [
    ("converse", c, n) for c, n in INVOKE_EXCEPTIONS if c != "modelTimeoutException"]


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize(("operation", "code", "normalised"), STREAM_EXCEPTION_CASES)
def test_mid_stream_exception_ends_span_with_error(
    operation: str, code: str, normalised: str, bedrock_client: Any, bedrock_emulator: Any,
    bedrock_telemetry: Any,
) -> None:
    bedrock_emulator.set_scenario(Scenario(stream_exception=code, stream_exception_after=2))
    stream = open_stream(bedrock_client, operation, CLAUDE)
    seen = []
    with pytest.raises(botocore.exceptions.EventStreamError) as caught:
        for event in stream:
            seen.append(event)
    assert caught.value.response["Error"]["Code"] == code
    assert len(seen) == 2
    span = assert_recorded_once(bedrock_telemetry)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[names.ERROR_TYPE] == normalised
    assert span.attributes[names.AWS_BEDROCK_STREAM_OUTCOME] == "error"
    assert names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in span.attributes
    assert hist(bedrock_telemetry, names.METRIC_OPERATION_DURATION, error__type=normalised)[0] == 1
    if operation == "invoke":
        # Claude's message_start arrived before the error: the partial input count is known
        assert span.attributes[names.GEN_AI_USAGE_INPUT_TOKENS] == bedrock_emulator.requests[
            -1].input_tokens
    stream.close()
    assert duration_count(bedrock_telemetry) == 1


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize("operation", ["invoke", "converse"])
def test_connection_drop_mid_stream(
    operation: str, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    bedrock_emulator.set_scenario(Scenario(drop_after=3))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        list(open_stream(bedrock_client, operation, CLAUDE))
    span = assert_recorded_once(bedrock_telemetry)
    assert span.attributes[names.ERROR_TYPE] == "urllib3.exceptions.ProtocolError"
    assert span.attributes[names.AWS_BEDROCK_STREAM_OUTCOME] == "error"


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize("operation", ["invoke", "converse"])
def test_corrupt_frame(
    operation: str, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    bedrock_emulator.set_scenario(Scenario(corrupt_crc_at=2))
    with pytest.raises(botocore.eventstream.ChecksumMismatch):
        list(open_stream(bedrock_client, operation, CLAUDE))
    span = assert_recorded_once(bedrock_telemetry)
    assert span.attributes[names.ERROR_TYPE] == "botocore.eventstream.ChecksumMismatch"


def _break_after_two(stream: Any) -> None:
    for i, _ in enumerate(stream):
        if i == 1:
            break


ENDINGS: dict[str, tuple[Callable[[Any], None], str]] = {
    "exhausted": (lambda s: list(s), "completed"),
    "exhausted-then-close-twice": (lambda s: (list(s), s.close(), s.close()), "completed"),
    "break-then-close": (lambda s: (_break_after_two(s), s.close()), "closed"),
    "close-twice-unread": (lambda s: (s.close(), s.close()), "closed"),
    "break-then-drop": (_break_after_two, "abandoned"),
    "never-iterated": (lambda s: None, "abandoned"),
}


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize("operation", ["invoke", "converse"])
@pytest.mark.parametrize("ending", list(ENDINGS))
def test_every_ending_records_exactly_once(
    operation: str, ending: str, bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    action, outcome = ENDINGS[ending]
    stream = open_stream(bedrock_client, operation, CLAUDE)
    action(stream)
    del stream
    gc.collect()
    span = assert_recorded_once(bedrock_telemetry)
    assert span.attributes[names.AWS_BEDROCK_STREAM_OUTCOME] == outcome
    assert span.status.status_code is StatusCode.UNSET
    if ending in ("never-iterated", "close-twice-unread"):
        assert names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in span.attributes
    else:
        assert span.attributes[names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0


@pytest.mark.usefixtures("instrumented")
def test_iterating_again_after_break_continues_the_same_call(
    bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    stream = open_stream(bedrock_client, "converse", CLAUDE)
    _break_after_two(stream)
    assert bedrock_telemetry.spans() == []  # a break is not the end of the response
    rest = list(stream)
    assert "metadata" in rest[-1]
    span = assert_recorded_once(bedrock_telemetry)
    assert span.attributes[names.GEN_AI_USAGE_OUTPUT_TOKENS] == rest[-1]["metadata"]["usage"][
        "outputTokens"]


@pytest.mark.usefixtures("instrumented")
def test_stream_proxy_passes_through_the_event_stream(bedrock_client: Any) -> None:
    stream = open_stream(bedrock_client, "converse", CLAUDE)
    assert isinstance(stream, botocore.eventstream.EventStream)
    assert stream._operation_name == "ConverseStream"
    stream.close()


@pytest.mark.usefixtures("instrumented")
def test_no_context_of_ours_attached_while_user_iterates(
    bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    stream = open_stream(bedrock_client, "converse", CLAUDE)
    for _ in stream:
        assert not trace.get_current_span().get_span_context().is_valid
    assert len(bedrock_telemetry.spans()) == 1


def _digest(events: Any) -> tuple[int, str]:
    """Count and hash of every event but the last, whose invocationMetrics carry latencies
    that differ from call to call (kept in a one-slot variable, never a list)."""
    import hashlib

    h = hashlib.sha256()
    count = 0
    held = None
    for event in events:
        count += 1
        if held is not None:
            h.update(held)
        held = event["chunk"]["bytes"]
    return count, h.hexdigest()


def test_long_stream_memory_stays_flat(
    instrument: Any, bedrock_client: Any, bedrock_emulator: Any
) -> None:
    n = 20_000  # buffered, 20,000 events would hold megabytes: far past the 256 KiB bound
    bedrock_emulator.set_scenario(Scenario(stream_events=n))

    def run() -> tuple[tuple[int, str], int]:
        stream = open_stream(bedrock_client, "invoke", NOVA)
        gc.collect()
        tracemalloc.start()
        try:
            digest = _digest(stream)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return digest, peak

    plain, plain_peak = run()
    instrument()
    ours, ours_peak = run()
    assert ours == plain
    assert ours[0] >= n
    assert ours_peak - plain_peak < 256 * 1024, (plain_peak, ours_peak)


EXIT_APP = """
import json, sys
import boto3
from botocore.config import Config
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor
from opentelemetry.instrumentation.bedrock_tokens.emulator import BedrockEmulator

class Print(SpanExporter):
    def export(self, spans):
        for span in spans:
            print(json.dumps({"name": span.name, "attributes": dict(span.attributes)}), flush=True)
        return SpanExportResult.SUCCESS

provider = TracerProvider()  # registers its shutdown with atexit before instrument() does
provider.add_span_processor(SimpleSpanProcessor(Print()))
BedrockTokensInstrumentor().instrument(tracer_provider=provider)
emulator = BedrockEmulator().start()
client = boto3.client("bedrock-runtime", region_name="us-east-1",
                      endpoint_url=emulator.endpoint_url, aws_access_key_id="x",
                      aws_secret_access_key="x", config=Config(retries={"total_max_attempts": 1}))
KEEP = client.converse_stream(modelId="amazon.nova-micro-v1:0",
                              messages=[{"role": "user", "content": [{"text": "hi"}]}])
next(iter(KEEP["stream"]))
print("exiting", flush=True)
"""


def test_streams_open_at_exit_are_ended_before_sdk_shutdown(tmp_path: Any) -> None:
    import subprocess
    import sys

    app = tmp_path / "exit_app.py"
    app.write_text(EXIT_APP)
    done = subprocess.run([sys.executable, str(app)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "exiting"
    spans = [json.loads(line) for line in lines[1:]]
    assert len(spans) == 1
    assert spans[0]["attributes"][names.AWS_BEDROCK_STREAM_OUTCOME] == "abandoned"
    assert spans[0]["attributes"][names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0


@pytest.mark.parametrize("operation", ["invoke", "converse"])
def test_stream_content_captured_only_on_opt_in(
    operation: str, instrument: Any, bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    instrument(capture_content=True)
    events = list(open_stream(bedrock_client, operation, CLAUDE))
    if operation == "invoke":
        chunks = [json.loads(e["chunk"]["bytes"]) for e in events]
        reply = "".join(c["delta"].get("text", "") for c in chunks
                        if c.get("type") == "content_block_delta")
    else:
        reply = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events
                        if "contentBlockDelta" in e)
    assert reply
    span = assert_recorded_once(bedrock_telemetry)
    output = json.loads(span.attributes[names.GEN_AI_OUTPUT_MESSAGES])
    assert output[0]["parts"][0]["content"] == reply
    assert json.loads(span.attributes[names.GEN_AI_INPUT_MESSAGES])[0]["role"] == "user"
    # and the same stream without the opt-in carries no text at all
    bedrock_telemetry.clear_spans()
    instrument()
    list(open_stream(bedrock_client, operation, CLAUDE))
    plain = only_span(bedrock_telemetry)
    assert names.GEN_AI_OUTPUT_MESSAGES not in plain.attributes
    assert names.GEN_AI_INPUT_MESSAGES not in plain.attributes
