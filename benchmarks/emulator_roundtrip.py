"""Loopback round-trip time of each Bedrock Runtime operation against the emulator.

Not a test: run it by hand to see what one boto3 call against the local emulator costs, e.g.
to size test suites or to check that nothing (Nagle, connection reuse) regressed.

    python benchmarks/emulator_roundtrip.py [--iterations 200] [--warmup 20] [--in-process]

By default the emulator runs in a child process (``bedrock-tokens emulator --port 0``) so its
encoding does not compete with the client for the GIL; ``--in-process`` runs it in a thread of
this interpreter instead, as the pytest fixtures do. Each call is timed with ``perf_counter``
from the API call until the response (streams: the last event) has been consumed. No
instrumentation is installed.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

import boto3
from botocore.config import Config

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
NOVA = "amazon.nova-micro-v1:0"
PROMPT = "Write one short sentence about the sea."
# The figures in docs/emulator.md are for 9-word replies (the default reply is 64 words now).
SHORT_REPLY = '{"reply_words": 9}'
INVOKE_BODY = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": PROMPT}],
    }
).encode()
MESSAGES = [{"role": "user", "content": [{"text": PROMPT}]}]


def operations(client: Any) -> dict[str, Callable[[], Any]]:
    """One zero-argument callable per operation, consuming the whole response."""

    def invoke() -> Any:
        return client.invoke_model(modelId=CLAUDE, body=INVOKE_BODY)["body"].read()

    def invoke_stream() -> Any:  # 14 events: framing + 9 text deltas
        response = client.invoke_model_with_response_stream(modelId=CLAUDE, body=INVOKE_BODY)
        return sum(1 for _ in response["body"])

    def converse() -> Any:
        return client.converse(modelId=NOVA, messages=MESSAGES)

    def converse_stream() -> Any:  # 13 events
        return sum(1 for _ in client.converse_stream(modelId=NOVA, messages=MESSAGES)["stream"])

    def count_tokens() -> Any:
        return client.count_tokens(modelId=CLAUDE, input={"converse": {"messages": MESSAGES}})

    return {
        "InvokeModel": invoke,
        "InvokeModelWithResponseStream (14 events)": invoke_stream,
        "Converse": converse,
        "ConverseStream (13 events)": converse_stream,
        "CountTokens": count_tokens,
    }


@contextmanager
def emulator_endpoint(in_process: bool) -> Iterator[str]:
    if in_process:
        from opentelemetry.instrumentation.bedrock_tokens.emulator import BedrockEmulator, Scenario

        with BedrockEmulator(max_recorded_requests=1) as emulator:
            emulator.set_scenario(Scenario.from_json(SHORT_REPLY))
            yield emulator.endpoint_url
        return
    command = [
        sys.executable,
        "-m",
        "opentelemetry.instrumentation.bedrock_tokens.cli",
        "emulator",
        "--port",
        "0",
        "--scenario",
        SHORT_REPLY,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        match = re.search(r"listening on (\S+)", process.stdout.readline())
        if match is None:
            raise RuntimeError("the emulator did not start")
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(10)


def measure(call: Callable[[], Any], iterations: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000.0)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--in-process", action="store_true", help="emulator in this process")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    with emulator_endpoint(args.in_process) as endpoint:
        client = boto3.client(
            "bedrock-runtime",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="emulator",
            aws_secret_access_key="emulator",
            config=Config(retries={"total_max_attempts": 1}, signature_version="v4", proxies={}),
        )
        results = {
            name: measure(call, args.iterations, args.warmup)
            for name, call in operations(client).items()
        }

    summary = {
        name: {
            "median_ms": statistics.median(samples),
            "min_ms": min(samples),
            "max_ms": max(samples),
            "p95_ms": statistics.quantiles(samples, n=20)[-1],
            "n": len(samples),
        }
        for name, samples in results.items()
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    where = "in-process thread" if args.in_process else "child process"
    print(f"Loopback round trips against the emulator ({where}), {args.iterations} calls each")
    print(f"{'operation':<44} {'median':>8} {'p95':>8} {'min':>8} {'max':>8}  (ms)")
    for name, row in summary.items():
        print(
            f"{name:<44} {row['median_ms']:8.2f} {row['p95_ms']:8.2f} "
            f"{row['min_ms']:8.2f} {row['max_ms']:8.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
