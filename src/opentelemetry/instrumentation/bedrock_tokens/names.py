"""Every attribute name, metric name, unit and bucket set this instrumentation emits.

The GenAI names are the released v1.41 semantic conventions. They are spelled out as plain
strings rather than imported from ``opentelemetry.semconv._incubating``: those modules are
private, change between releases, and calling their enums raises ``DeprecationWarning`` on
newer builds. Keeping the names here means one file to change when the conventions move.
"""

from __future__ import annotations

from typing import Final

# --- GenAI span attributes (semconv v1.41) -------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"  # deprecated name, emitted only on opt-in
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"

SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
ERROR_TYPE_OTHER: Final = "_OTHER"

# --- AWS / Bedrock attributes ----------------------------------------------------------------
AWS_REQUEST_ID: Final = "aws.request_id"
AWS_BEDROCK_GUARDRAIL_ID: Final = "aws.bedrock.guardrail.id"

# Project-owned attributes (no convention exists for these; see ARCHITECTURE.md).
# Where the counts on the span came from: headers | body | converse | invocation_metrics |
# stream_body | stream_metadata. Lets a user see that a count is exact and from where.
AWS_BEDROCK_USAGE_SOURCE: Final = "aws.bedrock.usage.source"
# Bedrock's own input count, which excludes cached tokens (gen_ai.usage.input_tokens includes them).
AWS_BEDROCK_USAGE_UNCACHED_INPUT_TOKENS: Final = "aws.bedrock.usage.uncached_input_tokens"
# Server-reported latencies, milliseconds.
AWS_BEDROCK_INVOCATION_LATENCY: Final = "aws.bedrock.response.invocation_latency_ms"
AWS_BEDROCK_FIRST_BYTE_LATENCY: Final = "aws.bedrock.response.first_byte_latency_ms"
AWS_BEDROCK_CONVERSE_LATENCY: Final = "aws.bedrock.response.latency_ms"
# How a streamed response ended: completed | error | closed | abandoned.
AWS_BEDROCK_STREAM_OUTCOME: Final = "aws.bedrock.stream.outcome"
STREAM_COMPLETED: Final = "completed"
STREAM_ERROR: Final = "error"
STREAM_CLOSED: Final = "closed"
STREAM_ABANDONED: Final = "abandoned"
# CountTokens result: on the count span, and on the invocation span as the pre-count estimate.
AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS: Final = "aws.bedrock.count_tokens.input_tokens"
# actual input tokens minus the pre-count estimate, on the invocation span
AWS_BEDROCK_COUNT_TOKENS_DRIFT: Final = "aws.bedrock.count_tokens.drift"
# Drift metric attribute: the sign of the drift, because the metric records its magnitude
# (OpenTelemetry SDK histograms drop negative values). over: estimate > actual.
AWS_BEDROCK_COUNT_TOKENS_DIRECTION: Final = "aws.bedrock.count_tokens.direction"
DIRECTION_OVER: Final = "over"
DIRECTION_UNDER: Final = "under"
DIRECTION_EXACT: Final = "exact"
# Link attribute saying what a link between a count span and an invocation span means.
AWS_BEDROCK_LINK_RELATION: Final = "aws.bedrock.link.relation"
LINK_RELATION_PRECOUNT: Final = "precount"  # on the invocation span: link to its count span
LINK_RELATION_PRECOUNTED: Final = "precounted_invocation"  # on the count span: link back

# --- Values ------------------------------------------------------------------------------------
PROVIDER_AWS_BEDROCK: Final = "aws.bedrock"
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_EMBEDDINGS: Final = "embeddings"
# No convention exists for token counting; "count_tokens" follows the placeholder precedent.
OP_COUNT_TOKENS: Final = "count_tokens"
TOKEN_TYPE_INPUT: Final = "input"
TOKEN_TYPE_OUTPUT: Final = "output"

# --- Metrics -----------------------------------------------------------------------------------
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
METRIC_COUNT_TOKENS_DRIFT: Final = "aws.bedrock.count_tokens.drift"
METRIC_PRECOUNT_DROPPED: Final = "aws.bedrock.count_tokens.dropped"

