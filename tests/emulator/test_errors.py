"""Every error form: HTTP errors before a response, exceptions mid-stream, drops, bad CRCs,
and the 4xx answers to requests the real service would reject."""

from __future__ import annotations

import json
from typing import Any, Callable

import botocore.eventstream
import botocore.exceptions
import pytest
import urllib3.exceptions

from opentelemetry.instrumentation.bedrock_tokens.emulator import (
    STREAM_EXCEPTIONS,
    BedrockEmulator,
    Scenario,
)

from .support import FAMILIES, converse_messages, raw_request

_ERROR_NS = "http://internal.amazon.com/coral/com.amazon.bedrock/"
MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
HTTP_ERRORS = [
    (400, "ValidationException"),
    (403, "AccessDeniedException"),
    (404, "ResourceNotFoundException"),
    (408, "ModelTimeoutException"),
    (424, "ModelErrorException"),
    (429, "ThrottlingException"),
    (500, "InternalServerException"),
    (503, "ServiceUnavailableException"),
]


def _calls(client: Any) -> dict[str, Callable[[], Any]]:
    body = FAMILIES["anthropic"].raw()
    return {
        "InvokeModel": lambda: client.invoke_model(modelId=MODEL, body=body),
        "InvokeModelWithResponseStream": lambda: client.invoke_model_with_response_stream(
            modelId=MODEL, body=body
        ),
        "Converse": lambda: client.converse(modelId=MODEL, messages=converse_messages()),
        "ConverseStream": lambda: client.converse_stream(
            modelId=MODEL, messages=converse_messages()
        ),
        "CountTokens": lambda: client.count_tokens(
            modelId=MODEL, input={"converse": {"messages": converse_messages()}}
        ),
    }


