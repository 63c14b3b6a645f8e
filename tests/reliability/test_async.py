"""Issue #12, reliability for aiobotocore: the fault matrix's emulator-driven cases made with
an async client (what the user sees is identical with and without the instrumentation, and
every check of the sync matrix holds), 1,000 concurrent ``asyncio.gather`` calls with exact
sums, and no growth over 10,000 async calls and streams.

Cases that inject responses below botocore (``Canned``, rewritten headers) are sync only:
they hook botocore's ``before-send``/``before-parse`` with urllib3 responses, which
aiobotocore's transport cannot carry. The parsing they exercise is the same code for both
drivers (the async span equals the sync one: tests/test_async.py).
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any, Callable, Optional

import pytest

from opentelemetry.instrumentation.bedrock_tokens import names, streams

from ..helpers import body_for, converse_messages
from .matrix import CASES, PRECOUNT_MODES, Case
from .support import (
    COUNT,
    INVOKE,
    STREAM_KEY,
    Observation,
    Watch,
    _normalise,
    assert_clean,
    figure,
    flush_precounts,
    raised,
)
from .test_fault_matrix import _prepare, check_run

pytest.importorskip("aiobotocore")

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
_METHOD = {INVOKE: "invoke_model", "InvokeModelWithResponseStream":
           "invoke_model_with_response_stream", "Converse": "converse",
           "ConverseStream": "converse_stream", COUNT: "count_tokens"}


def _async_case(case: Case) -> bool:
    return case.canned is None and case.canned_count is None and case.headers is None and (
        not case.remove_headers)


ASYNC_RUNS = [
    pytest.param(case, transport, "off", id=f"{case.id}[{transport}]")
    for case in CASES if _async_case(case) and "off" in case.modes
    for transport in ("aiohttp", "httpx")
    # aiobotocore reads event streams through aiohttp's API only (see tests/test_async.py),
    # and its httpx transport cannot send a bytearray body (HTTPClientError, with or without
    # us: tests/test_async.py::test_httpx_bytearray_body_fails_unchanged)
    if transport == "aiohttp" or (
        # httpx differs below botocore only in how a body is read and fails: its body cases
        case.operation == INVOKE and case.name != "bytearray") or (
            case.group == "healthy" and not case.streamed)
] + [
    # pre-count through an async client: every pre-count fault, and the healthy calls
    pytest.param(case, "aiohttp", mode, id=f"{case.id}[aiohttp][{mode}]")
    for case in CASES if _async_case(case) and case.group in ("healthy", "precount-fault")
    for mode in PRECOUNT_MODES if mode in case.modes
]


class _Remote:
    """An emulator in a child process, so a long run's server threads do not share our GIL."""

    def __init__(self, url: str) -> None:
        self.endpoint_url = url

    def client_kwargs(self) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint_url, "region_name": "us-east-1",
                "aws_access_key_id": "emulator", "aws_secret_access_key": "emulator"}


def _serve(conn: Any) -> None:
    from opentelemetry.instrumentation.bedrock_tokens.emulator import BedrockEmulator

    with BedrockEmulator() as emulator:
        conn.send(emulator.endpoint_url)
        conn.recv()


@pytest.fixture
def remote_emulator() -> Iterator[_Remote]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve, args=(theirs,), daemon=True)
    process.start()
    try:
        assert ours.poll(60), "the emulator process did not start"
        yield _Remote(ours.recv())
    finally:
        ours.send("stop")
        process.join(10)
        if process.is_alive():
            process.kill()


_session: Any = None


async def _aclient(emulator: Any, transport: str, read_timeout: Optional[float] = None,
                   pool: int = 10) -> AsyncIterator[Any]:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    options: dict[str, Any] = {
        "retries": {"total_max_attempts": 1}, "signature_version": "v4", "proxies": {},
        "read_timeout": read_timeout if read_timeout is not None else 60,
        "max_pool_connections": pool,
    }
    if transport == "httpx":
        from aiobotocore.httpxsession import HttpxSession

        options["http_session_cls"] = HttpxSession
    global _session
    if _session is None:  # one session, as applications have: its loader caches the models
        _session = get_session()
    async with _session.create_client(
            "bedrock-runtime", config=AioConfig(**options), **emulator.client_kwargs()) as client:
        yield client


