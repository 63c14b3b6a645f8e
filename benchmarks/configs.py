"""The configurations compared, each applied once in a fresh worker process.

Every configuration runs with the same SDK set-up (``providers``): a tracer provider with a
SimpleSpanProcessor and an in-memory exporter, and a meter provider with an in-memory reader,
installed globally and also passed to ``instrument()``, so what differs between two processes
is only the instrumentation. Message-content capture is off everywhere (``CONTENT_OFF_ENV``).
The ``*-sampled-out`` configurations give the tracer provider the ALWAYS_OFF sampler: no span
is recorded, every metric point still is (how most production services run).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from opentelemetry import metrics, trace

# Content capture off in every grammar the instrumentations read.
CONTENT_OFF_ENV: Mapping[str, str] = {
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "NO_CONTENT",
    "TRACELOOP_TRACE_CONTENT": "false",
    # No credentials, config files or instance metadata are ever looked up.
    "AWS_ACCESS_KEY_ID": "AKIDBENCHMARK",
    "AWS_SECRET_ACCESS_KEY": "benchmark-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
PRECOUNT_MODULE = "opentelemetry.instrumentation.bedrock_tokens.precount"


@dataclass
class Providers:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader


def providers(sampled_out: bool = False) -> Providers:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=ALWAYS_OFF) if sampled_out else TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    return Providers(tracer_provider, meter_provider, exporter, reader)


Apply = Callable[[Providers, Mapping[str, Any]], None]


def _kwargs(p: Providers) -> dict[str, Any]:
    return {"tracer_provider": p.tracer_provider, "meter_provider": p.meter_provider}


def _nothing(p: Providers, options: Mapping[str, Any]) -> None:
    return None


def _floor(p: Providers, options: Mapping[str, Any]) -> None:
    import floor

    floor.instrument(p.tracer_provider, p.meter_provider)


def _ours(p: Providers, options: Mapping[str, Any]) -> None:
    from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor

    BedrockTokensInstrumentor().instrument(**_kwargs(p), **options)


def _contrib(p: Providers, options: Mapping[str, Any]) -> None:
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

    BotocoreInstrumentor().instrument(**_kwargs(p))  # type: ignore[no-untyped-call]


def _ours_with_contrib(p: Providers, options: Mapping[str, Any]) -> None:
    _contrib(p, options)
    _ours(p, options)


def _genai_bedrock(p: Providers, options: Mapping[str, Any]) -> None:
    from opentelemetry.instrumentation.genai.bedrock import BedrockInstrumentor

    BedrockInstrumentor().instrument(**_kwargs(p))


def _openllmetry(p: Providers, options: Mapping[str, Any]) -> None:
    from opentelemetry.instrumentation.bedrock import BedrockInstrumentor

    BedrockInstrumentor().instrument(**_kwargs(p))


@dataclass(frozen=True)
class Config:
    name: str
    title: str
    apply: Apply
    needs: tuple[str, ...] = ()  # modules that must be importable
    distribution: Optional[str] = None  # whose version the report shows
    options: tuple[tuple[str, Any], ...] = ()  # instrument() keywords (ours only)
    peer: bool = False
    sampled_out: bool = False  # tracer provider with the ALWAYS_OFF sampler
    streams_only: bool = False  # measured on the stream workloads only
    aio: bool = True  # measured on the aiobotocore workloads too (when it is installed)

    def missing(self) -> list[str]:
        return [m for m in self.needs if importlib.util.find_spec(m) is None]


_OURS = "opentelemetry.instrumentation.bedrock_tokens"
_CONTRIB = "opentelemetry.instrumentation.botocore"

CONFIGS: tuple[Config, ...] = (
    Config("uninstrumented", "uninstrumented", _nothing),
    Config("floor", "floor (benchmarks/floor.py)", _floor),
    Config("ours", "ours (BedrockTokensInstrumentor)", _ours, (_OURS,),
           "opentelemetry-instrumentation-bedrock-tokens"),
    Config("floor-sampled-out", "floor, ALWAYS_OFF sampler", _floor, sampled_out=True),
    Config("ours-sampled-out", "ours, ALWAYS_OFF sampler", _ours, (_OURS,),
           sampled_out=True),
    # What time_per_output_chunk costs per event: ours with it off, on the streams only.
    Config("ours-no-chunk-timing", "ours, chunk_timing=False", _ours, (_OURS,),
           options=(("chunk_timing", False),), streams_only=True, aio=False),
    # contrib here is BotocoreInstrumentor, which covers botocore only (its separate
    # AiobotocoreInstrumentor is not part of these configurations)
    Config("ours+contrib", "ours + contrib botocore", _ours_with_contrib, (_OURS, _CONTRIB),
           "opentelemetry-instrumentation-botocore", aio=False),
    Config("contrib", "contrib botocore alone", _contrib, (_CONTRIB,),
           "opentelemetry-instrumentation-botocore", peer=True, aio=False),
    Config("genai-bedrock", "opentelemetry-instrumentation-genai-bedrock", _genai_bedrock,
           ("opentelemetry.instrumentation.genai.bedrock",),
           "opentelemetry-instrumentation-genai-bedrock", peer=True),
    Config("openllmetry", "OpenLLMetry bedrock (content off)", _openllmetry,
           ("opentelemetry.instrumentation.bedrock",),
           "opentelemetry-instrumentation-bedrock", peer=True),
)

# Ours with a price table and two attribution keys (issue 18: within 10% of "ours").
COST_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("prices", {"models": {"anthropic.claude-3-haiku-20240307-v1:0": {
        "input": 0.25, "output": 1.25, "cache_read": 0.03, "cache_write": 0.3}}}),
    ("request_metadata_keys", "tenant,feature"),
)
COST_CONFIGS: tuple[Config, ...] = (
    Config("ours+cost", "ours, prices and two attribution keys", _ours, (_OURS,),
           options=COST_OPTIONS),
)

# Ours with a pre-count mode on; measured only against the emulator (CountTokens over loopback).
PRECOUNT_CONFIGS: tuple[Config, ...] = (
    Config("ours+precount-blocking", "ours, pre-count blocking", _ours, (_OURS, PRECOUNT_MODULE),
           options=(("precount", "blocking"),)),
    Config("ours+precount-background", "ours, pre-count background", _ours,
           (_OURS, PRECOUNT_MODULE), options=(("precount", "background"),)),
)

BY_NAME: dict[str, Config] = {c.name: c for c in CONFIGS + PRECOUNT_CONFIGS + COST_CONFIGS}


def apply(name: str, p: Providers) -> None:
    config = BY_NAME[name]
    config.apply(p, dict(config.options))
