"""Issue #5: pre-counting input tokens with CountTokens, in blocking and background mode.

Everything goes through real boto3 against the emulator. Where a test needs an ordering
between the pre-count and the invocation (an estimate that lands while the invocation is still
open, a worker busy while the queue fills), it is imposed with botocore ``before-send`` hooks on
the client and events, never with sleeps, so the suite stays fast and cannot flake on a slow
machine. The only timing assertions are the blocking budget's, with a generous margin.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import boto3
import pytest
from botocore.config import Config
from opentelemetry.trace import SpanKind, StatusCode

from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor, names, patch
from opentelemetry.instrumentation.bedrock_tokens.emulator import BedrockEmulator, Scenario
from opentelemetry.instrumentation.bedrock_tokens.precount import CountTokensPrecounter

from .helpers import PROMPT, converse_messages

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
PROFILE = "us." + MODEL
OPERATIONS = ["InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream"]
COUNT_ONLY = ("CountTokens",)
PRECOUNT_LOGGER = "opentelemetry.instrumentation.bedrock_tokens.precount"


def anthropic_body(text: str = PROMPT) -> bytes:
    return json.dumps({
        "anthropic_version": "bedrock-2023-05-31", "max_tokens": 40,
        "messages": [{"role": "user", "content": text}],
    }).encode()


def call(client: Any, operation: str, model: str = MODEL, text: str = PROMPT) -> None:
    """Make one call and consume its response completely, as an application would."""
    if operation == "InvokeModel":
        client.invoke_model(modelId=model, body=anthropic_body(text))["body"].read()
    elif operation == "InvokeModelWithResponseStream":
        for _ in client.invoke_model_with_response_stream(
            modelId=model, body=anthropic_body(text)
        )["body"]:
            pass
    elif operation == "Converse":
        client.converse(modelId=model, messages=converse_messages(text))
    else:
        for _ in client.converse_stream(modelId=model, messages=converse_messages(text))["stream"]:
            pass


def true_count(emulator: Any, operation: str, model: str = MODEL) -> int:
    """What the emulator counts for ``call(client, operation)``: the invocation's input."""
    if operation.startswith("InvokeModel"):
        return int(emulator.input_tokens_for(model, "InvokeModel", anthropic_body()))
    return int(emulator.input_tokens_for(model, "Converse", {"messages": converse_messages()}))


def seen(emulator: Any, operation: str) -> list[Any]:
    return [r for r in emulator.requests if r.operation == operation]


def count_spans(telemetry: Any) -> list[Any]:
    return [s for s in telemetry.spans() if s.name.startswith("count_tokens ")]


def call_spans(telemetry: Any) -> list[Any]:
    return [s for s in telemetry.spans() if not s.name.startswith("count_tokens ")]


def linked(span: Any, relation: str) -> list[int]:
    """Span ids ``span`` links to with the given relation."""
    return [
        link.context.span_id for link in span.links
        if (link.attributes or {}).get(names.AWS_BEDROCK_LINK_RELATION) == relation
    ]


def assert_linked_pair(count: Any, invocation: Any) -> None:
    """Each of the two spans can be found from the other, and the link says what it is."""
    assert linked(invocation, names.LINK_RELATION_PRECOUNT) == [count.context.span_id]
    assert linked(count, names.LINK_RELATION_PRECOUNTED) == [invocation.context.span_id]


def hold_until(client: Any, operation: str, release: Callable[[], Any]) -> None:
    """Keep ``operation``'s request from being sent until ``release()`` returns."""
    def _hold(**_: Any) -> None:
        release()

    client.meta.events.register(f"before-send.bedrock-runtime.{operation}", _hold)


@pytest.fixture
def precount(
    instrument: Callable[..., BedrockTokensInstrumentor],
) -> Iterator[Callable[..., CountTokensPrecounter]]:
    """Instrument with pre-counting on; yields the active pre-counter. Before the
    instrumentor's own teardown uninstruments, every pre-count still running is waited for,
    so none of them reaches the next test's emulator log."""
    def _start(mode: str = "blocking", **options: Any) -> CountTokensPrecounter:
        # A budget a loaded machine cannot miss, unless the test is about the budget: one
        # pre-count past the 0.25 s default backs the model off and skews what others count.
        options.setdefault("precount_timeout", 10.0)
        instrument(precount=mode, **options)
        handler = patch.active
        assert handler is not None
        precounter = handler.precounter
        assert isinstance(precounter, CountTokensPrecounter)
        return precounter

    yield _start
    handler = patch.active
    if handler is not None and isinstance(handler.precounter, CountTokensPrecounter):
        assert handler.precounter.flush(timeout=5.0)