# -- the user's view of one call ------------------------------------------------------------------
async def _astep(view: list[Any], label: str, action: Callable[[], Any]) -> Any:
    try:
        value = action()
        if asyncio.iscoroutine(value):
            value = await value
    except Exception as exc:
        view.append((label, raised(exc)))
        return exc
    view.append((label, _normalise(value)))
    return value


async def _pieces(view: list[Any], label: str, reads: list[Callable[[], Any]]) -> Optional[bytes]:
    parts: list[bytes] = []
    for index, read in enumerate(reads):
        try:
            part = await read()
        except StopAsyncIteration:
            part = b""
        except Exception as exc:
            view.append((f"{label}-{index}", raised(exc)))
            view.append((f"{label}-joined", _normalise(b"".join(parts))))
            return None
        view.append((f"{label}-{index}", len(part)))
        parts.append(part)
    data = b"".join(parts)
    view.append((f"{label}-joined", _normalise(data)))
    return data


async def _read(body: Any, view: list[Any]) -> Optional[bytes]:
    data = await _astep(view, "read", body.read)
    return data if isinstance(data, bytes) else None


async def _read_twice(body: Any, view: list[Any]) -> Optional[bytes]:
    data = await _read(body, view)
    await _astep(view, "read-again", body.read)
    return data


async def _read_pieces(body: Any, view: list[Any]) -> Optional[bytes]:
    return await _pieces(view, "read", [lambda: body.read(5), lambda: body.read(7), body.read])


async def _read_partial(body: Any, view: list[Any]) -> Optional[bytes]:
    await _astep(view, "read-10", lambda: body.read(10))
    return None


async def _iter_lines(body: Any, view: list[Any]) -> Optional[bytes]:
    async def lines() -> list[bytes]:
        return [line async for line in body.iter_lines()]

    found = await _astep(view, "iter-lines", lines)
    return b"\n".join(found) if isinstance(found, list) else None


async def _iter_chunks(body: Any, view: list[Any]) -> Optional[bytes]:
    chunks = body.iter_chunks(3)
    return await _pieces(view, "chunk", [chunks.__anext__ for _ in range(1000)])


async def _never(body: Any, view: list[Any]) -> Optional[bytes]:
    return None


async def _close_then_read(body: Any, view: list[Any]) -> Optional[bytes]:
    await _astep(view, "close", body.close)
    await _astep(view, "read-after-close", body.read)
    return None


async def _socket_timeout(body: Any, view: list[Any]) -> Optional[bytes]:
    await _astep(view, "set-socket-timeout", lambda: body.set_socket_timeout(30))
    return await _read(body, view)


async def _context(body: Any, view: list[Any]) -> Optional[bytes]:
    async def use() -> Any:
        async with body as raw:
            return await raw.read()

    data = await _astep(view, "with-read", use)
    return data if isinstance(data, bytes) else None


BODY_CONSUMERS = {
    "all": _read, "read": _read, "read-twice": _read_twice, "read-pieces": _read_pieces,
    "read-partial": _read_partial, "iter-lines": _iter_lines, "iter-chunks": _iter_chunks,
    "never": _never, "close-then-read": _close_then_read, "socket-timeout": _socket_timeout,
    "context-manager": _context,
}


async def _take(stream: Any, obs: Observation, limit: Optional[int],
                on_event: Any = None) -> bool:
    """The async twin of support._take: the same record of each event and of the end."""
    try:
        index = 0
        async for event in stream:
            if obs.took(event, index, on_event, limit):
                return False
            index += 1
    except Exception as exc:
        obs.stream_raised(exc)
        return True
    obs.view.append(("end",))
    return True


