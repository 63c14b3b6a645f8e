"""Issue #12: aiobotocore clients get the same telemetry as botocore ones, from the same code.

Every check runs real aiobotocore against the emulator, over aiohttp and over httpx (both
transports of aiobotocore 3.x). The strongest check is the first: for each operation and
family, the async call's span and metrics equal the sync call's, attribute for attribute
(only per-call values such as request ids and latencies differ).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from typing import Any, Callable

import botocore.exceptions
import opentelemetry.instrumentation.botocore as contrib_botocore
import pytest
from opentelemetry.trace import StatusCode

from opentelemetry import trace
from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor, names
from opentelemetry.instrumentation.bedrock_tokens.emulator import Scenario

from .helpers import (
    FAMILY_REQUESTS,
    NO_BODY_USAGE,
    STREAMING_FAMILIES,
    body_for,
    converse_messages,
    expected_usage_attrs,
    hist,
    only_span,
    token_sums,
    usage_attrs,
)
from .test_core import HTTP_ERRORS
from .test_differential import _normalise, _raised
from .test_streams import CLAUDE, NOVA

aiobotocore = pytest.importorskip("aiobotocore")
# contrib's AiobotocoreInstrumentor is newer than the floor set's contrib (0.53b1)
AiobotocoreInstrumentor = getattr(contrib_botocore, "AiobotocoreInstrumentor", None)
needs_contrib_aiobotocore = pytest.mark.skipif(
    AiobotocoreInstrumentor is None,
    reason="this opentelemetry-instrumentation-botocore has no AiobotocoreInstrumentor",
)

TRANSPORTS = ["aiohttp", "httpx"]
LLAMA = "meta.llama3-1-8b-instruct-v1:0"
# Per-call values: ids the service makes anew, latencies and times measured on each call.
VOLATILE = {
    names.AWS_REQUEST_ID, names.GEN_AI_RESPONSE_ID, names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    names.AWS_BEDROCK_INVOCATION_LATENCY, names.AWS_BEDROCK_FIRST_BYTE_LATENCY,
    names.AWS_BEDROCK_CONVERSE_LATENCY,
}


def _stable(span: Any) -> dict[str, Any]:
    return {k: v for k, v in span.attributes.items() if k not in VOLATILE}


# -- the same call, sync and async ---------------------------------------------------------------
def _sync_call(client: Any, operation: str, model: str) -> None:
    if operation == "invoke":
        client.invoke_model(modelId=model, body=body_for(model))["body"].read()
    elif operation == "invoke_stream":
        for _ in client.invoke_model_with_response_stream(
                modelId=model, body=body_for(model))["body"]:
            pass
    elif operation == "converse":
        client.converse(modelId=model, messages=converse_messages())
    elif operation == "converse_stream":
        for _ in client.converse_stream(modelId=model, messages=converse_messages())["stream"]:
            pass
    else:
        client.count_tokens(modelId=model, input={"converse": {"messages": converse_messages()}})


async def _async_call(client: Any, operation: str, model: str) -> None:
    if operation == "invoke":
        await (await client.invoke_model(modelId=model, body=body_for(model)))["body"].read()
    elif operation == "invoke_stream":
        result = await client.invoke_model_with_response_stream(
            modelId=model, body=body_for(model))
        async for _ in result["body"]:
            pass
    elif operation == "converse":
        await client.converse(modelId=model, messages=converse_messages())
    elif operation == "converse_stream":
        result = await client.converse_stream(modelId=model, messages=converse_messages())
        async for _ in result["stream"]:
            pass
    else:
        await client.count_tokens(
            modelId=model, input={"converse": {"messages": converse_messages()}})


CALLS = [
    *(("invoke", m) for m in FAMILY_REQUESTS),
    *(("invoke_stream", m) for m in STREAMING_FAMILIES),
    *(("converse", m) for m in (CLAUDE, NOVA, LLAMA)),
    *(("converse_stream", m) for m in (CLAUDE, NOVA, LLAMA)),
    ("count", CLAUDE),
]
SCENARIOS = {"plain": Scenario(), "no-headers": Scenario(omit_token_headers=True)}


# aiobotocore 3.x reads event streams through aiohttp's API only: over httpx they fail before
# the first event, with or without us (test_httpx_event_streams_fail_unchanged).
CALLS_BY_TRANSPORT = [
    pytest.param(operation, model, transport, id=f"{operation}-{model}-{transport}")
    for operation, model in CALLS for transport in TRANSPORTS
    if transport == "aiohttp" or "stream" not in operation
]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize(("operation", "model", "bedrock_async_client"), CALLS_BY_TRANSPORT,
                         indirect=["bedrock_async_client"])
async def test_async_span_and_metrics_equal_the_sync_ones(
    operation: str, model: str, scenario: str, instrumented: Any, bedrock_client: Any,
    bedrock_async_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    bedrock_emulator.set_scenario(SCENARIOS[scenario])
    _sync_call(bedrock_client, operation, model)
    sync_span = only_span(bedrock_telemetry)
    sync_sums = token_sums(bedrock_telemetry)
    bedrock_telemetry.clear_spans()
    await _async_call(bedrock_async_client, operation, model)
    async_span = only_span(bedrock_telemetry)
    assert async_span.name == sync_span.name
    assert async_span.kind == sync_span.kind
    assert async_span.status.status_code == sync_span.status.status_code
    assert _stable(async_span) == _stable(sync_span)
    sums = token_sums(bedrock_telemetry)  # cumulative: the async call recorded the same again
    for kind, (count, total) in sync_sums.items():
        assert sums[kind] == (2 * count, 2 * total)
    assert hist(bedrock_telemetry, names.METRIC_OPERATION_DURATION)[0] == 2
    if operation != "count" and not (scenario == "no-headers" and model in NO_BODY_USAGE):
        assert usage_attrs(async_span) == expected_usage_attrs(bedrock_emulator.requests[-1])


@pytest.mark.parametrize("bedrock_async_client", ["httpx"], indirect=True)
@pytest.mark.parametrize("operation", ["invoke_stream", "converse_stream"])
async def test_httpx_event_streams_fail_unchanged(
    operation: str, instrument: Any, bedrock_async_client: Any, bedrock_telemetry: Any
) -> None:
    """What aiobotocore does with an event stream over httpx (it fails), it does the same with
    us; our span ends once, as an error, like any stream that raises."""
    async def attempt() -> Any:
        try:
            await _async_call(bedrock_async_client, operation, CLAUDE)
        except Exception as exc:
            return _raised(exc)
        return "ok"

    plain = await attempt()
    instrument()
    assert await attempt() == plain
    span = only_span(bedrock_telemetry)
    if plain != "ok":
        assert span.attributes[names.AWS_BEDROCK_STREAM_OUTCOME] == "error"
        assert span.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize("bedrock_async_client", ["httpx"], indirect=True)
async def test_httpx_bytearray_body_fails_unchanged(
    instrument: Any, bedrock_async_client: Any, bedrock_telemetry: Any
) -> None:
    """aiobotocore's httpx transport cannot send a bytearray body; the same with us."""
    async def attempt() -> Any:
        try:
            await bedrock_async_client.invoke_model(
                modelId=CLAUDE, body=bytearray(body_for(CLAUDE)))
        except Exception as exc:
            return _raised(exc)
        return "sent"

    plain = await attempt()
    instrument()
    assert await attempt() == plain
    assert len(bedrock_telemetry.spans()) == 1


