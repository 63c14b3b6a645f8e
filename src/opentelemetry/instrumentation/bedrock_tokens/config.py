"""Settings, read once at ``instrument()`` time from keyword options and environment variables.

Every setting has one environment variable (``OTEL_INSTRUMENTATION_BEDROCK_TOKENS_*``) and one
``instrument()`` keyword of the same name in lower case without the prefix; the keyword wins.
An invalid value never raises: it produces one warning naming the variable and the default
that is used instead. The README's settings table is the user-facing copy of ``SETTINGS``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional

from . import names

_logger = logging.getLogger(__name__)

PREFIX = "OTEL_INSTRUMENTATION_BEDROCK_TOKENS_"
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

PRECOUNT_MODES = ("off", "blocking", "background")

# A hook that sees the pre-count before an invocation is sent; raising vetoes the call.
# Hooks that accept them also get keyword arguments: estimated_cost, quota_burn (upper bounds).
PrecountHook = Callable[..., None]


@dataclass(frozen=True)
class Settings:
    """The effective configuration. Immutable: a new one is built by each ``instrument()``."""

    capture_content: bool = False  # content on the span
    content_events: bool = False  # content in the gen_ai.client.inference.operation.details event
    content_max_length: int = 16384
    parse_response_body: bool = True
    emit_legacy_system: bool = False
    replace_contrib: bool = True
    chunk_timing: bool = True
    # Set enableTrace on agent and flow calls that do not set it, so their model steps are
    # counted (the trace events then reach the caller too).
    agent_enable_trace: bool = False
    precount: str = "off"
    precount_sample_ratio: float = 1.0
    precount_timeout: float = 0.25
    precount_workers: int = 2
    precount_queue_size: int = 64
    precount_backoff: float = 30.0
    precount_unsampled: bool = False
    precount_hook: Optional[PrecountHook] = None
    # OTEL_SEMCONV_STABILITY_OPT_IN contains gen_ai_latest_experimental
    semconv_latest: bool = False
    # Cost and attribution (docs/cost.md)
    prices: Any = None  # a price table (mapping) or the path of one; loaded by pricing
    request_metadata_keys: tuple[str, ...] = ()
    baggage_keys: tuple[str, ...] = ()
    project_identifier: bool = False
    attribution_max_values: int = 100
    resolve_profiles: bool = False
    resolve_profiles_timeout: float = 0.5
    estimator_tokenizer: Optional[str] = None
    estimator: Optional[Callable[..., Any]] = None

    @property
    def schema(self) -> names.Schema:
        return names.SCHEMA_LATEST if self.semconv_latest else names.SCHEMA_V1_41

    @property
    def captures_content(self) -> bool:
        return self.capture_content or self.content_events


@dataclass(frozen=True)
class _Spec:
    name: str  # field name and instrument() keyword
    parse: Callable[[str], Any]  # raises ValueError on a bad value
    doc: str

    @property
    def env(self) -> str:
        return PREFIX + self.name.upper()


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError(raw)


def _ratio(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError(raw)
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    # rejects 0, negatives, NaN, infinity, and waits longer than a lock can wait for
    if not 0.0 < value <= threading.TIMEOUT_MAX:
        raise ValueError(raw)
    return value


# Below this a captured message list could not say it was truncated and still parse.
MIN_CONTENT_LENGTH = 256


def _content_length(raw: str) -> int:
    value = int(raw)
    if value < MIN_CONTENT_LENGTH:
        raise ValueError(raw)
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError(raw)
    return value


def _path(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValueError(raw)
    return value


def _key_list(raw: str) -> tuple[str, ...]:
    keys: list[str] = []
    for key in raw.split(","):
        key = key.strip()
        if key and key not in keys:
            keys.append(key)
    return tuple(keys)


def _mode(raw: str) -> str:
    value = raw.strip().lower()
    if value not in PRECOUNT_MODES:
        raise ValueError(raw)
    return value


SETTINGS: tuple[_Spec, ...] = (
    _Spec("content_max_length", _content_length,
          "Longest captured content attribute, in characters (content capture only; at "
          f"least {MIN_CONTENT_LENGTH})."),
    _Spec("parse_response_body", _bool,
          "Read the InvokeModel response body for finish reasons and response id. With false, "
          "the body is untouched whenever the token headers carry the counts."),
    _Spec("emit_legacy_system", _bool,
          "Also emit the deprecated gen_ai.system attribute for pre-1.37 consumers."),
    _Spec("replace_contrib", _bool,
          "Make the contrib botocore instrumentation step aside for the Bedrock operations this "
          "package traces, so each call has one GenAI span and one set of metrics."),
    _Spec("chunk_timing", _bool,
          "Record gen_ai.client.operation.time_per_output_chunk, one value per stream event "
          "after the first (the SDK histogram call is most of the per-event cost)."),
    _Spec("agent_enable_trace", _bool,
          "Set enableTrace on InvokeAgent, InvokeInlineAgent and InvokeFlow calls that leave it "
          "unset: without trace events they report no tokens. The trace events are then "
          "delivered to your code as well."),
    _Spec("precount", _mode,
          "Pre-count input tokens with CountTokens: off | blocking | background."),
    _Spec("precount_sample_ratio", _ratio, "Fraction of calls to pre-count, 0 to 1."),
    _Spec("precount_timeout", _positive_float,
          "Blocking mode: the most a call is delayed by its pre-count, in seconds."),
    _Spec("precount_workers", _positive_int, "Worker threads that run pre-counts (both modes)."),
    _Spec("precount_queue_size", _positive_int,
          "Background mode: pending pre-counts before new ones are dropped."),
    _Spec("precount_backoff", _positive_float,
          "Seconds a model and endpoint are not pre-counted after CountTokens was throttled or "
          "timed out (or, blocking mode, outlived its budget)."),
    _Spec("precount_unsampled", _bool,
          "Also pre-count calls whose span is not sampled, so the drift metric covers every "
          "call (costs a CountTokens request per call)."),
    _Spec("prices", _path,
          "Path of a price table (JSON, USD per million tokens): aws.bedrock.usage.cost and "
          "the cost metric. The keyword also takes the table itself."),
    _Spec("request_metadata_keys", _key_list,
          "Comma-separated requestMetadata keys recorded as span and metric attributes."),
    _Spec("baggage_keys", _key_list,
          "Comma-separated baggage keys recorded as span and metric attributes."),
    _Spec("project_identifier", _bool, "Record the request's projectIdentifier."),
    _Spec("attribution_max_values", _positive_int,
          "Distinct values per attribution key in metrics; later ones become _OTHER."),
    _Spec("resolve_profiles", _bool,
          "Resolve application inference profiles with GetInferenceProfile (opt-in)."),
    _Spec("resolve_profiles_timeout", _positive_float,
          "The most the first call with a profile waits for its lookup, in seconds."),
    _Spec("estimator_tokenizer", _path,
          "A tokenizer JSON file for estimates where a response has no counts (needs the "
          "tokenizers package)."),
)

_DEFAULTS = Settings()


# (content on the span, content in the event) per accepted value
_CAPTURE_MODES = {
    "TRUE": (True, False), "SPAN_ONLY": (True, False), "SPAN_AND_EVENT": (True, True),
    "EVENT_ONLY": (False, True), "FALSE": (False, False), "NO_CONTENT": (False, False),
}


def _parse_capture_content(raw: Optional[str], source: str) -> tuple[bool, bool]:
    """Accept both grammars in the field: ``true``/``false`` and the util-genai enum."""
    if raw is None or raw.strip() == "":
        return False, False
    found = _CAPTURE_MODES.get(raw.strip().upper())
    if found is not None:
        return found
    _logger.warning(
        "Invalid value %r for %s; using the default NO_CONTENT (no content captured).",
        raw, source,
    )
    return False, False


def semconv_latest(environ: Mapping[str, str]) -> bool:
    """``OTEL_SEMCONV_STABILITY_OPT_IN`` is a comma list; ours is one of its values."""
    raw = environ.get(names.SEMCONV_OPT_IN_ENV, "")
    return names.SEMCONV_OPT_IN_GEN_AI_LATEST in (v.strip() for v in raw.split(","))


def load_settings(
    options: Mapping[str, Any], environ: Optional[Mapping[str, str]] = None
) -> Settings:
    """Build the effective settings from ``instrument()`` keywords, then the environment."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for spec in SETTINGS:
        default = getattr(_DEFAULTS, spec.name)
        if spec.name in options and options[spec.name] is not None:
            given = options[spec.name]
            source = f"instrument({spec.name}=...)"
            if spec.name == "prices" and isinstance(given, Mapping):
                values["prices"] = given  # the table itself; validated by pricing
                continue
            if isinstance(given, bool):
                raw = str(given).lower()
            elif isinstance(given, (list, tuple)):
                raw = ",".join(str(item) for item in given)
            else:
                raw = str(given)
        elif spec.env in env:
            source = spec.env
            raw = env[spec.env]
        else:
            continue
        try:
            values[spec.name] = spec.parse(raw)
        except (ValueError, TypeError):
            _logger.warning(
                "Invalid value %r for %s; using the default %r.", raw, source, default
            )
    capture = options.get("capture_content")
    if capture is None:
        span, event = _parse_capture_content(env.get(CAPTURE_CONTENT_ENV), CAPTURE_CONTENT_ENV)
    elif isinstance(capture, str):
        span, event = _parse_capture_content(capture, "instrument(capture_content=...)")
    else:
        span, event = bool(capture), False
    values["capture_content"] = span
    values["content_events"] = event
    values["semconv_latest"] = semconv_latest(env)
    hook = options.get("precount_hook")
    if hook is not None:
        if callable(hook):
            values["precount_hook"] = hook
        else:
            _logger.warning("instrument(precount_hook=...) is not callable; ignoring it.")
    estimator = options.get("estimator")
    if estimator is not None:
        if callable(estimator):
            values["estimator"] = estimator
        else:
            _logger.warning("instrument(estimator=...) is not callable; ignoring it.")
    return Settings(**values)


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, description) rows, for ``doctor`` and the README."""
    return [(spec.env, repr(getattr(_DEFAULTS, spec.name)), spec.doc) for spec in SETTINGS]
