"""Tracer, meter, logger and instruments, created once per ``instrument()`` call, and the cached
metric attribute sets, so the per-call path builds no dict it has built before.

The convention in force (``names.Schema``) is chosen here, once: the instruments are created
under its names and ``record_usage`` is bound to the recorder of its token metrics, so no call
ever asks which convention is active.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, Callable, NamedTuple, Optional

from opentelemetry.metrics import Histogram, Observation
from opentelemetry.util.types import Attributes

from opentelemetry import metrics, trace

from . import names
from .version import __version__

_logger = logging.getLogger(__name__)

SCHEMA_URL = names.SCHEMA_V1_41.schema_url  # the default convention's
SCOPE = "opentelemetry.instrumentation.bedrock_tokens"

_MetricKey = tuple[str, str, Optional[str], Optional[int], tuple[tuple[str, str], ...]]

# (count, attribute set) pairs a Usage becomes; see Telemetry.record_usage
UsageRecorder = Callable[
    [Optional[int], Optional[int], Optional[int], Optional[int], "MetricAttributes"], None
]


class MetricAttributes(NamedTuple):
    """The attribute sets of one (operation, model, server) and the duration instrument its
    operation records into. Shared between calls: nobody may mutate them."""

    base: Attributes
    input: Attributes  # v1.41: gen_ai.token.type=input; latest: gen_ai.token.modality
    output: Attributes
    duration: Histogram
    # base + error.type, per error type seen (bounded): built once like the others
    errors: dict[str, Attributes]

    def with_error(self, error_type: str) -> Attributes:
        found = self.errors.get(error_type)
        if found is None:
            found = {**(self.base or {}), names.ERROR_TYPE: error_type}
            if len(self.errors) < 64:
                self.errors[error_type] = found
        return found


class Telemetry:
    """Everything a call record needs to emit; one instance per ``instrument()``."""

    def __init__(
        self,
        tracer_provider: Optional[trace.TracerProvider] = None,
        meter_provider: Optional[metrics.MeterProvider] = None,
        schema: names.Schema = names.SCHEMA_V1_41,
        logger_provider: Any = None,
        events: bool = False,
        chunk_timing: bool = True,
    ) -> None:
        self.schema = schema
        url = schema.schema_url
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider, schema_url=url)
        meter = metrics.get_meter(SCOPE, __version__, meter_provider, schema_url=url)
        self.duration = meter.create_histogram(
            schema.inference_duration,
            unit=names.UNIT_SECONDS,
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=names.DURATION_BUCKETS,
        )
        if schema.operation_duration == schema.inference_duration:
            self.operation_duration = self.duration
        else:  # latest: inference has its own metric; count_tokens keeps the generic one
            self.operation_duration = meter.create_histogram(
                schema.operation_duration,
                unit=names.UNIT_SECONDS,
                description="GenAI operation duration.",
                explicit_bucket_boundaries_advisory=names.DURATION_BUCKETS,
            )
        self.time_to_first_chunk = meter.create_histogram(
            schema.time_to_first_chunk,
            unit=names.UNIT_SECONDS,
            description="Time from the start of a streamed call to the first chunk it returned.",
            explicit_bucket_boundaries_advisory=names.DURATION_BUCKETS,
        )
        # None when chunk timing is off: streams then skip the per-event histogram call
        self.time_per_output_chunk: Optional[Histogram] = None
        if chunk_timing:
            self.time_per_output_chunk = meter.create_histogram(
                schema.time_per_output_chunk,
                unit=names.UNIT_SECONDS,
                description="Time from the previous chunk of a stream to this one, per chunk "
                            "after the first.",
                explicit_bucket_boundaries_advisory=names.DURATION_BUCKETS,
            )
        self.record_usage: UsageRecorder
        if schema.token_usage_by_type:
            self.token_usage = meter.create_histogram(
                names.METRIC_TOKEN_USAGE,
                unit=names.UNIT_TOKEN,
                description="Number of input and output tokens used.",
                explicit_bucket_boundaries_advisory=names.TOKEN_BUCKETS,
            )
            self._token_record = self.token_usage.record  # bound once, not per call
            self.record_usage = self._usage_by_type
        else:
            def counter(name: str, description: str) -> Any:
                return meter.create_counter(name, unit=names.UNIT_TOKEN, description=description)

            def histogram(name: str, description: str) -> Histogram:
                return meter.create_histogram(
                    name, unit=names.UNIT_TOKEN, description=description,
                    explicit_bucket_boundaries_advisory=names.TOKEN_BUCKETS,
                )

            self.usage_input = counter(
                names.METRIC_USAGE_INPUT_TOKENS,
                "The number of input (prompt) tokens used, including cached tokens.")
            self.usage_output = counter(
                names.METRIC_USAGE_OUTPUT_TOKENS, "The number of output tokens used.")
            self.usage_cache_read = counter(
                names.METRIC_USAGE_CACHE_READ, "Input tokens served from the prompt cache.")
            self.usage_cache_write = counter(
                names.METRIC_USAGE_CACHE_WRITE, "Input tokens written to the prompt cache.")
            self.operation_input = histogram(
                names.METRIC_OPERATION_INPUT_TOKENS,
                "The number of input tokens used per inference operation.")
            self.operation_output = histogram(
                names.METRIC_OPERATION_OUTPUT_TOKENS,
                "The number of output tokens used per inference operation.")
            self.record_usage = self._usage_by_direction
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
        # Cost, quota burn and images (docs/cost.md): sums per model, tier and tenant.
        self.usage_cost = totals(
            meter, names.METRIC_USAGE_COST, names.UNIT_USD,
            "What calls cost by the configured price table, in USD.",
        )
        self.quota_tokens = totals(
            meter, names.METRIC_QUOTA_TOKENS, names.UNIT_TOKEN,
            "Tokens taken from the model's tokens-per-minute quota (output tokens at the "
            "model's burndown rate).",
        )
        self.output_images = totals(
            meter, names.METRIC_OUTPUT_IMAGES, names.UNIT_IMAGE,
            "Images returned by image-generation models.",
        )
        # The content event's logger: only when content events were asked for.
        self.event_logger: Any = _event_logger(logger_provider, url) if events else None
        self._attrs: dict[_MetricKey, MetricAttributes] = {}

    # -- token metrics: one of these two is record_usage --------------------------------------
    def _usage_by_type(
        self, input_tokens: Optional[int], output_tokens: Optional[int],
        cache_read: Optional[int], cache_write: Optional[int], attrs: MetricAttributes,
    ) -> None:
        # v1.41: cache tokens have no token type; they are span attributes only
        if input_tokens is not None:
            self._token_record(input_tokens, attrs.input)
        if output_tokens is not None:
            self._token_record(output_tokens, attrs.output)

    def _usage_by_direction(
        self, input_tokens: Optional[int], output_tokens: Optional[int],
        cache_read: Optional[int], cache_write: Optional[int], attrs: MetricAttributes,
    ) -> None:
        # Counts are exact or absent: a count that is unknown is not recorded (the convention
        # would record a 0 with modality "unknown"; a 0 we did not see is not a count).
        if input_tokens is not None:
            self.usage_input.add(input_tokens, attrs.input)
            self.operation_input.record(input_tokens, attrs.base)
        if output_tokens is not None:
            self.usage_output.add(output_tokens, attrs.output)
            self.operation_output.record(output_tokens, attrs.base)
        if cache_read is not None:
            self.usage_cache_read.add(cache_read, attrs.input)
        if cache_write is not None:
            self.usage_cache_write.add(cache_write, attrs.input)

    def metric_attributes(
        self,
        operation: str,
        model: str,
        address: Optional[str],
        port: Optional[int],
        extra: tuple[tuple[str, str], ...] = (),
    ) -> MetricAttributes:
        """The attribute sets of one distinct key, built once.

        Limited to the convention's attributes so cardinality stays bounded. The dicts are
        shared: nobody may mutate them.
        """
        key = (operation, model, address, port, extra)
        found = self._attrs.get(key)
        if found is None and extra:
            # service tier and guarded attribution on top of the convention's set
            plain = self.metric_attributes(operation, model, address, port)
            more = dict(extra)
            found = MetricAttributes(
                {**(plain.base or {}), **more}, {**(plain.input or {}), **more},
                {**(plain.output or {}), **more}, plain.duration, {},
            )
            if len(self._attrs) < 4096:
                self._attrs[key] = found
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
            # Under the latest names inference has its own duration; counting tokens,
            # invoking an agent or a flow and retrieving are not inference.
            duration = self.duration if operation in _INFERENCE else self.operation_duration
            if self.schema.token_usage_by_type:
                found = MetricAttributes(
                    base,
                    {**base, names.GEN_AI_TOKEN_TYPE: names.TOKEN_TYPE_INPUT},
                    {**base, names.GEN_AI_TOKEN_TYPE: names.TOKEN_TYPE_OUTPUT},
                    duration,
                    {},
                )
            else:
                modality = {**base, names.GEN_AI_TOKEN_MODALITY: names.TOKEN_MODALITY_UNKNOWN}
                found = MetricAttributes(base, modality, modality, duration, {})
            if len(self._attrs) < 4096:  # bounded, whatever model ids users send
                self._attrs[key] = found
        return found


_INFERENCE = frozenset({names.OP_CHAT, names.OP_TEXT_COMPLETION, names.OP_EMBEDDINGS})
_MAX_SERIES = 8192  # attribute sets per summed counter; beyond it, one overflow series
_OVERFLOW: Attributes = {"otel.metric.overflow": True}  # the SDK's own overflow attribute


class Totals:
    """A counter's running sums per attribute set, reported by an observable counter.

    A synchronous counter costs one SDK measurement per call (every attribute validated and
    hashed: tens of microseconds, more than the rest of what cost adds to a call); a sum per
    attribute set is one dict update under a lock, and the SDK reads the sums at collection.
    What the backend receives is the same monotonic sum, in either temporality. Keys are the
    record's metric key and extra, so no attribute dict is hashed per call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sums: dict[Any, list[Any]] = {}

    def add(self, key: Any, value: float, attributes: Attributes) -> None:
        with self._lock:
            entry = self._sums.get(key)
            if entry is None:
                if len(self._sums) >= _MAX_SERIES:
                    key, attributes = "_overflow", _OVERFLOW
                    entry = self._sums.get(key)
                if entry is None:
                    entry = self._sums[key] = [0, attributes]
            entry[0] += value

    def observe(self, options: Any = None) -> list[Observation]:
        with self._lock:
            return [Observation(value, attributes) for value, attributes in self._sums.values()]


# One Totals per (meter, name): a second instrument() on the same provider gets the SDK's
# existing observable counter back (callbacks and all), so its sums must be the same object.
_totals: weakref.WeakKeyDictionary[Any, dict[str, Totals]] = weakref.WeakKeyDictionary()
_totals_lock = threading.Lock()


def totals(meter: Any, name: str, unit: str, description: str) -> Totals:
    with _totals_lock:
        try:
            per_meter = _totals.setdefault(meter, {})
        except TypeError:  # a meter that takes no weak reference: its own sums
            per_meter = {}
        found = per_meter.get(name)
        if found is None:
            found = per_meter[name] = Totals()
            meter.create_observable_counter(
                name, callbacks=[found.observe], unit=unit, description=description
            )
    return found


def _event_logger(logger_provider: Any, schema_url: str) -> Any:
    try:
        from opentelemetry._logs import get_logger

        return get_logger(SCOPE, __version__, logger_provider, schema_url=schema_url)
    except Exception:  # an API without the Logs API: no events, never an error
        _logger.warning("bedrock-tokens: the OpenTelemetry Logs API is unavailable; "
                        "content events are not emitted.", exc_info=True)
        return None
