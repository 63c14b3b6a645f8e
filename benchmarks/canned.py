"""In-process Bedrock Runtime: canned responses served from botocore's ``before-send`` event.

A handler registered on ``before-send.bedrock-runtime.<Operation>`` returns a ready
``botocore.awsrequest.AWSResponse``, so botocore skips the socket but still serialises and signs
the request, parses the response, and decodes real event-stream frames with correct CRCs. The
raw object stands in for urllib3's response: ``.stream()`` for event streams and
``AWSResponse.content``, ``.read()`` for ``StreamingBody``.

Streams are produced lazily, one frame per chunk as a live stream arrives, from a handful of
pre-encoded frames, so a 300,000-event stream costs no memory on the producing side. The
frame encoder is a few lines of its own rather than the emulator's: importing that one module
imports the whole emulator package, which should not be able to break the in-process runs.

``NON_STREAMED`` and ``stream_workload`` describe what the user does per call; ``make_call``
turns a workload into a zero-argument callable that does exactly that once.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Callable, Optional

from botocore.awsrequest import AWSResponse

MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"
REGION = "us-east-1"
INPUT_TOKENS = 25
REQUEST_ID = "3f1b6a52-7c1e-4d55-9a4e-0b8f3c2d1e90"

_PROMPT = "Write one short sentence about the sea."
_INVOKE_REQUEST = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 256,
        "temperature": 0.5,
        "messages": [{"role": "user", "content": [{"type": "text", "text": _PROMPT}]}],
    }
).encode()
# A retrieval-augmented prompt: 64 KiB of context in the request body.
_LARGE_PROMPT = ("Context: " + "the tide rises and falls twice a day. " * 1800)[: 64 * 1024]
_INVOKE_REQUEST_LARGE = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 256,
        "temperature": 0.5,
        "messages": [{"role": "user", "content": [{"type": "text", "text": _LARGE_PROMPT}]}],
    }
).encode()
# Every Bedrock request says who it is for, as attributed applications do; only the
# configurations that allowlist the keys read them (the cost-and-attribution figures).
REQUEST_METADATA = {"tenant": "acme", "feature": "bench"}
_REQUEST_METADATA_JSON = json.dumps(REQUEST_METADATA)
_CONVERSE_REQUEST: dict[str, Any] = {
    "modelId": MODEL_ID,
    "messages": [{"role": "user", "content": [{"text": _PROMPT}]}],
    "inferenceConfig": {"maxTokens": 256, "temperature": 0.5},
    "requestMetadata": REQUEST_METADATA,
}

_JSON = "application/json"
_EVENTSTREAM = "application/vnd.amazon.eventstream"


# -- the raw body botocore reads ------------------------------------------------------------------
class CannedRaw:
    """Enough of urllib3's ``HTTPResponse`` for botocore: ``stream``, ``read``, ``close``."""

    __slots__ = ("_chunks", "_pending")

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""

    def stream(
        self, amt: Optional[int] = None, decode_content: Optional[bool] = None
    ) -> Iterator[bytes]:
        if self._pending:
            pending, self._pending = self._pending, b""
            yield pending
        yield from self._chunks

    def read(self, amt: Optional[int] = None) -> bytes:
        if amt is None or amt < 0:
            data = self._pending + b"".join(self._chunks)
            self._pending = b""
            return data
        buf = io.BytesIO()
        buf.write(self._pending)
        while buf.tell() < amt:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            buf.write(chunk)
        data = buf.getvalue()
        self._pending = data[amt:]
        return data[:amt]

    def close(self) -> None:
        self._chunks = iter(())
        self._pending = b""


def _response(status: int, headers: dict[str, str], chunks: Iterable[bytes]) -> AWSResponse:
    return AWSResponse("https://bedrock-runtime.us-east-1.amazonaws.com/", status, headers,
                       CannedRaw(chunks))


