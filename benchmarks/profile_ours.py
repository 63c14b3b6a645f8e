"""What our per-call and per-event work costs, stage by stage, next to the floor's primitives.

    python benchmarks/profile_ours.py                 # stage timings (CPU µs, best of 7)
    python benchmarks/profile_ours.py --cprofile invoke_headers   # + cProfile, our frames
    python benchmarks/profile_ours.py --sampled-out   # the same with the ALWAYS_OFF sampler

Run it with the benchmark venv's interpreter (``benchmarks/.venv-peers/bin/python``) or any
venv with the package and the SDK. Stages are timed in isolation on real objects: the handler
``instrument()`` installed, request params as the workloads send them, and response dicts that
botocore really parsed from the canned responses. Internal names (``Handler.describe``,
``_start``, ``_finish``, ``_StreamState.observe``) are used on purpose: this is a profiling
tool for this package's maintainers and says so when a name has moved.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import io
import os
import pstats
import sys
import time
from typing import Any, Callable, Optional

import configs

os.environ.update(configs.CONTENT_OFF_ENV)

import boto3
import canned
from botocore.client import BaseClient
from botocore.response import StreamingBody
from opentelemetry.trace import SpanKind

from opentelemetry import context, trace


def cpu_us(fn: Callable[[], Any], loops: int = 2000, repeat: int = 7) -> float:
    """Best of ``repeat`` CPU-time means over ``loops`` calls, in µs."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.process_time()
        for _ in range(loops):
            fn()
        best = min(best, (time.process_time() - t0) / loops)
    return best * 1e6


