"""What each pre-count mode adds to a Bedrock call's latency (a measurement, not a test).

The emulator runs in a child process, with every CountTokens answer delayed by ``--delay``
(20 ms by default, roughly a real CountTokens round trip in-region) and invocations answered
at once, so the figures isolate the pre-count's own cost. Running the emulator out of process
matters: in-process, its request handling would compete with the caller for the GIL and show
up as pre-count overhead that a real service does not cause.

Modes measured, interleaved round by round (in a rotating order) so machine noise and
position effects spread evenly across them:

* ``uninstrumented``   no instrumentation at all
* ``off``              instrumented, pre-counting off (the baseline the others are compared to)
* ``blocking``         count first (``--delay``), within a budget larger than the delay
* ``blocking/budget``  budget half the delay: the call waits the budget, then goes without
* ``background``       count on the worker pool, next to the call

With ``--invoke-delay 0`` (the default) the invocation is answered at once, which is the
worst case for background mode: the pre-count's own CPU work (botocore serialising and
signing a request, a fraction of a millisecond to a couple of milliseconds) then overlaps the
caller's and they share the GIL. With a realistic invocation time (``--invoke-delay 0.2``) that
work happens while the caller waits on the network, and background mode costs next to nothing.

Calls are paced (``--pause``, default twice the delay; the same in every mode, since an idle
pause itself changes a call's latency through cold caches and CPU clocks) because a real
invocation lasts far longer than a count: back to back, 2 workers cannot keep up with calls
that take a few milliseconds, and the queue drops pre-counts (reported) rather than slow
anyone down. ``--pause 0 --calls 150`` shows that saturated case.

    .venv/bin/python benchmarks/precount_latency.py [--delay 0.02] [--rounds 20] [--calls 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from typing import Any, Optional

import boto3
from botocore.config import Config
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor, names, patch
from opentelemetry.instrumentation.bedrock_tokens.precount import CountTokensPrecounter

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "How many tokens is this question, roughly?"}]}]

_EMULATOR = """
import sys
from opentelemetry.instrumentation.bedrock_tokens.emulator import BedrockEmulator, Scenario
emulator = BedrockEmulator().start()
emulator.set_scenario(
    Scenario(count_tokens_delay=float(sys.argv[1]), operations=("CountTokens",)))
emulator.set_scenario(  # per model, so it wins for Converse; CountTokens falls through
    Scenario(first_byte_delay=float(sys.argv[2]), operations=("Converse",)), sys.argv[3])
print(emulator.endpoint_url, flush=True)
sys.stdin.read()  # until the parent closes our stdin
emulator.stop()
"""


def start_emulator(delay: float, invoke_delay: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _EMULATOR, str(delay), str(invoke_delay), MODEL],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


class Mode:
    def __init__(self, name: str, options: Optional[dict[str, Any]], pause: float) -> None:
        self.name = name
        self.options = options  # None: not instrumented
        self.pause = pause
        self.latencies: list[float] = []


def dropped(reader: InMemoryMetricReader) -> int:
    data = reader.get_metrics_data()
    total = 0
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == names.METRIC_PRECOUNT_DROPPED:
                    total += int(sum(p.value for p in metric.data.data_points))
    return total


def run(args: argparse.Namespace) -> None:
    proc, endpoint = start_emulator(args.delay, args.invoke_delay)
    try:
        client = boto3.client(
            "bedrock-runtime", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="bench", aws_secret_access_key="bench",
            config=Config(retries={"total_max_attempts": 1}, proxies={}, signature_version="v4"),
        )
        pause = args.pause if args.pause is not None else 2 * args.delay
        modes = [
            Mode("uninstrumented", None, pause),
            Mode("off", {}, pause),
            Mode("blocking", {"precount": "blocking", "precount_timeout": 0.25}, pause),
            Mode("blocking/budget", {
                "precount": "blocking", "precount_timeout": args.delay / 2}, pause),
            Mode("background", {"precount": "background"}, pause),
        ]
        reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[reader])
        tracer_provider = TracerProvider()  # spans are built and ended, then discarded
        for _ in range(args.warmup):
            client.converse(modelId=MODEL, messages=MESSAGES)
        for round_index in range(args.rounds):
            shift = round_index % len(modes)  # rotate: no mode always follows the same one
            for mode in modes[shift:] + modes[:shift]:
                instrumentor = BedrockTokensInstrumentor()
                if mode.options is not None:
                    instrumentor.instrument(
                        tracer_provider=tracer_provider, meter_provider=meter_provider,
                        **mode.options,
                    )
                try:
                    for _ in range(args.calls):
                        started = time.perf_counter()
                        client.converse(modelId=MODEL, messages=MESSAGES)
                        mode.latencies.append(time.perf_counter() - started)
                        if mode.pause:
                            time.sleep(mode.pause)
                    handler = patch.active
                    if handler is not None and isinstance(
                        handler.precounter, CountTokensPrecounter
                    ):
                        handler.precounter.flush(10.0)  # no backlog into the next mode
                finally:
                    if mode.options is not None:
                        instrumentor.uninstrument()
        report(args, modes, dropped(reader))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)


def report(args: argparse.Namespace, modes: list[Mode], drops: int) -> None:
    ms = 1000.0
    base = statistics.median(next(m for m in modes if m.name == "off").latencies)
    print(
        f"Converse against the emulator: CountTokens delay {args.delay * ms:.0f} ms, "
        f"Converse delay {args.invoke_delay * ms:.0f} ms, "
        f"{args.rounds} rounds x {args.calls} calls per mode"
    )
    print(
        f"{'mode':<16} {'median':>8} {'min':>8} {'max':>8} {'p25-p75':>15} "
        f"{'added vs off':>13}   (ms)"
    )
    for mode in modes:
        median = statistics.median(mode.latencies)
        q1, _, q3 = statistics.quantiles(mode.latencies, n=4)
        print(
            f"{mode.name:<16} {median * ms:8.2f} {min(mode.latencies) * ms:8.2f} "
            f"{max(mode.latencies) * ms:8.2f} {q1 * ms:7.2f}-{q3 * ms:<7.2f} "
            f"{(median - base) * ms:+13.2f}"
        )
    print(f"background pre-counts dropped (queue full): {drops}")


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay", type=float, default=0.02, help="CountTokens delay, seconds")
    parser.add_argument(
        "--invoke-delay", type=float, default=0.0,
        help="Converse delay, seconds (a real invocation takes far longer than a count)",
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=10, help="calls per mode per round")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--pause", type=float, default=None,
        help="seconds between calls, every mode (default: twice the delay)",
    )
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
