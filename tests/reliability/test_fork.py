"""``os.fork()`` with a stream open and pre-counts pending: the child forgets the parent's
calls. It never ends (so never exports) the parent's stream span, at its exit or when it drops
the inherited stream, never records the parent's metrics, and its own calls pre-count on a
pool of its own. The parent's stream ends once, in the parent, as what the parent did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from opentelemetry.instrumentation.bedrock_tokens import names
from opentelemetry.instrumentation.bedrock_tokens.emulator import BedrockEmulator, Scenario

from .support import CLAUDE, JSONL_EXPORTERS, figure

CHILD_MODEL = "amazon.nova-micro-v1:0"

APP = r'''
import gc, os, sys
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.instrumentation.bedrock_tokens import patch

endpoint, out_path, parent_model, child_model, how = sys.argv[1:6]
''' + JSONL_EXPORTERS + r'''
instrument(SimpleSpanProcessor(Spans()), precount="background")
client = emulator_client(endpoint)
messages = [{"role": "user", "content": [{"text": "Fork with this open."}]}]
stream = client.converse_stream(modelId=parent_model, messages=messages)["stream"]
events = iter(stream)
next(events)                      # open, half-read; its pre-count is still pending (slow)

pid = os.fork()
if pid == 0:                      # the child: its own call, then it drops what it inherited
    client = emulator_client(endpoint)
    client.converse(modelId=child_model, messages=messages)
    assert patch.active.precounter.flush(20)
    if how == "drop":
        del stream, events
        gc.collect()
    sys.exit(0)                   # exit handlers run: ours, then the SDK's shutdown
_, status = os.waitpid(pid, 0)
write({"child exit status": os.waitstatus_to_exitcode(status)})
for _ in events:                  # the parent finishes its stream
    pass
'''


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
@pytest.mark.parametrize("how", ["exit", "drop"])
def test_forked_child_never_ends_the_parents_stream(how: str, tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    out = tmp_path / "exported.jsonl"
    with BedrockEmulator() as emulator:
        emulator.set_scenario(Scenario(count_tokens_delay=1.0), model_id=CLAUDE)
        done = subprocess.run(
            [sys.executable, str(app), emulator.endpoint_url, str(out), CLAUDE, CHILD_MODEL,
             how], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    records: list[dict[str, Any]] = [json.loads(line) for line in out.read_text().splitlines()]
    (status,) = [r for r in records if "child exit status" in r]
    assert status["child exit status"] == 0, done.stderr
    parent = status["pid"]
    spans = [r for r in records if "span" in r]
    child_spans = sorted(r["span"] for r in spans if r["pid"] != parent)
    stream_spans = [r for r in spans if r["span"] == f"chat {CLAUDE}"]
    figure(f"fork with a stream open (child {'exits' if how == 'exit' else 'drops it'})", (
        f"the parent's stream span exported {len(stream_spans)} time(s) "
        f"({', '.join(sorted(str(r['attributes'].get(names.AWS_BEDROCK_STREAM_OUTCOME)) + (' by the child' if r['pid'] != parent else '') for r in stream_spans))}); "  # noqa: E501
        f"child exported {child_spans}"))
    assert [(r["pid"], r["attributes"][names.AWS_BEDROCK_STREAM_OUTCOME])
            for r in stream_spans] == [(parent, names.STREAM_COMPLETED)]
    # the child's own call, and its own pre-count (a pool of its own): nothing else
    assert child_spans == [f"chat {CHILD_MODEL}", f"count_tokens {CHILD_MODEL}"]
    child_durations = [r for r in records if r.get("metric") == names.METRIC_OPERATION_DURATION
                       and r["pid"] != parent]
    assert sum(r["count"] for r in child_durations) == 1
