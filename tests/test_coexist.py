"""Exactly once alongside the contrib botocore instrumentation, in both instrumentation
orders; other services keep contrib's spans; each side's uninstrument restores the other."""

from __future__ import annotations

import logging
import sys
import types
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from opentelemetry.instrumentation.bedrock_tokens import coexist, names

from .helpers import body_for, converse_messages, token_sums

OURS = "opentelemetry.instrumentation.bedrock_tokens"
MODEL = "amazon.nova-micro-v1:0"


def _instrument(instrumentor: Any, telemetry: Any) -> None:
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider,
                            meter_provider=telemetry.meter_provider)


def _sts(endpoint: str) -> Any:
    return boto3.client("sts", region_name="us-east-1", endpoint_url=endpoint,
                        aws_access_key_id="x", aws_secret_access_key="x",
                        config=Config(retries={"total_max_attempts": 1}))


def _calls(client: Any, emulator: Any) -> None:
    client.converse(modelId=MODEL, messages=converse_messages())
    client.invoke_model(modelId=MODEL, body=body_for(MODEL))["body"].read()
    for _ in client.converse_stream(modelId=MODEL, messages=converse_messages())["stream"]:
        pass
    client.count_tokens(modelId=MODEL, input={"converse": {"messages": converse_messages()}})
    with pytest.raises(botocore.exceptions.ClientError):
        _sts(emulator.endpoint_url).get_caller_identity()  # not Bedrock: contrib's


@pytest.mark.parametrize("order", ["ours-first", "contrib-first"])
def test_one_bedrock_span_and_one_metric_set_per_call(
    order: str, both: tuple[Any, Any], bedrock_client: Any, bedrock_emulator: Any,
    bedrock_telemetry: Any,
) -> None:
    ours, contrib = both
    first, second = (ours, contrib) if order == "ours-first" else (contrib, ours)
    _instrument(first, bedrock_telemetry)
    _instrument(second, bedrock_telemetry)
    _calls(bedrock_client, bedrock_emulator)
    spans = bedrock_telemetry.spans()
    bedrock = [s for s in spans if s.attributes.get(names.GEN_AI_PROVIDER_NAME) == "aws.bedrock"
               or s.attributes.get("gen_ai.system") == "aws.bedrock"
               or s.attributes.get("rpc.service") == "Bedrock Runtime"]
    assert [s.instrumentation_scope.name for s in bedrock] == [OURS] * 4
    assert [s.name for s in bedrock] == [
        f"chat {MODEL}", f"chat {MODEL}", f"chat {MODEL}", f"count_tokens {MODEL}"]
    others = [s for s in spans if s not in bedrock]
    assert [s.name for s in others] == ["STS.GetCallerIdentity"]
    assert token_sums(bedrock_telemetry)["input"][0] == 3  # one point per inference call
    duration_points = bedrock_telemetry.metric_points(names.METRIC_OPERATION_DURATION)
    assert sum(p.count for p in duration_points) == 4


def test_uninstrumenting_ours_gives_bedrock_back_to_contrib(
    both: tuple[Any, Any], bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    ours, contrib = both
    _instrument(contrib, bedrock_telemetry)
    _instrument(ours, bedrock_telemetry)
    ours.uninstrument()
    bedrock_client.converse(modelId=MODEL, messages=converse_messages())
    (span,) = bedrock_telemetry.spans()
    assert span.instrumentation_scope.name.startswith("opentelemetry.instrumentation.botocore")


def test_uninstrumenting_contrib_keeps_ours(
    both: tuple[Any, Any], bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    ours, contrib = both
    _instrument(ours, bedrock_telemetry)
    _instrument(contrib, bedrock_telemetry)
    contrib.uninstrument()
    bedrock_client.converse(modelId=MODEL, messages=converse_messages())
    (span,) = bedrock_telemetry.spans()
    assert span.instrumentation_scope.name == OURS


def test_replace_contrib_off_warns_about_double_counting(
    both: tuple[Any, Any], bedrock_client: Any, bedrock_telemetry: Any,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(coexist, "_warned", set())
    ours, contrib = both
    _instrument(contrib, bedrock_telemetry)
    with caplog.at_level(logging.WARNING, logger=coexist.__name__):
        ours.instrument(tracer_provider=bedrock_telemetry.tracer_provider,
                        meter_provider=bedrock_telemetry.meter_provider, replace_contrib=False)
        bedrock_client.converse(modelId=MODEL, messages=converse_messages())
        bedrock_client.converse(modelId=MODEL, messages=converse_messages())
    warnings = [r.getMessage() for r in caplog.records if "botocore" in r.getMessage()]
    assert len(warnings) == 1
    assert "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=botocore" in warnings[0]
    assert len(bedrock_telemetry.spans()) == 4  # the user asked for both


def test_foreign_genai_instrumentation_reported_once(
    instrument: Any, bedrock_client: Any, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Stand-in for opentelemetry-instrumentation-genai-bedrock being active in the process.
    module = types.ModuleType("opentelemetry.instrumentation.genai.bedrock")

    class BedrockInstrumentor:
        _instance = types.SimpleNamespace(_is_instrumented_by_opentelemetry=True)

    module.BedrockInstrumentor = BedrockInstrumentor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(coexist, "_warned", set())
    with caplog.at_level(logging.WARNING, logger=coexist.__name__):
        instrument()
        bedrock_client.converse(modelId=MODEL, messages=converse_messages())
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "opentelemetry-instrumentation-genai-bedrock" in warnings[0]
    assert "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=bedrock" in warnings[0]