def _json_headers(body: bytes, extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    headers = {
        "content-type": _JSON,
        "content-length": str(len(body)),
        "x-amzn-requestid": REQUEST_ID,
    }
    if extra:
        headers.update(extra)
    return headers


# -- non-streamed bodies --------------------------------------------------------------------------
def _claude_body(output_tokens: int = 14) -> bytes:
    return json.dumps({
        "id": "msg_bdrk_01BenchMark",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-haiku-20240307",
        "content": [{"type": "text", "text": "The sea keeps every secret it is ever told."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": output_tokens},
    }).encode()


def _token_headers(output_tokens: int) -> dict[str, str]:
    return {
        "x-amzn-bedrock-input-token-count": str(INPUT_TOKENS),
        "x-amzn-bedrock-output-token-count": str(output_tokens),
        "x-amzn-bedrock-invocation-latency": "412",
    }


_CONVERSE_BODY = json.dumps({
    "output": {"message": {"role": "assistant", "content": [
        {"text": "The sea keeps every secret it is ever told."}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": INPUT_TOKENS, "outputTokens": 14, "totalTokens": INPUT_TOKENS + 14},
    "metrics": {"latencyMs": 412},
}).encode()

_COUNT_BODY = json.dumps({"inputTokens": INPUT_TOKENS}).encode()

_STS_BODY = (
    b'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
    b"<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/bench</Arn>"
    b"<UserId>AIDAEXAMPLEBENCH</UserId><Account>123456789012</Account>"
    b"</GetCallerIdentityResult><ResponseMetadata><RequestId>" + REQUEST_ID.encode()
    + b"</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
)


# -- streams --------------------------------------------------------------------------------------
_PADDING = "abcdefghijklmnop"


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """One event-stream message: prelude (lengths + CRC), string headers, JSON, message CRC."""
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", _JSON),
                        (":message-type", "event")):
        raw = value.encode()
        headers += bytes([len(name)]) + name.encode() + struct.pack(">BH", 7, len(raw)) + raw
    body = json.dumps(payload, separators=(",", ":")).encode()
    prelude = struct.pack(">II", 16 + len(headers) + len(body), len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + body
    return message + struct.pack(">I", zlib.crc32(message))


def _chunk(payload: dict[str, Any]) -> bytes:
    """An InvokeModelWithResponseStream chunk: the model's JSON, base64 in ``bytes``."""
    inner = json.dumps(payload, separators=(",", ":")).encode()
    return event_frame("chunk", {"bytes": base64.b64encode(inner).decode(), "p": _PADDING})


def invoke_stream_frames(events: int) -> Iterator[bytes]:
    """A Claude Messages stream of ``events`` chunks: 5 framing events around the deltas."""
    deltas = max(events - 5, 0)
    head = (
        _chunk({"type": "message_start", "message": {
            "id": "msg_bdrk_01BenchMark", "type": "message", "role": "assistant",
            "model": "claude-3-haiku-20240307", "content": [], "stop_reason": None,
            "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1}}}),
        _chunk({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
    )
    delta = _chunk({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": " wave"}})
    tail = (
        _chunk({"type": "content_block_stop", "index": 0}),
        _chunk({"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                   "stop_sequence": None},
                "usage": {"output_tokens": deltas}}),
        _chunk({"type": "message_stop", "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": INPUT_TOKENS, "outputTokenCount": deltas,
            "invocationLatency": 812, "firstByteLatency": 201}}),
    )
    yield from head
    for _ in range(deltas):
        yield delta
    yield from tail


def converse_stream_frames(events: int) -> Iterator[bytes]:
    """A ConverseStream of ``events`` events: 4 framing events around the text deltas."""
    deltas = max(events - 4, 0)
    yield event_frame("messageStart", {"role": "assistant", "p": _PADDING})
    delta = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " wave"},
                                              "p": _PADDING})
    for _ in range(deltas):
        yield delta
    yield event_frame("contentBlockStop", {"contentBlockIndex": 0, "p": _PADDING})
    yield event_frame("messageStop", {"stopReason": "end_turn", "p": _PADDING})
    yield event_frame("metadata", {
        "usage": {"inputTokens": INPUT_TOKENS, "outputTokens": deltas,
                  "totalTokens": INPUT_TOKENS + deltas},
        "metrics": {"latencyMs": 812}, "p": _PADDING})


def _stream_headers() -> dict[str, str]:
    return {
        "content-type": _EVENTSTREAM,
        "x-amzn-requestid": REQUEST_ID,
        "x-amzn-bedrock-content-type": _JSON,
        "transfer-encoding": "chunked",
    }


# -- the before-send responders -------------------------------------------------------------------
Responder = Callable[[], AWSResponse]


def _fixed(body: bytes, extra: Optional[dict[str, str]] = None) -> Responder:
    headers = _json_headers(body, extra)
    return lambda: _response(200, dict(headers), (body,))


def _frames(make: Callable[[int], Iterator[bytes]], events: int) -> Responder:
    headers = _stream_headers()
    return lambda: _response(200, dict(headers), make(events))


def install(client: Any, operation: str, responder: Responder) -> None:
    """Answer ``operation`` on ``client`` with ``responder()``; no request leaves the process."""
    service = client.meta.service_model.service_id.hyphenize()

    def before_send(request: Any, **_: Any) -> AWSResponse:
        return responder()

    client.meta.events.register(f"before-send.{service}.{operation}", before_send)


# -- workloads ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    """One thing a user does, measured per call (``events`` > 0: a stream of that length)."""

    key: str
    title: str
    operation: str
    events: int = 0
    service: str = "bedrock-runtime"

    @property
    def streamed(self) -> bool:
        return self.events > 0


def stream_workload(operation: str, events: int) -> Workload:
    short = "invoke_stream" if operation == "InvokeModelWithResponseStream" else "converse_stream"
    title = "InvokeModel stream" if short == "invoke_stream" else "ConverseStream"
    return Workload(f"{short}@{events}", f"{title}, {events:,} events", operation, events)


NON_STREAMED: tuple[Workload, ...] = (
    Workload("invoke_headers", "InvokeModel, token headers", "InvokeModel"),
    Workload("invoke_body", "InvokeModel, counts from the body", "InvokeModel"),
    Workload("invoke_large", "InvokeModel, token headers, 64 KiB prompt", "InvokeModel"),
    Workload("converse", "Converse", "Converse"),
    Workload("count_tokens", "CountTokens", "CountTokens"),
    Workload("non_bedrock", "STS GetCallerIdentity (not Bedrock)", "GetCallerIdentity",
             service="sts"),
)
# The stream lengths of the reference figures: 21 events (InvokeModel) and 24 (ConverseStream).
SHORT_EVENTS = {"InvokeModelWithResponseStream": 21, "ConverseStream": 24}
STREAM_OPERATIONS = tuple(SHORT_EVENTS)


def responder_for(workload: Workload) -> Responder:
    if workload.operation == "InvokeModel":
        extra = None if workload.key.endswith("invoke_body") else _token_headers(14)
        return _fixed(_claude_body(14), extra)
    if workload.operation == "Converse":
        return _fixed(_CONVERSE_BODY)
    if workload.operation == "CountTokens":
        return _fixed(_COUNT_BODY)
    if workload.operation == "GetCallerIdentity":
        body = _STS_BODY
        return lambda: _response(200, {"content-type": "text/xml",
                                       "content-length": str(len(body)),
                                       "x-amzn-requestid": REQUEST_ID}, (body,))
    if workload.operation == "InvokeModelWithResponseStream":
        return _frames(invoke_stream_frames, workload.events)
    if workload.operation == "ConverseStream":
        return _frames(converse_stream_frames, workload.events)
    raise ValueError(f"no canned response for {workload.operation}")


def make_call(client: Any, workload: Workload) -> Callable[[], None]:
    """One call as a user makes it: bodies read, streams iterated to the end."""
    op = workload.operation
    if op == "InvokeModel":
        body = _INVOKE_REQUEST_LARGE if workload.key == "invoke_large" else _INVOKE_REQUEST

        def invoke() -> None:
            client.invoke_model(modelId=MODEL_ID, body=body,
                                requestMetadata=_REQUEST_METADATA_JSON)["body"].read()
        return invoke
    if op == "Converse":
        return lambda: client.converse(**_CONVERSE_REQUEST) and None
    if op == "CountTokens":
        request = {"modelId": MODEL_ID, "input": {"invokeModel": {"body": _INVOKE_REQUEST}}}
        return lambda: client.count_tokens(**request) and None
    if op == "GetCallerIdentity":
        return lambda: client.get_caller_identity() and None
    if op in STREAM_OPERATIONS:
        open_stream = _stream_opener(client, op)

        def stream() -> None:
            for _ in open_stream():
                pass
        return stream
    raise ValueError(f"unknown operation {op}")


def _stream_opener(client: Any, operation: str) -> Callable[[], Any]:
    if operation == "InvokeModelWithResponseStream":
        return lambda: client.invoke_model_with_response_stream(
            modelId=MODEL_ID, body=_INVOKE_REQUEST,
            requestMetadata=_REQUEST_METADATA_JSON)["body"]
    return lambda: client.converse_stream(**_CONVERSE_REQUEST)["stream"]


def make_segmented_call(
    client: Any, workload: Workload, segment: int
) -> Callable[[], list[float]]:
    """One stream, iterated to the end, returning the process CPU time of every ``segment``
    consecutive events: the marginal cost per event along the stream, robust to a burst of
    load in one part of it, and showing any cost that grows with the stream's length."""
    open_stream = _stream_opener(client, workload.operation)
    clock = time.process_time

    def stream() -> list[float]:
        marks: list[float] = []
        left = segment
        t0 = clock()
        for _ in open_stream():
            left -= 1
            if not left:
                now = clock()
                marks.append(now - t0)
                t0, left = now, segment
        return marks
    return stream


def invoke_request_body() -> bytes:
    """The InvokeModel request body every workload sends (pre-count counts it too)."""
    return _INVOKE_REQUEST


# -- aiobotocore: the same canned responses, awaited ------------------------------------------
class _CannedAioContent:
    """Enough of aiohttp's ``StreamReader`` for aiobotocore: ``read``, ``at_eof``,
    ``iter_chunks``."""

    __slots__ = ("_raw",)

    def __init__(self, raw: CannedRaw) -> None:
        self._raw = raw

    async def read(self, amt: int = -1) -> bytes:
        return self._raw.read(None if amt is None or amt < 0 else amt)

    def at_eof(self) -> bool:
        return False

    async def iter_chunks(self) -> Any:
        for chunk in self._raw.stream():
            yield chunk, True


class CannedAioRaw:
    """Enough of aiohttp's ``ClientResponse`` for aiobotocore's bodies and event streams."""

    __slots__ = ("_raw", "content", "url")

    def __init__(self, raw: CannedRaw) -> None:
        self._raw = raw
        self.content = _CannedAioContent(raw)
        self.url = "https://bedrock-runtime.us-east-1.amazonaws.com/"

    async def read(self) -> bytes:
        return self._raw.read()

    def close(self) -> None:
        self._raw.close()

    def release(self) -> None:
        self._raw.close()


AioResponder = Callable[[], Any]


def aio_responder_for(workload: Workload) -> AioResponder:
    """``responder_for``'s response as aiobotocore's ``AioAWSResponse``."""
    from aiobotocore.awsrequest import AioAWSResponse

    sync = responder_for(workload)

    def respond() -> Any:
        made = sync()
        return AioAWSResponse(made.url, made.status_code, made.headers, CannedAioRaw(made.raw))

    return respond


def make_aio_call(client: Any, workload: Workload) -> Callable[[], Any]:
    """``make_call`` for an aiobotocore client: a coroutine function doing one call."""
    op = workload.operation
    if op == "InvokeModel":
        body = _INVOKE_REQUEST_LARGE if workload.key.endswith("invoke_large") else _INVOKE_REQUEST

        async def invoke() -> None:
            response = await client.invoke_model(modelId=MODEL_ID, body=body)
            await response["body"].read()
        return invoke
    if op == "Converse":
        async def converse() -> None:
            await client.converse(**_CONVERSE_REQUEST)
        return converse
    if op == "InvokeModelWithResponseStream":
        async def invoke_stream() -> None:
            response = await client.invoke_model_with_response_stream(
                modelId=MODEL_ID, body=_INVOKE_REQUEST)
            async for _ in response["body"]:
                pass
        return invoke_stream
    if op == "ConverseStream":
        async def converse_stream() -> None:
            response = await client.converse_stream(**_CONVERSE_REQUEST)
            async for _ in response["stream"]:
                pass
        return converse_stream
    raise ValueError(f"no async workload for {op}")


# aiobotocore workloads: key prefix "aio_", the sync workload's shape otherwise.
AIO_PREFIX = "aio_"


def aio_workloads(short: dict[str, int], medium: int = 1000) -> tuple[Workload, ...]:
    found = [Workload(AIO_PREFIX + w.key, "aiobotocore " + w.title, w.operation)
             for w in NON_STREAMED if w.key in ("invoke_headers", "invoke_body", "converse")]
    for op in STREAM_OPERATIONS:
        for events in (short[op], medium):
            w = stream_workload(op, events)
            found.append(Workload(AIO_PREFIX + w.key, "aiobotocore " + w.title, op, w.events))
    return tuple(found)
