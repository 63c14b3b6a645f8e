"""InvokeModelWithResponseStream and ConverseStream: every event as botocore decodes it."""

from __future__ import annotations

import base64
import http.client
import json
import os
import struct
import time
import zlib
from typing import Any

import pytest

from opentelemetry.instrumentation.bedrock_tokens.emulator import (
    DEFAULT_REPLY,
    BedrockEmulator,
    Scenario,
    count_text_tokens,
)

from .support import (
    FAMILIES,
    REPLY_PIECES,
    REPLY_TOKENS,
    TEXT_FAMILIES,
    converse_messages,
    stream_text,
    stream_usage,
)

_METRICS = "amazon-bedrock-invocationMetrics"


def _chunks(response: Any) -> list[dict[str, Any]]:
    events = list(response["body"])
    assert all(list(event) == ["chunk"] for event in events)
    return [json.loads(event["chunk"]["bytes"]) for event in events]


@pytest.mark.parametrize("name", TEXT_FAMILIES)
def test_invoke_stream_every_family(
    name: str, bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    family = FAMILIES[name]
    response = bedrock_client.invoke_model_with_response_stream(
        modelId=family.model_id, body=family.raw()
    )
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["content-type"] == "application/vnd.amazon.eventstream"
    assert headers["transfer-encoding"] == "chunked"
    assert response["contentType"] == "application/json"
    assert not [h for h in headers if h.endswith("-token-count")]
    chunks = _chunks(response)

    assert stream_text(name, chunks) == DEFAULT_REPLY
    *body_chunks, last = chunks
    assert all(_METRICS not in c for c in body_chunks)
    metrics = last[_METRICS]
    assert metrics["inputTokenCount"] == family.input_tokens
    assert metrics["outputTokenCount"] == REPLY_TOKENS
    assert metrics["invocationLatency"] >= metrics["firstByteLatency"] >= 0
    cache_keys = {"cacheReadInputTokenCount", "cacheWriteInputTokenCount"}
    if family.cache_fields_unasked:
        assert {k: metrics[k] for k in cache_keys} == {k: 0 for k in cache_keys}
    else:
        assert not cache_keys & set(metrics)
    usage = stream_usage(name, chunks)
    if usage is not None:
        assert usage == (family.input_tokens, REPLY_TOKENS)
    recorded = bedrock_emulator.requests[-1]
    assert recorded.operation == "InvokeModelWithResponseStream"
    assert (recorded.input_tokens, recorded.output_tokens) == (family.input_tokens, REPLY_TOKENS)


def test_anthropic_stream_event_sequence(bedrock_client: Any) -> None:
    family = FAMILIES["anthropic"]
    chunks = _chunks(
        bedrock_client.invoke_model_with_response_stream(modelId=family.model_id, body=family.raw())
    )
    types = [c["type"] for c in chunks]
    assert types == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * REPLY_PIECES,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    # no cache_control in the request: no cache fields (as in the recorded Claude streams)
    usage = chunks[0]["message"]["usage"]
    assert usage == {"input_tokens": family.input_tokens, "output_tokens": 1}
    assert chunks[-2]["delta"]["stop_reason"] == "end_turn"


def test_nova_stream_event_sequence(bedrock_client: Any) -> None:
    family = FAMILIES["nova"]
    chunks = _chunks(
        bedrock_client.invoke_model_with_response_stream(modelId=family.model_id, body=family.raw())
    )
    kinds = [next(k for k in c if k != _METRICS) for c in chunks]
    assert kinds == [
        "messageStart",
        *["contentBlockDelta"] * REPLY_PIECES,
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert chunks[-1]["metadata"]["usage"] == {
        "inputTokens": family.input_tokens,
        "outputTokens": REPLY_TOKENS,
        "cacheReadInputTokenCount": 0,
        "cacheWriteInputTokenCount": 0,
    }


def test_chunk_frames_carry_padding_and_string_headers(bedrock_emulator: BedrockEmulator) -> None:
    """Read the raw wire: one frame per HTTP chunk, ``{"bytes","p"}`` payloads, valid CRCs."""
    family = FAMILIES["llama"]
    conn = http.client.HTTPConnection("127.0.0.1", bedrock_emulator.port, timeout=10)
    conn.request(
        "POST",
        "/model/meta.llama3-1-8b-instruct-v1%3A0/invoke-with-response-stream",
        body=family.raw(),
    )
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Transfer-Encoding") == "chunked"
    fp = response.fp  # read the chunked framing ourselves
    response.chunked = False
    frames = []
    while True:
        size = int(fp.readline().strip(), 16)
        if size == 0:
            assert fp.readline() == b"\r\n"
            break
        frames.append(fp.read(size))
        assert fp.read(2) == b"\r\n"
    conn.close()
    assert len(frames) == REPLY_PIECES + 1  # the pieces and the final chunk
    for frame in frames:
        total, header_len = struct.unpack(">II", frame[:8])
        assert total == len(frame)
        assert struct.unpack(">I", frame[8:12])[0] == zlib.crc32(frame[:8])
        assert struct.unpack(">I", frame[-4:])[0] == zlib.crc32(frame[:-4])
        headers = frame[12 : 12 + header_len]
        assert headers == (
            b"\x0b:event-type\x07\x00\x05chunk"
            b"\x0d:content-type\x07\x00\x10application/json"
            b"\x0d:message-type\x07\x00\x05event"
        )
        payload = json.loads(frame[12 + header_len : -4])
        assert set(payload) == {"bytes", "p"}
        assert payload["p"] and payload["p"].isalnum()
        json.loads(base64.b64decode(payload["bytes"]))


def test_omit_invocation_metrics(bedrock_client: Any, bedrock_emulator: BedrockEmulator) -> None:
    bedrock_emulator.set_scenario(Scenario(omit_invocation_metrics=True))
    family = FAMILIES["anthropic"]
    chunks = _chunks(
        bedrock_client.invoke_model_with_response_stream(modelId=family.model_id, body=family.raw())
    )
    assert all(_METRICS not in c for c in chunks)
    assert stream_usage("anthropic", chunks) == (family.input_tokens, REPLY_TOKENS)


@pytest.mark.parametrize("name", ["anthropic", "nova", "llama", "titan-text", "openai"])
def test_omit_body_usage_in_streams_keeps_metrics(
    name: str, bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.set_scenario(Scenario(omit_body_usage=True))
    family = FAMILIES[name]
    chunks = _chunks(
        bedrock_client.invoke_model_with_response_stream(modelId=family.model_id, body=family.raw())
    )
    metrics = chunks[-1].pop(_METRICS)
    assert metrics["inputTokenCount"] == family.input_tokens
    text = json.dumps(chunks)
    for key in ("usage", "TokenCount", "token_count"):
        assert key not in text


def test_float_counts_in_streams(bedrock_client: Any, bedrock_emulator: BedrockEmulator) -> None:
    bedrock_emulator.set_scenario(Scenario(float_counts=True))
    family = FAMILIES["titan-text"]
    chunks = _chunks(
        bedrock_client.invoke_model_with_response_stream(modelId=family.model_id, body=family.raw())
    )
    assert chunks[0]["inputTextTokenCount"] == 10.0
    assert type(chunks[0]["inputTextTokenCount"]) is float
    assert type(chunks[-1][_METRICS]["outputTokenCount"]) is float
    assert type(chunks[-1][_METRICS]["invocationLatency"]) is int


def test_malformed_stream_chunks(bedrock_client: Any, bedrock_emulator: BedrockEmulator) -> None:
    bedrock_emulator.set_scenario(Scenario(malformed_body=True))
    family = FAMILIES["anthropic"]
    response = bedrock_client.invoke_model_with_response_stream(
        modelId=family.model_id, body=family.raw()
    )
    events = list(response["body"])
    assert len(events) == REPLY_PIECES + 5
    for event in events:
        with pytest.raises(ValueError):
            json.loads(event["chunk"]["bytes"])


@pytest.mark.parametrize(
    "model", ["amazon.nova-micro-v1:0", "anthropic.claude-3-haiku-20240307-v1:0"]
)
def test_converse_stream_events(
    model: str, bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    response = bedrock_client.converse_stream(
        modelId=model, messages=converse_messages(), system=[{"text": "Be brief."}]
    )
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == (
        "application/vnd.amazon.eventstream"
    )
    events = list(response["stream"])
    names = [next(iter(e)) for e in events]
    assert names == [
        "messageStart",
        *["contentBlockDelta"] * REPLY_PIECES,
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert events[0]["messageStart"] == {"role": "assistant"}
    deltas = events[1 : 1 + REPLY_PIECES]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in deltas)
    assert text == DEFAULT_REPLY
    assert all(e["contentBlockDelta"]["contentBlockIndex"] == 0 for e in deltas)
    stop, message_stop, last = events[1 + REPLY_PIECES :]
    assert stop == {"contentBlockStop": {"contentBlockIndex": 0}}
    assert message_stop == {"messageStop": {"stopReason": "end_turn"}}
    metadata = last["metadata"]
    assert metadata["usage"] == {
        "inputTokens": 13,
        "outputTokens": REPLY_TOKENS,
        "totalTokens": 13 + REPLY_TOKENS,
    }
    assert metadata["metrics"]["latencyMs"] >= 0
    recorded = bedrock_emulator.requests[-1]
    assert (recorded.operation, recorded.input_tokens, recorded.output_tokens) == (
        "ConverseStream",
        13,
        REPLY_TOKENS,
    )
    assert recorded.cache_read_tokens is None


def test_converse_stream_omit_metadata_and_max_tokens(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.set_scenario(Scenario(omit_stream_metadata=True))
    events = list(
        bedrock_client.converse_stream(
            modelId="amazon.nova-micro-v1:0",
            messages=converse_messages(),
            inferenceConfig={"maxTokens": 3},
        )["stream"]
    )
    assert [next(iter(e)) for e in events] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
    ]
    assert events[-1]["messageStop"]["stopReason"] == "max_tokens"


def test_stream_events_count_and_chunk_delay(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.set_scenario(Scenario(stream_events=25, chunk_delay=0.002))
    events = list(
        bedrock_client.converse_stream(
            modelId="amazon.nova-micro-v1:0", messages=converse_messages()
        )["stream"]
    )
    deltas = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    assert len(deltas) == 25
    expected = BedrockEmulator.output_tokens_for(
        "amazon.nova-micro-v1:0",
        "ConverseStream",
        {"messages": converse_messages()},
        Scenario(stream_events=25),
    )
    # the first 25 words of the reply, counted independently
    first_words = " ".join(DEFAULT_REPLY.split()[:25])
    assert events[-1]["metadata"]["usage"]["outputTokens"] == expected
    assert expected == count_text_tokens(first_words)
    assert events[-1]["metadata"]["metrics"]["latencyMs"] >= 2 * 25


def _rss_bytes() -> int:
    """Resident memory of this process (Linux), 0 where /proc is not available."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _last_frame_payload(tail: bytes) -> dict[str, Any]:
    """Find the last complete event-stream frame at the end of ``tail`` and decode its chunk."""
    for start in range(len(tail) - 16, -1, -1):
        total = struct.unpack(">I", tail[start : start + 4])[0]
        crc = struct.unpack(">I", tail[-4:])[0]
        if start + total == len(tail) and zlib.crc32(tail[start:-4]) == crc:
            header_len = struct.unpack(">I", tail[start + 4 : start + 8])[0]
            payload = json.loads(tail[start + 12 + header_len : -4])
            return dict(json.loads(base64.b64decode(payload["bytes"])))
    raise AssertionError("no complete frame at the end of the stream")


def _dechunk_tail(
    conn: http.client.HTTPConnection, path: str, body: bytes
) -> tuple[int, bytes, int]:
    """Stream a response to the end: (bytes received, last 4 KiB, peak RSS growth)."""
    baseline = _rss_bytes()
    peak = 0
    conn.request("POST", path, body=body)
    response = conn.getresponse()
    tail = b""
    received = 0
    blocks = 0
    while True:
        block = response.read1(1 << 16)
        if not block:
            break
        received += len(block)
        tail = (tail + block)[-4096:]
        blocks += 1
        if blocks % 64 == 0:
            peak = max(peak, _rss_bytes() - baseline)
    return received, tail, peak


_STREAM_PATH = "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke-with-response-stream"


def test_hundred_thousand_events_are_generated_lazily(bedrock_emulator: BedrockEmulator) -> None:
    """A 100,000-event stream at flat memory, ending with the right invocation metrics."""
    events = 100_000
    bedrock_emulator.set_scenario(Scenario(stream_events=events))
    family = FAMILIES["anthropic"]
    conn = http.client.HTTPConnection("127.0.0.1", bedrock_emulator.port, timeout=30)
    try:
        received, tail, rss_growth = _dechunk_tail(conn, _STREAM_PATH, family.raw())
    finally:
        conn.close()
    assert received > 200 * events  # ~25 MB went over the wire...
    assert rss_growth < 16 * 1024 * 1024, rss_growth  # ...without being held in memory
    last = _last_frame_payload(tail)
    expected = BedrockEmulator.output_tokens_for(
        family.model_id,
        "InvokeModelWithResponseStream",
        family.raw(),
        Scenario(stream_events=events),
    )
    assert last[_METRICS]["outputTokenCount"] == expected > events
    assert bedrock_emulator.requests[-1].output_tokens == expected


def test_huge_stream_starts_at_once_and_can_be_abandoned(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    """Ten million events: the first arrives at once (nothing is built ahead), and walking
    away mid-stream leaves the emulator healthy."""
    bedrock_emulator.set_scenario(Scenario(stream_events=10_000_000))
    family = FAMILIES["anthropic"]
    started = time.perf_counter()
    response = bedrock_client.invoke_model_with_response_stream(
        modelId=family.model_id, body=family.raw()
    )
    stream = iter(response["body"])
    first = json.loads(next(stream)["chunk"]["bytes"])
    assert first["type"] == "message_start"
    assert time.perf_counter() - started < 2.0
    response["body"].close()
    bedrock_emulator.set_scenario(None)
    result = bedrock_client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())
    assert result["usage"]["outputTokens"] == REPLY_TOKENS


def test_converse_stream_payloads_carry_padding(bedrock_emulator: BedrockEmulator) -> None:
    from botocore.eventstream import EventStreamBuffer

    conn = http.client.HTTPConnection("127.0.0.1", bedrock_emulator.port, timeout=10)
    body = json.dumps({"messages": converse_messages()}).encode()
    conn.request("POST", "/model/amazon.nova-micro-v1%3A0/converse-stream", body=body)
    response = conn.getresponse()
    assert response.getheader("x-amzn-RequestId")
    buffer = EventStreamBuffer()
    buffer.add_data(response.read())
    conn.close()
    messages = list(buffer)
    assert [m.headers[":event-type"] for m in messages][-1] == "metadata"
    for message in messages:
        assert message.headers[":message-type"] == "event"
        payload = json.loads(message.payload)
        assert isinstance(payload.pop("p"), str)
        modelled = {"role", "contentBlockIndex", "delta", "stopReason", "usage", "metrics"}
        assert set(payload) <= modelled  # the padding is the only extra key
