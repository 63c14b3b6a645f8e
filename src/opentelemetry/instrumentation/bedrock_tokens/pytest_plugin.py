"""pytest fixtures for testing Bedrock code against the local emulator, with in-memory telemetry.

Registered through the ``pytest11`` entry point, so it is loaded in every pytest session of an
environment where this package is installed. It therefore only defines fixtures (no hooks, no
options, no markers) and imports boto3, botocore and the OpenTelemetry SDK inside the fixtures
that need them, never at import time.

Fixtures:

``bedrock_emulator``
    A running :class:`~.emulator.BedrockEmulator`. One server per session; every test gets it
    freshly ``reset()`` (no scenarios, aliases, cache entries or recorded requests). The
    ``x-bedrock-emulator-scenario`` header is enabled.
``bedrock_client``
    A boto3 ``bedrock-runtime`` client bound to it: region ``us-east-1``, dummy keys, one
    attempt per call, SigV4 even when ``AWS_BEARER_TOKEN_BEDROCK`` is set, no proxy.
``bedrock_async_client``
    The same as an aiobotocore client (``async with``-managed, aiohttp transport; parametrize
    it indirectly with ``"httpx"`` for aiobotocore's httpx transport). Needs aiobotocore and
    pytest-asyncio (or another plugin that runs async fixtures); skips, saying which is
    missing, without them.
``bedrock_telemetry``
    A :class:`BedrockTelemetry`: SDK tracer and meter providers with in-memory exporters, to
    pass to ``instrument()``. Never installed as the global providers; shut down afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Optional

import pytest

if TYPE_CHECKING:
    from .emulator import BedrockEmulator

__all__ = [
    "BedrockTelemetry", "bedrock_async_client", "bedrock_client", "bedrock_emulator",
    "bedrock_telemetry",
]


class BedrockTelemetry:
    """In-memory OpenTelemetry SDK providers and small readers over what they captured.

    Attribute filters are keyword arguments; because attribute names contain dots, a double
    underscore in a keyword stands for a dot (``gen_ai__token__type="input"``), or pass a
    mapping as ``attributes``. A point matches when it has every given attribute and value.
    """

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.span_exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.span_exporter))
        self.metric_reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metric_reader])

    def spans(self) -> list[Any]:
        """Finished spans, in the order they ended."""
        return list(self.span_exporter.get_finished_spans())

    def metric_points(
        self, name: str, attributes: Optional[Mapping[str, Any]] = None, **attrs: Any
    ) -> list[Any]:
        """Data points of the metric ``name`` (across all scopes) matching the attributes."""
        wanted = dict(attributes or {})
        wanted.update({key.replace("__", "."): value for key, value in attrs.items()})
        data = self.metric_reader.get_metrics_data()
        found: list[Any] = []
        for resource_metrics in data.resource_metrics if data is not None else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        point_attrs = point.attributes or {}
                        if all(point_attrs.get(k) == v for k, v in wanted.items()):
                            found.append(point)
        return found

    def histogram_sum(
        self, name: str, attributes: Optional[Mapping[str, Any]] = None, **attrs: Any
    ) -> float:
        """Sum of the recorded values of a histogram over the matching points (0 if none)."""
        return float(sum(p.sum for p in self.metric_points(name, attributes, **attrs)))

    def histogram_count(
        self, name: str, attributes: Optional[Mapping[str, Any]] = None, **attrs: Any
    ) -> int:
        """Number of recordings of a histogram over the matching points (0 if none)."""
        return int(sum(p.count for p in self.metric_points(name, attributes, **attrs)))

    def counter_value(
        self, name: str, attributes: Optional[Mapping[str, Any]] = None, **attrs: Any
    ) -> float:
        """Value of a counter or up-down counter summed over the matching points."""
        return float(sum(p.value for p in self.metric_points(name, attributes, **attrs)))

    def clear_spans(self) -> None:
        self.span_exporter.clear()

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture(scope="session")
def _bedrock_emulator_session() -> Iterator[BedrockEmulator]:
    from .emulator import BedrockEmulator

    # Tests choose faults per request with the scenario header, so the fixture allows it.
    emulator = BedrockEmulator(scenario_headers=True).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def bedrock_emulator(_bedrock_emulator_session: BedrockEmulator) -> Iterator[BedrockEmulator]:
    """The session's emulator, reset before and after the test."""
    _bedrock_emulator_session.reset()
    yield _bedrock_emulator_session
    _bedrock_emulator_session.reset()


@pytest.fixture(scope="session")
def _bedrock_boto3_session() -> Any:
    """One boto3 session, so service models are loaded once per test session."""
    import boto3

    return boto3.session.Session()


@pytest.fixture
def bedrock_client(bedrock_emulator: BedrockEmulator, _bedrock_boto3_session: Any) -> Iterator[Any]:
    """A ``bedrock-runtime`` client bound to the emulator (one attempt, SigV4, no proxy)."""
    from botocore.config import Config

    client = _bedrock_boto3_session.client(
        "bedrock-runtime", config=Config(**_client_config()), **bedrock_emulator.client_kwargs()
    )
    try:
        yield client
    finally:
        client.close()


def _client_config() -> dict[str, Any]:
    return {
        "retries": {"total_max_attempts": 1},
        # Setting the signature version in code keeps botocore from switching to bearer auth
        # when AWS_BEARER_TOKEN_BEDROCK is set in the environment.
        "signature_version": "v4",
        # An empty mapping (not None) stops botocore from reading HTTP(S)_PROXY for loopback.
        "proxies": {},
    }


async def _async_client(emulator: BedrockEmulator, transport: str) -> AsyncIterator[Any]:
    try:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session
    except ImportError:
        pytest.skip("bedrock_async_client needs aiobotocore: pip install aiobotocore")
    options = _client_config()
    if transport == "httpx":
        try:
            from aiobotocore.httpxsession import HttpxSession
        except ImportError:
            pytest.skip("the httpx transport needs aiobotocore[httpx]")
        options["http_session_cls"] = HttpxSession
    elif transport != "aiohttp":
        raise ValueError(f"bedrock_async_client: unknown transport {transport!r}")
    creator = get_session().create_client(
        "bedrock-runtime", config=AioConfig(**options), **emulator.client_kwargs()
    )
    async with creator as client:
        yield client


_async_fixture: Any
try:  # pytest-asyncio runs async fixtures declared through its own decorator
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - depends on the environment
    _async_fixture = None

if _async_fixture is not None:

    @_async_fixture  # type: ignore[untyped-decorator]
    async def bedrock_async_client(
        bedrock_emulator: BedrockEmulator, request: pytest.FixtureRequest
    ) -> AsyncIterator[Any]:
        """An aiobotocore ``bedrock-runtime`` client bound to the emulator."""
        async for client in _async_client(
            bedrock_emulator, getattr(request, "param", "aiohttp")
        ):
            yield client

else:  # pragma: no cover - depends on the environment

    @pytest.fixture
    def bedrock_async_client() -> Any:
        """An aiobotocore ``bedrock-runtime`` client bound to the emulator."""
        pytest.skip("bedrock_async_client needs pytest-asyncio: pip install pytest-asyncio")


@pytest.fixture
def bedrock_telemetry() -> Iterator[BedrockTelemetry]:
    """Fresh in-memory SDK providers for one test, shut down afterwards."""
    telemetry = BedrockTelemetry()
    try:
        yield telemetry
    finally:
        telemetry.shutdown()