# -- the four operations, both modes -----------------------------------------------------------
@pytest.mark.parametrize("operation", OPERATIONS)
def test_blocking_count_span_estimate_links_and_drift(
    operation: str, precount: Any, bedrock_client: Any, bedrock_emulator: Any,
    bedrock_telemetry: Any,
) -> None:
    offset = 3  # the emulator's CountTokens answers the true count plus this
    bedrock_emulator.set_scenario(Scenario(count_tokens_offset=offset))
    precount("blocking")
    call(bedrock_client, operation)

    ops = [r.operation for r in bedrock_emulator.requests]
    assert ops == ["CountTokens", operation]  # counted first, then invoked
    actual = true_count(bedrock_emulator, operation)
    estimate = actual + offset
    (count,) = count_spans(bedrock_telemetry)
    (invocation,) = call_spans(bedrock_telemetry)

    assert count.name == f"count_tokens {MODEL}"
    assert count.kind is SpanKind.CLIENT
    port = int(bedrock_emulator.endpoint_url.rsplit(":", 1)[1])
    assert dict(count.attributes) == {
        names.GEN_AI_OPERATION_NAME: "count_tokens",
        names.GEN_AI_PROVIDER_NAME: "aws.bedrock",
        names.GEN_AI_REQUEST_MODEL: MODEL,
        names.SERVER_ADDRESS: "127.0.0.1",
        names.SERVER_PORT: port,
        names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS: estimate,
    }
    assert count.status.status_code is StatusCode.UNSET
    # the count ended before the invocation started, though it was linked back afterwards
    assert count.end_time <= invocation.start_time
    assert count.parent == invocation.parent  # siblings under the caller's context

    attrs = invocation.attributes
    assert attrs[names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS] == estimate
    assert attrs[names.GEN_AI_USAGE_INPUT_TOKENS] == actual
    assert attrs[names.AWS_BEDROCK_COUNT_TOKENS_DRIFT] == actual - estimate == -offset
    assert_linked_pair(count, invocation)

    drift = bedrock_telemetry.metric_points(
        names.METRIC_COUNT_TOKENS_DRIFT, gen_ai__operation__name="chat",
        gen_ai__request__model=MODEL,
    )
    assert [(p.count, p.sum) for p in drift] == [(1, offset)]
    assert drift[0].attributes[names.AWS_BEDROCK_COUNT_TOKENS_DIRECTION] == "over"
    # a pre-count is never usage: only the invocation's input reached the usage metric
    usage = bedrock_telemetry.metric_points(
        names.METRIC_TOKEN_USAGE, gen_ai__token__type="input")
    assert sum(p.sum for p in usage) == actual


@pytest.mark.parametrize("operation", OPERATIONS)
def test_background_estimate_lands_on_the_open_invocation(
    operation: str, precount: Any, bedrock_client: Any, bedrock_emulator: Any,
    bedrock_telemetry: Any,
) -> None:
    offset = -2  # CountTokens under-counts: drift is positive
    bedrock_emulator.set_scenario(Scenario(count_tokens_offset=offset))
    counter = precount("background")
    # The invocation is sent only once the pre-count finished: its span is still open then.
    hold_until(bedrock_client, operation, lambda: counter.flush(5.0))
    call(bedrock_client, operation)

    actual = true_count(bedrock_emulator, operation)
    (count,) = count_spans(bedrock_telemetry)
    (invocation,) = call_spans(bedrock_telemetry)
    assert count.attributes[names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS] == actual + offset
    assert invocation.attributes[names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS] == actual + offset
    assert invocation.attributes[names.AWS_BEDROCK_COUNT_TOKENS_DRIFT] == -offset
    assert_linked_pair(count, invocation)
    assert count.start_time >= invocation.start_time  # it ran while the invocation did
    drift = bedrock_telemetry.metric_points(names.METRIC_COUNT_TOKENS_DRIFT)
    assert [(p.count, p.sum) for p in drift] == [(1, -offset)]
    assert drift[0].attributes[names.AWS_BEDROCK_COUNT_TOKENS_DIRECTION] == "under"


