"""Cost and attribution on versus off, interleaved in one process (issue 18's 10% budget).

    benchmarks/.venv-peers/bin/python benchmarks/cost_ab.py converse --rounds 50

``cost_overhead.py`` runs each configuration in its own process; on a shared 2-core VM the
processes' spread is larger than the difference being measured. Here one process holds three
clients (uninstrumented, ours, ours with ``configs.COST_OPTIONS``) on the same canned
responses and alternates them in blocks of ``--block`` calls, instrumenting before each
instrumented block and uninstrumenting after it (outside the timing), in an order that reverses
every round, so drift hits all three alike. Timed with the thread's CPU clock. Prints the
median, min and max per-call time of each, and the ratio of the added costs (cost on / off),
on medians, on minima, and paired (per-round differences; the least noisy).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import configs  # noqa: E402  (benchmarks/ is on the path now)

os.environ.update(configs.CONTENT_OFF_ENV)  # no credentials looked up, content off


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workload", help="a non-streamed workload key (canned.NON_STREAMED)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--block", type=int, default=200)
    args = parser.parse_args()

    import worker

    from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor

    providers = configs.providers()
    exporter = providers.exporter
    tracer_provider, meter_provider = providers.tracer_provider, providers.meter_provider
    (workload,) = worker.workloads([args.workload])
    instrumentor = BedrockTokensInstrumentor()
    modes: dict[str, Optional[dict[str, Any]]] = {
        "uninstrumented": None, "ours": {}, "ours+cost": dict(configs.COST_OPTIONS),
    }

    def instrumented(options: Optional[dict[str, Any]]) -> None:
        if options is not None:
            instrumentor.instrument(
                tracer_provider=tracer_provider, meter_provider=meter_provider, **options)

    def done(options: Optional[dict[str, Any]]) -> None:
        if options is not None:
            instrumentor.uninstrument()
        exporter.clear()

    calls: dict[str, Callable[[], Any]] = {}
    for name, options in modes.items():  # each client made while its mode is active
        instrumented(options)
        calls[name] = worker.in_process_call(workload)
        for _ in range(args.block):
            calls[name]()
        done(options)
    per_call: dict[str, list[float]] = {name: [] for name in modes}
    order = list(modes.items())
    for round_ in range(args.rounds):
        for name, options in order if round_ % 2 == 0 else order[::-1]:
            instrumented(options)
            started = time.thread_time()
            for _ in range(args.block):
                calls[name]()
            per_call[name].append((time.thread_time() - started) / args.block * 1e6)
            done(options)
    for name, values in per_call.items():
        print(f"{name:<16} median {statistics.median(values):7.0f} µs  "
              f"min {min(values):7.0f}  max {max(values):7.0f}  ({len(values)} blocks)")
    # Paired: the three blocks of one round ran back to back, so their differences cancel
    # most of the drift that moves whole rounds; the median of those differences is the
    # least noisy of the three estimates here.
    plain, ours_, cost_ = (per_call[n] for n in modes)
    added = statistics.median(o - p for o, p in zip(ours_, plain))
    extra = statistics.median(c - o for c, o in zip(cost_, ours_))
    print(f"paired (median of per-round differences): ours +{added:.0f} µs, cost adds "
          f"+{extra:.1f} µs more, ratio {(added + extra) / added:.3f} (budget 1.10)")
    for label, pick in (("medians", statistics.median), ("minima", min)):
        base = pick(per_call["uninstrumented"])
        ours, cost = pick(per_call["ours"]) - base, pick(per_call["ours+cost"]) - base
        print(f"added on {label}: ours +{ours:.0f} µs, ours+cost +{cost:.0f} µs, "
              f"ratio {cost / ours:.3f} (budget 1.10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
