"""Packaging, instrument/uninstrument life cycle, and settings validation."""

from __future__ import annotations

import logging
from importlib.metadata import distribution, entry_points
from typing import Any

import pytest
from botocore.client import BaseClient
from packaging.requirements import Requirement

from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor, config
from opentelemetry.instrumentation.bedrock_tokens.package import _instruments

from .helpers import converse_messages

DIST = "opentelemetry-instrumentation-bedrock-tokens"


def test_entry_point_loads_the_instrumentor() -> None:
    found = entry_points()
    group = "opentelemetry_instrumentor"
    eps = found.select(group=group) if hasattr(found, "select") else found.get(group, [])  # 3.9
    ours = [ep for ep in eps if ep.name == "bedrock_tokens"]
    assert len(ours) == 1
    assert ours[0].load() is BedrockTokensInstrumentor


def _requirements() -> list[Requirement]:
    return [Requirement(r) for r in distribution(DIST).requires or []]


def test_instruments_extra_matches_instruments() -> None:
    extra = sorted(
        str(Requirement(f"{r.name}{r.specifier}"))
        for r in _requirements()
        if r.marker is not None and r.marker.evaluate({"extra": "instruments"})
    )
    assert extra == sorted(str(Requirement(r)) for r in _instruments)
    assert BedrockTokensInstrumentor().instrumentation_dependencies() == _instruments


def test_no_exact_pins_in_dependencies() -> None:
    for requirement in _requirements():
        assert all(s.operator not in ("==", "===") for s in requirement.specifier), requirement


def test_instrument_uninstrument_repeatedly(
    bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    original = BaseClient.__dict__["_make_api_call"]
    instrumentor = BedrockTokensInstrumentor()
    for round_ in range(3):
        instrumentor.instrument(tracer_provider=bedrock_telemetry.tracer_provider,
                                meter_provider=bedrock_telemetry.meter_provider)
        bedrock_client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())
        assert len(bedrock_telemetry.spans()) == round_ + 1
        instrumentor.uninstrument()
        assert BaseClient.__dict__["_make_api_call"] is original
        bedrock_client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())
        assert len(bedrock_telemetry.spans()) == round_ + 1


def test_client_created_before_instrument_is_covered(
    bedrock_client: Any, instrument: Any, bedrock_telemetry: Any
) -> None:
    bedrock_client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())
    instrument()
    bedrock_client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())
    assert len(bedrock_telemetry.spans()) == 1


def test_uninstrument_under_a_foreign_wrapper_leaves_it_working(
    bedrock_client: Any, bedrock_telemetry: Any
) -> None:
    import wrapt

    calls: list[str] = []

    def foreign(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        calls.append(args[0])
        return wrapped(*args, **kwargs)

    original = BaseClient.__dict__["_make_api_call"]
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(tracer_provider=bedrock_telemetry.tracer_provider,
                            meter_provider=bedrock_telemetry.meter_provider)
    wrapt.wrap_function_wrapper(BaseClient, "_make_api_call", foreign)
    try:
        instrumentor.uninstrument()  # ours is not outermost: becomes a pass-through
        bedrock_client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())
        assert calls == ["Converse"]
        assert bedrock_telemetry.spans() == []
        instrumentor.instrument(tracer_provider=bedrock_telemetry.tracer_provider,
                                meter_provider=bedrock_telemetry.meter_provider)
        bedrock_client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())
        assert len(bedrock_telemetry.spans()) == 1  # reactivated, not wrapped twice
        instrumentor.uninstrument()
    finally:
        BaseClient._make_api_call = original


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT", "sometimes"),
        ("OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT_SAMPLE_RATIO", "1.5"),
        ("OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT_TIMEOUT", "-2"),
        ("OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PARSE_RESPONSE_BODY", "maybe"),
        ("OTEL_INSTRUMENTATION_BEDROCK_TOKENS_CONTENT_MAX_LENGTH", "lots"),
    ],
)
def test_invalid_setting_warns_once_with_variable_and_default(
    env: str, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=config.__name__):
        settings = config.load_settings({}, {env: value})
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert env in warnings[0] and repr(value) in warnings[0] and "default" in warnings[0]
    assert settings == config.Settings()


def test_options_override_environment() -> None:
    env = {"OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT": "background",
           "OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT_SAMPLE_RATIO": "0.25"}
    settings = config.load_settings({"precount": "blocking"}, env)
    assert settings.precount == "blocking"
    assert settings.precount_sample_ratio == 0.25


def test_capture_content_accepts_both_grammars() -> None:
    var = config.CAPTURE_CONTENT_ENV
    for value, expected in [("true", True), ("SPAN_ONLY", True), ("NO_CONTENT", False),
                            ("false", False), ("EVENT_ONLY", False)]:
        assert config.load_settings({}, {var: value}).capture_content is expected