@pytest.mark.parametrize(("status", "code"), HTTP_ERRORS)
@pytest.mark.parametrize(
    "operation",
    ["InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream", "CountTokens"],
)
def test_http_errors_are_modelled_exceptions(
    status: int, code: str, operation: str, bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.push_scenario(Scenario(error_status=status))
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        _calls(bedrock_client)[operation]()
    error = caught.value
    modelled = getattr(bedrock_client.exceptions, code, None)
    if modelled is not None:  # e.g. CountTokens does not model ModelTimeoutException
        assert isinstance(error, modelled)
    assert error.response["Error"]["Code"] == code
    assert error.response["Error"]["Message"]
    metadata = error.response["ResponseMetadata"]
    assert metadata["HTTPStatusCode"] == status
    assert metadata["RetryAttempts"] == 0
    assert metadata["RequestId"]
    assert metadata["HTTPHeaders"]["x-amzn-errortype"] == f"{code}:{_ERROR_NS}"
    recorded = bedrock_emulator.requests
    assert len(recorded) == 1  # one attempt, no retries
    assert (recorded[0].status, recorded[0].error_code) == (status, code)
    assert recorded[0].input_tokens is None


def test_error_code_and_message_overrides(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.push_scenario(
        Scenario(error_code="ModelNotReadyException", error_message="warming up"),
        Scenario(error_status=429, error_message="Too many requests, please wait."),
        Scenario(error_status=400, error_code="ServiceQuotaExceededException"),
    )
    calls = _calls(bedrock_client)
    with pytest.raises(bedrock_client.exceptions.ModelNotReadyException) as first:
        calls["InvokeModel"]()
    assert first.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert first.value.response["Error"]["Message"] == "warming up"
    with pytest.raises(bedrock_client.exceptions.ThrottlingException) as second:
        calls["Converse"]()
    assert second.value.response["Error"]["Message"] == "Too many requests, please wait."
    with pytest.raises(bedrock_client.exceptions.ServiceQuotaExceededException):
        calls["InvokeModel"]()
    # the queue is empty again: a normal answer
    assert calls["Converse"]()["stopReason"] == "end_turn"


def test_error_body_is_plain_message(bedrock_emulator: BedrockEmulator) -> None:
    bedrock_emulator.push_scenario(Scenario(error_status=429))
    status, headers, body = raw_request(bedrock_emulator.port, "POST", "/model/x.y/converse", b"{}")
    assert status == 429
    assert json.loads(body) == {"message": "Too many tokens, please wait before trying again."}
    assert headers["content-type"] == "application/json"
    assert headers["x-amzn-errortype"] == f"ThrottlingException:{_ERROR_NS}"
    assert headers["x-amzn-requestid"]


INVOKE_EXCEPTIONS = sorted(STREAM_EXCEPTIONS)
CONVERSE_EXCEPTIONS = sorted(STREAM_EXCEPTIONS - {"modelTimeoutException"})


@pytest.mark.parametrize("exception", INVOKE_EXCEPTIONS)
def test_invoke_stream_exception_mid_stream(
    exception: str, bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.push_scenario(Scenario(stream_exception=exception, stream_exception_after=3))
    response = _calls(bedrock_client)["InvokeModelWithResponseStream"]()
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    received = []
    with pytest.raises(botocore.exceptions.EventStreamError) as caught:
        for event in response["body"]:
            received.append(json.loads(event["chunk"]["bytes"]))
    assert [c["type"] for c in received] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
    ]
    assert caught.value.response["Error"]["Code"] == exception
    assert caught.value.response["Error"]["Message"]
    assert "ResponseMetadata" not in caught.value.response


@pytest.mark.parametrize("exception", CONVERSE_EXCEPTIONS)
def test_converse_stream_exception_mid_stream(
    exception: str, bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.push_scenario(
        Scenario(stream_exception=exception, stream_exception_after=2, error_message="boom")
    )
    response = _calls(bedrock_client)["ConverseStream"]()
    received = []
    with pytest.raises(botocore.exceptions.EventStreamError) as caught:
        for event in response["stream"]:
            received.append(next(iter(event)))
    assert received == ["messageStart", "contentBlockDelta"]
    assert caught.value.response["Error"] == {"Code": exception, "Message": "boom"}


def test_exception_not_in_the_union_loses_its_code(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    """ConverseStream has no modelTimeoutException member: botocore reports Code ''."""
    bedrock_emulator.push_scenario(Scenario(stream_exception="modelTimeoutException"))
    response = _calls(bedrock_client)["ConverseStream"]()
    with pytest.raises(botocore.exceptions.EventStreamError) as caught:
        list(response["stream"])
    assert caught.value.response["Error"] == {"Code": "", "Message": ""}


def test_stream_exception_after_the_last_event(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.push_scenario(
        Scenario(stream_exception="throttlingException", stream_exception_after=1000)
    )
    response = _calls(bedrock_client)["InvokeModelWithResponseStream"]()
    received = []
    with pytest.raises(botocore.exceptions.EventStreamError):
        for event in response["body"]:
            received.append(json.loads(event["chunk"]["bytes"]))
    assert "amazon-bedrock-invocationMetrics" in received[-1]


@pytest.mark.parametrize("operation", ["InvokeModelWithResponseStream", "ConverseStream"])
def test_connection_drop_mid_stream(
    operation: str, bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.push_scenario(Scenario(drop_after=4))
    response = _calls(bedrock_client)[operation]()
    stream = response["body" if operation.startswith("Invoke") else "stream"]
    received = 0
    # urllib3 2 says "Response ended prematurely", urllib3 1 (Python 3.9) an InvalidChunkLength
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for _event in stream:
            received += 1
    assert received == 4
    # the client's pool recovers on the next call
    assert _calls(bedrock_client)["Converse"]()["stopReason"] == "end_turn"


def test_connection_drop_after_all_events(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.push_scenario(Scenario(drop_after=10_000))
    response = _calls(bedrock_client)["ConverseStream"]()
    received = []
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for event in response["stream"]:
            received.append(next(iter(event)))
    assert received[-1] == "metadata"


def test_connection_drop_non_stream(bedrock_client: Any, bedrock_emulator: BedrockEmulator) -> None:
    """Half a body then a close. InvokeModel's StreamingBody raises on read; for Converse,
    botocore itself parses the truncated JSON leniently into a result without members."""
    bedrock_emulator.push_scenario(Scenario(drop_after=0), Scenario(drop_after=0))
    response = _calls(bedrock_client)["InvokeModel"]()
    with pytest.raises(botocore.exceptions.ResponseStreamingError):
        response["body"].read()
    try:
        result = _calls(bedrock_client)["Converse"]()
    except botocore.exceptions.ConnectionClosedError:
        pass  # botocore 1.40 (the floor) reads the whole body first and reports the cut
    else:
        assert "usage" not in result and "output" not in result


@pytest.mark.parametrize("operation", ["InvokeModelWithResponseStream", "ConverseStream"])
def test_corrupt_crc(
    operation: str, bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.push_scenario(Scenario(corrupt_crc_at=2))
    response = _calls(bedrock_client)[operation]()
    stream = response["body" if operation.startswith("Invoke") else "stream"]
    received = 0
    with pytest.raises(botocore.eventstream.ChecksumMismatch):
        for _event in stream:
            received += 1
    assert received == 2


def test_first_byte_delay(bedrock_client: Any, bedrock_emulator: BedrockEmulator) -> None:
    bedrock_emulator.push_scenario(Scenario(first_byte_delay=0.05))
    response = _calls(bedrock_client)["InvokeModel"]()
    latency = int(response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-invocation-latency"])
    assert latency >= 50
    bedrock_emulator.push_scenario(Scenario(first_byte_delay=0.05))
    response = _calls(bedrock_client)["InvokeModelWithResponseStream"]()
    last = json.loads(list(response["body"])[-1]["chunk"]["bytes"])
    assert last["amazon-bedrock-invocationMetrics"]["firstByteLatency"] >= 50


# ---------------------------------------------------------------- requests the service rejects


def _error(port: int, method: str, path: str, body: bytes = b"", **headers: str) -> tuple[int, str]:
    status, response_headers, raw = raw_request(port, method, path, body, headers)
    assert response_headers["x-amzn-requestid"]
    assert response_headers["content-type"] == "application/json"
    assert "message" in json.loads(raw)
    return status, response_headers["x-amzn-errortype"].split(":", 1)[0]


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("POST", "/", b"{}", (404, "UnknownOperationException")),
        ("POST", "/model/amazon.nova-micro-v1%3A0/chat", b"{}", (404, "UnknownOperationException")),
        ("POST", "/guardrail/g/version/1/apply", b"{}", (404, "UnknownOperationException")),
        (
            "GET",
            "/model/amazon.nova-micro-v1%3A0/converse",
            b"",
            (404, "UnknownOperationException"),
        ),
        (
            "PUT",
            "/model/amazon.nova-micro-v1%3A0/invoke",
            b"{}",
            (404, "UnknownOperationException"),
        ),
        ("POST", "/model//converse", b"{}", (400, "ValidationException")),
        (
            "POST",
            "/model/amazon.nova-micro-v1%3A0/converse",
            b"{not json",
            (400, "ValidationException"),
        ),
        ("POST", "/model/amazon.nova-micro-v1%3A0/converse", b"[]", (400, "ValidationException")),
        ("POST", "/model/amazon.nova-micro-v1%3A0/converse", b"{}", (400, "ValidationException")),
        ("POST", "/model/amazon.nova-micro-v1%3A0/invoke", b"{bad", (400, "ValidationException")),
        (
            "POST",
            "/model/amazon.nova-micro-v1%3A0/invoke",
            b'{"x": 1}',
            (400, "ValidationException"),
        ),
        ("POST", "/model/nobody.model-v1/invoke", b'{"prompt": "x"}', (400, "ValidationException")),
        (
            "POST",
            "/model/amazon.nova-micro-v1%3A0/count-tokens",
            b"{}",
            (400, "ValidationException"),
        ),
        (
            "POST",
            "/model/amazon.nova-micro-v1%3A0/count-tokens",
            b'{"input": {"invokeModel": {"body": "%%%"}}}',
            (400, "ValidationException"),
        ),
        (
            "POST",
            "/model/amazon.titan-embed-text-v2%3A0/invoke-with-response-stream",
            b'{"inputText": "x"}',
            (400, "ValidationException"),
        ),
        (
            "POST",
            "/model/cohere.embed-english-v3/converse",
            b'{"messages": [{"role": "user", "content": [{"text": "x"}]}]}',
            (400, "ValidationException"),
        ),
        (
            "POST",
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aprovisioned-model%2Fabc/invoke",
            b'{"foo": "bar"}',
            (400, "ValidationException"),
        ),
    ],
)
def test_malformed_requests_get_4xx(
    method: str,
    path: str,
    body: bytes,
    expected: tuple[int, str],
    bedrock_emulator: BedrockEmulator,
) -> None:
    assert _error(bedrock_emulator.port, method, path, body) == expected


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ([], "must start with a user message"),
        ([{"role": "assistant", "content": [{"text": "x"}]}], "must start with a user message"),
        ([{"role": "user", "content": []}], "is empty"),
        (
            [
                {"role": "user", "content": [{"text": "a"}]},
                {"role": "user", "content": [{"text": "b"}]},
            ],
            "alternate",
        ),
        ([{"role": "robot", "content": [{"text": "x"}]}], "enum value set"),
    ],
)
def test_converse_validation_through_boto3(
    messages: list[Any], fragment: str, bedrock_client: Any
) -> None:
    with pytest.raises(bedrock_client.exceptions.ValidationException, match=fragment):
        bedrock_client.converse(modelId="amazon.nova-micro-v1:0", messages=messages)


def test_missing_family_keys_through_boto3(bedrock_client: Any) -> None:
    with pytest.raises(
        bedrock_client.exceptions.ValidationException, match=r"required key \[max_tokens\]"
    ):
        bedrock_client.invoke_model(
            modelId=MODEL,
            body=json.dumps({"anthropic_version": "bedrock-2023-05-31", "messages": []}),
        )
    with pytest.raises(
        bedrock_client.exceptions.ValidationException, match="model identifier is invalid"
    ):
        bedrock_client.converse(modelId="acme.unknown-model-v1:0", messages=converse_messages())


def test_query_protocol_clients_get_an_xml_error(bedrock_emulator: BedrockEmulator) -> None:
    import boto3
    from botocore.config import Config

    sts = boto3.client(
        "sts",
        config=Config(retries={"total_max_attempts": 1}, proxies={}),
        **bedrock_emulator.client_kwargs(),
    )
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sts.get_caller_identity()
    assert caught.value.response["Error"]["Code"] == "UnknownOperationException"


def test_bad_http_gets_a_json_error(bedrock_emulator: BedrockEmulator) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", bedrock_emulator.port), timeout=5) as sock:
        sock.sendall(b"BREW /pot HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            block = sock.recv(4096)
            if not block:
                break
            data += block
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404")
    assert b"x-amzn-ErrorType: UnknownOperationException:" in head
    assert json.loads(body)["message"] is not None
    with socket.create_connection(("127.0.0.1", bedrock_emulator.port), timeout=5) as sock:
        sock.sendall(b"POST /model/x.y/converse HTTP/1.1\r\nContent-Length: nope\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 400")


def test_chunked_request_body_is_accepted(bedrock_emulator: BedrockEmulator) -> None:
    payload = json.dumps({"messages": converse_messages()}).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
    status, _, raw = raw_request(
        bedrock_emulator.port,
        "POST",
        "/model/amazon.nova-micro-v1%3A0/converse",
        chunked,
        {"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
    )
    assert status == 200
    assert json.loads(raw)["usage"]["inputTokens"] == 10
