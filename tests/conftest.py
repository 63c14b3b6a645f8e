"""Fixtures shared by the instrumentation tests.

The emulator, the boto3 client bound to it and the in-memory telemetry come from the
package's own pytest plugin (``bedrock_emulator``, ``bedrock_client``, ``bedrock_telemetry``),
which is what users get too. Here: instrumenting with those providers (never the global
ones) and reading back what was exported.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move everything alive after collection (modules, test items, parameters) out of the
    collector's reach: the many explicit ``gc.collect()`` calls of the stream and leak tests
    then scan what the tests made, not the whole interpreter (most of the suite's run time
    otherwise). Nothing made by a test is frozen, so what they check is unchanged."""
    gc.collect()
    gc.freeze()


@pytest.fixture
def instrument(bedrock_telemetry: Any) -> Iterator[Callable[..., BedrockTokensInstrumentor]]:
    """Call to instrument with the test's providers and options; uninstrumented afterwards."""
    instrumentor = BedrockTokensInstrumentor()

    def _instrument(**options: Any) -> BedrockTokensInstrumentor:
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        instrumentor.instrument(
            tracer_provider=bedrock_telemetry.tracer_provider,
            meter_provider=bedrock_telemetry.meter_provider,
            **options,
        )
        return instrumentor

    yield _instrument
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture
def both(bedrock_telemetry: Any) -> Iterator[tuple[Any, Any]]:
    """Ours and the contrib botocore instrumentor, not yet instrumented; both undone after."""
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

    ours, contrib = BedrockTokensInstrumentor(), BotocoreInstrumentor()
    yield ours, contrib
    for instrumentor in (ours, contrib):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


@pytest.fixture
def instrumented(instrument: Callable[..., BedrockTokensInstrumentor]) -> BedrockTokensInstrumentor:
    return instrument()


# tests/compat runs the real agent frameworks in its own environment (.ci/compat, which runs
# `pytest tests/compat` explicitly); the main suite never collects it.
collect_ignore = ["compat"]
