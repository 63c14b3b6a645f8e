"""Every attribute name, metric name, unit and bucket set this instrumentation emits.

The GenAI names are the released v1.41 semantic conventions by default; ``SCHEMA_LATEST``
holds the ones of the semantic-conventions-genai repository's ``main``, chosen with
``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``. Code that emits a name that
differs between the two reads it from the ``Schema`` chosen at ``instrument()`` time.

They are spelled out as plain strings rather than imported from
``opentelemetry.semconv._incubating``: those modules are private, change between releases,
and calling their enums raises ``DeprecationWarning`` on newer builds. Keeping the names
here means one file to change when the conventions move.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Optional

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
GEN_AI_TOOL_DEFINITIONS: Final = "gen_ai.tool.definitions"
# Opt-in content attributes: on the span and/or in the content event, never by default.
CONTENT_ATTRIBUTES: Final = (
    GEN_AI_INPUT_MESSAGES, GEN_AI_OUTPUT_MESSAGES, GEN_AI_SYSTEM_INSTRUCTIONS,
    GEN_AI_TOOL_DEFINITIONS,
)
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
# Agent and retrieval spans (v1.41 invoke_agent / retrieval span types)
GEN_AI_AGENT_ID: Final = "gen_ai.agent.id"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_AGENT_VERSION: Final = "gen_ai.agent.version"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_DATA_SOURCE_ID: Final = "gen_ai.data_source.id"
# latest only (semantic-conventions-genai #440, #374)
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_TOKEN_MODALITY: Final = "gen_ai.token.modality"
TOKEN_MODALITY_UNKNOWN: Final = "unknown"  # Bedrock does not break usage down by modality

SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
ERROR_TYPE_OTHER: Final = "_OTHER"

# --- AWS / Bedrock attributes ----------------------------------------------------------------
AWS_REQUEST_ID: Final = "aws.request_id"
AWS_BEDROCK_GUARDRAIL_ID: Final = "aws.bedrock.guardrail.id"
AWS_BEDROCK_KNOWLEDGE_BASE_ID: Final = "aws.bedrock.knowledge_base.id"  # Bedrock refinement

# Project-owned agent-runtime attributes (bedrock-agent-runtime; no convention names them).
AWS_BEDROCK_AGENT_ALIAS_ID: Final = "aws.bedrock.agent.alias_id"
AWS_BEDROCK_AGENT_MEMORY_ID: Final = "aws.bedrock.agent.memory_id"
AWS_BEDROCK_FLOW_ID: Final = "aws.bedrock.flow.id"
AWS_BEDROCK_FLOW_ALIAS_ID: Final = "aws.bedrock.flow.alias_id"
AWS_BEDROCK_FLOW_EXECUTION_ID: Final = "aws.bedrock.flow.execution_id"
# Whether the agent/flow call asked for trace events (without them there are no counts).
AWS_BEDROCK_AGENT_TRACE_ENABLED: Final = "aws.bedrock.agent.trace_enabled"
# Per model step of an agent (child spans): the step type as Bedrock names it
# (PRE_PROCESSING, ORCHESTRATION, KNOWLEDGE_BASE_RESPONSE_GENERATION, POST_PROCESSING,
# ROUTING_CLASSIFIER, GUARDRAIL), the model call's request id, the step's traceId, and the
# collaborator that made it (multi-agent collaboration).
AWS_BEDROCK_AGENT_STEP_TYPE: Final = "aws.bedrock.agent.step.type"
AWS_BEDROCK_AGENT_CLIENT_REQUEST_ID: Final = "aws.bedrock.agent.step.client_request_id"
AWS_BEDROCK_AGENT_TRACE_ID: Final = "aws.bedrock.agent.step.trace_id"
AWS_BEDROCK_AGENT_COLLABORATOR: Final = "aws.bedrock.agent.collaborator_name"
# On the agent span: how many model steps the trace events reported; the operation's total
# time the service reported (finalResponse metadata), milliseconds.
AWS_BEDROCK_AGENT_MODEL_STEPS: Final = "aws.bedrock.agent.model_steps"
AWS_BEDROCK_AGENT_TOTAL_TIME: Final = "aws.bedrock.agent.operation_total_time_ms"

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
# On the invocation span: why no pre-count was made for it. backoff: CountTokens was throttled
# or timed out for this model and endpoint recently, so pre-counting it pauses for a while.
AWS_BEDROCK_COUNT_TOKENS_SKIPPED: Final = "aws.bedrock.count_tokens.skipped"
SKIPPED_BACKOFF: Final = "backoff"
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
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_INVOKE_WORKFLOW: Final = "invoke_workflow"
OP_RETRIEVAL: Final = "retrieval"
TOKEN_TYPE_INPUT: Final = "input"
TOKEN_TYPE_OUTPUT: Final = "output"

# --- Metrics -----------------------------------------------------------------------------------
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
METRIC_TIME_PER_OUTPUT_CHUNK: Final = "gen_ai.client.operation.time_per_output_chunk"
# latest (semantic-conventions-genai main: #521 renames, #374 per-direction token metrics)
METRIC_INFERENCE_DURATION: Final = "gen_ai.client.inference.duration"
METRIC_INFERENCE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.inference.time_to_first_chunk"
METRIC_INFERENCE_TIME_PER_OUTPUT_CHUNK: Final = "gen_ai.client.inference.time_per_output_chunk"
METRIC_USAGE_INPUT_TOKENS: Final = "gen_ai.client.inference.usage.input_tokens"
METRIC_USAGE_OUTPUT_TOKENS: Final = "gen_ai.client.inference.usage.output_tokens"
METRIC_USAGE_CACHE_READ: Final = "gen_ai.client.inference.usage.cache_read.input_tokens"
METRIC_USAGE_CACHE_WRITE: Final = "gen_ai.client.inference.usage.cache_write.input_tokens"
METRIC_OPERATION_INPUT_TOKENS: Final = "gen_ai.client.inference.operation.input_tokens"
METRIC_OPERATION_OUTPUT_TOKENS: Final = "gen_ai.client.inference.operation.output_tokens"
METRIC_COUNT_TOKENS_DRIFT: Final = "aws.bedrock.count_tokens.drift"
METRIC_PRECOUNT_DROPPED: Final = "aws.bedrock.count_tokens.dropped"
# Pre-counts not attempted because CountTokens is backing off (throttled or timed out).
METRIC_PRECOUNT_SKIPPED: Final = "aws.bedrock.count_tokens.skipped"

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

# --- Events -------------------------------------------------------------------------------------
# The same name in v1.41 and on main: the opt-in content event of an inference operation.
EVENT_INFERENCE_DETAILS: Final = "gen_ai.client.inference.operation.details"

# --- Convention modes ----------------------------------------------------------------------------
SEMCONV_OPT_IN_ENV: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"
SEMCONV_OPT_IN_GEN_AI_LATEST: Final = "gen_ai_latest_experimental"


@dataclass(frozen=True)
class Schema:
    """The names that differ between the released conventions and the latest ones; one is
    chosen at ``instrument()`` time and held by the telemetry, the handler and each record."""

    mode: str  # "v1.41" | "latest"
    schema_url: str
    cache_write_attribute: str
    # gen_ai.client.token.usage with gen_ai.token.type (v1.41) or the per-direction counters
    # and histograms with gen_ai.token.modality (latest)
    token_usage_by_type: bool
    inference_duration: str  # chat, text_completion, embeddings
    operation_duration: str  # count_tokens (not an inference operation)
    time_to_first_chunk: str
    time_per_output_chunk: str
    # gen_ai.output.messages[].finish_reason: required in v1.41, deprecated on main (#363)
    finish_reason_in_messages: bool
    # parts of no known type: {"type": <kind>} (v1.41) or {"type": "generic", "generic_type":
    # <kind>} (main, #584)
    generic_part_type: Optional[str]
    # gen_ai.request.top_k: double in v1.41, int on main (#217)
    top_k_integer: bool


SCHEMA_V1_41: Final = Schema(
    mode="v1.41",
    schema_url="https://opentelemetry.io/schemas/1.41.0",
    cache_write_attribute=GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    token_usage_by_type=True,
    inference_duration=METRIC_OPERATION_DURATION,
    operation_duration=METRIC_OPERATION_DURATION,
    time_to_first_chunk=METRIC_TIME_TO_FIRST_CHUNK,
    time_per_output_chunk=METRIC_TIME_PER_OUTPUT_CHUNK,
    finish_reason_in_messages=True,
    generic_part_type=None,
    top_k_integer=False,
)
SCHEMA_LATEST: Final = Schema(
    mode="latest",
    # the only schema the GenAI repository has published
    schema_url="https://opentelemetry.io/schemas/gen-ai-dev/1.42.0-dev",
    cache_write_attribute=GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
    token_usage_by_type=False,
    inference_duration=METRIC_INFERENCE_DURATION,
    operation_duration=METRIC_OPERATION_DURATION,
    time_to_first_chunk=METRIC_INFERENCE_TIME_TO_FIRST_CHUNK,
    time_per_output_chunk=METRIC_INFERENCE_TIME_PER_OUTPUT_CHUNK,
    finish_reason_in_messages=False,
    generic_part_type="generic",
    top_k_integer=True,
)

# The schema's finish-reason enum (stop, length, content_filter, tool_call, error) for the raw
# values Bedrock's model families send, lower-cased. Values not listed are kept as sent (the
# schema allows any string): mapping an unknown reason would be a guess.
FINISH_REASON_ENUM: Final = {
    "end_turn": "stop", "stop": "stop", "stop_sequence": "stop", "complete": "stop",
    "finish": "stop", "stop_criteria_met": "stop", "eos_token": "stop",
    "max_tokens": "length", "length": "length", "model_length": "length",
    "model_context_window_exceeded": "length", "error_limit": "length",
    "tool_use": "tool_call", "tool_calls": "tool_call",
    "guardrail_intervened": "content_filter", "content_filtered": "content_filter",
    "content_filter": "content_filter", "refusal": "content_filter",
    "error_toxic": "content_filter",
    "error": "error",
}

# --- Response headers botocore exposes (lower-cased) ------------------------------------------
H_INPUT_TOKENS: Final = "x-amzn-bedrock-input-token-count"
H_OUTPUT_TOKENS: Final = "x-amzn-bedrock-output-token-count"
H_CACHE_READ: Final = "x-amzn-bedrock-cache-read-input-token-count"
H_CACHE_WRITE: Final = "x-amzn-bedrock-cache-write-input-token-count"
H_INVOCATION_LATENCY: Final = "x-amzn-bedrock-invocation-latency"

INVOCATION_METRICS_KEY: Final = "amazon-bedrock-invocationMetrics"

# --- Services ------------------------------------------------------------------------------------
SERVICE_RUNTIME: Final = "bedrock-runtime"
SERVICE_AGENT_RUNTIME: Final = "bedrock-agent-runtime"
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
