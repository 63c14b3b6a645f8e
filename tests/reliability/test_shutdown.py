"""Interpreter shutdown with streams open (one half-read, one never read, one being iterated by
a daemon thread) and background pre-counts stuck on the network: the process exits promptly
(it never waits for a pre-count), and what can be flushed is: every invocation's span, the open
streams ended as abandoned, and the metrics, all exported by the SDK's own shutdown. The
pre-count spans still in flight are lost, as docs/precount.md says."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from opentelemetry.instrumentation.bedrock_tokens import names
from opentelemetry.instrumentation.bedrock_tokens.emulator import BedrockEmulator, Scenario

from .support import CLAUDE, JSONL_EXPORTERS, figure

SLOW_STREAM_MODEL = "amazon.nova-micro-v1:0"
# Far longer than the subprocess may take: a process waiting for these never exits in time.
STUCK = 300.0
EXIT_BOUND = 60.0  # a hang detector, not a performance figure

APP = r'''
import json, sys, threading
from opentelemetry.sdk.trace.export import BatchSpanProcessor

endpoint, out_path, claude, slow_model = sys.argv[1:5]
''' + JSONL_EXPORTERS + r'''
instrument(BatchSpanProcessor(Spans(), schedule_delay_millis=600_000), precount="background")
client = emulator_client(endpoint)
messages = [{"role": "user", "content": [{"text": "Shut down with this in flight."}]}]

client.converse(modelId=claude, messages=messages)                      # finished
for _ in client.converse_stream(modelId=claude, messages=messages)["stream"]:
    pass                                                               # finished
HALF = client.converse_stream(modelId=claude, messages=messages)["stream"]
next(iter(HALF))                                                       # open, half-read
UNREAD = client.converse_stream(modelId=claude, messages=messages)    # open, never read
started = threading.Event()

def iterate_slowly():
    stream = client.converse_stream(modelId=slow_model, messages=messages)["stream"]
    for _ in stream:
        started.set()                                                  # open, being iterated

threading.Thread(target=iterate_slowly, daemon=True).start()
started.wait(30)
from opentelemetry.instrumentation.bedrock_tokens import patch
pool = patch.active.precounter._pool
print(json.dumps({"precounts in flight": pool._busy}), flush=True)
'''


def _run(tmp_path: Path, emulator: BedrockEmulator) -> tuple[subprocess.CompletedProcess[str],
                                                               float, list[dict[str, Any]]]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    out = tmp_path / "exported.jsonl"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(app), emulator.endpoint_url, str(out), CLAUDE, SLOW_STREAM_MODEL],
        capture_output=True, text=True, timeout=EXIT_BOUND, check=False,
    )
    elapsed = time.perf_counter() - started
    lines = out.read_text().splitlines() if out.exists() else []
    return done, elapsed, [json.loads(line) for line in lines]


def test_exit_with_open_streams_and_stuck_precounts(tmp_path: Path) -> None:
    with BedrockEmulator() as emulator:
        # every pre-count of the Claude calls hangs; the slow stream sends an event per second
        emulator.set_scenario(Scenario(count_tokens_delay=STUCK), model_id=CLAUDE)
        emulator.set_scenario(Scenario(chunk_delay=1.0, operations=("ConverseStream",),
                                       count_tokens_delay=STUCK), model_id=SLOW_STREAM_MODEL)
        done, elapsed, exported = _run(tmp_path, emulator)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    in_flight = json.loads(done.stdout)["precounts in flight"]
    assert in_flight == 5, done.stdout  # one per call, none finished: all stuck at exit

    spans = [e for e in exported if "span" in e]
    outcomes = sorted(
        (s["span"].split()[0], s["attributes"].get(names.AWS_BEDROCK_STREAM_OUTCOME, "-"))
        for s in spans)
    assert outcomes == [("chat", "-"), ("chat", "abandoned"), ("chat", "abandoned"),
                        ("chat", "abandoned"), ("chat", "completed")], outcomes
    abandoned = [s for s in spans
                 if s["attributes"].get(names.AWS_BEDROCK_STREAM_OUTCOME) == "abandoned"]
    first_chunk = names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
    assert sorted(first_chunk in s["attributes"] for s in abandoned) == [False, True, True]

    # metrics flushed at exit: one duration per call, token sums equal to the spans'
    metrics = [e for e in exported if "metric" in e]
    durations = [m for m in metrics if m["metric"] == names.METRIC_OPERATION_DURATION]
    assert sum(m["count"] for m in durations) == len(spans)
    for kind, key in (("input", names.GEN_AI_USAGE_INPUT_TOKENS),
                      ("output", names.GEN_AI_USAGE_OUTPUT_TOKENS)):
        recorded = [m for m in metrics if m["metric"] == names.METRIC_TOKEN_USAGE
                    and m["attributes"].get(names.GEN_AI_TOKEN_TYPE) == kind]
        on_spans = [s["attributes"][key] for s in spans if key in s["attributes"]]
        assert sum(m["count"] for m in recorded) == len(on_spans)
        assert sum(m["sum"] for m in recorded) == sum(on_spans)
    figure("interpreter shutdown", (
        f"3 streams open (half-read, unread, being iterated) and {in_flight} pre-counts stuck "
        f"for {STUCK:.0f} s: exit status 0 after {elapsed:.1f} s (process start included), "
        f"{len(spans)} spans and the metrics exported, the open streams as abandoned"))
