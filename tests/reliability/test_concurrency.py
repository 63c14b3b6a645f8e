"""Many threads, one shared client and several others, thousands of mixed calls (every operation,
HTTP errors, mid-stream failures, streams closed early or dropped): every call has exactly one
span, under its caller's span, carrying that call's own request id, model, parameters and exact
counts (no cross-talk), and the metric sums are exactly the sums over the calls.

Each call has its own prompt, so its expected input count is distinct; it is computed with the
emulator's public tokenizer functions and checked against what the emulator recorded for the
request id the user received. Faults are chosen per call with the emulator's scenario header,
set by a ``before-sign`` hook from a thread-local, so they never leak to another thread.
"""

from __future__ import annotations

import contextlib
import gc
import json
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

import boto3
import pytest
from botocore.config import Config

from opentelemetry.instrumentation.bedrock_tokens import names
from opentelemetry.instrumentation.bedrock_tokens.emulator import (
    SCENARIO_HEADER,
    BedrockEmulator,
    Scenario,
)

from ..helpers import expected_usage_attrs, usage_attrs
from .support import (
    CLAUDE,
    CONVERSE,
    CONVERSE_STREAM,
    COUNT,
    INVOKE,
    INVOKE_STREAM,
    OPERATIONS,
    SOAK,
    Watch,
    assert_clean,
    assert_counts_valid,
    assert_exportable,
    expected_error_type,
    figure,
    flush_precounts,
    partition,
    safe_point,
)

THREADS = 12
CALLS = {"off": 1800, "background": 900, "blocking": 900}
if SOAK:
    CALLS = {"off": 20_000, "background": 6_000, "blocking": 6_000}
MODELS = (CLAUDE, f"us.{CLAUDE}", f"global.{CLAUDE}")


@dataclass
class Call:
    """One call as its thread made it, and what it saw."""

    thread: int
    index: int
    operation: str
    model: str
    max_tokens: int
    fault: str
    text: str
    parent: int = 0  # the caller's span id
    request_id: Optional[str] = None
    error: Optional[BaseException] = None
    events: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def body(self) -> dict[str, Any]:
        return {"anthropic_version": "bedrock-2023-05-31", "max_tokens": self.max_tokens,
                "messages": [{"role": "user", "content": self.text}]}

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [{"role": "user", "content": [{"text": self.text}]}]