async def _consume_stream(stream: Any, how: str, obs: Observation) -> None:
    async def close() -> None:
        await _astep(obs.view, "close", stream.close)

    if how == "all":
        await _take(stream, obs, None)
    elif how in ("break-close", "break-drop"):
        await _take(stream, obs, 2)
        if how == "break-close":
            obs.ended_early = True
            await close()
    elif how == "close-twice":
        obs.ended_early = True
        await close()
        await close()
    elif how == "all-close-twice":
        await _take(stream, obs, None)
        await close()
        await close()
    elif how == "break-resume":
        if not await _take(stream, obs, 2):
            obs.view.append(("resume",))
            await _take(stream, obs, None)
    elif how == "close-in-loop":
        def close_first(index: int) -> None:
            if index == 0:
                obs.ended_early = True
                obs.view.append(("close", _normalise(stream.close())))

        await _take(stream, obs, None, close_first)
    elif how != "never":  # pragma: no cover - a typo in the matrix
        raise AssertionError(how)


async def observe_call(client: Any, operation: str, params: dict[str, Any],
                       consume: str) -> Observation:
    obs = Observation()
    try:
        result = await getattr(client, _METHOD[operation])(**params)
    except Exception as exc:
        obs.call_error = exc
        obs.view.append(("call-raised", raised(exc)))
        return obs
    if operation in STREAM_KEY:
        stream = result.pop(STREAM_KEY[operation], None)
        obs.view.append(("result", _normalise(result)))
        if stream is not None:
            await _consume_stream(stream, consume, obs)
        del stream
    elif operation == INVOKE:
        body = result.pop("body", None)
        obs.view.append(("result", _normalise(result)))
        if body is not None:
            obs.view.append(("body-class", type(body).__name__))
            obs.body = await BODY_CONSUMERS[consume](body, obs.view)
        del body
    else:
        obs.view.append(("result", _normalise(result)))
    obs.result = result
    return obs


async def _settle(watch: Watch) -> None:
    """Let dropped streams, and the async generators broken out of, be finalised while the
    loop still runs (the loop closes them with a task of its own: a loop closed first would
    keep them, and the streams they reference, alive in that task forever)."""
    for round_ in range(6):
        gc.collect()
        await asyncio.sleep(0.01 if watch.ledger.open_spans() else 0)
        if round_ >= 2 and not watch.ledger.open_spans():
            break
    flush_precounts()


@pytest.mark.parametrize(("case", "transport", "mode"), ASYNC_RUNS)
async def test_async_fault_matrix(
    case: Case, transport: str, mode: str, request: pytest.FixtureRequest,
    bedrock_emulator: Any, bedrock_telemetry: Any, instrument: Callable[..., Any], watch: Watch,
) -> None:
    request.node.user_properties.append(("reliability_group", f"async/{case.group}"))
    async for client in _aclient(bedrock_emulator, transport, case.read_timeout):
        _prepare(bedrock_emulator, case)
        plain = await observe_call(client, case.operation, case.make_params(), case.consume)
        _prepare(bedrock_emulator, case)
        options: dict[str, Any] = {"precount": mode}
        if mode != "off":
            options["precount_timeout"] = case.precount_timeout
        instrument(**options)
        ours = await observe_call(client, case.operation, case.make_params(), case.consume)
        await _settle(watch)

    check_run(case, mode, plain, ours, bedrock_telemetry, bedrock_emulator, watch, None)


# -- concurrency ----------------------------------------------------------------------------------
async def _one(client: Any, i: int) -> tuple[int, int]:
    """One call of four kinds by index; the (input, output) tokens the service reported."""
    text = f"call {i}: " + "word " * (i % 17)
    kind = i % 4
    if kind == 0:
        usage = (await client.converse(modelId=CLAUDE, messages=converse_messages(text)))["usage"]
        return usage["inputTokens"], usage["outputTokens"]
    if kind == 1:
        result = await client.converse_stream(modelId=CLAUDE, messages=converse_messages(text))
        usage = {}
        async for event in result["stream"]:
            if "metadata" in event:
                usage = event["metadata"]["usage"]
        return usage["inputTokens"], usage["outputTokens"]
    body = (b'{"anthropic_version":"bedrock-2023-05-31","max_tokens":40,"messages":'
            b'[{"role":"user","content":"' + text.encode() + b'"}]}')
    if kind == 2:
        result = await client.invoke_model(modelId=CLAUDE, body=body)
        headers = result["ResponseMetadata"]["HTTPHeaders"]
        await result["body"].read()
        return (int(headers[names.H_INPUT_TOKENS]), int(headers[names.H_OUTPUT_TOKENS]))
    result = await client.invoke_model_with_response_stream(modelId=CLAUDE, body=body)
    last = b""
    async for event in result["body"]:
        last = event["chunk"]["bytes"]
    import json

    metrics = json.loads(last)[names.INVOCATION_METRICS_KEY]
    return metrics["inputTokenCount"], metrics["outputTokenCount"]