# -- the InvokeModel body, every way it can be read ----------------------------------------------
async def _read(body: Any) -> list[Any]:
    return [await body.read(), await body.read(), body.tell()]


async def _read_sized(body: Any) -> list[Any]:
    parts = []
    while True:
        part = await body.read(7)
        if not part:
            return [b"".join(parts), len(parts), body.tell()]
        parts.append(part)


async def _readinto(body: Any) -> list[Any]:
    buffer = bytearray(11)
    out = []
    while True:
        n = await body.readinto(buffer)
        out.append(bytes(buffer[:n]))
        if n == 0:
            return [b"".join(out)]


async def _iter_chunks(body: Any) -> list[Any]:
    return [b"".join([c async for c in body.iter_chunks(5)])]


async def _iter_lines(body: Any) -> list[Any]:
    return [[line async for line in body.iter_lines()]]


async def _async_for(body: Any) -> list[Any]:
    return [b"".join([c async for c in body])]


async def _async_with(body: Any) -> list[Any]:
    async with body as inner:
        return [await inner.read(), inner is body]


async def _readable_then_close(body: Any) -> list[Any]:
    before = body.readable()
    first = await body.read(3)
    closing = body.close()
    if asyncio.iscoroutine(closing):  # httpx transport: close() is async
        await closing
    return [before, first]


