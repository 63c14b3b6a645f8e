"""The fixtures users get from the plugin, used plainly (they are registered via pytest11)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.bedrock_tokens.emulator import BedrockEmulator, Scenario
from opentelemetry.instrumentation.bedrock_tokens.pytest_plugin import BedrockTelemetry

from .support import converse_messages


def test_emulator_fixture_is_running_and_fresh(bedrock_emulator: BedrockEmulator) -> None:
    assert bedrock_emulator.running
    assert bedrock_emulator.endpoint_url.startswith("http://127.0.0.1:")
    assert bedrock_emulator.requests == []
    # left dirty on purpose: the next test must not see this
    bedrock_emulator.set_scenario(Scenario(error_status=500))
    bedrock_emulator.register_alias("arn:x", "amazon.nova-micro-v1:0")


def test_emulator_fixture_was_reset(bedrock_client: Any, bedrock_emulator: BedrockEmulator) -> None:
    result = bedrock_client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())
    assert result["stopReason"] == "end_turn"
    assert len(bedrock_emulator.requests) == 1


def test_session_scoped_server(bedrock_emulator: BedrockEmulator, request: Any) -> None:
    assert request.getfixturevalue("_bedrock_emulator_session") is bedrock_emulator


def test_client_configuration(bedrock_client: Any, bedrock_emulator: BedrockEmulator) -> None:
    assert bedrock_client.meta.region_name == "us-east-1"
    assert bedrock_client.meta.endpoint_url == bedrock_emulator.endpoint_url
    assert bedrock_client.meta.config.retries["total_max_attempts"] == 1
    bedrock_emulator.set_scenario(Scenario(error_status=429))
    with pytest.raises(bedrock_client.exceptions.ThrottlingException):
        bedrock_client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())
    assert len(bedrock_emulator.requests) == 1  # never retried


def test_client_ignores_bearer_token_in_environment(
    monkeypatch: pytest.MonkeyPatch, request: Any
) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-should-not-be-used")
    client = request.getfixturevalue("bedrock_client")
    emulator: BedrockEmulator = request.getfixturevalue("bedrock_emulator")
    client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())
    authorization = emulator.requests[-1].headers["authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=emulator/")
    assert "/us-east-1/bedrock/aws4_request" in authorization


def test_a_plain_client_would_switch_to_bearer(
    monkeypatch: pytest.MonkeyPatch, bedrock_emulator: BedrockEmulator
) -> None:
    """Why the fixture pins SigV4: without it botocore picks the environment's API key.
    botocore 1.44 then refuses to send a bearer token to a plain-HTTP endpoint at all; older
    releases (1.42, the newest on Python 3.9) send it. Either way, no SigV4 request."""
    import boto3
    import botocore.exceptions

    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "api-key")
    client = boto3.client("bedrock-runtime", **bedrock_emulator.client_kwargs())
    try:
        client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())
    except botocore.exceptions.InvalidEndpointConfigurationError as exc:
        assert "HTTPS" in str(exc)
        assert bedrock_emulator.requests == []
    else:
        (request,) = bedrock_emulator.requests
        assert request.headers["authorization"] == "Bearer api-key"


def test_telemetry_fixture(bedrock_telemetry: BedrockTelemetry) -> None:
    assert trace.get_tracer_provider() is not bedrock_telemetry.tracer_provider
    assert metrics.get_meter_provider() is not bedrock_telemetry.meter_provider
    tracer = bedrock_telemetry.tracer_provider.get_tracer("t")
    with tracer.start_as_current_span("chat m"):
        pass
    assert [s.name for s in bedrock_telemetry.spans()] == ["chat m"]
    meter = bedrock_telemetry.meter_provider.get_meter("m")
    histogram = meter.create_histogram("gen_ai.client.token.usage")
    histogram.record(10, {"gen_ai.token.type": "input", "gen_ai.request.model": "a"})
    histogram.record(4, {"gen_ai.token.type": "output", "gen_ai.request.model": "a"})
    histogram.record(6, {"gen_ai.token.type": "input", "gen_ai.request.model": "b"})
    counter = meter.create_counter("calls")
    counter.add(2, {"k": "v"})
    name = "gen_ai.client.token.usage"
    assert len(bedrock_telemetry.metric_points(name)) == 3
    assert bedrock_telemetry.histogram_sum(name, gen_ai__token__type="input") == 16
    assert bedrock_telemetry.histogram_count(name, gen_ai__token__type="input") == 2
    assert (
        bedrock_telemetry.histogram_sum(
            name, {"gen_ai.token.type": "input", "gen_ai.request.model": "b"}
        )
        == 6
    )
    assert bedrock_telemetry.histogram_count("no.such.metric") == 0
    assert bedrock_telemetry.counter_value("calls", k="v") == 2
    bedrock_telemetry.clear_spans()
    assert bedrock_telemetry.spans() == []


_INNER_TESTS = """
seen = {}


def test_uses_every_fixture(bedrock_emulator, bedrock_client, bedrock_telemetry):
    seen["telemetry"] = bedrock_telemetry
    seen["emulator"] = bedrock_emulator
    result = bedrock_client.converse(
        modelId="amazon.nova-micro-v1:0",
        messages=[{"role": "user", "content": [{"text": "hello there"}]}],
    )
    assert result["usage"]["inputTokens"] == 2
    assert bedrock_emulator.requests[-1].operation == "Converse"


def test_after_teardown():
    telemetry = seen["telemetry"]
    assert telemetry.meter_provider._shutdown
    assert telemetry.span_exporter._stopped
    assert seen["emulator"].running  # session-scoped: still serving
    assert seen["emulator"].requests == []  # reset after the test

"""


def test_fixtures_in_a_separate_pytest_session(tmp_path: Any) -> None:
    """A user's session: the plugin arrives through the entry point, nothing else to set up;
    providers are shut down after the test, the server lives for the session."""
    (tmp_path / "test_user.py").write_text(_INNER_TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_plugin_import_is_light() -> None:
    """The plugin loads in every pytest session: it must not import boto3 or the SDK."""
    code = (
        "import sys, opentelemetry.instrumentation.bedrock_tokens as p; "
        "before = set(sys.modules); "
        "import opentelemetry.instrumentation.bedrock_tokens.pytest_plugin; "
        "new = set(sys.modules) - before; "
        "heavy = sorted(m for m in new if m.startswith(('boto3', 'botocore', "
        "'opentelemetry.sdk', 'opentelemetry.instrumentation.bedrock_tokens.emulator'))); "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    registered = subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlib.metadata import entry_points as e; "
            "e = (lambda group, _all=e(): _all.select(group=group) if hasattr(_all, 'select') "
            "else _all.get(group, [])); "
            "print([x.value for x in e(group='pytest11') if x.name == 'bedrock_tokens'])",
        ],
        capture_output=True,
        text=True,
    )
    assert "opentelemetry.instrumentation.bedrock_tokens.pytest_plugin" in registered.stdout
