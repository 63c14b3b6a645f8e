"""The compatibility suite's setup: the emulator, the environment a user's app would have, and
both instrumentations loaded the way ``opentelemetry-instrument`` loads them.

Run it with ``.ci/compat`` (its own virtualenv, the frameworks from
``tests/compat/requirements.txt``). The main suite never collects this directory
(``tests/conftest.py``); here the frameworks are imported unconditionally, so a missing or
broken framework is an error, never a skip.

Every flow ends with :func:`check_flow`: for each request the emulator answered during the flow
there must be exactly one span of ours, with the request id the service gave, the counts the
emulator reported, and (for streams) the ``completed`` outcome; no span of ours without a
request; and no contrib botocore span for those calls. The rows are printed as a table at the
end of the session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from opentelemetry.instrumentation.bedrock_tokens.emulator import BedrockEmulator

# The environment of an app under test: dummy credentials, a region, the emulator as the
# Bedrock Runtime endpoint (botocore's service-specific variable, which every framework's
# boto3 client honours), no exporters (spans are read from an in-memory exporter instead).
EMULATOR = BedrockEmulator().start()
for _name in ("AWS_BEARER_TOKEN_BEDROCK", "AWS_PROFILE", "AWS_SESSION_TOKEN", "HTTP_PROXY",
              "HTTPS_PROXY", "http_proxy", "https_proxy"):
    os.environ.pop(_name, None)
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "emulator",
        "AWS_SECRET_ACCESS_KEY": "emulator",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": EMULATOR.endpoint_url,
        "AWS_MAX_ATTEMPTS": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "bedrock-tokens-compat",
    }
)

# What `opentelemetry-instrument python app.py` does before the app runs: the distro's
# configurator sets the global providers, then every installed instrumentor is loaded
# (ours and contrib botocore among them).
from opentelemetry.instrumentation.auto_instrumentation import initialize  # noqa: E402

initialize()

from opentelemetry.instrumentation.botocore import BotocoreInstrumentor  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

from opentelemetry import trace  # noqa: E402
from opentelemetry.instrumentation.bedrock_tokens import (  # noqa: E402
    BedrockTokensInstrumentor,
    names,
)

_provider = trace.get_tracer_provider()
assert isinstance(_provider, TracerProvider), f"the distro set no SDK provider: {_provider!r}"
EXPORTER = InMemorySpanExporter()
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))

OUR_SCOPE = "opentelemetry.instrumentation.bedrock_tokens"
CONTRIB_SCOPE = "opentelemetry.instrumentation.botocore"
STREAMS = ("InvokeModelWithResponseStream", "ConverseStream")


@dataclass
class Row:
    flow: str
    calls: int
    operations: str
    input_tokens: int
    output_tokens: int
    cache: str
    result: str


ROWS: list[Row] = []


def _input_expected(recorded: Any) -> int:
    cached = (recorded.cache_read_tokens or 0) + (recorded.cache_write_tokens or 0)
    return int(recorded.input_tokens + cached)


def _problems(requests: list[Any], spans: list[Any]) -> list[str]:
    ours = [s for s in spans if s.instrumentation_scope.name == OUR_SCOPE]
    contrib_bedrock = [
        s
        for s in spans
        # contrib names its scopes per service (...botocore.bedrock-runtime)
        if s.instrumentation_scope.name.startswith(CONTRIB_SCOPE)
        and "Bedrock" in str(s.attributes.get("rpc.service", ""))
    ]
    problems: list[str] = []
    if not requests:
        problems.append("the flow made no Bedrock call")
    if len(ours) != len(requests):
        problems.append(f"{len(ours)} spans of ours for {len(requests)} Bedrock calls")
    if contrib_bedrock:
        problems.append(f"{len(contrib_bedrock)} contrib botocore spans for Bedrock calls")
    by_id: dict[Any, list[Any]] = {}
    for span in ours:
        by_id.setdefault(span.attributes.get(names.AWS_REQUEST_ID), []).append(span)
    for recorded in requests:
        matching = by_id.get(recorded.request_id, [])
        label = f"{recorded.operation} {recorded.request_id[:8]}"
        if len(matching) != 1:
            problems.append(f"{label}: {len(matching)} spans of ours")
            continue
        attrs = matching[0].attributes
        if recorded.status != 200:
            problems.append(f"{label}: the emulator answered {recorded.status}")
        if recorded.operation == "CountTokens":
            got = attrs.get(names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS)
            if got != recorded.input_tokens:
                problems.append(f"{label}: count {got} != {recorded.input_tokens}")
            continue
        expected = {
            names.GEN_AI_USAGE_INPUT_TOKENS: _input_expected(recorded),
            names.GEN_AI_USAGE_OUTPUT_TOKENS: recorded.output_tokens,
        }
        if recorded.cache_read_tokens is not None:
            expected[names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = recorded.cache_read_tokens
            expected[names.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = recorded.cache_write_tokens
        got_counts = {key: attrs.get(key) for key in expected}
        if got_counts != expected:
            problems.append(f"{label}: counts {got_counts} != emulator {expected}")
        if recorded.operation in STREAMS:
            outcome = attrs.get(names.AWS_BEDROCK_STREAM_OUTCOME)
            if outcome != names.STREAM_COMPLETED:
                problems.append(f"{label}: stream outcome {outcome!r}")
    return problems


class Flow:
    """What one test's framework flow did on the wire and in telemetry."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._start = len(EMULATOR.requests)
        EXPORTER.clear()

    @property
    def requests(self) -> list[Any]:
        return EMULATOR.requests[self._start :]

    def check(self) -> None:
        """Assert the per-call contract and add the flow's row to the table."""
        requests = self.requests
        problems = _problems(requests, list(EXPORTER.get_finished_spans()))
        operations = sorted({str(r.operation) for r in requests})
        counted = [r for r in requests if r.operation != "CountTokens" and r.input_tokens]
        ROWS.append(
            Row(
                self.name,
                len(requests),
                ",".join(operations),
                sum(_input_expected(r) for r in counted),
                sum(r.output_tokens or 0 for r in counted),
                f"{sum(r.cache_read_tokens or 0 for r in counted)}/"
                f"{sum(r.cache_write_tokens or 0 for r in counted)}",
                "ok" if not problems else "FAIL",
            )
        )
        assert not problems, "\n".join(problems)


@pytest.fixture
def flow(request: pytest.FixtureRequest) -> Iterator[Flow]:
    """Start a flow named after the test; the test calls ``flow.check()`` at its end."""
    assert BedrockTokensInstrumentor().is_instrumented_by_opentelemetry, "ours is not active"
    assert BotocoreInstrumentor().is_instrumented_by_opentelemetry, "contrib is not active"
    EMULATOR.reset()
    framework = request.node.module.__name__.rpartition(".test_")[2]
    yield Flow(f"{framework}: {request.node.name.removeprefix('test_')}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    header = ("flow", "calls", "operations", "input", "output", "cache r/w", "result")
    table = [header] + [
        (r.flow, str(r.calls), r.operations, str(r.input_tokens), str(r.output_tokens), r.cache,
         r.result)
        for r in ROWS
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    terminalreporter.section("bedrock-tokens compatibility: one span of ours per Bedrock call")
    for index, row in enumerate(table):
        terminalreporter.write_line("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
        if index == 0:
            terminalreporter.write_line("  ".join("-" * w for w in widths))


def pytest_sessionfinish() -> None:
    EMULATOR.stop()