async def test_a_thousand_concurrent_calls_exact_sums(
    instrumented: Any, bedrock_emulator: Any, bedrock_telemetry: Any, watch: Watch
) -> None:
    calls = 1000
    started = time.perf_counter()
    async for client in _aclient(bedrock_emulator, "aiohttp", pool=50):
        reported = await asyncio.gather(*(_one(client, i) for i in range(calls)))
    elapsed = time.perf_counter() - started
    spans = bedrock_telemetry.spans()
    assert len(spans) == calls
    assert watch.ledger.open_spans() == [] and watch.ledger.ended_twice() == []
    want_in = sum(i for i, _ in reported)
    want_out = sum(o for _, o in reported)
    assert sum(s.attributes[names.GEN_AI_USAGE_INPUT_TOKENS] for s in spans) == want_in
    assert sum(s.attributes[names.GEN_AI_USAGE_OUTPUT_TOKENS] for s in spans) == want_out
    sums = {p.attributes[names.GEN_AI_TOKEN_TYPE]: (p.count, p.sum)
            for p in bedrock_telemetry.metric_points(names.METRIC_TOKEN_USAGE)}
    assert sums == {"input": (calls, want_in), "output": (calls, want_out)}
    # each call's span is its own: the request ids are all different and all the emulator's
    ids = {s.attributes[names.AWS_REQUEST_ID] for s in spans}
    assert len(ids) == calls
    assert ids <= {r.request_id for r in bedrock_emulator.requests}
    assert_clean(watch)
    figure("async concurrency", f"{calls} calls in one asyncio.gather (Converse, ConverseStream, "
           f"InvokeModel, InvokeModelWithResponseStream): {elapsed:.1f} s, token sums exact "
           f"({want_in} in, {want_out} out), {calls} spans, 0 open, 0 ended twice")


# -- leaks ----------------------------------------------------------------------------------------
def _ours(obj: Any) -> bool:
    module = type(obj).__dict__.get("__module__") or type(obj).__module__
    return isinstance(module, str) and module.startswith(
        "opentelemetry.instrumentation.bedrock_tokens")


_TRACKED = ("CallRecord", "_StreamState", "StreamProxy", "AsyncStreamProxy", "Call")


def _live() -> dict[str, int]:
    gc.collect()
    counts: dict[str, int] = {}
    for obj in gc.get_objects():
        name = type(obj).__name__
        if name in _TRACKED and _ours(obj):
            counts[name] = counts.get(name, 0) + 1
    return counts


