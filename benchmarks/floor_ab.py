"""Ours against the floor, sampled in and out, interleaved in one process (issue 16's ratios).

    benchmarks/.venv-peers/bin/python benchmarks/floor_ab.py converse --rounds 100

``run.py`` runs each configuration in its own process, which is what the report needs (no
configuration can leave state behind for another), but on a shared 2-core VM the processes
move by tens of percent against each other. Here both wrappers are installed once in one
process and switched on and off between blocks of calls (the floor by its module global, ours
by the handler its wrapper calls), so every mode runs on the same client, the
same canned responses and the same interpreter state; the order reverses every round. The
cost a disabled wrapper adds (one call and one check each) is in every mode, the baseline
included, so it cancels. Workloads: any ``canned.NON_STREAMED`` key, or ``invoke_stream`` /
``converse_stream`` (the short streams of ``canned.SHORT_EVENTS``).

Prints, per mode, the median per-call CPU time (thread clock) and the paired added cost (the
median over rounds of the mode's block minus the baseline's block of the same round), and the
ratios ours / floor, sampled in and out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import configs  # noqa: E402  (benchmarks/ is on the path now)

os.environ.update(configs.CONTENT_OFF_ENV)  # no credentials looked up, content off



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workload")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--block", type=int, default=50)
    args = parser.parse_args()

    import worker
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    import floor
    from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor, patch

    exporter = InMemorySpanExporter()
    sampled_in = TracerProvider()
    sampled_out = TracerProvider(sampler=ALWAYS_OFF)
    for provider in (sampled_in, sampled_out):
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    (workload,) = worker.workloads([args.workload])

    floor.instrument(sampled_in, meter_provider)  # installs the floor's wrapper
    floors = {True: floor._floor, False: floor._Floor(sampled_out, meter_provider)}
    floor._floor = None  # disabled: a pass-through
    # Ours: one handler per tracer provider, made by instrument(); ours stays installed and
    # the handler in patch.active is switched (None makes the wrapper a pass-through, as
    # after an uninstrument() that cannot unwrap), so no mode pays for a new handler's cold
    # caches at the start of its block.
    instrumentor = BedrockTokensInstrumentor()
    handlers = {}
    for sampled, provider in ((False, sampled_out), (True, sampled_in)):
        instrumentor.instrument(tracer_provider=provider, meter_provider=meter_provider)
        handlers[sampled] = patch.active
        if not sampled:
            instrumentor.uninstrument()
    patch.active = None

    def on(mode: str) -> None:
        who, sampled = mode.split("-")[0], not mode.endswith("-out")
        if who == "floor":
            floor._floor = floors[sampled]
        elif who == "ours":
            patch.active = handlers[sampled]

    def off(mode: str) -> None:
        floor._floor = None
        patch.active = None
        exporter.clear()

    modes = ["baseline", "floor", "ours", "floor-out", "ours-out"]
    call: Callable[[], Any] = worker.in_process_call(workload)
    for mode in modes:  # warm every path
        on(mode)
        for _ in range(args.block):
            call()
        off(mode)
    per_call: dict[str, list[float]] = {mode: [] for mode in modes}
    for round_ in range(args.rounds):
        for mode in modes if round_ % 2 == 0 else modes[::-1]:
            on(mode)
            started = time.thread_time()
            for _ in range(args.block):
                call()
            per_call[mode].append((time.thread_time() - started) / args.block * 1e6)
            off(mode)
    base = per_call["baseline"]
    added: dict[str, float] = {}
    print(f"{args.workload}: {args.rounds} rounds of {args.block} calls per mode")
    for mode, values in per_call.items():
        line = f"  {mode:<10} median {statistics.median(values):7.0f} µs"
        if mode != "baseline":
            added[mode] = statistics.median(v - b for v, b in zip(values, base))
            line += f"  added (paired) {added[mode]:+7.1f} µs"
        print(line)
    for label, suffix in (("sampled in", ""), ("sampled out", "-out")):
        ours, floor_ = added["ours" + suffix], added["floor" + suffix]
        ratio = f"{ours / floor_:.2f}x" if floor_ > 5 else "n/a (floor within noise of zero)"
        print(f"  ours / floor, {label}: {ratio} (target 1.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