class Bench:
    def __init__(self, sampled_out: bool = False) -> None:
        self.p = configs.providers(sampled_out)
        configs.apply("ours", self.p)
        from opentelemetry.instrumentation.bedrock_tokens import patch

        self.patch = patch
        handler = patch.active
        assert handler is not None, "instrument() did not install a handler"
        self.handler = handler
        self.original = BaseClient._make_api_call.__wrapped__

    def client(self, workload: canned.Workload) -> Any:
        client = boto3.session.Session().client(workload.service, region_name=canned.REGION)
        canned.install(client, workload.operation, canned.responder_for(workload))
        return client

    def clear(self) -> None:
        self.p.exporter.clear()

    def rows(self, key: str) -> list[tuple[str, float]]:
        """Stage timings for one non-streamed workload."""
        w = {x.key: x for x in canned.NON_STREAMED}[key]
        client = self.client(w)
        params: dict[str, Any]
        if w.operation == "InvokeModel":
            params = {"modelId": canned.MODEL_ID, "body": canned.invoke_request_body()}
        elif w.operation == "Converse":
            params = dict(canned._CONVERSE_REQUEST)
        else:
            params = {"modelId": canned.MODEL_ID,
                      "input": {"invokeModel": {"body": canned.invoke_request_body()}}}
        h, spec = self.handler, self.patch.OPERATIONS[w.operation]
        result = self.original(client, w.operation, params)
        body = result.get("body")
        data = body.read() if hasattr(body, "read") else None

        def fresh() -> dict[str, Any]:
            copy = dict(result)
            if data is not None:
                copy["body"] = StreamingBody(io.BytesIO(data), len(data))
            return copy

        from opentelemetry.instrumentation.bedrock_tokens import streams

        request = h.describe(w.operation, spec, client, params)
        out: list[tuple[str, float]] = []
        t_fresh = cpu_us(fresh)
        call = canned.make_call(client, w)
        out.append(("whole call, uninstrumented (original _make_api_call + user read)",
                    cpu_us(lambda: self.original(client, w.operation, params), 300)))
        def whole() -> None:
            call()
            self.clear()

        out.append(("whole call, ours", cpu_us(whole, 300)))
        out.append(("describe (request → attributes)",
                    cpu_us(lambda: h.describe(w.operation, spec, client, params))))

        def start_end() -> None:
            h._start(request, None).end()
            self.clear()

        t_start_end = cpu_us(start_end)
        out.append(("_start + bare end (span with start attributes, duration point)",
                    t_start_end))

        def start_settle() -> None:
            record = h._start(request, None)
            response = fresh()
            pending = h.settle(request, record, response, streams.StreamProxy)
            if pending is not None:  # the driver's body read, as Handler.call does it
                h.settle_body(request, record, pending, self.patch.take_body(response))
            self.clear()

        t_start_settle = cpu_us(start_settle) - t_fresh
        out.append(("_start + settle (+ body) + end (all the telemetry of one call)",
                    t_start_settle))
        out.append(("  of which settle (+ body) beyond a bare end", t_start_settle - t_start_end))
        token = None

        def attach_detach() -> None:
            nonlocal token
            token = context.attach(trace.set_span_in_context(trace.INVALID_SPAN))
            context.detach(token)

        out.append(("context attach + detach", cpu_us(attach_detach)))
        return out

    def primitives(self) -> list[tuple[str, float]]:
        tracer = self.p.tracer_provider.get_tracer("profile")
        meter = self.p.meter_provider.get_meter("profile")
        hist = meter.create_histogram("profile.h")
        attrs: dict[str, Any] = {"a.b": "x", "c.d": "y", "e.f": 1}
        eight = {f"attr.{i}": i for i in range(8)}

        def span() -> None:
            tracer.start_span("chat m", kind=SpanKind.CLIENT).end()
            self.clear()

        def span8() -> None:
            tracer.start_span("chat m", kind=SpanKind.CLIENT, attributes=eight).end()
            self.clear()

        def span_set8() -> None:
            s = tracer.start_span("chat m", kind=SpanKind.CLIENT)
            for k, v in eight.items():
                s.set_attribute(k, v)
            s.end()
            self.clear()

        def span_setmany8() -> None:
            s = tracer.start_span("chat m", kind=SpanKind.CLIENT)
            s.set_attributes(eight)
            s.end()
            self.clear()

        return [
            ("floor primitive: start_span + end (no attributes, exported)", cpu_us(span)),
            ("  + 8 attributes at start", cpu_us(span8) - cpu_us(span)),
            ("  + 8 set_attribute calls", cpu_us(span_set8) - cpu_us(span)),
            ("  + one set_attributes of 8", cpu_us(span_setmany8) - cpu_us(span)),
            ("floor primitive: one histogram point (cached attributes)",
             cpu_us(lambda: hist.record(1, attrs))),
        ]

    def per_event(self) -> list[tuple[str, float]]:
        from opentelemetry.instrumentation.bedrock_tokens import streams

        out = []
        for op, kind in (("InvokeModelWithResponseStream", "invoke"), ("ConverseStream",
                                                                        "converse")):
            w = canned.stream_workload(op, canned.SHORT_EVENTS[op])
            client = self.client(w)
            params = ({"modelId": canned.MODEL_ID, "body": canned.invoke_request_body()}
                      if kind == "invoke" else dict(canned._CONVERSE_REQUEST))
            events = list(self.original(client, op, params)["body" if kind == "invoke"
                                                               else "stream"])
            delta = events[10]
            request = self.handler.describe(op, self.patch.OPERATIONS[op], client, params)
            record = self.handler._start(request, None)
            state = streams._StreamState(record, kind, request.family, None)
            state.observe(events[0])
            observe = functools.partial(state.observe, delta)
            out.append((f"{op}: observe(delta event)", cpu_us(observe, 20000)))
            many = [delta] * 1000

            def through_proxy(many: list[Any] = many, state: Any = state) -> None:
                proxy = streams.StreamProxy(iter(many), state)
                for _ in streams._iterate(proxy):
                    pass

            def plain(many: list[Any] = many) -> None:
                for _ in iter(many):
                    pass

            out.append((f"{op}: proxy iteration per event, incl. observe",
                        (cpu_us(through_proxy, 50) - cpu_us(plain, 50)) / 1000))
            record.end()
            self.clear()
            out += self._stream_fixed(op, kind, request, events)
        return out


    def _stream_fixed(self, op: str, kind: str, request: Any, events: list[Any]
                      ) -> list[tuple[str, float]]:
        """Per-call stream work: wrapping (state, proxy, finalizer) and the end (summary of
        the kept events, record end with the time-to-first-chunk point)."""
        from opentelemetry.instrumentation.bedrock_tokens import streams

        h, key = self.handler, ("body" if kind == "invoke" else "stream")

        def bare() -> None:
            h._start(request, None).end()
            self.clear()

        def wrapped() -> None:
            record = h._start(request, None)
            result: dict[str, Any] = {key: iter(())}
            streams.wrap_stream(result, key, record, kind, request.family, None)
            result[key]._self_state.close()
            self.clear()

        def observed_end() -> None:
            state = streams._StreamState(h._start(request, None), kind, request.family, None)
            for event in events:
                state.observe(event)
            state.complete()
            self.clear()

        def observed_only() -> None:
            state = streams._StreamState(h._start(request, None), kind, request.family, None)
            for event in events:
                state.observe(event)
            state.record.end()
            streams._open.discard(state)  # what _end does, without the summary
            self.clear()

        t_bare = cpu_us(bare)
        return [
            (f"{op}: wrap (state, proxy, finalizer), beyond a bare start+end",
             cpu_us(wrapped) - t_bare),
            (f"{op}: end of a {len(events)}-event stream (summary + usage + TTFC point), "
             "beyond a bare end", cpu_us(observed_end) - cpu_us(observed_only)),
        ]


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cprofile", metavar="WORKLOAD", help="also cProfile this workload")
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--sampled-out", action="store_true",
                    help="tracer provider with the ALWAYS_OFF sampler (metrics still recorded)")
    args = ap.parse_args(argv)
    b = Bench(args.sampled_out)
    for name, value in b.primitives():
        print(f"{value:8.1f} µs  {name}")
    for key in ("invoke_headers", "invoke_body", "converse", "count_tokens"):
        print(f"\n[{key}]")
        for name, value in b.rows(key):
            print(f"{value:8.1f} µs  {name}")
    print("\n[streams, per event]")
    for name, value in b.per_event():
        print(f"{value:8.2f} µs  {name}")
    if args.cprofile:
        all_workloads = {w.key: w for w in canned.NON_STREAMED}
        if args.cprofile in all_workloads:
            w = all_workloads[args.cprofile]
        else:
            prefix, events = args.cprofile.split("@")
            op = canned.STREAM_OPERATIONS[0 if prefix == "invoke_stream" else 1]
            w = canned.stream_workload(op, int(events))
        call = canned.make_call(b.client(w), w)
        for _ in range(100):
            call()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.calls):
            call()
        prof.disable()
        stats = pstats.Stats(prof).sort_stats("tottime")
        print(f"\n[cProfile {args.cprofile}, {args.calls} calls, our frames by own time]")
        stats.print_stats("bedrock_tokens", 25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