async def test_ten_thousand_async_calls_do_not_grow(
    instrumented: Any, remote_emulator: Any, bedrock_telemetry: Any, watch: Watch
) -> None:
    """10,000 calls and streams, 100 at a time. Nothing of ours stays alive, and what this
    package allocates (traced over the last 1,000 calls against the 1,000 before) does not
    grow: tracemalloc slows aiohttp tenfold, so only those windows are traced."""
    total = int(os.environ.get("BEDROCK_TOKENS_ASYNC_LEAK_CALLS", "10000"))
    window, batch = 500, 100
    alive_at_start = _live()  # what earlier tests may have left (a failing test's frames)
    started = time.perf_counter()
    async for client in _aclient(remote_emulator, "aiohttp", pool=20):
        async def run(n: int, offset: int, client: Any = client) -> None:
            for start in range(0, n, batch):
                await asyncio.gather(*(_one(client, offset + start + i) for i in range(batch)))
                assert len(bedrock_telemetry.spans()) == batch
                assert watch.ledger.open_spans() == [] and watch.ledger.ended_twice() == []
                # the exporter's list and the ledger are the test's, not ours to measure
                bedrock_telemetry.clear_spans()
                watch.ledger.reset()

        await run(total - 2 * window, 0)
        live_before = _live()
        tracemalloc.start()
        baseline = tracemalloc.take_snapshot()
        await run(window, total - 2 * window)
        gc.collect()
        middle = tracemalloc.take_snapshot()
        await run(window, total - window)
        gc.collect()
        end = tracemalloc.take_snapshot()
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    growth = []
    for before, after in ((baseline, middle), (middle, end)):
        ours = [s for s in after.compare_to(before, "filename")
                if "bedrock_tokens" in str(s.traceback) and "emulator" not in str(s.traceback)]
        growth.append(sum(s.size_diff for s in ours))
    assert live_before == alive_at_start and _live() == alive_at_start
    assert not streams._open
    top = [str(s) for s in end.compare_to(middle, "lineno")
           if "bedrock_tokens" in str(s.traceback) and "emulator" not in str(s.traceback)][:3]
    assert growth[1] <= 16 * 1024, (growth, top)
    assert threading.active_count() < 20
    assert_clean(watch)
    figure("async leaks", f"{total} async calls and streams (4 kinds, {batch} at a time) in "
           f"{elapsed:.0f} s: no object of ours more alive after {total - 2 * window} calls or "
           f"at the end than before; what this package allocated grew "
           f"{growth[0] / 1024:.1f} KiB then {growth[1] / 1024:.1f} KiB over each further "
           f"{window} calls (tracemalloc)")


# -- large bodies ---------------------------------------------------------------------------------
MIB = 1024 * 1024


class _BigBodyServer:
    """Answers every InvokeModel with one large JSON body and no token headers (an image
    model's reply, an unknown family), with a Content-Length or chunked."""

    def __init__(self, body: bytes, chunked: bool) -> None:
        import http.server

        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("x-amzn-requestid", "00000000-0000-4000-8000-000000000000")
                if outer.chunked:
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    for start in range(0, len(outer.body), MIB):
                        piece = outer.body[start:start + MIB]
                        self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("content-length", str(len(outer.body)))
                    self.end_headers()
                    self.wfile.write(outer.body)

            def log_message(self, *args: Any) -> None:
                return None

        self.body, self.chunked = body, chunked
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint_url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def client_kwargs(self) -> dict[str, Any]:
        return _Remote(self.endpoint_url).client_kwargs()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _json_body(size: int) -> bytes:
    head = b'{"id": "msg_big", "type": "message", "content": [{"type": "text", "text": "'
    tail = b'"}], "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 5}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def _big_call(server: _BigBodyServer, transport: str) -> tuple[float, int, str]:
    """(seconds to return, traced peak during the call, digest of what the user read)."""
    import hashlib

    async for client in _aclient(server, transport):
        gc.collect()
        tracemalloc.start()
        try:
            started = time.perf_counter()
            result = await client.invoke_model(modelId=CLAUDE, body=body_for(CLAUDE))
            returned = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        data = await result["body"].read()
        return returned, peak, hashlib.sha256(data).hexdigest()
    raise AssertionError("no client")


async def _plain_then_ours(
    body: bytes, chunked: bool, transport: str, instrument: Callable[..., Any]
) -> tuple[Any, Any]:
    """The same InvokeModel body served to an uninstrumented call, then an instrumented one."""
    server = _BigBodyServer(body, chunked)
    try:
        plain = await _big_call(server, transport)
        instrument()
        return plain, await _big_call(server, transport)
    finally:
        server.close()


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "no-length"])
async def test_large_async_body_is_never_held_for_parsing(
    transport: str, chunked: bool, instrument: Callable[..., Any], bedrock_telemetry: Any
) -> None:
    plain, ours = await _plain_then_ours(_json_body(64 * MIB), chunked, transport, instrument)
    assert ours[2] == plain[2]  # the same bytes
    # never the body held whole: at most the cap and what the transport itself buffers
    # (aiohttp's reader keeps what arrived ahead of the reads, a few MiB on loopback)
    assert ours[1] < 8 * MIB, (ours[1], plain[1])
    span = bedrock_telemetry.spans()[-1]
    assert names.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes  # too large: not parsed
    figure(f"async 64 MiB body ({transport}, {'no length' if chunked else 'content-length'})",
           f"returned in {plain[0] * 1000:.1f} ms uninstrumented, {ours[0] * 1000:.1f} ms "
           f"instrumented; traced peak during the call {plain[1] / MIB:.1f} MiB and "
           f"{ours[1] / MIB:.1f} MiB")


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "no-length"])
@pytest.mark.parametrize("over", [0, 1], ids=["at-the-cap", "one-past"])
async def test_async_body_at_the_cap_is_parsed_and_past_it_is_not(
    transport: str, chunked: bool, over: int, instrument: Callable[..., Any],
    bedrock_telemetry: Any,
) -> None:
    plain, ours = await _plain_then_ours(
        _json_body(patch_cap() + over), chunked, transport, instrument)
    assert ours[2] == plain[2]
    span = bedrock_telemetry.spans()[-1]
    parsed = span.attributes.get(names.GEN_AI_USAGE_INPUT_TOKENS)
    assert parsed == (3 if not over else None)


