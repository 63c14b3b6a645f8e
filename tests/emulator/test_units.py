"""The tokenizer rule, the event-stream encoder against botocore's decoder, and the reply."""

from __future__ import annotations

import json

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from opentelemetry.instrumentation.bedrock_tokens.emulator import (
    DEFAULT_REPLY,
    Scenario,
    count_text_tokens,
    input_tokens_for,
    output_text_for,
    output_tokens_for,
)
from opentelemetry.instrumentation.bedrock_tokens.emulator.eventstream import (
    chunk_frame,
    encode_frame,
    event_frame,
    exception_frame,
)


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("", 0),
        ("   ", 0),
        ("hello", 1),
        ("Hello, world!", 4),
        ("don't", 3),
        ("x=1+2", 5),
        ("naïve café", 2),
        ("日本語 テキスト", 2),
        ("\n\nHuman: hi\n\nAssistant:", 5),
        ("This is a deterministic reply from the Bedrock emulator.", 10),
        (DEFAULT_REPLY, 71),
    ],
)
def test_count_text_tokens(text: str, count: int) -> None:
    assert count_text_tokens(text) == count


def _decode(data: bytes) -> list[tuple[dict[str, object], bytes]]:
    buffer = EventStreamBuffer()
    messages = []
    for byte in data:  # one byte at a time, as a slow network would deliver it
        buffer.add_data(bytes([byte]))
        messages.extend((m.headers, m.payload) for m in buffer)
    return messages


def test_frames_decode_with_botocore() -> None:
    data = (
        event_frame("contentBlockDelta", {"delta": {"text": "é"}, "contentBlockIndex": 0})
        + chunk_frame(b'{"type":"message_stop"}', "pad")
        + exception_frame("throttlingException", {"message": "slow down"})
        + encode_frame([(":custom", "x" * 300)], b"")
    )
    decoded = _decode(data)
    assert decoded[0] == (
        {
            ":event-type": "contentBlockDelta",
            ":content-type": "application/json",
            ":message-type": "event",
        },
        json.dumps(
            {"delta": {"text": "é"}, "contentBlockIndex": 0}, separators=(",", ":")
        ).encode(),
    )
    assert json.loads(decoded[1][1]) == {"bytes": "eyJ0eXBlIjoibWVzc2FnZV9zdG9wIn0=", "p": "pad"}
    assert decoded[2][0][":exception-type"] == "throttlingException"
    assert decoded[2][0][":message-type"] == "exception"
    assert decoded[3] == ({":custom": "x" * 300}, b"")


def test_corrupt_crc_is_detected() -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(event_frame("messageStop", {"stopReason": "end_turn"}, corrupt_crc=True))
    with pytest.raises(ChecksumMismatch):
        list(buffer)


def test_public_helpers_agree() -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 3,
        "messages": [{"role": "user", "content": "one two three"}],
    }
    model = "anthropic.claude-3-5-haiku-20241022-v1:0"
    assert input_tokens_for(model, "InvokeModel", body) == 3
    assert input_tokens_for(model, "InvokeModel", json.dumps(body).encode()) == 3
    assert (
        input_tokens_for(
            model, "CountTokens", {"input": {"invokeModel": {"body": json.dumps(body)}}}
        )
        == 3
    )
    assert output_text_for(model, "InvokeModel", body) == "This is a"
    assert output_tokens_for(model, "InvokeModel", body) == 3
    # stream_events only shapes streams, and wins over max tokens there
    scenario = Scenario(stream_events=12, output_text="a b")
    assert output_tokens_for(model, "InvokeModelWithResponseStream", body, scenario) == 12
    assert output_text_for(model, "InvokeModelWithResponseStream", body, scenario) == (
        "a b a b a b a b a b a b"
    )
    assert output_tokens_for(model, "InvokeModel", body, scenario) == 2
    with pytest.raises(ValueError):
        input_tokens_for(model, "Chat", body)


def test_images_and_structure_are_not_text() -> None:
    request = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Describe it."},
                    {"image": {"format": "png", "source": {"bytes": "aGVsbG8gd29ybGQ="}}},
                    {"cachePoint": {"type": "default"}},
                ],
            }
        ],
        "inferenceConfig": {"maxTokens": 10},
        "additionalModelRequestFields": {"k": "v v"},
    }
    assert input_tokens_for("amazon.nova-micro-v1:0", "Converse", request) == 3
