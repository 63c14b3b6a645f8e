"""Issue #8, the fault matrix: every case of ``matrix.CASES``, in every pre-count mode it applies
to, made twice against the emulator, uninstrumented and then instrumented. For each run:

* differential: the user sees exactly what the uninstrumented client showed (results, events,
  body reads, exceptions, in order);
* nothing of ours failed silently (no swallowed exception, no span touched after its end, no
  exception in a finaliser or thread);
* every span started was ended exactly once; one invocation span per call, with the status,
  ``error.type`` and stream outcome the user's experience implies;
* counts are exact or absent (see ``matrix``), metric recordings are exactly what the spans
  say, and everything recorded can be encoded by the OTLP exporter;
* in the pre-count modes: one count span, linked both ways, whose estimate is the one
  CountTokens answered, and drift = exact input - estimate.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

import pytest

from opentelemetry.instrumentation.bedrock_tokens import names

from ..helpers import expected_usage_attrs, usage_attrs
from .matrix import Case, runs
from .support import (
    COUNT,
    STREAM_CONSUMERS,
    Observation,
    Watch,
    assert_clean,
    assert_counts_valid,
    assert_exportable,
    assert_metrics_match_spans,
    default_params,
    exact_count,
    expected_error_type,
    observe_call,
    rewrite_headers,
    serve_canned,
    settle,
    span_status_is_error,
    split_spans,
)

RUNS = [pytest.param(case, mode, id=f"{case.id}[{mode}]") for case, mode in runs()]


def _prepare(emulator: Any, case: Case) -> None:
    emulator.reset()
    if case.alias is not None:
        emulator.register_alias(*case.alias)
    assert case.scenario is None or case.count_scenario is None
    scenario = case.scenario or case.count_scenario
    if scenario is not None:
        emulator.set_scenario(scenario)


def _inject(client: Any, case: Case) -> Optional[int]:
    """Install the case's response faults on the client. Returns the pre-count answer the
    instrumentation must report for an injected CountTokens answer: the exact count of what
    botocore hands any CountTokens caller for it (None if that is no count, or not parsed)."""
    if case.canned is not None:
        serve_canned(client, case.operation, case.canned)
    if case.headers is not None or case.remove_headers:
        rewrite_headers(client, case.operation, case.headers or {}, case.remove_headers)
    if case.canned_count is None:
        return None
    serve_canned(client, COUNT, case.canned_count)
    try:
        answer = client.count_tokens(**default_params(COUNT))
    except Exception:
        return None
    return exact_count(answer.get("inputTokens"))


@pytest.mark.parametrize(("case", "mode"), RUNS)
def test_fault_matrix(
    case: Case, mode: str, request: pytest.FixtureRequest, bedrock_emulator: Any,
    bedrock_telemetry: Any, instrument: Callable[..., Any], make_client: Callable[..., Any],
    watch: Watch,
) -> None:
    request.node.user_properties.append(("reliability_group", case.group))
    client = make_client(case.read_timeout)
    injected_count = _inject(client, case)

    _prepare(bedrock_emulator, case)
    plain = observe_call(client, case.operation, case.make_params(), case.consume)

    _prepare(bedrock_emulator, case)
    options: dict[str, Any] = {"precount": mode}
    if mode != "off":
        options["precount_timeout"] = case.precount_timeout
    instrument(**options)
    ours = observe_call(client, case.operation, case.make_params(), case.consume)
    settle(watch.ledger)

    check_run(case, mode, plain, ours, bedrock_telemetry, bedrock_emulator, watch,
              injected_count)


def check_run(
    case: Case, mode: str, plain: Observation, ours: Observation, telemetry: Any,
    emulator: Any, watch: Watch, injected_count: Optional[int],
) -> None:
    """Every check of one run, whichever driver made it (sync here, async in test_async)."""
    assert ours.view == plain.view, "the instrumented client showed its user something else"
    invocations, counts = split_spans(telemetry, case.operation)
    assert len(invocations) == 1, [s.name for s in telemetry.spans()]
    span = invocations[0]
    assert_counts_valid(span)
    _check_status(case, ours, span)
    _check_usage(case, ours, span, emulator)
    for key in case.absent:
        assert key not in span.attributes, key
    assert_metrics_match_spans(telemetry, invocations)
    if mode != "off" and case.operation != COUNT:
        _check_precount(case, mode, span, counts, emulator, injected_count)
    else:
        assert counts == []
        assert names.AWS_BEDROCK_COUNT_TOKENS_DRIFT not in span.attributes
    assert_exportable(telemetry, watch.guards)
    assert_clean(watch)


def _check_status(case: Case, obs: Observation, span: Any) -> None:
    attrs = span.attributes
    failure = obs.call_error or obs.stream_error
    if failure is not None:
        assert span_status_is_error(span)
        assert attrs[names.ERROR_TYPE] == expected_error_type(failure)
    else:
        assert not span_status_is_error(span)
        assert names.ERROR_TYPE not in attrs
    if case.streamed and obs.call_error is None:
        outcome = "error" if obs.stream_error is not None else STREAM_CONSUMERS[case.consume]
        assert attrs[names.AWS_BEDROCK_STREAM_OUTCOME] == outcome
        assert attrs[names.GEN_AI_REQUEST_STREAM] is True
        assert (names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attrs) == bool(obs.events)
    else:
        assert names.AWS_BEDROCK_STREAM_OUTCOME not in attrs
        assert names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in attrs


def _recorded(span: Any, emulator: Any, operation: str) -> Any:
    """The emulator's record of the call: by request id, else (no id on the response) the one
    answered call of that operation."""
    requests = emulator.requests
    request_id = span.attributes.get(names.AWS_REQUEST_ID)
    if request_id is not None:
        found = [r for r in requests if r.request_id == request_id]
        assert len(found) == 1, request_id
        return found[0]
    answered = [r for r in requests if r.operation == operation and r.status == 200]
    return answered[-1] if len(answered) == 1 else None


def _counts_on(span: Any, operation: str) -> dict[str, Any]:
    if operation == COUNT:
        key = names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS
        assert usage_attrs(span) == {}  # a count is never usage
        return {key: span.attributes[key]} if key in span.attributes else {}
    return usage_attrs(span)


def _reported(record: Any, operation: str) -> dict[str, int]:
    if operation == COUNT:
        count = record.input_tokens
        return {} if count is None else {names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS: count}
    return dict(expected_usage_attrs(record))


def _check_usage(case: Case, obs: Observation, span: Any, emulator: Any) -> None:
    got = _counts_on(span, case.operation)
    failed = obs.call_error is not None or obs.stream_error is not None
    if callable(case.expect):
        assert got == ({} if obs.call_error is not None else case.expect(obs))
        return
    if case.expect == "none":
        assert got == {}
        return
    record = _recorded(span, emulator, case.operation) if span.attributes.get(
        names.AWS_REQUEST_ID) is not None or not failed else None
    reported = _reported(record, case.operation) if record is not None else {}
    if case.expect == "full":
        assert not failed, "a 'full' case failed"
        assert reported, "the emulator reported no usage for a 'full' case"
        assert got == reported
    else:  # exact or absent
        assert {k: reported.get(k) for k in got} == got, (got, reported)


def _linked(span: Any, relation: str) -> list[int]:
    return [link.context.span_id for link in span.links
            if (link.attributes or {}).get(names.AWS_BEDROCK_LINK_RELATION) == relation]


def _check_precount(
    case: Case, mode: str, span: Any, counts: list[Any], emulator: Any,
    injected: Optional[int],
) -> None:
    estimate = span.attributes.get(names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS)
    if not case.precounted:
        assert counts == [] and estimate is None
        return
    budget_generous = case.precount_timeout >= 10
    if mode == "blocking" and not budget_generous:
        assert len(counts) <= 1  # a count still queued at its deadline is cancelled, unsent
    else:
        assert len(counts) == 1, [s.name for s in counts]
    answered = [r.input_tokens for r in emulator.requests
                if r.operation == COUNT and r.status == 200]
    for count in counts:
        assert count.parent == span.parent  # siblings
        assert _linked(count, names.LINK_RELATION_PRECOUNTED) == [span.context.span_id]
        value = count.attributes.get(names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS)
        assert_counts_valid(count)
        if value is None:
            assert span_status_is_error(count) and names.ERROR_TYPE in count.attributes
            # (with a short client read timeout, a slow machine may time the count out too)
            assert case.count_scenario is not None or case.canned_count is not None or (
                case.read_timeout is not None) or not answered, (
                "CountTokens answered but the count span has no count")
            if case.canned_count is not None:
                assert injected is None
        else:
            assert not span_status_is_error(count)
            assert value == (injected if case.canned_count is not None else answered[-1])
            if mode == "blocking" and budget_generous:
                assert estimate == value  # the invocation started with it
        if estimate is not None:
            assert estimate == value
        if mode == "blocking" or estimate is not None:
            assert _linked(span, names.LINK_RELATION_PRECOUNT) == [count.context.span_id]
    if estimate is None:
        assert names.AWS_BEDROCK_COUNT_TOKENS_DRIFT not in span.attributes
        return
    exact = span.attributes.get(names.GEN_AI_USAGE_INPUT_TOKENS)
    if exact is None:
        assert names.AWS_BEDROCK_COUNT_TOKENS_DRIFT not in span.attributes
    else:
        assert span.attributes[names.AWS_BEDROCK_COUNT_TOKENS_DRIFT] == exact - estimate


def test_every_case_has_a_unique_id_and_runs_somewhere() -> None:
    from .matrix import CASES, matrix_ids

    assert len(matrix_ids()) == len(CASES)
    assert all(case.modes for case in CASES)
    # every consumer and every kind of expectation is exercised
    assert {c.consume for c in CASES if c.streamed} >= set(STREAM_CONSUMERS)
    assert {c.expect for c in CASES if isinstance(c.expect, str)} == {"full", "none", "subset"}
    json.dumps([c.id for c in CASES])
