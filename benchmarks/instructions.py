"""Instructions per call under valgrind: the one cost figure this machine cannot move.

    benchmarks/.venv-peers/bin/python benchmarks/instructions.py
    benchmarks/.venv-peers/bin/python benchmarks/instructions.py --workloads converse \
        --modes baseline,ours

CPU time on a shared 2-core VM moves by tens of percent from minute to minute (``run.py``
reports that spread); the number of instructions a call executes does not. Each (workload,
mode) runs in its own process under ``valgrind --tool=callgrind`` twice, with ``--warm`` + 0
and ``--warm`` + ``--calls`` calls; the difference of the two totals, divided by ``--calls``,
is what one call executes, start-up and imports cancelled (``PYTHONHASHSEED=0``). A run
repeated at once agrees to about 0.1%; runs of the same code on different occasions have
differed by up to 2% (the garbage collector runs at other points), so compare modes within
one run, and treat differences of a few percent between runs as noise.

Instructions are a proxy, not time: a cache miss or a lock costs more than its instructions.
They are the figure to optimise against between two ``run.py`` runs, not a replacement for it.

A mode ending in ``@sdk`` (``ours@sdk``, ``floor-out@sdk``, ``openllmetry@sdk``) runs instead
only the SDK work behind what one call of that mode emits (``sdk_child``): the span with its
final attributes, made current and ended, and each metric measurement, replayed on fresh
providers. That is what the telemetry itself costs, whoever emits it; the report subtracts it
from the mode's added cost to give what its own code adds.

Modes: ``baseline`` (nothing installed), ``floor`` (benchmarks/floor.py), ``ours``, ``ours+cost``
(``configs.COST_OPTIONS``), ``ours+nochunk`` (``chunk_timing=False``), and each with ``-out``
(the ALWAYS_OFF sampler). Workloads: any
``canned.NON_STREAMED`` key, ``invoke_stream`` and ``converse_stream`` (the short streams; any
key ``worker.workloads`` takes, ``invoke_stream@1000`` say).
Needs valgrind (``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

HERE = Path(__file__).resolve().parent
_ENV = {"PYTHONHASHSEED": "0"}  # the rest: configs.CONTENT_OFF_ENV, set by the child
DEFAULT_WORKLOADS = "invoke_headers,invoke_body,converse,invoke_stream,converse_stream"
DEFAULT_MODES = "baseline,floor,ours,floor-out,ours-out"
# Modes named apart from their configs.BY_NAME configuration
_CONFIGS = {"baseline": "uninstrumented", "ours+nochunk": "ours-no-chunk-timing"}


def _set_up(mode: str, key: str, recording: bool = False) -> tuple[Any, Callable[[], None], bool]:
    """Mode ``mode`` installed, and one call of workload ``key``: (providers, call, whether
    the mode is sampled out). A mode is a run.py configuration: the same set-up, the same
    options. ``recording``: a recording tracer provider even for a sampled-out mode."""
    sys.path.insert(0, str(HERE))
    import configs
    import worker

    who, sampled_out = mode.removesuffix("-out"), mode.endswith("-out")
    name = _CONFIGS.get(who, who)
    if name not in configs.BY_NAME:
        raise SystemExit(f"unknown mode {mode}")
    config = configs.BY_NAME[name]
    os.environ.update(configs.CONTENT_OFF_ENV)  # no credentials looked up, content off
    providers = configs.providers(sampled_out and not recording)
    config.apply(providers, dict(config.options))
    (workload,) = worker.workloads([key])
    return providers, worker.in_process_call(workload), sampled_out


def child(mode: str, key: str, calls: int) -> None:
    """Set up ``mode`` and make ``calls`` calls of workload ``key`` (run under valgrind)."""
    if mode.endswith(SDK_SUFFIX):
        return sdk_child(mode.removesuffix(SDK_SUFFIX), key, calls)
    providers, call, _ = _set_up(mode, key)
    for i in range(calls):
        call()
        if i % 50 == 0:
            providers.exporter.clear()


SDK_SUFFIX = "@sdk"


class _Point(NamedTuple):
    scope: str
    name: str
    attributes: dict[str, Any]
    count: int  # measurements of one call (histograms); sums: 1
    value: float
    histogram: bool


def _capture(mode: str, key: str) -> tuple[Any, list[_Point], bool]:
    """What one call of ``mode`` emits: its span (or None) and the SDK measurements behind
    its metric points (synchronous instruments only: an observable counter costs nothing per
    call). The second call is captured, after one warm-up call."""
    # the telemetry as a recording span would have it
    providers, call, sampled_out = _set_up(mode, key, recording=True)

    def points() -> dict[tuple[str, str, frozenset[Any]], Any]:
        found = {}
        data = providers.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        attrs = frozenset(dict(point.attributes).items())
                        found[(scope.scope.name, metric.name, attrs)] = point
        return found

    call()
    before = points()
    providers.exporter.clear()
    call()
    after = points()
    synchronous = {  # instrument names of synchronous counters (SDK internals, bench only)
        (meter._instrumentation_scope.name, instrument.name)
        for meter in providers.meter_provider._meters.values()
        for instrument in meter._instrument_id_instrument.values()
        if type(instrument).__name__ in ("_Counter", "_UpDownCounter", "Counter",
                                         "UpDownCounter")
    }
    measured: list[_Point] = []
    for (scope, name, attrs), point in after.items():
        old = before.get((scope, name, attrs))
        if hasattr(point, "bucket_counts"):
            count = point.count - (old.count if old is not None else 0)
            total = point.sum - (old.sum if old is not None else 0)
            if count:
                measured.append(_Point(scope, name, dict(attrs), count, total / count, True))
        elif (scope, name) in synchronous:
            value = point.value - (old.value if old is not None else 0)
            if value:
                measured.append(_Point(scope, name, dict(attrs), 1, value, False))
    spans = providers.exporter.get_finished_spans()
    return (spans[-1] if spans else None), measured, sampled_out


def sdk_child(mode: str, key: str, calls: int) -> None:
    """``calls`` times, only the SDK work behind what one call of ``mode`` emits: its span
    started with all of its final attributes and ended, made current meanwhile, and each of
    its metric measurements, on fresh providers like the benchmark's. A lower bound of what
    that telemetry costs through the SDK (attributes set after start cost more than at
    start), whoever emits it."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
    from opentelemetry.trace import SpanKind

    from opentelemetry import context, trace

    span, measured, sampled_out = _capture(mode, key)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=ALWAYS_OFF) if sampled_out else TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    tracer = tracer_provider.get_tracer("bench.sdk")
    steps: list[tuple[Callable[..., Any], float, dict[str, Any]]] = []
    for point in measured:
        meter = meter_provider.get_meter(point.scope)
        instrument = (meter.create_histogram if point.histogram else meter.create_counter)(
            point.name)
        steps.extend([(instrument.record if point.histogram else instrument.add,
                       point.value, point.attributes)] * point.count)
    name = span.name if span is not None else "chat"
    attributes = dict(span.attributes) if span is not None else {}
    for i in range(calls):
        current = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        token = context.attach(trace.set_span_in_context(current))
        context.detach(token)
        for record, value, attrs in steps:
            record(value, attrs)
        current.end()
        if i % 50 == 0:
            exporter.clear()