UNIT_TOKEN: Final = "{token}"
UNIT_SECONDS: Final = "s"
UNIT_PRECOUNT: Final = "{count}"

TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)
# Drift magnitude (the sign is an attribute); the first bucket holds the exact estimates.
DRIFT_BUCKETS: Final = (0, 1, 4, 16, 64, 256, 1024, 4096)

# --- Response headers botocore exposes (lower-cased) ------------------------------------------
H_INPUT_TOKENS: Final = "x-amzn-bedrock-input-token-count"
H_OUTPUT_TOKENS: Final = "x-amzn-bedrock-output-token-count"
H_CACHE_READ: Final = "x-amzn-bedrock-cache-read-input-token-count"
H_CACHE_WRITE: Final = "x-amzn-bedrock-cache-write-input-token-count"
H_INVOCATION_LATENCY: Final = "x-amzn-bedrock-invocation-latency"

INVOCATION_METRICS_KEY: Final = "amazon-bedrock-invocationMetrics"

# --- Cost, quota, tiers, attribution, estimates (issue 18) --------------------------------------
# Project-owned: no convention exists for any of these.
# What the call cost by the user's price table, USD (a float); absent when a price is unknown.
AWS_BEDROCK_USAGE_COST: Final = "aws.bedrock.usage.cost"
# Tokens the call took from the model's tokens-per-minute quota (output x burndown rate).
AWS_BEDROCK_USAGE_QUOTA_TOKENS: Final = "aws.bedrock.usage.quota_tokens"
# Images in an image model's response (Stability, Titan Image, Nova Canvas report no tokens).
AWS_BEDROCK_USAGE_OUTPUT_IMAGES: Final = "aws.bedrock.usage.output_images"
# The user's estimator, for calls with no counts at all: labelled, never in gen_ai.usage.*.
AWS_BEDROCK_USAGE_ESTIMATED_INPUT_TOKENS: Final = "aws.bedrock.usage.estimated_input_tokens"
AWS_BEDROCK_USAGE_ESTIMATED_OUTPUT_TOKENS: Final = "aws.bedrock.usage.estimated_output_tokens"
# Service tier (priority | default | flex | reserved) and latency mode (standard | optimized),
# as asked for and as served; out-of-enum values are _OTHER.
AWS_BEDROCK_REQUEST_SERVICE_TIER: Final = "aws.bedrock.request.service_tier"
AWS_BEDROCK_RESPONSE_SERVICE_TIER: Final = "aws.bedrock.response.service_tier"
AWS_BEDROCK_REQUEST_LATENCY_MODE: Final = "aws.bedrock.request.latency_mode"
AWS_BEDROCK_RESPONSE_LATENCY_MODE: Final = "aws.bedrock.response.latency_mode"
# Metric attribute: the tier that served the call (the response's, else the request's).
AWS_BEDROCK_SERVICE_TIER: Final = "aws.bedrock.service_tier"
# The base model an application inference profile resolved to (GetInferenceProfile, opt-in).
AWS_BEDROCK_RESOLVED_MODEL: Final = "aws.bedrock.resolved_model"
# Attribution, allowlisted key by key: request metadata, projectIdentifier, baggage.
AWS_BEDROCK_REQUEST_METADATA_PREFIX: Final = "aws.bedrock.request_metadata."
AWS_BEDROCK_PROJECT_IDENTIFIER: Final = "aws.bedrock.project_identifier"
BAGGAGE_PREFIX: Final = "baggage."
# What a value beyond the cardinality guard's limit (or outside an enum) becomes.
ATTRIBUTION_OTHER: Final = "_OTHER"

METRIC_USAGE_COST: Final = "aws.bedrock.usage.cost"
METRIC_QUOTA_TOKENS: Final = "aws.bedrock.usage.quota_tokens"
METRIC_OUTPUT_IMAGES: Final = "aws.bedrock.usage.output_images"
UNIT_USD: Final = "{USD}"
UNIT_IMAGE: Final = "{image}"
