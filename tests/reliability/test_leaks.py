"""Long runs leave nothing behind: memory stays flat (tracemalloc) over thousands of calls,
including streams dropped half-read or never read, failing calls and pre-counts; every span
ends; no object of ours outlives its call; no thread outlives ``uninstrument()``; and
instrument/uninstrument cycles leave botocore and the contrib registry exactly as they were.

Default: a few thousand calls per mode. ``BEDROCK_TOKENS_SOAK=1``: tens of thousands.
"""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any, Callable, Optional

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from opentelemetry.instrumentation.bedrock_tokens import (
    BedrockTokensInstrumentor,
    coexist,
    patch,
    precount,
    streams,
)
from opentelemetry.instrumentation.bedrock_tokens.emulator import (
    SCENARIO_HEADER,
    BedrockEmulator,
    Scenario,
)
from opentelemetry.instrumentation.bedrock_tokens.record import CallRecord

from .support import (
    CLAUDE,
    OPERATIONS,
    SOAK,
    default_params,
    figure,
    safe_point,
)

CALLS = 20_000 if SOAK else 600  # per mode, measured (after the warm-up)
WARMUP = 150
OURS = "/bedrock_tokens/"
EMULATOR = "/bedrock_tokens/emulator/"
# Bounds on growth between the middle and the end of the measured run (the second half): a
# leak of even one small object per call (>= 28 bytes x 300 calls) exceeds the first; keeping
# every span (a few KiB each) exceeds the second.
OUR_GROWTH_LIMIT = 8 * 1024
TOTAL_GROWTH_LIMIT = 512 * 1024
PRECOUNT_THREAD = "bedrock-tokens-precount-"


def _our_live_objects() -> dict[str, int]:
    kinds: dict[str, type] = {
        "CallRecord": CallRecord, "StreamProxy": streams.StreamProxy,
        "_StreamState": streams._StreamState, "_BackgroundCount": precount._BackgroundCount,
        "_BlockingCount": precount._BlockingCount, "_Work": precount._Work,
    }
    found = dict.fromkeys(kinds, 0)
    for obj in gc.get_objects():
        for name, kind in kinds.items():
            if isinstance(obj, kind):
                found[name] += 1
    return {k: v for k, v in found.items() if v}


class _Faults:
    """Scenario header per call, set by the (single) calling thread."""

    def __init__(self) -> None:
        self.next: Optional[str] = None

    def __call__(self, request: Any, **_: Any) -> None:
        if self.next is not None:
            request.headers[SCENARIO_HEADER] = self.next


_THROTTLED = Scenario(error_status=429).to_json()


def _workload(client: Any, faults: _Faults, start: int, count: int) -> None:
    """Every operation in turn; streams read fully, dropped after one event, or never read;
    one call in ten throttled."""
    for i in range(start, start + count):
        operation = OPERATIONS[i % len(OPERATIONS)]
        faults.next = _THROTTLED if i % 10 == 0 else None
        params = default_params(operation, CLAUDE, f"leak check {i % 97}")
        try:
            if operation == "InvokeModel":
                client.invoke_model(**params)["body"].read()
            elif operation == "Converse":
                client.converse(**params)
            elif operation == "CountTokens":
                client.count_tokens(**params)
            else:
                method = (client.converse_stream if operation == "ConverseStream"
                          else client.invoke_model_with_response_stream)
                result = method(**params)
                stream = result["body" if "body" in result else "stream"]
                del result
                if i % 3 == 0:
                    for _ in stream:
                        pass
                elif i % 3 == 1:
                    for _ in stream:
                        break  # dropped half-read
                del stream  # (i % 3 == 2: never read)
        except Exception:
            pass
        safe_point(i)
    faults.next = None


def _precount_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(PRECOUNT_THREAD)]