def _instructions(valgrind: str, mode: str, key: str, calls: int) -> Optional[int]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        done = subprocess.run(
            [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
             __file__, "--child", mode, key, str(calls)],
            env={**os.environ, **_ENV}, capture_output=True, text=True, check=False,
        )
        if done.returncode != 0 or not out.exists():
            sys.stderr.write(done.stderr[-2000:])
            return None
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default=DEFAULT_WORKLOADS)
    parser.add_argument("--modes", default=DEFAULT_MODES)
    parser.add_argument("--calls", type=int, default=100, help="calls counted per run")
    parser.add_argument("--warm", type=int, default=30, help="calls before the counted ones")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--child", nargs=3, metavar=("MODE", "WORKLOAD", "CALLS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    workloads = [w for w in args.workloads.split(",") if w]
    modes = [m for m in args.modes.split(",") if m]
    if "baseline" not in modes:
        modes.insert(0, "baseline")
    jobs = [(m, w, n) for w in workloads for m in modes for n in (args.warm,
                                                                  args.warm + args.calls)]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        totals = dict(zip(jobs, pool.map(lambda job: _instructions(valgrind, *job), jobs)))
    print(f"instructions per call (callgrind; {args.calls} calls after {args.warm}), "
          "added = minus baseline")
    for workload in workloads:
        per_call: dict[str, Optional[float]] = {}
        for mode in modes:
            low, high = totals[(mode, workload, args.warm)], totals[
                (mode, workload, args.warm + args.calls)]
            per_call[mode] = None if low is None or high is None else (high - low) / args.calls
        base = per_call["baseline"]
        print(f"{workload}:")
        added: dict[str, float] = {}
        sdk: dict[str, float] = {}
        for mode, value in per_call.items():
            if value is None:
                print(f"  {mode:<14} failed")
            elif mode.endswith(SDK_SUFFIX):  # no botocore call: all of it is telemetry
                sdk[mode.removesuffix(SDK_SUFFIX)] = value
            else:
                line = f"  {mode:<14} {value / 1000:9.1f} k"
                if mode != "baseline" and base is not None:
                    added[mode] = value - base
                    line += f"   added {added[mode] / 1000:8.1f} k"
                print(line)
        for who, value in sdk.items():
            line = f"  {who:<14} its telemetry through the SDK alone {value / 1000:8.1f} k"
            if who in added:
                line += f", the rest (its own code) {(added[who] - value) / 1000:8.1f} k"
            print(line)
        for name in ("ours", "ours+nochunk"):
            for suffix, label in (("", "sampled in"), ("-out", "sampled out")):
                ours, floor_ = added.get(name + suffix), added.get("floor" + suffix)
                if ours is not None and floor_:
                    print(f"  {name} / floor, {label}: {ours / floor_:.2f}x (target 1.2)")
        ours, cost = added.get("ours"), added.get("ours+cost")
        if ours and cost is not None:
            print(f"  ours+cost / ours: {cost / ours:.3f} (budget 1.10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
