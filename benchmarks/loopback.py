"""Workloads over HTTP on 127.0.0.1 against the project's Bedrock emulator.

The emulator runs in its own process (``python benchmarks/loopback.py serve``, started once
per benchmark run by ``run.py``), so its encoding and socket work happen off the measured
interpreter. Each request carries the emulator's scenario header, set per operation by a
``before-sign`` handler on the client (stream lengths, missing token headers, delays).

Pre-count workloads: the invocation's first byte is delayed by ``INVOKE_DELAY`` and every
CountTokens by the configured pre-count delay, so a blocking pre-count shows up as one
CountTokens round trip and a background one should show up as (almost) nothing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

import canned

INVOKE_DELAY = 0.020  # pre-count workloads: the invocation's own latency, seconds


@dataclass(frozen=True)
class LoopWorkload:
    key: str
    title: str
    operation: str
    deltas: int = 0  # stream content events (the emulator adds its framing events)
    scenario: tuple[tuple[str, Any], ...] = ()
    precount: bool = False  # CountTokens calls get the pre-count delay
    probe: bool = True


WORKLOADS: tuple[LoopWorkload, ...] = (
    LoopWorkload("lb_invoke_headers", "InvokeModel, token headers", "InvokeModel"),
    LoopWorkload("lb_invoke_body", "InvokeModel, counts from the body", "InvokeModel",
                 scenario=(("omit_token_headers", True),)),
    LoopWorkload("lb_converse", "Converse", "Converse"),
    LoopWorkload("lb_count_tokens", "CountTokens", "CountTokens"),
    LoopWorkload("lb_invoke_stream@16", "InvokeModel stream, 16 deltas",
                 "InvokeModelWithResponseStream", 16),
    LoopWorkload("lb_invoke_stream@1000", "InvokeModel stream, 1,000 deltas",
                 "InvokeModelWithResponseStream", 1000, probe=False),
    LoopWorkload("lb_converse_stream@20", "ConverseStream, 20 deltas", "ConverseStream", 20),
    LoopWorkload("lb_converse_stream@1000", "ConverseStream, 1,000 deltas", "ConverseStream",
                 1000, probe=False),
    # Pre-count: a slow CountTokens next to a slower invocation.
    LoopWorkload("lb_precount_invoke", "InvokeModel (20 ms) with pre-count", "InvokeModel",
                 scenario=(("first_byte_delay", INVOKE_DELAY),), precount=True),
    LoopWorkload("lb_precount_count_tokens", "CountTokens round trip (pre-count delay)",
                 "CountTokens", precount=True, probe=False),
)
BY_KEY = {w.key: w for w in WORKLOADS}


def workloads(keys: Sequence[str]) -> list[LoopWorkload]:
    return [BY_KEY[k] for k in keys]


def _scenario_header(fields: dict[str, Any]) -> Optional[str]:
    from opentelemetry.instrumentation.bedrock_tokens.emulator import Scenario

    return Scenario.from_mapping(fields).to_json() if fields else None


def make_call(client: Any, workload: LoopWorkload, precount_delay: float) -> Callable[[], None]:
    from opentelemetry.instrumentation.bedrock_tokens.emulator import SCENARIO_HEADER

    fields = dict(workload.scenario)
    if workload.deltas:
        fields["stream_events"] = workload.deltas
    per_operation = {workload.operation: _scenario_header(fields)}
    if workload.precount and precount_delay > 0:
        count = {"count_tokens_delay": precount_delay}
        if workload.operation == "CountTokens":
            count.update(fields)
        per_operation["CountTokens"] = _scenario_header(count)

    def add_scenario(request: Any, operation_name: Optional[str] = None, **_: Any) -> None:
        header = per_operation.get(operation_name or "")
        if header is not None:
            request.headers[SCENARIO_HEADER] = header

    client.meta.events.register("before-sign.bedrock-runtime", add_scenario)
    shape = canned.Workload(workload.key, workload.title, workload.operation,
                            events=max(workload.deltas, 0))
    if workload.operation in canned.STREAM_OPERATIONS and not workload.deltas:
        raise ValueError("stream workloads need a length")
    return canned.make_call(client, shape)


def serve() -> None:
    """Run the emulator until stdin closes; print its URL first (read by run.py)."""
    from opentelemetry.instrumentation.bedrock_tokens.emulator import BedrockEmulator

    emulator = BedrockEmulator(max_recorded_requests=1, scenario_headers=True).start()
    print(json.dumps({"endpoint": emulator.endpoint_url}), flush=True)
    try:
        sys.stdin.read()
    finally:
        emulator.stop()


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    else:
        sys.exit("usage: loopback.py serve")
