"""What each backend needs to receive, and one checker that says what is missing.

Every example shape declares its needs as data (``Shape``); ``check_export`` compares the
decoded OTLP exports with them and with the exact counts the emulator's tokenizer gives for
the requests the example made (``Call``). It collects every problem before failing, so one
run shows all that a backend would miss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from opentelemetry.instrumentation.bedrock_tokens import names
from opentelemetry.instrumentation.bedrock_tokens.telemetry import SCHEMA_URL, SCOPE
from opentelemetry.instrumentation.bedrock_tokens.version import __version__

from .otlp_receiver import Export, attributes_of, iter_metrics, iter_spans

DELTA, CUMULATIVE = 1, 2  # opentelemetry.proto AggregationTemporality values
SPAN_KIND_CLIENT = 3
STATUS_UNSET = 0

# On every invocation span, whatever the backend: the sampling-relevant GenAI attributes and
# the exact counts.
COMMON_SPAN_ATTRIBUTES = (
    names.GEN_AI_OPERATION_NAME, names.GEN_AI_PROVIDER_NAME, names.GEN_AI_REQUEST_MODEL,
    names.SERVER_ADDRESS, names.SERVER_PORT,
    names.GEN_AI_USAGE_INPUT_TOKENS, names.GEN_AI_USAGE_OUTPUT_TOKENS,
)
# What Datadog LLM Observability maps from OTLP spans (GenAI conventions 1.37+).
DATADOG_SPAN_ATTRIBUTES = (
    names.GEN_AI_PROVIDER_NAME, names.GEN_AI_OPERATION_NAME, names.GEN_AI_REQUEST_MODEL,
    names.GEN_AI_REQUEST_MAX_TOKENS, names.GEN_AI_REQUEST_TEMPERATURE,
    names.GEN_AI_USAGE_INPUT_TOKENS, names.GEN_AI_USAGE_OUTPUT_TOKENS,
)
# What Honeycomb's LLM views read: operation (to detect LLM calls), model, usage, finish.
HONEYCOMB_SPAN_ATTRIBUTES = (
    names.GEN_AI_OPERATION_NAME, names.GEN_AI_REQUEST_MODEL,
    names.GEN_AI_USAGE_INPUT_TOKENS, names.GEN_AI_USAGE_OUTPUT_TOKENS,
    names.GEN_AI_RESPONSE_FINISH_REASONS,
)
METRIC_ATTRIBUTES = (
    names.GEN_AI_PROVIDER_NAME, names.GEN_AI_OPERATION_NAME, names.GEN_AI_REQUEST_MODEL,
    names.SERVER_ADDRESS, names.SERVER_PORT,
)


@dataclass(frozen=True)
class Call:
    """One Bedrock call an example makes, with the counts the emulator must report."""

    operation: str  # gen_ai.operation.name
    model: str
    input_tokens: int
    output_tokens: int
    stream: bool = False


@dataclass(frozen=True)
class Shape:
    """One example: how it is run and what its backend must receive."""

    name: str
    script: str  # file in examples/
    temporality: int
    span_attributes: tuple[str, ...] = ()
    # header name -> exact value, or None for "present"
    trace_headers: dict[str, Optional[str]] = field(default_factory=dict)
    metric_headers: dict[str, Optional[str]] = field(default_factory=dict)
    precount: Optional[str] = None  # blocking | background
    service_name: str = "bedrock-app"
    launcher: bool = True


def _check_requests(exports: Sequence[Export], path: str, wanted: dict[str, Optional[str]],
                    problems: list[str]) -> None:
    if not exports:
        problems.append(f"nothing was exported to {path}")
    for export in exports:
        if export.path != path:
            problems.append(f"export sent to {export.path}, expected {path}")
        if export.headers.get("content-type") != "application/x-protobuf":
            problems.append(f"{path}: content-type {export.headers.get('content-type')!r}")
        for header, value in wanted.items():
            got = export.headers.get(header)
            if got is None:
                problems.append(f"{path}: header {header} missing")
            elif value is not None and got != value:
                problems.append(f"{path}: header {header}={got!r}, expected {value!r}")


def _check_spans(traces: Sequence[Export], calls: Sequence[Call], shape: Shape,
                 problems: list[str]) -> None:
    ours = [(res, scope, span) for res, scope, span in iter_spans(list(traces))
            if scope.scope.name == SCOPE]
    counted_elsewhere = [span.name for res, scope, span in iter_spans(list(traces))
                         if scope.scope.name != SCOPE and names.GEN_AI_USAGE_INPUT_TOKENS
                         in attributes_of(span.attributes)]
    if counted_elsewhere:
        problems.append(f"tokens also recorded by another instrumentation: {counted_elsewhere}")
    for res, scope, _span in ours[:1]:
        if res.get("service.name") != shape.service_name:
            problems.append(f"resource service.name={res.get('service.name')!r}")
        if scope.scope.version != __version__ or scope.schema_url != SCHEMA_URL:
            problems.append(f"scope version/schema {scope.scope.version!r} {scope.schema_url!r}")
    by_id = {span.span_id: span for _r, _s, span in ours}
    counts = [span for _r, _s, span in ours
              if attributes_of(span.attributes).get(names.GEN_AI_OPERATION_NAME)
              == names.OP_COUNT_TOKENS]
    invocations = sorted((span for _r, _s, span in ours if span not in counts),
                         key=lambda s: s.start_time_unix_nano)
    if len(invocations) != len(calls):
        problems.append(f"{len(invocations)} invocation spans for {len(calls)} calls")
    for number, (span, call) in enumerate(zip(invocations, calls), start=1):
        where = f"span {number} ({span.name})"
        attrs = attributes_of(span.attributes)
        if span.name != f"{call.operation} {call.model}":
            problems.append(f"{where}: name, expected {call.operation} {call.model}")
        if span.kind != SPAN_KIND_CLIENT or span.status.code != STATUS_UNSET:
            problems.append(f"{where}: kind {span.kind}, status {span.status.code}")
        for name in dict.fromkeys((*COMMON_SPAN_ATTRIBUTES, *shape.span_attributes)):
            if name not in attrs:
                problems.append(f"{where}: attribute {name} missing")
        expected = {
            names.GEN_AI_PROVIDER_NAME: names.PROVIDER_AWS_BEDROCK,
            names.GEN_AI_OPERATION_NAME: call.operation,
            names.GEN_AI_REQUEST_MODEL: call.model,
            names.GEN_AI_USAGE_INPUT_TOKENS: call.input_tokens,
            names.GEN_AI_USAGE_OUTPUT_TOKENS: call.output_tokens,
        }
        for name, value in expected.items():
            if name in attrs and attrs[name] != value:
                problems.append(f"{where}: {name}={attrs[name]!r}, expected {value!r}")
        if call.stream:
            if attrs.get(names.GEN_AI_REQUEST_STREAM) is not True:
                problems.append(f"{where}: {names.GEN_AI_REQUEST_STREAM} is not true")
            if not attrs.get(names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, 0) > 0:
                problems.append(f"{where}: no {names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK}")
        if shape.precount == "blocking":
            _check_blocking_link(where, span, attrs, call, by_id, problems)
    if shape.precount == "background":
        # A background count still running when the process exits is abandoned by design
        # (pre-counting never holds an application up), so the last calls of a short script
        # may have none; every count span that was exported must link to its invocation.
        invocation_ids = {span.span_id for span in invocations}
        if not counts:
            problems.append("no count span was exported")
        for count in counts:
            targets = [link.span_id for link in count.links
                       if attributes_of(link.attributes).get(names.AWS_BEDROCK_LINK_RELATION)
                       == names.LINK_RELATION_PRECOUNTED]
            if len(targets) != 1 or targets[0] not in invocation_ids:
                problems.append(f"count span {count.name}: no link to an exported invocation")


def _check_blocking_link(where: str, span: Any, attrs: dict[str, Any], call: Call,
                         by_id: dict[bytes, Any], problems: list[str]) -> None:
    links = [link for link in span.links
             if attributes_of(link.attributes).get(names.AWS_BEDROCK_LINK_RELATION)
             == names.LINK_RELATION_PRECOUNT]
    if len(links) != 1:
        problems.append(f"{where}: {len(links)} pre-count links, expected 1")
        return
    count_span = by_id.get(links[0].span_id)
    if count_span is None:
        problems.append(f"{where}: its pre-count link points to no exported span")
        return
    counted = attributes_of(count_span.attributes).get(names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS)
    if counted != call.input_tokens:
        problems.append(f"{where}: count span says {counted}, expected {call.input_tokens}")
    if attrs.get(names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS) != call.input_tokens:
        problems.append(f"{where}: estimate attribute missing or wrong")
    if attrs.get(names.AWS_BEDROCK_COUNT_TOKENS_DRIFT) != 0:
        problems.append(f"{where}: drift {attrs.get(names.AWS_BEDROCK_COUNT_TOKENS_DRIFT)!r}")


def _histogram_points(metrics: Sequence[Export], name: str, temporality: int,
                      problems: list[str]) -> tuple[Any, list[Any]]:
    """(metric, points as a backend would total them): all delta points, or the last
    cumulative point of each attribute set."""
    found = [(scope, metric) for _r, scope, metric in iter_metrics(list(metrics))
             if metric.name == name]
    others = {scope.scope.name for scope, _m in found if scope.scope.name != SCOPE}
    if others:
        problems.append(f"{name} is also emitted by {sorted(others)}: sums would double")
    ours = [metric for scope, metric in found if scope.scope.name == SCOPE]
    if not ours:
        problems.append(f"metric {name} missing")
        return None, []
    points: dict[tuple[Any, ...], list[Any]] = {}
    for metric in ours:
        if metric.WhichOneof("data") != "histogram":
            problems.append(f"{name} is a {metric.WhichOneof('data')}, not a histogram")
            return metric, []
        if metric.histogram.aggregation_temporality != temporality:
            problems.append(f"{name}: temporality {metric.histogram.aggregation_temporality},"
                            f" expected {temporality}")
        for point in metric.histogram.data_points:
            key = tuple(sorted(attributes_of(point.attributes).items()))
            points.setdefault(key, []).append(point)
    if temporality == DELTA:
        return ours[0], [p for group in points.values() for p in group]
    return ours[0], [group[-1] for group in points.values()]


def _check_metrics(metrics: Sequence[Export], calls: Sequence[Call], shape: Shape,
                   problems: list[str]) -> None:
    usage, points = _histogram_points(metrics, names.METRIC_TOKEN_USAGE, shape.temporality,
                                      problems)
    if usage is not None:
        if usage.unit != names.UNIT_TOKEN:
            problems.append(f"{usage.name}: unit {usage.unit!r}")
        for kind, expected in ((names.TOKEN_TYPE_INPUT, sum(c.input_tokens for c in calls)),
                               (names.TOKEN_TYPE_OUTPUT, sum(c.output_tokens for c in calls))):
            mine = [p for p in points
                    if attributes_of(p.attributes).get(names.GEN_AI_TOKEN_TYPE) == kind]
            total, count = sum(p.sum for p in mine), sum(p.count for p in mine)
            if (total, count) != (expected, len(calls)):
                problems.append(f"{usage.name} {kind}: sum {total} over {count} recordings, "
                                f"expected {expected} over {len(calls)}")
        for point in points:
            attrs = attributes_of(point.attributes)
            missing = [n for n in (*METRIC_ATTRIBUTES, names.GEN_AI_TOKEN_TYPE) if n not in attrs]
            if missing:
                problems.append(f"{usage.name} point without {missing}")
            if tuple(point.explicit_bounds) != tuple(float(b) for b in names.TOKEN_BUCKETS):
                problems.append(f"{usage.name}: bucket bounds {list(point.explicit_bounds)}")
    duration, points = _histogram_points(metrics, names.METRIC_OPERATION_DURATION,
                                         shape.temporality, problems)
    if duration is not None:
        invocation_points = [p for p in points if attributes_of(p.attributes).get(
            names.GEN_AI_OPERATION_NAME) != names.OP_COUNT_TOKENS]
        if duration.unit != names.UNIT_SECONDS:
            problems.append(f"{duration.name}: unit {duration.unit!r}")
        if sum(p.count for p in invocation_points) != len(calls):
            problems.append(f"{duration.name}: {sum(p.count for p in invocation_points)} "
                            f"recordings for {len(calls)} calls")
        for point in points:
            missing = [n for n in METRIC_ATTRIBUTES if n not in attributes_of(point.attributes)]
            if missing:
                problems.append(f"{duration.name} point without {missing}")
            if tuple(point.explicit_bounds) != names.DURATION_BUCKETS:
                problems.append(f"{duration.name}: bucket bounds {list(point.explicit_bounds)}")
    streams = sum(1 for c in calls if c.stream)
    if streams:
        ttfc, points = _histogram_points(metrics, names.METRIC_TIME_TO_FIRST_CHUNK,
                                         shape.temporality, problems)
        if ttfc is not None and sum(p.count for p in points) != streams:
            problems.append(f"{ttfc.name}: {sum(p.count for p in points)} recordings for "
                            f"{streams} streamed calls")


def check_export(traces: Sequence[Export], metrics: Sequence[Export], calls: Sequence[Call],
                 shape: Shape) -> None:
    """Raise AssertionError listing everything the backend of ``shape`` would miss."""
    problems: list[str] = []
    _check_requests(traces, "/v1/traces", shape.trace_headers, problems)
    _check_requests(metrics, "/v1/metrics", shape.metric_headers, problems)
    _check_spans(traces, calls, shape, problems)
    _check_metrics(metrics, calls, shape, problems)
    if problems:
        raise AssertionError(f"{shape.name}: what the backend would miss or get wrong:\n  "
                             + "\n  ".join(problems))