def _wait(condition: Callable[[], bool], seconds: float = 15.0) -> bool:
    """A bounded wait for something that happens asynchronously (never a timing assertion)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _grown(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, ours: bool) -> int:
    filters = [tracemalloc.Filter(True, f"*{OURS}*"), tracemalloc.Filter(False, f"*{EMULATOR}*")]
    if ours:
        before, after = before.filter_traces(filters), after.filter_traces(filters)
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


@pytest.fixture
def isolated() -> Iterator[tuple[BedrockEmulator, Any]]:
    """An emulator and client of the test's own: the emulator keeps only the last 50 requests,
    so neither grows with the run."""
    with BedrockEmulator(max_recorded_requests=50, scenario_headers=True) as emulator:
        client = boto3.session.Session().client(
            "bedrock-runtime",
            config=Config(retries={"total_max_attempts": 1}, signature_version="v4", proxies={}),
            **emulator.client_kwargs(),
        )
        yield emulator, client
        client.close()


@pytest.mark.parametrize("mode", ["background", "blocking"])
def test_long_run_keeps_memory_and_threads_bounded(mode: str, isolated: Any) -> None:
    emulator, client = isolated
    faults = _Faults()
    client.meta.events.register("before-sign.bedrock-runtime", faults)
    threads_before = {t.ident for t in threading.enumerate()}
    # what earlier tests left (an async generator a closed loop never finalised keeps its
    # stream): this test's own objects are what must not outlive their calls
    alive_before = _our_live_objects()
    # Spans are counted, not kept: a span exporter holding every span would be the leak.
    ledger = _Counting()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(ledger)
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider,
                            precount=mode, precount_timeout=10.0)
    try:
        _workload(client, faults, 0, WARMUP)
        patch.active.precounter.flush(30)  # type: ignore[union-attr]
        gc.collect()
        tracemalloc.start()
        try:
            start = tracemalloc.take_snapshot()
            _workload(client, faults, WARMUP, CALLS // 2)
            patch.active.precounter.flush(30)  # type: ignore[union-attr]
            gc.collect()
            middle = tracemalloc.take_snapshot()
            _workload(client, faults, WARMUP + CALLS // 2, CALLS // 2)
            patch.active.precounter.flush(30)  # type: ignore[union-attr]
            gc.collect()
            end = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        live = _our_live_objects()
        data = reader.get_metrics_data()
        points = 0
        for rm in data.resource_metrics if data is not None else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    points += len(metric.data.data_points)
    finally:
        instrumentor.uninstrument()
        tracer_provider.shutdown()
        meter_provider.shutdown()

    first_ours, second_ours = _grown(start, middle, True), _grown(middle, end, True)
    first_total, second_total = _grown(start, middle, False), _grown(middle, end, False)
    assert live == alive_before, "objects of ours outlived their calls"
    assert ledger.started == ledger.ended, "spans left open"
    assert not streams._open
    assert second_ours < OUR_GROWTH_LIMIT, (first_ours, second_ours)
    assert second_total < TOTAL_GROWTH_LIMIT, (first_total, second_total)
    assert _wait(lambda: not _precount_threads()), [t.name for t in _precount_threads()]
    emulator.stop()
    assert _wait(lambda: {t.ident for t in threading.enumerate()} <= threads_before), [
        t.name for t in threading.enumerate() if t.ident not in threads_before]
    figure(f"leaks, pre-count {mode}", (
        f"{WARMUP} + {CALLS} calls ({ledger.ended} spans, {points} metric points): traced memory "
        f"growth {first_total / 1024:.0f} KiB then {second_total / 1024:.0f} KiB over each "
        f"{CALLS // 2} calls, of which allocated by this package {first_ours / 1024:.1f} KiB then "
        f"{second_ours / 1024:.1f} KiB; 0 objects of ours left, 0 threads left"))


class _Counting(SpanProcessor):
    """Counts spans started and ended, and keeps none (a processor keeping spans would be the
    leak)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = 0
        self.ended = 0

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        with self._lock:
            self.started += 1

    def on_end(self, span: Any) -> None:
        with self._lock:
            self.ended += 1


# -- instrument / uninstrument cycles ----------------------------------------------------------
def _botocore_state() -> dict[str, Any]:
    registry = coexist._registry()
    return {
        "contrib registries": [dict(r) for r in coexist._registries()],
        "_make_api_call": BaseClient.__dict__["_make_api_call"],
        "BaseClient attributes": sorted(BaseClient.__dict__),
        "contrib registry": dict(registry) if registry is not None else None,
        "active": patch.active,
        "pools": len(precount._pools),
        "exit handlers": len(streams._registered),
    }


def _exercise(client: Any) -> None:
    client.converse(**default_params("Converse"))
    client.invoke_model(**default_params("InvokeModel"))["body"].read()
    stream = client.converse_stream(**default_params("ConverseStream"))["stream"]
    for _ in stream:
        break
    del stream


OPTION_SETS: list[dict[str, Any]] = [
    {}, {"precount": "blocking"}, {"precount": "background"}, {"replace_contrib": False},
    {"capture_content": True, "parse_response_body": False},
]


def test_instrument_cycles_restore_botocore_exactly(
    bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

    ours, contrib = BedrockTokensInstrumentor(), BotocoreInstrumentor()  # type: ignore[no-untyped-call]
    providers = {"tracer_provider": bedrock_telemetry.tracer_provider,
                 "meter_provider": bedrock_telemetry.meter_provider}
    ours.instrument(**providers)  # once-per-process registrations (the exit handler) happen here
    ours.uninstrument()
    before = _botocore_state()
    cycles = 0
    for _ in range(5 if not SOAK else 50):
        for options in OPTION_SETS:
            ours.instrument(**providers, **options)
            _exercise(bedrock_client)
            ours.uninstrument()
            cycles += 1
            gc.collect()
            assert _botocore_state() == before, options
        # nested with contrib, last in first out: both restored
        contrib.instrument(**providers)
        ours.instrument(**providers)
        _exercise(bedrock_client)
        ours.uninstrument()
        contrib.uninstrument()
        # ours first, contrib on top: contrib's unwrap leaves ours, inert, in place (by design);
        # the next cycle of ours reactivates it rather than wrapping twice, and removes it
        ours.instrument(**providers)
        contrib.instrument(**providers)
        _exercise(bedrock_client)
        ours.uninstrument()
        contrib.uninstrument()
        assert patch.active is None
        ours.instrument(**providers)
        ours.uninstrument()
        cycles += 3
        gc.collect()
        assert _botocore_state() == before
    assert _wait(lambda: not _precount_threads())
    assert not streams._open
    figure("instrument/uninstrument cycles", (
        f"{cycles} cycles (5 option sets, nested with contrib botocore in both orders): "
        "BaseClient._make_api_call, the contrib registry entry, exit handlers and pools "
        "exactly as before"))


def test_a_dropped_client_is_collected_after_precounts(
    bedrock_emulator: Any, boto_session: Any, instrument: Any
) -> None:
    """Pre-counts run on the caller's client; once the caller drops the client, nothing of
    ours may keep it (and its connection pool) alive, in either mode."""
    import weakref

    for mode in ("blocking", "background"):
        instrument(precount=mode, precount_timeout=10.0)
        client = boto_session.client(
            "bedrock-runtime", config=Config(retries={"total_max_attempts": 1},
                                             signature_version="v4", proxies={}),
            **bedrock_emulator.client_kwargs())
        client.converse(**default_params("Converse"))
        patch.active.precounter.flush(30)  # type: ignore[union-attr]
        ref = weakref.ref(client)
        client.close()
        del client
        gc.collect()
        assert ref() is None, f"{mode}: the client outlived its last use"