async def _readlines(body: Any) -> list[Any]:
    return [await body.readlines()]


BODY_READERS = [_read, _read_sized, _readinto, _iter_chunks, _iter_lines, _async_for,
                _async_with, _readable_then_close, _readlines]


async def _observe_body(client: Any, model: str, reader: Callable[[Any], Any]) -> Any:
    try:
        result = await client.invoke_model(modelId=model, body=body_for(model))
    except Exception as exc:
        return ("call-raised", _raised(exc))
    body = result.pop("body")
    try:
        seen = await reader(body)
    except Exception as exc:
        return (_normalise(result), "read-raised", _raised(exc))
    return (_normalise(result), _normalise(seen), type(body).__name__)


@pytest.mark.parametrize("bedrock_async_client", TRANSPORTS, indirect=True)
@pytest.mark.parametrize("reader", BODY_READERS, ids=lambda r: r.__name__.strip("_"))
@pytest.mark.parametrize("scenario", [
    Scenario(), Scenario(omit_token_headers=True),
    Scenario(omit_token_headers=True, drop_after=1), Scenario(malformed_body=True),
], ids=["headers", "no-headers", "truncated", "malformed"])
async def test_body_reads_identical(
    reader: Callable[[Any], Any], scenario: Scenario, instrument: Any,
    bedrock_async_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    """Whether or not the instrumentation had to read the body first (no token headers), the
    user's reads give the same bytes, the same errors at the same points, the same class."""
    bedrock_emulator.set_scenario(scenario)
    plain = await _observe_body(bedrock_async_client, CLAUDE, reader)
    instrument()
    bedrock_emulator.reset()
    bedrock_emulator.set_scenario(scenario)
    ours = await _observe_body(bedrock_async_client, CLAUDE, reader)
    assert ours == plain
    span = only_span(bedrock_telemetry)
    if not scenario.drop_after and not scenario.malformed_body:
        assert usage_attrs(span) == expected_usage_attrs(bedrock_emulator.requests[-1])
    if scenario.drop_after:  # a body that did not arrive whole gives no counts
        assert usage_attrs(span) == {}


# -- streams end exactly once, every way ---------------------------------------------------------
async def _open(client: Any, operation: str) -> Any:
    if operation == "invoke_stream":
        return (await client.invoke_model_with_response_stream(
            modelId=CLAUDE, body=body_for(CLAUDE)))["body"]
    return (await client.converse_stream(modelId=CLAUDE, messages=converse_messages()))["stream"]


async def _take(stream: Any, limit: int) -> int:
    n = 0
    async for _ in stream:
        n += 1
        if n >= limit:
            break
    return n


def _assert_one_end(telemetry: Any, outcome: str, counted: bool) -> Any:
    span = only_span(telemetry)
    assert hist(telemetry, names.METRIC_OPERATION_DURATION)[0] == 1
    assert span.attributes[names.AWS_BEDROCK_STREAM_OUTCOME] == outcome
    assert (names.GEN_AI_USAGE_OUTPUT_TOKENS in span.attributes) == counted
    return span


@pytest.mark.parametrize("operation", ["invoke_stream", "converse_stream"])
async def test_stream_exhausted(
    operation: str, instrumented: Any, bedrock_async_client: Any, bedrock_emulator: Any,
    bedrock_telemetry: Any,
) -> None:
    stream = await _open(bedrock_async_client, operation)
    assert await _take(stream, 10**6) > 2
    span = _assert_one_end(bedrock_telemetry, "completed", True)
    assert usage_attrs(span) == expected_usage_attrs(bedrock_emulator.requests[-1])
    ttfc = span.attributes[names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert 0 < ttfc < (span.end_time - span.start_time) / 1e9
    assert hist(bedrock_telemetry, names.METRIC_TIME_TO_FIRST_CHUNK)[0] == 1


@pytest.mark.parametrize("operation", ["invoke_stream", "converse_stream"])
async def test_break_is_not_an_end_and_resuming_completes(
    operation: str, instrumented: Any, bedrock_async_client: Any, bedrock_telemetry: Any
) -> None:
    stream = await _open(bedrock_async_client, operation)
    assert await _take(stream, 2) == 2
    gc.collect()  # the broken-out-of generator is finalised: still no end
    await asyncio.sleep(0)
    assert bedrock_telemetry.spans() == []
    assert await _take(stream, 10**6) > 0
    _assert_one_end(bedrock_telemetry, "completed", True)


@pytest.mark.parametrize("operation", ["invoke_stream", "converse_stream"])
async def test_close_twice_ends_once(
    operation: str, instrumented: Any, bedrock_async_client: Any, bedrock_telemetry: Any
) -> None:
    stream = await _open(bedrock_async_client, operation)
    await _take(stream, 2)
    stream.close()
    stream.close()
    _assert_one_end(bedrock_telemetry, "closed", False)


@pytest.mark.parametrize("operation", ["invoke_stream", "converse_stream"])
async def test_dropped_stream_is_abandoned_once(
    operation: str, instrumented: Any, bedrock_async_client: Any, bedrock_telemetry: Any
) -> None:
    stream = await _open(bedrock_async_client, operation)
    await _take(stream, 1)
    del stream
    for _ in range(3):
        gc.collect()
        await asyncio.sleep(0)
    _assert_one_end(bedrock_telemetry, "abandoned", False)


@pytest.mark.parametrize("operation", ["invoke_stream", "converse_stream"])
@pytest.mark.parametrize("scenario", [
    Scenario(stream_exception="throttlingException", stream_exception_after=2),
    Scenario(drop_after=2), Scenario(corrupt_crc_at=1),
], ids=["exception-event", "dropped-connection", "bad-crc"])
async def test_stream_errors_raise_unchanged_and_end_once(
    operation: str, scenario: Scenario, instrument: Any, bedrock_async_client: Any,
    bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    async def consume() -> list[Any]:
        seen: list[Any] = []
        try:
            stream = await _open(bedrock_async_client, operation)
            async for event in stream:
                seen.append(_normalise(event))
        except Exception as exc:
            seen.append(_raised(exc))
        return seen

    bedrock_emulator.set_scenario(scenario)
    plain = await consume()
    instrument()
    ours = await consume()
    assert ours == plain
    span = _assert_one_end(bedrock_telemetry, "error", False)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[names.ERROR_TYPE]
    if scenario.stream_exception:
        assert span.attributes[names.ERROR_TYPE] == "ThrottlingException"


async def test_iter_fails_as_aiobotocore_does(
    instrument: Any, bedrock_async_client: Any, bedrock_telemetry: Any
) -> None:
    """``for`` over an async stream raises what aiobotocore raises; it is not an end."""
    async def attempt() -> Any:
        stream = await _open(bedrock_async_client, "converse_stream")
        try:
            iter(stream)
        except Exception as exc:
            result = _raised(exc)
        else:
            result = "iterable"
        stream.close()
        return result

    plain = await attempt()
    instrument()
    assert await attempt() == plain
    _assert_one_end(bedrock_telemetry, "closed", False)


def test_stream_open_when_the_loop_ends_is_abandoned_once(
    instrumented: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    """asyncio.run() finalises the loop's async generators (a broken-out-of iteration is
    closed): that is not an end; the stream left open is ended as abandoned when dropped."""
    from opentelemetry.instrumentation.bedrock_tokens.pytest_plugin import _async_client

    async def main() -> Any:
        async for client in _async_client(bedrock_emulator, "aiohttp"):
            stream = await _open(client, "converse_stream")
            await _take(stream, 1)
            return stream
        return None

    kept = asyncio.run(main())
    assert bedrock_telemetry.spans() == []
    del kept
    gc.collect()
    _assert_one_end(bedrock_telemetry, "abandoned", False)


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("bedrock_async_client", TRANSPORTS, indirect=True)
@pytest.mark.parametrize(("status", "code"), HTTP_ERRORS)
@pytest.mark.parametrize("operation", ["invoke", "invoke_stream", "converse", "count"])
async def test_http_errors_reraised_untouched_and_typed(
    status: int, code: str, operation: str, instrument: Any, bedrock_async_client: Any,
    bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    async def attempt() -> Any:
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            await _async_call(bedrock_async_client, operation, CLAUDE)
        return raised.value

    bedrock_emulator.set_scenario(Scenario(error_status=status))
    plain = await attempt()
    instrument()
    ours = await attempt()
    assert type(ours) is type(plain)
    assert ours.response["Error"] == plain.response["Error"]
    span = only_span(bedrock_telemetry)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[names.ERROR_TYPE] == code
    assert span.attributes[names.AWS_REQUEST_ID] == ours.response["ResponseMetadata"]["RequestId"]
    count, _ = hist(bedrock_telemetry, names.METRIC_OPERATION_DURATION, error__type=code)
    assert count == 1


# -- context ------------------------------------------------------------------------------------
async def test_span_is_current_during_the_call_and_never_leaks(
    instrumented: Any, bedrock_async_client: Any, bedrock_telemetry: Any
) -> None:
    """While botocore sends the request our span is current (HTTP spans nest under it); the
    caller's task never sees it, also with many calls interleaved on one loop."""
    seen: dict[str, int] = {}

    def before_send(request: Any, **_: Any) -> None:
        text = json.loads(request.body)["messages"][0]["content"][0]["text"]
        seen[text] = trace.get_current_span().get_span_context().span_id

    bedrock_async_client.meta.events.register("before-send.bedrock-runtime.Converse", before_send)
    tracer = bedrock_telemetry.tracer_provider.get_tracer("app")

    async def one(i: int) -> None:
        with tracer.start_as_current_span(f"app {i}") as parent:
            await bedrock_async_client.converse(
                modelId=CLAUDE, messages=converse_messages(f"call {i}"))
            assert trace.get_current_span() is parent

    await asyncio.gather(*(one(i) for i in range(20)))
    spans = {s.name: s for s in bedrock_telemetry.spans()}
    for i in range(20):
        ours = [s for s in bedrock_telemetry.spans()
                if s.parent is not None and s.parent.span_id == spans[f"app {i}"].context.span_id]
        assert len(ours) == 1
        assert seen[f"call {i}"] == ours[0].context.span_id
    assert trace.get_current_span() is trace.INVALID_SPAN


# -- coexistence with contrib's AiobotocoreInstrumentor -------------------------------------------
@pytest.fixture
def both_async(bedrock_telemetry: Any) -> Any:
    assert AiobotocoreInstrumentor is not None
    ours, contrib = BedrockTokensInstrumentor(), AiobotocoreInstrumentor()
    yield ours, contrib
    for instrumentor in (ours, contrib):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


def _providers(telemetry: Any) -> dict[str, Any]:
    return {"tracer_provider": telemetry.tracer_provider,
            "meter_provider": telemetry.meter_provider}


async def _sts_call(emulator: Any) -> None:
    session = aiobotocore.session.get_session()
    async with session.create_client(
            "sts", region_name="us-east-1", endpoint_url=emulator.endpoint_url,
            aws_access_key_id="x", aws_secret_access_key="x") as sts:
        with pytest.raises(botocore.exceptions.ClientError):
            await sts.get_caller_identity()


async def _all_operations(client: Any) -> None:
    for operation, model in (("converse", NOVA), ("invoke", NOVA), ("converse_stream", NOVA),
                             ("count", NOVA)):
        await _async_call(client, operation, model)


@needs_contrib_aiobotocore
@pytest.mark.parametrize("order", ["ours-first", "contrib-first"])
async def test_one_bedrock_span_beside_contrib_in_either_order(
    order: str, both_async: Any, bedrock_async_client: Any, bedrock_emulator: Any,
    bedrock_telemetry: Any,
) -> None:
    ours, contrib = both_async
    first, second = (ours, contrib) if order == "ours-first" else (contrib, ours)
    first.instrument(**_providers(bedrock_telemetry))
    second.instrument(**_providers(bedrock_telemetry))
    await _all_operations(bedrock_async_client)
    await _sts_call(bedrock_emulator)
    by_scope: dict[str, list[str]] = {}
    for span in bedrock_telemetry.spans():
        by_scope.setdefault(span.instrumentation_scope.name, []).append(span.name)
    assert len(by_scope["opentelemetry.instrumentation.bedrock_tokens"]) == 4
    contrib_names = by_scope.get("opentelemetry.instrumentation.botocore", [])
    assert contrib_names == ["STS.GetCallerIdentity"]  # other services keep contrib's spans
    # ... and uninstrumenting us gives Bedrock back to contrib
    ours.uninstrument()
    bedrock_telemetry.clear_spans()
    await _async_call(bedrock_async_client, "converse", NOVA)
    assert [s.instrumentation_scope.name for s in bedrock_telemetry.spans()] == [
        "opentelemetry.instrumentation.botocore"]


def _ours_in_chain() -> int:
    from aiobotocore.client import AioBaseClient

    from opentelemetry.instrumentation.bedrock_tokens import aio

    found, attr = 0, AioBaseClient.__dict__["_make_api_call"]
    while attr is not None:
        found += getattr(attr, "_self_wrapper", None) is aio.make_api_call_wrapper
        attr = getattr(attr, "__wrapped__", None)
    return found


async def test_uninstrument_restores_aiobotocore_and_instrument_again_works(
    instrument: Any, bedrock_async_client: Any, bedrock_telemetry: Any
) -> None:
    from aiobotocore.client import AioBaseClient

    before = AioBaseClient.__dict__["_make_api_call"]
    inert = _ours_in_chain()  # left in place, inert, under a wrapper that came after ours
    instrumentor = instrument()
    assert _ours_in_chain() == 1
    instrumentor.uninstrument()
    if not inert:
        assert AioBaseClient.__dict__["_make_api_call"] is before
    await _async_call(bedrock_async_client, "converse", CLAUDE)
    assert bedrock_telemetry.spans() == []
    instrument()
    instrument()  # again: still one wrapper, one span per call
    await _async_call(bedrock_async_client, "converse", CLAUDE)
    assert len(bedrock_telemetry.spans()) == 1


_LATE_IMPORT = """
import asyncio, sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor
from opentelemetry.instrumentation.bedrock_tokens.emulator import BedrockEmulator
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
BedrockTokensInstrumentor().instrument(tracer_provider=provider)
assert "aiobotocore" not in sys.modules
from aiobotocore.session import get_session   # imported after instrument(), as under the launcher

async def main(url):
    async with get_session().create_client(
            "bedrock-runtime", region_name="us-east-1", endpoint_url=url,
            aws_access_key_id="x", aws_secret_access_key="x") as client:
        result = await client.converse(
            modelId="amazon.nova-micro-v1:0",
            messages=[{"role": "user", "content": [{"text": "hello there"}]}])
        return result["usage"]["outputTokens"]

with BedrockEmulator() as emulator:
    output = asyncio.run(main(emulator.endpoint_url))
(span,) = exporter.get_finished_spans()
assert span.attributes["gen_ai.usage.output_tokens"] == output, span.attributes
print("ok", span.name)
"""


def test_aiobotocore_imported_after_instrument_is_covered() -> None:
    done = subprocess.run([sys.executable, "-c", _LATE_IMPORT], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok chat amazon.nova-micro-v1:0")


def test_without_aiobotocore_nothing_changes(tmp_path: Any) -> None:
    """aiobotocore stays optional: with it unimportable, instrument() works and sync calls are
    traced (the launcher must not skip us either: it is not in our dependencies)."""
    blocker = tmp_path / "aiobotocore"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('not installed')\n")
    code = _LATE_IMPORT.split("from aiobotocore")[0] + (
        "from opentelemetry.instrumentation.bedrock_tokens.package import _instruments\n"
        "assert not any('aiobotocore' in r for r in _instruments)\n"
        "import botocore.client\nprint('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# -- pre-count ----------------------------------------------------------------------------------
def _links(span: Any, relation: str) -> list[int]:
    return [link.context.span_id for link in span.links
            if (link.attributes or {}).get(names.AWS_BEDROCK_LINK_RELATION) == relation]


def _precounter() -> Any:
    from opentelemetry.instrumentation.bedrock_tokens import patch

    assert patch.active is not None and patch.active.precounter is not None
    return patch.active.precounter


@pytest.mark.parametrize("bedrock_async_client", TRANSPORTS, indirect=True)
@pytest.mark.parametrize("mode", ["blocking", "background"])
async def test_precount_in_both_modes(
    mode: str, instrument: Any, bedrock_async_client: Any, bedrock_emulator: Any,
    bedrock_telemetry: Any,
) -> None:
    instrument(precount=mode)
    # the answer takes 300 ms: a background count lands on the invocation while it is open
    bedrock_emulator.set_scenario(Scenario(first_byte_delay=0.3, operations=("Converse",)))
    messages = converse_messages("count me before you answer, please")
    await bedrock_async_client.converse(modelId=CLAUDE, messages=messages)
    assert _precounter().flush(5.0)
    spans = bedrock_telemetry.spans()
    (count,) = [s for s in spans if s.name.startswith("count_tokens")]
    (call,) = [s for s in spans if s.name.startswith("chat")]
    expected = bedrock_emulator.input_tokens_for(CLAUDE, "Converse", {"messages": messages})
    assert count.attributes[names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS] == expected
    assert call.attributes[names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS] == expected
    assert call.attributes[names.AWS_BEDROCK_COUNT_TOKENS_DRIFT] == 0
    assert _links(count, names.LINK_RELATION_PRECOUNTED) == [call.context.span_id]
    assert _links(call, names.LINK_RELATION_PRECOUNT) == [count.context.span_id]
    # the CountTokens request went through the pre-count's own (sync) client, signed with the
    # async client's credentials: the emulator saw it, and no span of ours for it
    counted = [r for r in bedrock_emulator.requests if r.operation == "CountTokens"]
    assert len(counted) == 1 and "Credential=emulator/" in counted[0].headers["authorization"]


async def test_blocking_precount_never_blocks_the_loop(
    instrument: Any, bedrock_async_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    """While a call waits for its pre-count (200 ms), the loop keeps running other tasks."""
    instrument(precount="blocking", precount_timeout=1.0)
    bedrock_emulator.set_scenario(Scenario(count_tokens_delay=0.2))
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.ensure_future(ticker())
    started = time.perf_counter()
    await bedrock_async_client.converse(modelId=CLAUDE, messages=converse_messages())
    waited = time.perf_counter() - started
    stop.set()
    await task
    assert waited >= 0.2  # it did wait for the count
    assert ticks >= 20  # ... and the loop ran the ticker meanwhile (a blocked loop: 1 tick)
    (call,) = [s for s in bedrock_telemetry.spans() if s.name.startswith("chat")]
    assert call.attributes[names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS] > 0


async def test_budget_hook_vetoes_an_async_call(
    instrument: Any, bedrock_async_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    class OverBudget(Exception):
        pass

    def hook(model: str, operation: str, estimate: int) -> None:
        raise OverBudget(f"{operation} {estimate}")

    instrument(precount="blocking", precount_hook=hook, precount_timeout=10.0)
    with pytest.raises(OverBudget):
        await bedrock_async_client.converse(modelId=CLAUDE, messages=converse_messages())
    assert [r.operation for r in bedrock_emulator.requests] == ["CountTokens"]  # never sent


async def test_background_queue_bound_and_drop_counter(
    instrument: Any, bedrock_async_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any
) -> None:
    instrument(precount="background", precount_workers=1, precount_queue_size=2)
    bedrock_emulator.set_scenario(Scenario(count_tokens_delay=0.1))
    calls = 12
    await asyncio.gather(*(bedrock_async_client.converse(
        modelId=CLAUDE, messages=converse_messages(f"call {i}")) for i in range(calls)))
    assert _precounter().flush(10.0)
    counts = [s for s in bedrock_telemetry.spans() if s.name.startswith("count_tokens")]
    dropped = bedrock_telemetry.counter_value(names.METRIC_PRECOUNT_DROPPED)
    assert dropped >= 1  # one worker, room for two: most of twelve at once are dropped
    assert len(counts) + dropped == calls


_LOOP_ENDS = """
import asyncio, sys, time, warnings
warnings.simplefilter("always")
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor
from opentelemetry.instrumentation.bedrock_tokens.emulator import BedrockEmulator, Scenario
from aiobotocore.session import get_session

BedrockTokensInstrumentor().instrument(
    tracer_provider=TracerProvider(), precount=sys.argv[1], precount_timeout=0.05)

async def main(url):
    async with get_session().create_client(
            "bedrock-runtime", region_name="us-east-1", endpoint_url=url,
            aws_access_key_id="x", aws_secret_access_key="x") as client:
        for i in range(5):
            await client.converse(modelId="anthropic.claude-3-5-haiku-20241022-v1:0",
                                  messages=[{"role": "user", "content": [{"text": f"hi {i}"}]}])

emulator = BedrockEmulator().start()
emulator.set_scenario(Scenario(count_tokens_delay=30))  # every pre-count still on the wire
started = time.perf_counter()
asyncio.run(main(emulator.endpoint_url))
print("ran", round(time.perf_counter() - started, 2))
"""


@pytest.mark.parametrize("mode", ["blocking", "background"])
def test_loop_and_process_end_with_precounts_in_flight(mode: str) -> None:
    """The loop closes and the process exits with pre-counts stuck on the wire: no warning
    (no task destroyed while pending, no unclosed session), no hang."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-W", "always", "-c", _LOOP_ENDS, mode],
                          capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ran ")
    noise = [line for line in done.stderr.splitlines() if line.strip()]
    assert noise == [], noise
    assert elapsed < 20  # the stuck counts (30 s) never held the process