def test_background_never_delays_and_late_count_links_only_one_way(
    precount: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    gate = threading.Event()
    counter = precount("background")
    hold_until(bedrock_client, "CountTokens", lambda: gate.wait(5.0))  # a very slow count
    started = time.perf_counter()
    call(bedrock_client, "Converse")
    elapsed = time.perf_counter() - started
    gate.set()
    assert counter.flush(5.0)

    assert elapsed < 1.0  # the call did not wait for its pre-count (held for up to 5 s)
    (count,) = count_spans(bedrock_telemetry)
    (invocation,) = call_spans(bedrock_telemetry)
    assert invocation.end_time < count.end_time
    assert names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS not in invocation.attributes
    assert names.AWS_BEDROCK_COUNT_TOKENS_DRIFT not in invocation.attributes
    assert linked(invocation, names.LINK_RELATION_PRECOUNT) == []
    assert linked(count, names.LINK_RELATION_PRECOUNTED) == [invocation.context.span_id]
    assert bedrock_telemetry.metric_points(names.METRIC_COUNT_TOKENS_DRIFT) == []


# -- sampling ------------------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_sample_ratio_extremes(
    ratio: float, precount: Any, bedrock_client: Any, bedrock_emulator: Any,
) -> None:
    precount("blocking", precount_sample_ratio=ratio)
    for _ in range(10):
        call(bedrock_client, "Converse")
    assert len(seen(bedrock_emulator, "CountTokens")) == int(10 * ratio)


