"""End to end, one test per example in examples/: the example runs (under the real
``opentelemetry-instrument`` launcher, except the manual one) against the emulator and exports
with the official OTLP/HTTP exporter to a loopback receiver, which decodes what a backend would
receive; ``backend_checks`` then says whether the backend gets all it needs.

The environment of each run is read from the example script itself (its ``export`` lines,
with placeholder keys), only the backend's host is swapped for the receiver: what is tested is
the file users copy. The last tests show the checks fail when something a backend needs is
missing.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from opentelemetry.instrumentation.bedrock_tokens import names
from opentelemetry.instrumentation.bedrock_tokens.doctor import launcher_command
from opentelemetry.instrumentation.bedrock_tokens.emulator import (
    BedrockEmulator,
    input_tokens_for,
    output_tokens_for,
)

from .backend_checks import (
    CUMULATIVE,
    DATADOG_SPAN_ATTRIBUTES,
    DELTA,
    HONEYCOMB_SPAN_ATTRIBUTES,
    Call,
    Shape,
    check_export,
)
from .otlp_receiver import Export, OTLPReceiver, iter_metrics, iter_spans, set_attribute

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SECRETS = {"HONEYCOMB_API_KEY": "test-honeycomb-key", "DD_API_KEY": "test-dd-key",
           "DD_SITE": "datadoghq.com"}

SHAPES = {
    shape.name: shape for shape in (
        Shape("zero-code", "zero_code.sh", CUMULATIVE, precount="blocking"),
        Shape("honeycomb", "honeycomb.sh", CUMULATIVE, HONEYCOMB_SPAN_ATTRIBUTES,
              trace_headers={"x-honeycomb-team": "test-honeycomb-key"},
              metric_headers={"x-honeycomb-team": "test-honeycomb-key",
                              "x-honeycomb-dataset": "bedrock-metrics"}),
        Shape("datadog-agent", "datadog_agent.sh", DELTA, DATADOG_SPAN_ATTRIBUTES),
        Shape("datadog-agentless", "datadog_agentless.sh", DELTA, DATADOG_SPAN_ATTRIBUTES,
              trace_headers={"dd-api-key": "test-dd-key", "dd-otlp-source": "datadog"},
              metric_headers={"dd-api-key": "test-dd-key"}),
        Shape("collector", "collector.sh", CUMULATIVE, precount="background"),
        Shape("manual", "manual_instrumentation.py", CUMULATIVE, DATADOG_SPAN_ATTRIBUTES,
              precount="blocking", service_name="manual-example", launcher=False),
    )
}

_ASSIGNMENT = re.compile(r"^(export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$")
_REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::([-?])([^}]*))?\}")


def script_environment(script: Path, given: Mapping[str, str]) -> dict[str, str]:
    """The variables a POSIX-shell example exports, evaluated line by line like ``sh`` would
    (``${NAME}``, ``${NAME:-default}``, ``${NAME:?message}``; quoting as in the shell)."""
    variables = dict(given)
    exported: dict[str, str] = {}
    for line in script.read_text().splitlines():
        match = _ASSIGNMENT.match(line.strip())
        if match is None:
            continue
        is_export, name, raw = match.groups()

        def expand(ref: re.Match[str]) -> str:
            value = variables.get(ref.group(1), "")
            if ref.group(2) == "-" and not value:
                return ref.group(3)
            if ref.group(2) == "?" and not value:
                raise AssertionError(f"{script.name} needs {ref.group(1)}")
            return value

        (value,) = shlex.split(_REFERENCE.sub(expand, raw))
        variables[name] = value
        if is_export:
            exported[name] = value
    return exported


def point_at(env: dict[str, str], base_url: str) -> dict[str, str]:
    """Swap the scheme and host of every OTLP endpoint for the receiver, keeping the path."""
    pointed = dict(env)
    for key, value in env.items():
        if key.startswith("OTEL_EXPORTER_OTLP") and key.endswith("ENDPOINT"):
            path = re.sub(r"^[a-z]+://[^/]+", "", value)
            pointed[key] = base_url + path
    return pointed


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{Path(name).stem}", EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expected_calls(shape: Shape) -> list[Call]:
    """The calls the example makes, with counts from the emulator's tokenizer (computed from
    the example's own request builders, never read back from the emulator)."""
    if not shape.launcher:
        manual = load_example("manual_instrumentation.py")
        model = manual.MODEL_ID
        converse = {"messages": [{"role": "user", "content": [{"text": manual.QUESTION}]}],
                    "inferenceConfig": {"maxTokens": 200, "temperature": 0.3}}
        invoke = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 200,
                  "temperature": 0.3,
                  "messages": [{"role": "user", "content": manual.QUESTION}]}
        requests = [("Converse", converse, False), ("InvokeModel", invoke, False)]
    else:
        app = load_example("app.py")
        model = app.MODEL_ID
        requests = [
            ("Converse", app.converse_request(app.QUESTIONS[0]), False),
            ("ConverseStream", app.converse_request(app.QUESTIONS[1]), True),
            ("InvokeModel", app.invoke_request(app.QUESTIONS[2])["body"], False),
        ]
    return [Call(names.OP_CHAT, model, input_tokens_for(model, op, request),
                 output_tokens_for(model, op, request), stream)
            for op, request, stream in requests]


@dataclass
class Capture:
    traces: list[Export]
    metrics: list[Export]
    calls: list[Call]
    shape: Shape


@pytest.fixture(scope="module")
def emulator() -> Iterator[BedrockEmulator]:
    with BedrockEmulator() as running:
        yield running


@pytest.fixture(scope="module")
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as running:
        yield running


