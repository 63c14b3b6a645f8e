"""Apps take apart the events they are handed: langchain-aws pops ``usage`` out of the
ConverseStream ``metadata`` event as it reads it (found by the compatibility suite). The counts
must still be the ones the service sent (principle 4: take what telemetry needs before handing
an object over)."""

from __future__ import annotations

from typing import Any

import pytest

from opentelemetry.instrumentation.bedrock_tokens import names

from .helpers import converse_messages, expected_usage_attrs, only_span, usage_attrs


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize("popped", ["usage", "metrics"])
def test_converse_stream_counts_survive_an_app_that_pops_metadata(
    popped: str, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    stream = bedrock_client.converse_stream(
        modelId="amazon.nova-micro-v1:0", messages=converse_messages()
    )["stream"]
    taken = []
    for event in stream:
        if "metadata" in event:
            taken.append(event["metadata"].pop(popped))
    assert taken  # the app did get the field
    span = only_span(bedrock_telemetry)
    assert span.attributes[names.AWS_BEDROCK_STREAM_OUTCOME] == "completed"
    assert usage_attrs(span) == expected_usage_attrs(bedrock_emulator.requests[-1])
    assert span.attributes[names.AWS_BEDROCK_CONVERSE_LATENCY] >= 0