def test_sample_ratio_respected_over_many_calls(
    precount: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    calls, ratio = 200, 0.3
    precount("blocking", precount_sample_ratio=ratio)
    for _ in range(calls):
        call(bedrock_client, "Converse")
    counted = len(seen(bedrock_emulator, "CountTokens"))
    # Binomial(200, 0.3): mean 60, sd 6.5. Six sd either side fails a correct
    # implementation about once in 500 million runs, and still rejects 0.1 or 0.5.
    mean = calls * ratio
    sd = (calls * ratio * (1 - ratio)) ** 0.5
    assert mean - 6 * sd <= counted <= mean + 6 * sd
    estimated = [
        s for s in call_spans(bedrock_telemetry)
        if names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS in s.attributes
    ]
    assert len(estimated) == counted == len(count_spans(bedrock_telemetry))


# -- the budget hook -----------------------------------------------------------------------------
class OverBudget(Exception):
    pass


def test_hook_sees_the_estimate_and_can_veto_the_call(
    precount: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    seen_by_hook: list[tuple[str, str, int]] = []

    def budget(model_id: str, operation_name: str, estimate: int) -> None:
        seen_by_hook.append((model_id, operation_name, estimate))
        if estimate > 5:
            raise OverBudget(f"{estimate} input tokens is over budget")

    precount("blocking", precount_hook=budget)
    call(bedrock_client, "Converse", text="hi")  # small: allowed
    with pytest.raises(OverBudget):
        call(bedrock_client, "Converse", text=PROMPT * 5)  # large: vetoed

    assert [r.operation for r in bedrock_emulator.requests] == [
        "CountTokens", "Converse", "CountTokens"]  # the vetoed call was never sent
    small, large = (e for _, _, e in seen_by_hook)
    assert seen_by_hook == [(MODEL, "Converse", small), (MODEL, "Converse", large)]
    assert small <= 5 < large
    counts = count_spans(bedrock_telemetry)
    assert len(counts) == 2 and len(call_spans(bedrock_telemetry)) == 1
    vetoed = next(
        s for s in counts if s.attributes[names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS] == large)
    assert vetoed.links == ()  # no invocation to link back to
    assert vetoed.end_time is not None


def test_hook_not_called_in_background_or_without_estimate(
    precount: Any, bedrock_client: Any, bedrock_emulator: Any,
) -> None:
    calls: list[Any] = []
    counter = precount("background", precount_hook=lambda *a: calls.append(a))
    call(bedrock_client, "Converse")
    assert counter.flush(5.0)
    assert calls == []

    bedrock_emulator.set_scenario(Scenario(count_tokens="unsupported"))
    precount("blocking", precount_hook=lambda *a: calls.append(a))
    call(bedrock_client, "Converse")
    assert calls == []


# -- what the service says about models and permissions ----------------------------------------
def test_unsupported_model_is_remembered(
    precount: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    bedrock_emulator.set_scenario(Scenario(count_tokens="unsupported"), model_id=MODEL)
    precount("blocking")
    for operation in ["Converse", "InvokeModel", "Converse"]:
        call(bedrock_client, operation)  # the user's calls are unaffected

    assert len(seen(bedrock_emulator, "CountTokens")) == 1  # asked once, not once per call
    (count,) = count_spans(bedrock_telemetry)
    assert count.attributes[names.ERROR_TYPE] == "ValidationException"
    assert count.status.status_code is StatusCode.ERROR
    assert names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS not in count.attributes
    first, *rest = call_spans(bedrock_telemetry)
    assert_linked_pair(count, first)  # the failed count is still findable from the call
    for span in [first, *rest]:
        assert names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS not in span.attributes
        assert span.status.status_code is StatusCode.UNSET
    assert all(s.links == () for s in rest)

    # another model on the same endpoint is still pre-counted
    other = "anthropic.claude-3-5-sonnet-20240620-v1:0"
    call(bedrock_client, "Converse", model=other)
    assert [r.model_id for r in seen(bedrock_emulator, "CountTokens")] == [MODEL, other]


def test_profile_id_falls_back_to_base_id_once(
    precount: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    bedrock_emulator.set_scenario(Scenario(count_tokens_reject_profile_ids=True))
    precount("blocking")
    call(bedrock_client, "Converse", model=PROFILE)
    call(bedrock_client, "Converse", model=PROFILE)

    assert [r.model_id for r in seen(bedrock_emulator, "CountTokens")] == [
        PROFILE, MODEL, MODEL]  # rejected, retried with the base id, then straight to it
    assert [r.model_id for r in seen(bedrock_emulator, "Converse")] == [PROFILE, PROFILE]
    expected = true_count(bedrock_emulator, "Converse")
    for count in count_spans(bedrock_telemetry):
        assert count.attributes[names.GEN_AI_REQUEST_MODEL] == PROFILE
        assert count.attributes[names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS] == expected
        assert names.ERROR_TYPE not in count.attributes
    for span in call_spans(bedrock_telemetry):
        assert span.attributes[names.AWS_BEDROCK_COUNT_TOKENS_DRIFT] == 0


def test_access_denied_disables_the_client_with_one_warning(
    precount: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bedrock_emulator.set_scenario(Scenario(count_tokens="forbidden"))
    precount("blocking")
    second = boto3.client(
        "bedrock-runtime", config=Config(retries={"total_max_attempts": 1}, proxies={}),
        **bedrock_emulator.client_kwargs(),
    )
    with caplog.at_level(logging.WARNING, logger=PRECOUNT_LOGGER):
        for _ in range(3):
            call(bedrock_client, "Converse")
        for _ in range(2):
            call(second, "Converse")

    assert len(seen(bedrock_emulator, "CountTokens")) == 2  # once per client
    assert len(seen(bedrock_emulator, "Converse")) == 5
    warnings = [r for r in caplog.records if r.name == PRECOUNT_LOGGER]
    assert len(warnings) == 1
    assert "bedrock:CountTokens" in warnings[0].getMessage()
    assert all(
        s.attributes[names.ERROR_TYPE] == "AccessDeniedException"
        for s in count_spans(bedrock_telemetry)
    )
    assert all(s.status.status_code is StatusCode.UNSET for s in call_spans(bedrock_telemetry))


def test_throttling_backs_off_that_model_then_counts_again(
    precount: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    bedrock_emulator.push_scenario(Scenario(error_status=429, operations=COUNT_ONLY))
    precount("blocking", precount_backoff=0.3)
    call(bedrock_client, "Converse")  # throttled: the back-off starts
    call(bedrock_client, "Converse")  # within it: not pre-counted, and says why
    time.sleep(0.35)
    call(bedrock_client, "Converse")  # after it: pre-counted again

    assert len(seen(bedrock_emulator, "CountTokens")) == 2
    throttled, ok = count_spans(bedrock_telemetry)
    assert throttled.attributes[names.ERROR_TYPE] == "ThrottlingException"
    assert names.ERROR_TYPE not in ok.attributes
    first, skipped, third = call_spans(bedrock_telemetry)
    assert names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS not in first.attributes
    assert names.AWS_BEDROCK_COUNT_TOKENS_SKIPPED not in first.attributes
    assert skipped.attributes[names.AWS_BEDROCK_COUNT_TOKENS_SKIPPED] == names.SKIPPED_BACKOFF
    assert names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS not in skipped.attributes
    assert names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS in third.attributes
    assert bedrock_telemetry.counter_value(
        names.METRIC_PRECOUNT_SKIPPED, aws__bedrock__count_tokens__skipped="backoff") == 1


@pytest.mark.parametrize("mode", ["blocking", "background"])
def test_pre_count_failure_never_reaches_the_caller(
    mode: str, precount: Any, bedrock_client: Any, bedrock_emulator: Any,
) -> None:
    counter = precount(mode)
    bedrock_emulator.set_scenario(Scenario(error_status=500, operations=COUNT_ONLY))
    call(bedrock_client, "Converse")
    bedrock_emulator.set_scenario(Scenario(malformed_body=True, operations=COUNT_ONLY))
    call(bedrock_client, "ConverseStream")
    assert counter.flush(5.0)
    assert len(seen(bedrock_emulator, "CountTokens")) == 2


def test_file_like_body_is_never_counted_or_consumed(
    precount: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    precount("blocking")
    result = bedrock_client.invoke_model(modelId=MODEL, body=io.BytesIO(anthropic_body()))
    assert json.loads(result["body"].read())["content"]
    assert [r.operation for r in bedrock_emulator.requests] == ["InvokeModel"]
    assert bedrock_emulator.requests[0].body == anthropic_body()
    assert count_spans(bedrock_telemetry) == []


def test_user_count_tokens_is_traced_but_not_pre_counted(
    precount: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    precount("blocking")
    bedrock_client.count_tokens(
        modelId=MODEL, input={"converse": {"messages": converse_messages()}})
    assert len(seen(bedrock_emulator, "CountTokens")) == 1
    (span,) = bedrock_telemetry.spans()
    assert span.links == ()


def test_no_content_in_pre_count_telemetry(
    precount: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    secret = "the launch code is swordfish"
    precount("blocking", capture_content=False)
    call(bedrock_client, "Converse", text=secret)
    call(bedrock_client, "InvokeModel", text=secret)
    for span in bedrock_telemetry.spans():
        for value in span.attributes.values():
            assert "swordfish" not in str(value)


# -- timing budget -------------------------------------------------------------------------------
def test_slow_count_does_not_delay_beyond_the_budget(
    precount: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    budget = 0.1
    bedrock_emulator.set_scenario(Scenario(count_tokens_delay=0.5, operations=COUNT_ONLY))
    counter = precount("blocking", precount_timeout=budget)
    started = time.perf_counter()
    call(bedrock_client, "Converse")
    elapsed = time.perf_counter() - started
    assert budget * 0.9 <= elapsed < budget + 0.3  # waited the budget, not the count

    (invocation,) = call_spans(bedrock_telemetry)
    assert names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS not in invocation.attributes
    assert counter.flush(5.0)
    (count,) = count_spans(bedrock_telemetry)  # the late count still ends, linked back
    assert count.attributes[names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS] > 0
    assert_linked_pair(count, invocation)
    assert names.AWS_BEDROCK_COUNT_TOKENS_DRIFT not in invocation.attributes


def test_late_blocking_count_still_reaches_an_open_invocation(
    precount: Any, bedrock_client: Any, bedrock_emulator: Any, bedrock_telemetry: Any,
) -> None:
    bedrock_emulator.set_scenario(Scenario(count_tokens_delay=0.15, operations=COUNT_ONLY))
    counter = precount("blocking", precount_timeout=0.02)
    hold_until(bedrock_client, "Converse", lambda: counter.flush(5.0))
    call(bedrock_client, "Converse")

    (count,) = count_spans(bedrock_telemetry)
    (invocation,) = call_spans(bedrock_telemetry)
    assert_linked_pair(count, invocation)
    assert invocation.attributes[names.AWS_BEDROCK_COUNT_TOKENS_DRIFT] == 0
    assert bedrock_telemetry.histogram_count(names.METRIC_COUNT_TOKENS_DRIFT) == 1


# -- the bounded queue ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["blocking", "background"])
def test_full_queue_drops_and_counts_never_blocks(
    mode: str, precount: Any, bedrock_client: Any, bedrock_emulator: Any,
    bedrock_telemetry: Any,
) -> None:
    entered, gate = threading.Event(), threading.Event()

    def occupy_worker(**_: Any) -> None:
        entered.set()
        gate.wait(5.0)

    # (a back-off too short to matter: blocking mode would otherwise stop pre-counting after
    # the first count outlived its budget, and nothing would queue)
    counter = precount(mode, precount_workers=1, precount_queue_size=1, precount_timeout=0.02,
                       precount_backoff=1e-6)
    bedrock_client.meta.events.register("before-send.bedrock-runtime.CountTokens", occupy_worker)
    call(bedrock_client, "Converse")  # its pre-count occupies the only worker...
    assert entered.wait(5.0)
    started = time.perf_counter()
    for _ in range(4):  # ...the next waits in the one queue slot, three are dropped
        call(bedrock_client, "Converse")
    elapsed = time.perf_counter() - started
    gate.set()
    assert counter.flush(5.0)

    assert elapsed < 2.0  # nobody waited for the stuck worker (held up to 5 s)
    dropped = bedrock_telemetry.metric_points(names.METRIC_PRECOUNT_DROPPED)
    assert [p.value for p in dropped] == [3]
    assert dropped[0].attributes[names.GEN_AI_REQUEST_MODEL] == MODEL
    assert dropped[0].attributes[names.GEN_AI_OPERATION_NAME] == "chat"
    assert len(seen(bedrock_emulator, "Converse")) == 5
    # blocking: the queued pre-count outlived its caller's budget and was cancelled unsent
    assert len(seen(bedrock_emulator, "CountTokens")) == (1 if mode == "blocking" else 2)


def test_uninstrument_stops_the_workers(
    precount: Any, bedrock_client: Any, instrument: Any,
) -> None:
    counter = precount("background")
    call(bedrock_client, "Converse")
    assert counter.flush(5.0)
    threads = list(counter._pool._threads)
    assert threads and all(t.daemon for t in threads)
    instrument()  # re-instrumenting uninstruments first, which shuts the pre-counter down
    for thread in threads:
        thread.join(2.0)
        assert not thread.is_alive()


# -- process exit ----------------------------------------------------------------------------------
_EXIT_SCRIPT = textwrap.dedent("""
    import sys, boto3
    from botocore.config import Config
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor, patch

    BedrockTokensInstrumentor().instrument(
        tracer_provider=TracerProvider(), precount="background", precount_workers=2)
    client = boto3.client(
        "bedrock-runtime", endpoint_url=sys.argv[1], region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}, proxies={}))
    for _ in range(3):
        client.converse(modelId=sys.argv[2],
                        messages=[{"role": "user", "content": [{"text": "hi"}]}])
    print("in flight:", patch.active.precounter._pool._busy, flush=True)
""")


def test_process_exits_promptly_with_pre_counts_in_flight(tmp_path: Any) -> None:
    script = tmp_path / "exit_with_precounts.py"
    script.write_text(_EXIT_SCRIPT)
    # Its own emulator: the 30 s CountTokens must not land in another test's request log.
    with BedrockEmulator() as emulator:
        emulator.set_scenario(Scenario(count_tokens_delay=30.0, operations=COUNT_ONLY))
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(script), emulator.endpoint_url, MODEL],
            capture_output=True, text=True, timeout=60,
        )
        elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "in flight: 3" in done.stdout
    assert "Traceback" not in done.stderr and "Fatal" not in done.stderr
    assert elapsed < 15.0  # interpreter start-up and boto3 import, not the 30 s counts
