"""One benchmark process: one configuration, one task, results as JSON on a file.

Started by ``run.py`` (never imported by it), always in a fresh interpreter so that nothing one
configuration patched can leak into another. Tasks:

``probe``     one call per workload; what the configuration recorded (spans, token counts,
              metric points), so a cheap result can be told apart from a missing one.
``calls``     timed in-process workloads (non-streamed calls and streams of several lengths;
              streams of 10,000 events and more run once, timed per 1,000 events).
``memory``    tracemalloc peak and RSS growth over one long stream per stream operation.
``loopback``  timed workloads against the emulator over HTTP on 127.0.0.1.

Timings go to a pyperf suite (``--suite``): one benchmark per workload, one run per process,
values in seconds per call. Everything else goes to ``--out``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any, Callable, Optional

import configs

os.environ.update(configs.CONTENT_OFF_ENV)

import boto3
import canned
import loopback
import pyperf

Call = Callable[[], None]
SEGMENTED = 10_000  # streams this long are timed once, per segment of SEGMENT events
SEGMENT = 1_000


def _client(service: str, **kwargs: Any) -> Any:
    # Created after instrument(): one peer patches clients only at creation.
    session = boto3.session.Session()
    return session.client(service, region_name=canned.REGION, **kwargs)


def in_process_call(workload: canned.Workload) -> Call:
    if workload.key.startswith(canned.AIO_PREFIX):
        return _aio_call(workload)
    client = _client(workload.service)
    canned.install(client, workload.operation, canned.responder_for(workload))
    return canned.make_call(client, workload)


_loop: Any = None


def _aio_call(workload: canned.Workload) -> Call:
    """An aiobotocore call, run to completion on this process's one event loop (the loop's
    own cost per call is the same in every configuration)."""
    import asyncio

    from aiobotocore.session import get_session

    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
    loop = _loop
    # Created after instrument(): one peer patches clients only at creation.
    context = get_session().create_client("bedrock-runtime", region_name=canned.REGION)
    client = loop.run_until_complete(context.__aenter__())
    canned.install(client, workload.operation, canned.aio_responder_for(workload))
    call = canned.make_aio_call(client, workload)
    return lambda: loop.run_until_complete(call())


# -- timing ---------------------------------------------------------------------------------------
# Two clocks per value: the process's CPU time (what the instrumentation costs; robust to other
# processes taking the CPU away on a shared machine) and wall time (what the caller waits; the
# one that matters over loopback, where the call waits on a socket).
Timing = tuple[float, float]  # (cpu, wall) seconds per call


def _timed(call: Call, loops: int) -> Timing:
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(loops):
        call()
    w1, c1 = time.perf_counter(), time.process_time()
    return (c1 - c0) / loops, (w1 - w0) / loops


def measure(
    call: Call, p: configs.Providers, *, values: int, target: float, clock: int,
    warmups: int = 1,
) -> tuple[list[Timing], int, list[Timing]]:
    """``values`` timings of ``loops`` calls each, per call; loops chosen so one value lasts
    about ``target`` seconds on ``clock`` (0 cpu, 1 wall). Finished spans are dropped between
    values, untimed."""
    call()  # first call: lazy imports, caches
    p.exporter.clear()
    one = min(_timed(call, 1)[clock], _timed(call, 1)[clock])
    loops = max(1, min(20_000, round(target / max(one, 1e-7))))
    warm = []
    for _ in range(warmups):
        warm.append(_timed(call, loops))
        p.exporter.clear()
    out = []
    for _ in range(values):
        gc.collect()
        out.append(_timed(call, loops))
        p.exporter.clear()
    return out, loops, warm


# -- probe ----------------------------------------------------------------------------------------
def _points(p: configs.Providers) -> dict[str, int]:
    """Data points recorded so far, per metric name (histogram counts, counter adds)."""
    found: dict[str, int] = {}
    data = p.reader.get_metrics_data()
    for rm in getattr(data, "resource_metrics", ()) or ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                total = 0
                for point in metric.data.data_points:
                    total += int(getattr(point, "count", 1))
                found[metric.name] = found.get(metric.name, 0) + total
    return found


def probe(call: Call, p: configs.Providers) -> dict[str, Any]:
    before = _points(p)
    p.exporter.clear()
    error = None
    try:
        call()
    except Exception as exc:  # a peer failing on a workload is a finding, not a crash
        error = f"{type(exc).__name__}: {exc}"
    gc.collect()
    spans = p.exporter.get_finished_spans()
    after = _points(p)
    tokens = [
        (s.attributes or {}).get("gen_ai.usage.input_tokens") for s in spans
    ]
    return {
        "spans": len(spans),
        "names": [s.name for s in spans],
        "input_tokens": [t for t in tokens if t is not None],
        "output_tokens": [
            v for s in spans
            if (v := (s.attributes or {}).get("gen_ai.usage.output_tokens")) is not None
        ],
        "points": {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)},
        "error": error,
    }


# -- memory ---------------------------------------------------------------------------------------
def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory(call: Call, warm: Call, p: configs.Providers) -> dict[str, float]:
    """RSS growth (current and peak) over one long stream, then its tracemalloc peak."""
    for _ in range(3):
        warm()
    p.exporter.clear()
    gc.collect()
    rss0 = _rss()
    peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    call()
    seconds = time.perf_counter() - t0
    gc.collect()
    rss1 = _rss()
    peak1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    p.exporter.clear()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    call()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return {
        "tracemalloc_peak": peak,
        "rss_growth": rss1 - rss0,
        "peak_rss_growth": max(0, peak1 - peak0),
        "seconds": seconds,
    }


# -- main -----------------------------------------------------------------------------------------
def workloads(keys: Sequence[str]) -> list[canned.Workload]:
    """Workloads by key: a ``canned.NON_STREAMED`` key, ``invoke_stream@N`` /
    ``converse_stream@N`` (a stream of N events; without ``@N``, the short stream of
    ``canned.SHORT_EVENTS``), each optionally with the aiobotocore prefix."""
    found = []
    by_key = {w.key: w for w in canned.NON_STREAMED}
    for key in keys:
        aio = key.startswith(canned.AIO_PREFIX)
        base = key[len(canned.AIO_PREFIX):] if aio else key
        if base in by_key:
            w = by_key[base]
        else:
            short, _, events = base.partition("@")
            op = ("InvokeModelWithResponseStream" if short == "invoke_stream" else "ConverseStream")
            w = canned.stream_workload(op, int(events) if events else canned.SHORT_EVENTS[op])
        if aio:
            w = canned.Workload(key, "aiobotocore " + w.title, w.operation, w.events)
        found.append(w)
    return found


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", required=True)
    ap.add_argument("--task", required=True, choices=("probe", "calls", "memory", "loopback"))
    ap.add_argument("--workloads", default="", help="comma-separated workload keys")
    ap.add_argument("--values", type=int, default=5)
    ap.add_argument("--target", type=float, default=0.1, help="seconds per value")
    ap.add_argument("--endpoint", default=None, help="emulator URL (loopback task)")
    ap.add_argument("--precount-delay", type=float, default=0.0)
    ap.add_argument("--suite", default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    p = configs.providers(configs.BY_NAME[args.config].sampled_out)
    configs.apply(args.config, p)
    keys = [k for k in args.workloads.split(",") if k]
    out: dict[str, Any] = {"config": args.config, "task": args.task, "pid": os.getpid()}
    runs: list[pyperf.Benchmark] = []
    metadata = pyperf.Run([1.0]).get_metadata()  # pyperf's own view of this machine, once

    def record(name: str, values: list[Timing], loops: int, warm: list[Timing]) -> None:
        """Two pyperf benchmarks per workload: ``name`` (CPU time) and ``name.wall``."""
        for clock, suffix in ((0, ""), (1, ".wall")):
            meta = dict(metadata, name=name + suffix, loops=loops, unit="second")
            run = pyperf.Run(
                [max(v[clock], 1e-9) for v in values],
                warmups=[(loops, w[clock]) for w in warm] or None,
                metadata=meta,
                collect_metadata=False,
            )
            runs.append(pyperf.Benchmark([run]))

    if args.task == "probe":
        out["probe"] = {w.key: probe(in_process_call(w), p) for w in workloads(keys)}
    elif args.task == "calls":
        for w in workloads(keys):
            call = in_process_call(w)
            if w.events >= SEGMENTED:  # one stream, timed per segment of events
                in_process_call(canned.stream_workload(w.operation, 100))()
                client = _client(w.service)
                canned.install(client, w.operation, canned.responder_for(w))
                segmented = canned.make_segmented_call(client, w, SEGMENT)
                gc.collect()
                c0, w0 = time.process_time(), time.perf_counter()
                marks = segmented()
                timings = [(time.process_time() - c0, time.perf_counter() - w0)]
                loops, warm = 1, list[Timing]()
                out.setdefault("segments", {})[w.key] = marks
                p.exporter.clear()
            else:
                timings, loops, warm = measure(
                    call, p, values=args.values, target=args.target, clock=0
                )
            record(w.key, timings, loops, warm)
    elif args.task == "memory":
        out["memory"] = {}
        for w in workloads(keys):
            short = canned.stream_workload(w.operation, 1000)
            out["memory"][w.key] = memory(in_process_call(w), in_process_call(short), p)
    else:
        assert args.endpoint is not None
        for lw in loopback.workloads(keys):
            client = _client("bedrock-runtime", endpoint_url=args.endpoint)
            call = loopback.make_call(client, lw, args.precount_delay)
            if lw.probe:
                out.setdefault("probe", {})[lw.key] = probe(call, p)
            timings, loops, warm = measure(
                call, p, values=args.values, target=args.target, clock=1
            )
            record(lw.key, timings, loops, warm)
    if args.suite and runs:
        pyperf.BenchmarkSuite(runs).dump(args.suite, replace=True)
    with open(args.out, "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
