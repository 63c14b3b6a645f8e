"""Tracer, meter and instruments, created once per ``instrument()`` call, and the cached
metric attribute sets, so the per-call path builds no dict it has built before."""

from __future__ import annotations

from typing import Any, Optional

from opentelemetry.util.types import Attributes

from opentelemetry import metrics, trace

from . import names
from .version import __version__

SCHEMA_URL = "https://opentelemetry.io/schemas/1.41.0"
SCOPE = "opentelemetry.instrumentation.bedrock_tokens"

_MetricKey = tuple[str, str, Optional[str], Optional[int]]


class Telemetry:
    """Everything a call record needs to emit; one instance per ``instrument()``."""

    def __init__(
        self,
        tracer_provider: Optional[trace.TracerProvider] = None,
        meter_provider: Optional[metrics.MeterProvider] = None,
    ) -> None:
        self.tracer = trace.get_tracer(
            SCOPE, __version__, tracer_provider, schema_url=SCHEMA_URL
        )
        meter = metrics.get_meter(SCOPE, __version__, meter_provider, schema_url=SCHEMA_URL)
        self.token_usage = meter.create_histogram(
            names.METRIC_TOKEN_USAGE,
            unit=names.UNIT_TOKEN,
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=names.TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            names.METRIC_OPERATION_DURATION,
            unit=names.UNIT_SECONDS,
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=names.DURATION_BUCKETS,
        )
        self.time_to_first_chunk = meter.create_histogram(
            names.METRIC_TIME_TO_FIRST_CHUNK,
            unit=names.UNIT_SECONDS,
            description="Time from the start of a streamed call to the first chunk it returned.",
            explicit_bucket_boundaries_advisory=names.DURATION_BUCKETS,
        )
        self.precount_drift = meter.create_histogram(
            names.METRIC_COUNT_TOKENS_DRIFT,
            unit=names.UNIT_TOKEN,
            description=(
                "Difference between the actual input tokens and the CountTokens pre-count "
                "estimate, as a magnitude; aws.bedrock.count_tokens.direction gives the sign."
            ),
            explicit_bucket_boundaries_advisory=names.DRIFT_BUCKETS,
        )
        self.precount_dropped = meter.create_counter(
            names.METRIC_PRECOUNT_DROPPED,
            unit=names.UNIT_PRECOUNT,
            description="Pre-counts skipped because the background queue was full.",
        )
        self.precount_skipped = meter.create_counter(
            names.METRIC_PRECOUNT_SKIPPED,
            unit=names.UNIT_PRECOUNT,
            description=(
                "Pre-counts not attempted because CountTokens was throttled or timed out for "
                "the model and endpoint within the back-off period."
            ),
        )
        self._attrs: dict[_MetricKey, tuple[Attributes, Attributes, Attributes]] = {}

    def metric_attributes(
        self, operation: str, model: str, address: Optional[str], port: Optional[int]
    ) -> tuple[Attributes, Attributes, Attributes]:
        """(base, input-token, output-token) attribute sets, built once per distinct key.

        Limited to the convention's attributes so cardinality stays bounded. The dicts are
        shared: nobody may mutate them (errors get a fresh dict).
        """
        key = (operation, model, address, port)
        found = self._attrs.get(key)
        if found is None:
            base: dict[str, Any] = {
                names.GEN_AI_PROVIDER_NAME: names.PROVIDER_AWS_BEDROCK,
                names.GEN_AI_OPERATION_NAME: operation,
                names.GEN_AI_REQUEST_MODEL: model,
            }
            if address is not None:
                base[names.SERVER_ADDRESS] = address
                if port is not None:
                    base[names.SERVER_PORT] = port
            found = (
                base,
                {**base, names.GEN_AI_TOKEN_TYPE: names.TOKEN_TYPE_INPUT},
                {**base, names.GEN_AI_TOKEN_TYPE: names.TOKEN_TYPE_OUTPUT},
            )
            if len(self._attrs) < 4096:  # bounded, whatever model ids users send
                self._attrs[key] = found
        return found