def plan(thread: int, index: int) -> Call:
    """A deterministic mix: every operation, a fault on about one call in five."""
    operation = OPERATIONS[(thread + index) % len(OPERATIONS)]
    streamed = operation in (INVOKE_STREAM, CONVERSE_STREAM)
    faults = ["ok"] * 6 + ["throttled", "server-error"]
    if streamed:
        faults += ["mid-stream", "close-early", "drop-early"]
    fault = faults[(index * 7 + thread) % len(faults)]
    words = " ".join(f"w{thread}x{index}" for _ in range((thread * 31 + index) % 23))
    return Call(thread, index, operation, MODELS[(thread + index // 5) % len(MODELS)],
                20 + (thread * 7 + index) % 30, fault, f"Call {thread}/{index}: {words}.")


_local = threading.local()
_SCENARIOS = {
    "throttled": Scenario(error_status=429).to_json(),
    "server-error": Scenario(error_status=500).to_json(),
    "mid-stream": Scenario(stream_exception="throttlingException",
                           stream_exception_after=1).to_json(),
}


def _add_scenario(request: Any, **_: Any) -> None:
    scenario = getattr(_local, "scenario", None)
    if scenario is not None:
        request.headers[SCENARIO_HEADER] = scenario


def make(client: Any, call: Call) -> None:
    """Make the call as an application would, recording what it saw; never raises."""
    _local.scenario = _SCENARIOS.get(call.fault)
    try:
        if call.operation == INVOKE:
            result = client.invoke_model(modelId=call.model, body=json.dumps(call.body))
            result["body"].read()
        elif call.operation == CONVERSE:
            result = client.converse(modelId=call.model, messages=call.messages,
                                     inferenceConfig={"maxTokens": call.max_tokens})
        elif call.operation == COUNT:
            result = client.count_tokens(modelId=call.model,
                                         input={"converse": {"messages": call.messages}})
            call.extra["count"] = result["inputTokens"]
        else:
            if call.operation == INVOKE_STREAM:
                result = client.invoke_model_with_response_stream(
                    modelId=call.model, body=json.dumps(call.body))
                stream = result.pop("body")
            else:
                result = client.converse_stream(modelId=call.model, messages=call.messages,
                                                inferenceConfig={"maxTokens": call.max_tokens})
                stream = result.pop("stream")
            call.request_id = result["ResponseMetadata"]["RequestId"]
            _local.scenario = None
            try:
                for _ in stream:
                    call.events += 1
                    if call.fault in ("close-early", "drop-early"):
                        break
            except Exception as exc:
                call.error = exc
            if call.fault == "close-early":
                stream.close()
            del stream  # drop-early: abandoned right here
        call.request_id = result["ResponseMetadata"]["RequestId"]
    except Exception as exc:
        call.error = exc
    finally:
        _local.scenario = None


@pytest.fixture(scope="module")
def emulator() -> Iterator[BedrockEmulator]:
    """An emulator of our own that remembers every request of the run (soak included)."""
    with BedrockEmulator(max_recorded_requests=200_000, scenario_headers=True) as emu:
        yield emu


def _client(emulator: BedrockEmulator) -> Any:
    client = boto3.session.Session().client(
        "bedrock-runtime",
        config=Config(retries={"total_max_attempts": 1}, signature_version="v4", proxies={},
                      max_pool_connections=THREADS),
        **emulator.client_kwargs(),
    )
    client.meta.events.register("before-sign.bedrock-runtime", _add_scenario)
    return client


@pytest.mark.parametrize("mode", list(CALLS))
def test_concurrent_calls_are_exact_and_isolated(
    mode: str, emulator: BedrockEmulator, bedrock_telemetry: Any, instrument: Any, watch: Watch
) -> None:
    emulator.reset()
    shared = _client(emulator)
    others = [_client(emulator), _client(emulator)]
    options: dict[str, Any] = {"precount": mode}
    if mode != "off":
        options.update(precount_timeout=10.0, precount_workers=3, precount_queue_size=256)
    instrument(**options)
    tracer = bedrock_telemetry.tracer_provider.get_tracer("reliability.caller")
    per_thread = CALLS[mode] // THREADS
    calls: list[Call] = []
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def worker(thread: int) -> None:
        # even threads share one client; odd ones share the two others
        client = shared if thread % 2 == 0 else others[(thread // 2) % 2]
        mine = []
        barrier.wait()
        for index in range(per_thread):
            call = plan(thread, index)
            with tracer.start_as_current_span(f"caller {thread}/{index}") as parent:
                call.parent = parent.get_span_context().span_id
                make(client, call)
            mine.append(call)
            safe_point(index)
        with lock:
            calls.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(t,), name=f"caller-{t}")
               for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    gc.collect()
    flush_precounts(60.0)
    for client in (shared, *others):
        client.close()

    assert len(calls) == per_thread * THREADS
    stats = check_calls(calls, mode, emulator, bedrock_telemetry)
    assert_exportable(bedrock_telemetry, watch.guards)
    assert_clean(watch)
    figure(f"concurrency, pre-count {mode}", (
        f"{len(calls)} calls on {THREADS} threads sharing 3 clients ({stats}): span per call, "
        f"parentage, request ids, attributes and metric sums exact; {elapsed:.1f} s"))


def check_calls(calls: list[Call], mode: str, emulator: BedrockEmulator, telemetry: Any) -> str:
    recorded = {r.request_id: r for r in emulator.requests}
    spans = telemetry.spans()
    callers = {s.context.span_id: s for s in spans if s.name.startswith("caller ")}
    assert len(callers) == len(calls)
    children: dict[int, list[Any]] = {}
    for span in spans:
        if span.parent is not None and span.parent.span_id in callers:
            children.setdefault(span.parent.span_id, []).append(span)
    sums: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    precountable = counted = 0
    for call in calls:
        mine = children.get(call.parent, [])
        invocations, counts = partition(mine, call.operation)
        assert len(invocations) == 1, (call, [s.name for s in mine])
        span = invocations[0]
        attrs = span.attributes
        assert_counts_valid(span)
        assert attrs[names.GEN_AI_REQUEST_MODEL] == call.model
        if call.operation != COUNT:
            assert attrs[names.GEN_AI_REQUEST_MAX_TOKENS] == call.max_tokens
        if call.request_id is not None and names.AWS_REQUEST_ID in attrs:
            assert attrs[names.AWS_REQUEST_ID] == call.request_id
        expected = expected_counts(call, recorded, emulator)
        got = ({names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS:
                attrs[names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS]}
               if call.operation == COUNT and names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS in attrs
               else usage_attrs(span) if call.operation != COUNT else {})
        if call.error is not None:
            assert attrs[names.ERROR_TYPE] == expected_error_type(call.error)
            errors[attrs[names.ERROR_TYPE]] += 1
            assert {k: expected.get(k) for k in got} == got  # exact or absent
        elif call.fault in ("close-early", "drop-early"):
            outcome = {"close-early": "closed", "drop-early": "abandoned"}[call.fault]
            assert attrs[names.AWS_BEDROCK_STREAM_OUTCOME] == outcome
            assert {k: expected.get(k) for k in got} == got
        else:
            assert names.ERROR_TYPE not in attrs
            assert got == expected, call
        for key in (names.GEN_AI_USAGE_INPUT_TOKENS, names.GEN_AI_USAGE_OUTPUT_TOKENS):
            if key in attrs:
                sums[key] += attrs[key]
                sums[f"{key}#"] += 1
        if mode != "off" and call.operation != COUNT:
            precountable += 1
            counted += len(counts)
            assert len(counts) <= 1
            for count in counts:
                assert count.attributes[names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS] == (
                    input_of(call, emulator))
            if mode == "blocking":
                assert len(counts) == 1
                estimate = attrs[names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS]
                assert estimate == input_of(call, emulator)
            if names.AWS_BEDROCK_COUNT_TOKENS_DRIFT in attrs:
                assert attrs[names.AWS_BEDROCK_COUNT_TOKENS_DRIFT] == 0
        else:
            assert counts == []
    # metric sums are the sums over the calls, exactly
    count_of, sum_of = telemetry.histogram_count, telemetry.histogram_sum
    for key, kind in ((names.GEN_AI_USAGE_INPUT_TOKENS, "input"),
                      (names.GEN_AI_USAGE_OUTPUT_TOKENS, "output")):
        assert count_of(names.METRIC_TOKEN_USAGE, gen_ai__token__type=kind) == sums[f"{key}#"]
        assert sum_of(names.METRIC_TOKEN_USAGE, gen_ai__token__type=kind) == sums[key]
    assert count_of(names.METRIC_OPERATION_DURATION) == len(calls)
    for etype, n in errors.items():
        assert count_of(names.METRIC_OPERATION_DURATION, error__type=etype) == n
    assert errors, "the mix had no failing calls"
    dropped = telemetry.counter_value(names.METRIC_PRECOUNT_DROPPED)
    assert counted + dropped == precountable
    faults = Counter(c.fault for c in calls)
    stats = (f"{sum(errors.values())} failed, {faults['close-early']} closed early, "
             f"{faults['drop-early']} abandoned")
    if mode != "off":
        stats += f", {counted} pre-counted, {int(dropped)} pre-counts dropped"
    return stats


def input_of(call: Call, emulator: BedrockEmulator) -> int:
    if call.operation in (INVOKE, INVOKE_STREAM):
        return emulator.input_tokens_for(call.model, "InvokeModel", call.body)
    return emulator.input_tokens_for(call.model, "Converse", {"messages": call.messages})


def expected_counts(call: Call, recorded: dict[str, Any], emulator: BedrockEmulator
                    ) -> dict[str, int]:
    """The call's counts from its own prompt, cross-checked with the emulator's record of the
    request id the user received."""
    if call.request_id is None:
        return {}
    record = recorded[call.request_id]
    if call.operation == COUNT:
        assert record.input_tokens == call.extra["count"] == input_of(call, emulator)
        return {names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS: record.input_tokens}
    assert record.input_tokens == input_of(call, emulator)
    return expected_usage_attrs(record)


RACES = 150 if not SOAK else 2_000


@contextlib.contextmanager
def raised_by_botocore() -> Iterator[None]:
    """botocore's event stream is not thread-safe: ending one from two threads can make
    urllib3 raise in either. The application sees that with or without us; what must not
    happen is an exception raised by our own code."""
    try:
        yield
    except Exception as exc:
        origin = traceback.extract_tb(exc.__traceback__)[-1].filename
        assert "/bedrock_tokens/" not in origin or "/emulator/" in origin, (origin, exc)


@pytest.mark.parametrize("race", ["close-close", "close-exhaust"])
@pytest.mark.parametrize("operation", [INVOKE_STREAM, CONVERSE_STREAM])
def test_a_stream_ended_from_two_threads_at_once_ends_once(
    race: str, operation: str, bedrock_emulator: Any, bedrock_telemetry: Any, instrument: Any,
    make_client: Any, watch: Watch,
) -> None:
    """Two threads end the same stream at the same moment (both close it, or one closes it
    while the other reads its last event): one span end, one set of metric recordings."""
    import sys

    from .support import default_params

    client = make_client()
    instrument()
    method = (client.invoke_model_with_response_stream if operation == INVOKE_STREAM
              else client.converse_stream)
    key = "body" if operation == INVOKE_STREAM else "stream"
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: widen every race window
    try:
        for index in range(RACES):
            stream = method(**default_params(operation))[key]
            events = iter(stream)
            if race == "close-exhaust":
                for _ in range(3):
                    next(events)  # the rest is on its way; the last event ends the stream
            barrier = threading.Barrier(2)

            def close(stream: Any = stream, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                with raised_by_botocore():
                    stream.close()

            def finish(events: Any = events, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                with raised_by_botocore():
                    for _ in events:
                        pass

            second = close if race == "close-close" else finish
            threads = [threading.Thread(target=close), threading.Thread(target=second)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            del stream, events
            safe_point(index, every=25)
    finally:
        sys.setswitchinterval(interval)
    gc.collect()
    spans = bedrock_telemetry.spans()
    assert len(spans) == RACES
    assert bedrock_telemetry.histogram_count(names.METRIC_OPERATION_DURATION) == RACES
    outcomes = Counter(s.attributes[names.AWS_BEDROCK_STREAM_OUTCOME] for s in spans)
    assert sum(outcomes.values()) == RACES
    assert_clean(watch)
