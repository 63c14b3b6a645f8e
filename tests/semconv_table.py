"""The names each convention mode may emit, written down from the conventions themselves (not
from names.py), so a test can hold the instrumentation to them.

Sources (open-telemetry/semantic-conventions v1.41.0 for the released set;
open-telemetry/semantic-conventions-genai main for the latest):
- v1.41 metrics: docs/gen-ai/gen-ai-metrics.md (``gen_ai.client.token.usage`` with
  ``gen_ai.token.type``, ``gen_ai.client.operation.duration``, ``.time_to_first_chunk``,
  ``.time_per_output_chunk``).
- main: docs/gen-ai/non-normative/migration.md and changelog.d: #440
  (``gen_ai.usage.cache_creation.input_tokens`` -> ``gen_ai.usage.cache_write.input_tokens``),
  #374 (``gen_ai.client.token.usage`` replaced by the ``gen_ai.client.inference.usage.*``
  counters with ``gen_ai.token.modality`` and the ``gen_ai.client.inference.operation.*``
  histograms, model/gen-ai/token-metrics.yaml), #521 (``gen_ai.client.operation.*`` ->
  ``gen_ai.client.inference.*`` for inference; ``gen_ai.client.operation.duration`` stays
  for other operations and SHOULD NOT be reported for inference).
- events: model/gen-ai/events.yaml (``gen_ai.client.inference.operation.details``, both).
"""

from __future__ import annotations

# Span attributes of the convention (both modes) that this instrumentation may set.
_COMMON_SPAN = {
    "gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
    "gen_ai.request.max_tokens", "gen_ai.request.temperature", "gen_ai.request.top_p",
    "gen_ai.request.top_k", "gen_ai.request.stop_sequences", "gen_ai.request.stream",
    "gen_ai.response.id", "gen_ai.response.model", "gen_ai.response.finish_reasons",
    "gen_ai.response.time_to_first_chunk", "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens", "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
    "gen_ai.tool.definitions", "server.address", "server.port", "error.type",
    "aws.bedrock.guardrail.id", "aws.request_id",
}
# Project-owned attributes (no convention defines them), the same in both modes.
PROJECT_SPAN = {
    "aws.bedrock.usage.source", "aws.bedrock.usage.uncached_input_tokens",
    "aws.bedrock.response.invocation_latency_ms", "aws.bedrock.response.first_byte_latency_ms",
    "aws.bedrock.response.latency_ms", "aws.bedrock.stream.outcome",
    "aws.bedrock.count_tokens.input_tokens", "aws.bedrock.count_tokens.drift",
    # cost, quota burn, tiers, images, estimates, profiles (docs/cost.md)
    "aws.bedrock.usage.cost", "aws.bedrock.usage.quota_tokens", "aws.bedrock.usage.output_images",
    "aws.bedrock.usage.estimated_input_tokens", "aws.bedrock.usage.estimated_output_tokens",
    "aws.bedrock.request.service_tier", "aws.bedrock.response.service_tier",
    "aws.bedrock.request.latency_mode", "aws.bedrock.response.latency_mode",
    "aws.bedrock.resolved_model",
}

SPAN_ATTRIBUTES = {
    "v1.41": _COMMON_SPAN | {"gen_ai.usage.cache_creation.input_tokens"},
    "latest": _COMMON_SPAN | {"gen_ai.usage.cache_write.input_tokens"},
}

_METRIC_ATTRS = {"gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
                 "server.address", "server.port"}

# metric name -> (instrument kind, unit, attribute keys allowed)
METRICS: dict[str, dict[str, tuple[str, str, set[str]]]] = {
    "v1.41": {
        "gen_ai.client.token.usage":
            ("histogram", "{token}", _METRIC_ATTRS | {"gen_ai.token.type"}),
        "gen_ai.client.operation.duration": ("histogram", "s", _METRIC_ATTRS | {"error.type"}),
        "gen_ai.client.operation.time_to_first_chunk": ("histogram", "s", _METRIC_ATTRS),
        "gen_ai.client.operation.time_per_output_chunk": ("histogram", "s", _METRIC_ATTRS),
    },
    "latest": {
        "gen_ai.client.inference.usage.input_tokens":
            ("counter", "{token}", _METRIC_ATTRS | {"gen_ai.token.modality"}),
        "gen_ai.client.inference.usage.output_tokens":
            ("counter", "{token}", _METRIC_ATTRS | {"gen_ai.token.modality"}),
        "gen_ai.client.inference.usage.cache_read.input_tokens":
            ("counter", "{token}", _METRIC_ATTRS | {"gen_ai.token.modality"}),
        "gen_ai.client.inference.usage.cache_write.input_tokens":
            ("counter", "{token}", _METRIC_ATTRS | {"gen_ai.token.modality"}),
        "gen_ai.client.inference.operation.input_tokens": ("histogram", "{token}", _METRIC_ATTRS),
        "gen_ai.client.inference.operation.output_tokens":
            ("histogram", "{token}", _METRIC_ATTRS),
        "gen_ai.client.inference.duration": ("histogram", "s", _METRIC_ATTRS | {"error.type"}),
        "gen_ai.client.inference.time_to_first_chunk": ("histogram", "s", _METRIC_ATTRS),
        "gen_ai.client.inference.time_per_output_chunk": ("histogram", "s", _METRIC_ATTRS),
        # for operations that are not inference (count_tokens)
        "gen_ai.client.operation.duration": ("histogram", "s", _METRIC_ATTRS | {"error.type"}),
    },
}
# Project-owned metrics, the same in both modes.
PROJECT_METRICS = {
    "aws.bedrock.count_tokens.drift": ("histogram", "{token}",
                                       _METRIC_ATTRS | {"aws.bedrock.count_tokens.direction"}),
    "aws.bedrock.count_tokens.dropped": ("counter", "{count}", set()),
    # sums (observable counters); attribution attributes only when allowlisted
    "aws.bedrock.usage.quota_tokens": ("counter", "{token}",
                                       _METRIC_ATTRS | {"aws.bedrock.service_tier"}),
    "aws.bedrock.usage.cost": ("counter", "{USD}", _METRIC_ATTRS | {"aws.bedrock.service_tier"}),
    "aws.bedrock.usage.output_images": ("counter", "{image}",
                                        _METRIC_ATTRS | {"aws.bedrock.service_tier"}),
}

EVENTS = {"v1.41": {"gen_ai.client.inference.operation.details"},
          "latest": {"gen_ai.client.inference.operation.details"}}

SCHEMA_URLS = {"v1.41": "https://opentelemetry.io/schemas/1.41.0",
               "latest": "https://opentelemetry.io/schemas/gen-ai-dev/1.42.0-dev"}

# The schema's finish-reason enum (gen-ai-output-messages.json, FinishReason)
FINISH_REASONS = {"stop", "length", "content_filter", "tool_call", "error"}

# gen_ai.request.top_k: double in v1.41 (registry), int on main (#217)
TOP_K_TYPE = {"v1.41": float, "latest": int}