def patch_cap() -> int:
    from opentelemetry.instrumentation.bedrock_tokens import patch

    return patch.MAX_PARSED_RESPONSE


# -- properties: the async stream accumulator, through the real proxy -----------------------------
from hypothesis import given, settings  # noqa: E402

from opentelemetry.instrumentation.bedrock_tokens import content  # noqa: E402
from opentelemetry.instrumentation.bedrock_tokens.record import CallRecord  # noqa: E402
from opentelemetry.instrumentation.bedrock_tokens.streams import (  # noqa: E402
    AsyncStreamProxy,
    _StreamState,
)

from .test_properties import (  # noqa: E402, F401
    ACCUMULATOR_CASES,
    PROPERTY,
    _check_spans,
    _fresh,
    sdk,
)


class _AsyncSource:
    """A stand-in for aiobotocore's AioEventStream: ``async for``, ``close()``, maybe failing
    at the end."""

    def __init__(self, events: list[Any], fail: bool) -> None:
        self._events = events
        self._fail = fail
        self.closed = 0

    def __aiter__(self) -> Any:
        return self._gen()

    async def _gen(self) -> Any:
        for event in self._events:
            yield event
        if self._fail:
            raise ConnectionError("dropped")

    def close(self) -> None:
        self.closed += 1


@settings(PROPERTY, max_examples=60)  # an event loop per example
@given(**ACCUMULATOR_CASES)
def test_async_stream_accumulator_takes_any_events(
    sdk: Any,  # noqa: F811 (the fixture imported above)
    events: list[Any], kind: str, family: str, fail: bool, ending: str, limit: Optional[int],
) -> None:
    """Arbitrary events through the async proxy: the consumer gets the very events and the
    failure unchanged, the record ends exactly once, nothing raises from us."""
    telemetry, tel, ledger = _fresh(sdk)
    span = tel.tracer.start_span("stream")
    record = CallRecord(tel, span, 0.0, tel.metric_attributes("chat", "m", None, None))
    collector = content.TextCollector(limit) if limit is not None else None
    seen: list[Any] = []
    raised: list[BaseException] = []

    async def consume() -> None:
        proxy = AsyncStreamProxy(_AsyncSource(events, fail),
                                 _StreamState(record, kind, family, collector))
        try:
            if ending == "exhaust":
                async for event in proxy:
                    seen.append(event)
            elif ending in ("break-close", "break-drop"):
                async for event in proxy:
                    seen.append(event)
                    break
                if ending == "break-close":
                    proxy.close()
                    proxy.close()
            elif ending == "close-unread":
                proxy.close()
        except ConnectionError as exc:
            raised.append(exc)
        del proxy  # asyncio.run() closes the generator broken out of; then it is freed

    asyncio.run(consume())
    broke = ending.startswith("break")
    expected = events if ending == "exhaust" else events[:1] if broke else []
    assert len(seen) == len(expected) and all(a is b for a, b in zip(seen, expected))
    reached_failure = ending == "exhaust" or (broke and not events)
    assert bool(raised) == (fail and reached_failure)
    assert record.ended
    assert not any(state.record is record for state in list(streams._open))
    _check_spans(telemetry, ledger)