_captures: dict[str, Capture] = {}


@pytest.fixture
def capture(request: Any, emulator: BedrockEmulator, receiver: OTLPReceiver,
            tmp_path: Path) -> Capture:
    """Run one example once per session and keep what the receiver got."""
    name = request.param
    if name in _captures:
        return _captures[name]
    shape = SHAPES[name]
    emulator.reset()
    receiver.clear()
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    if shape.launcher:
        env.update(point_at(script_environment(EXAMPLES / shape.script, SECRETS), receiver.url))
        argv = [*launcher_command(), str(EXAMPLES / "app.py")]
    else:
        env.update({"OTEL_SERVICE_NAME": shape.service_name,
                    "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
        argv = [sys.executable, str(EXAMPLES / shape.script)]
    env.update({"BEDROCK_ENDPOINT_URL": emulator.endpoint_url, "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_EC2_METADATA_DISABLED": "true"})
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_BEARER_TOKEN_BEDROCK", None)
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=90, check=False)
    assert done.returncode == 0, done.stderr
    assert not receiver.errors, receiver.errors
    found = Capture(receiver.exports("traces"), receiver.exports("metrics"),
                    expected_calls(shape), shape)
    _captures[name] = found
    return found


@pytest.mark.parametrize("capture", list(SHAPES), indirect=True)
def test_example_delivers_what_the_backend_needs(capture: Capture) -> None:
    check_export(capture.traces, capture.metrics, capture.calls, capture.shape)


def test_example_scripts_run_the_launcher() -> None:
    for shape in SHAPES.values():
        if shape.launcher:
            text = (EXAMPLES / shape.script).read_text()
            assert 'exec opentelemetry-instrument python "$(dirname "$0")/app.py"' in text


def test_example_app_imports_no_opentelemetry() -> None:
    assert "opentelemetry" not in re.sub(r'""".*?"""', "", (EXAMPLES / "app.py").read_text(),
                                         flags=re.S)


def test_collector_config_fans_out_to_both_backends() -> None:
    """No Collector binary here: check the config wires what the backends need."""
    text = (EXAMPLES / "collector.yaml").read_text()
    for needed in ("x-honeycomb-team", "x-honeycomb-dataset", "dd-api-key",
                   "dd-otlp-source", "cumulative_to_delta", "exporters: [otlp_http/honeycomb, "
                   "otlp_http/datadog-traces]", "exporters: [otlp_http/datadog-metrics]",
                   "processors: [cumulative_to_delta]", "endpoint: localhost:4318"):
        assert needed in text, needed
    assert "localhost:4318" in (EXAMPLES / "collector.sh").read_text()


# -- the checks can fail -----------------------------------------------------------------------
def _doctored(capture: Capture) -> Capture:
    return Capture(copy.deepcopy(capture.traces), copy.deepcopy(capture.metrics),
                   capture.calls, capture.shape)


@pytest.mark.parametrize("capture", ["datadog-agentless"], indirect=True)
@pytest.mark.parametrize("attribute", [names.GEN_AI_USAGE_OUTPUT_TOKENS,
                                       names.GEN_AI_REQUEST_MODEL,
                                       names.GEN_AI_REQUEST_TEMPERATURE])
def test_check_fails_when_a_span_attribute_is_missing(capture: Capture, attribute: str) -> None:
    broken = _doctored(capture)
    _resource, _scope, span = next(iter_spans(broken.traces))
    set_attribute(span.attributes, attribute, None)
    with pytest.raises(AssertionError, match=re.escape(f"attribute {attribute} missing")):
        check_export(broken.traces, broken.metrics, broken.calls, broken.shape)


@pytest.mark.parametrize("capture", ["honeycomb"], indirect=True)
def test_check_fails_when_a_count_is_wrong_or_a_header_missing(capture: Capture) -> None:
    broken = _doctored(capture)
    _resource, _scope, span = next(iter_spans(broken.traces))
    set_attribute(span.attributes, names.GEN_AI_USAGE_INPUT_TOKENS, 1)
    del broken.metrics[0].headers["x-honeycomb-dataset"]
    with pytest.raises(AssertionError) as failure:
        check_export(broken.traces, broken.metrics, broken.calls, broken.shape)
    assert "gen_ai.usage.input_tokens=1" in str(failure.value)
    assert "header x-honeycomb-dataset missing" in str(failure.value)


@pytest.mark.parametrize("capture", ["datadog-agent"], indirect=True)
def test_check_fails_when_a_metric_is_missing_or_cumulative(capture: Capture) -> None:
    broken = _doctored(capture)
    for _resource, _scope, metric in iter_metrics(broken.metrics):
        if metric.name == names.METRIC_OPERATION_DURATION:
            metric.name = "renamed"
        if metric.name == names.METRIC_TOKEN_USAGE:
            metric.histogram.aggregation_temporality = CUMULATIVE
    with pytest.raises(AssertionError) as failure:
        check_export(broken.traces, broken.metrics, broken.calls, broken.shape)
    assert f"metric {names.METRIC_OPERATION_DURATION} missing" in str(failure.value)
    assert f"{names.METRIC_TOKEN_USAGE}: temporality {CUMULATIVE}" in str(failure.value)


@pytest.mark.parametrize("capture", ["zero-code"], indirect=True)
def test_check_fails_without_the_precount_link(capture: Capture) -> None:
    broken = _doctored(capture)
    for _resource, _scope, span in iter_spans(broken.traces):
        del span.links[:]
    with pytest.raises(AssertionError, match="0 pre-count links"):
        check_export(broken.traces, broken.metrics, broken.calls, broken.shape)
