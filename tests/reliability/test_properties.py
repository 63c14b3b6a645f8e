"""Property tests of every parser the instrumentation runs on data it does not control, beyond
tests/test_parsing.py: the stream accumulator fed arbitrary events through the real proxy, the
response handler fed arbitrary results, content capture, settings, error types, model ids, and
``to_count`` against the independent oracle. Arbitrary input never raises, never leaves a span
open or ended twice, and never yields a count that is negative, not an integer, or not 64-bit.
"""

from __future__ import annotations

import io
import json
import math
import threading
from collections.abc import Iterator
from typing import Any, Optional

import pytest
from botocore.response import StreamingBody
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opentelemetry.instrumentation.bedrock_tokens import config, content, families, names, patch
from opentelemetry.instrumentation.bedrock_tokens import streams as streams_module
from opentelemetry.instrumentation.bedrock_tokens.models import parse_model_id
from opentelemetry.instrumentation.bedrock_tokens.pytest_plugin import BedrockTelemetry
from opentelemetry.instrumentation.bedrock_tokens.record import CallRecord, error_type
from opentelemetry.instrumentation.bedrock_tokens.streams import StreamProxy, _StreamState
from opentelemetry.instrumentation.bedrock_tokens.telemetry import Telemetry
from opentelemetry.instrumentation.bedrock_tokens.usage import to_count

from .support import INT64_MAX, Ledger, assert_counts_valid, exact_count, int_attribute_problems

PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- strategies ---------------------------------------------------------------------------------
COUNT_KEYS = (
    "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
    "inputTokens", "outputTokens", "totalTokens", "cacheReadInputTokens", "cacheWriteInputTokens",
    "cacheReadInputTokenCount", "cacheWriteInputTokenCount", "inputTokenCount", "outputTokenCount",
    "invocationLatency", "firstByteLatency", "latencyMs", "prompt_tokens", "completion_tokens",
    "prompt_token_count", "generation_token_count", "inputTextTokenCount", "tokenCount",
    "totalOutputTextTokenCount",
)
SHAPE_KEYS = (
    "usage", "message", "metadata", "metrics", "delta", "results", "choices", "outputs",
    "generations", "meta", "billed_units", "response", "contentBlockDelta", "messageStop",
    names.INVOCATION_METRICS_KEY, "stop_reason", "stopReason", "finish_reason", "id", "model",
    "text", "outputText", "completion", "generation", "content", "type", "role",
)
number_like = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["7", " 7 ", "7.0", "-7", "+7", "7e0", "1e400", "nan", "0x7", "", "\u0667",
                       str(2**63 - 1), str(2**63), "1_0", "7, 7"])
    | st.booleans() | st.none()
)
leaf = number_like | st.text(max_size=12)
json_like = st.recursive(
    leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(COUNT_KEYS + SHAPE_KEYS) | st.text(max_size=6), inner, max_size=6),
    max_leaves=30,
)


def _jsonable(value: Any) -> bytes:
    return json.dumps(value, default=str).encode()


stream_events = st.lists(
    st.one_of(
        json_like.map(lambda v: {"chunk": {"bytes": _jsonable(v)}}),
        st.binary(max_size=40).map(lambda b: {"chunk": {"bytes": b}}),
        json_like.map(lambda v: {"metadata": v}),
        json_like.map(lambda v: {"messageStop": v}),
        json_like.map(lambda v: {"contentBlockDelta": v}),
        json_like,
        st.builds(object),
    ),
    max_size=12,
)


# -- shared -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sdk() -> Iterator[tuple[BedrockTelemetry, Telemetry, Ledger]]:
    telemetry = BedrockTelemetry()
    ledger = Ledger()
    telemetry.tracer_provider.add_span_processor(ledger)
    yield telemetry, Telemetry(telemetry.tracer_provider, telemetry.meter_provider), ledger
    telemetry.shutdown()


def _fresh(sdk: Any) -> tuple[BedrockTelemetry, Telemetry, Ledger]:
    """The module's providers, with nothing left over from an earlier example."""
    telemetry, tel, ledger = sdk
    telemetry.clear_spans()
    ledger.reset()
    return telemetry, tel, ledger


def _check_spans(telemetry: BedrockTelemetry, ledger: Ledger) -> None:
    assert ledger.open_spans() == []
    assert ledger.ended_twice() == []
    spans = telemetry.spans()
    for span in spans:
        assert_counts_valid(span)
    assert int_attribute_problems(spans, []) == []
    telemetry.clear_spans()


# -- to_count against the oracle ---------------------------------------------------------------
numeric_text = st.text(alphabet="0123456789+-._eEinfaxX \t\u0660\u0661\uff17", max_size=24)


@PROPERTY
@given(number_like | numeric_text | numeric_text.map(str.encode) | json_like)
def test_to_count_agrees_with_the_oracle(value: Any) -> None:
    got = to_count(value)
    assert got == exact_count(value), value
    assert got is None or (type(got) is int and 0 <= got <= INT64_MAX)


# -- the stream accumulator, through the real proxy ---------------------------------------------
class _Source:
    """A stand-in for botocore's EventStream: iterable, closable, maybe failing at the end."""

    def __init__(self, events: list[Any], fail: bool) -> None:
        self._events = events
        self._fail = fail
        self.closed = 0

    def __iter__(self) -> Iterator[Any]:
        yield from self._events
        if self._fail:
            raise ConnectionError("dropped")

    def close(self) -> None:
        self.closed += 1


# The stream accumulator's cases, for the sync test here and its async twin
ACCUMULATOR_CASES = {
    "events": stream_events,
    "kind": st.sampled_from(["invoke", "converse"]),
    "family": st.sampled_from(sorted(families.FAMILIES)),
    "fail": st.booleans(),
    "ending": st.sampled_from(["exhaust", "break-close", "break-drop", "close-unread", "never"]),
    "limit": st.none() | st.integers(min_value=1, max_value=64),
}


@PROPERTY
@given(**ACCUMULATOR_CASES)
def test_stream_accumulator_takes_any_events(
    sdk: Any, events: list[Any], kind: str, family: str, fail: bool, ending: str,
    limit: Optional[int],
) -> None:
    telemetry, tel, ledger = _fresh(sdk)
    span = tel.tracer.start_span("stream")
    record = CallRecord(tel, span, 0.0, tel.metric_attributes("chat", "m", None, None))
    collector = content.TextCollector(limit) if limit is not None else None
    source = _Source(events, fail)
    proxy = StreamProxy(source, _StreamState(record, kind, family, collector))
    seen: list[Any] = []
    raised: Optional[BaseException] = None
    try:
        if ending == "exhaust":
            for event in proxy:
                seen.append(event)
        elif ending in ("break-close", "break-drop"):
            for event in proxy:
                seen.append(event)
                break
            if ending == "break-close":
                proxy.close()
                proxy.close()
        elif ending == "close-unread":
            proxy.close()
    except ConnectionError as exc:
        raised = exc
    del proxy  # no cycle holds it: a dropped stream is collected at once, no gc pass needed
    # transparent: the user got the very events, in order, and the failure unchanged
    broke = ending.startswith("break")
    expected = events if ending == "exhaust" else events[:1] if broke else []
    assert len(seen) == len(expected) and all(a is b for a, b in zip(seen, expected))
    reached_failure = ending == "exhaust" or (broke and not events)
    assert (raised is not None) == (fail and reached_failure)
    assert record.ended
    assert not any(state.record is record for state in list(streams_module._open))
    _check_spans(telemetry, ledger)


# -- the response handler, fed arbitrary results ------------------------------------------------
headers_like = st.dictionaries(
    st.sampled_from([names.H_INPUT_TOKENS, names.H_OUTPUT_TOKENS, names.H_CACHE_READ,
                     names.H_CACHE_WRITE, names.H_INVOCATION_LATENCY, "content-type"]),
    number_like.map(str) | st.text(max_size=10),
)
body_bytes = json_like.map(_jsonable) | st.binary(max_size=64)


@PROPERTY
@given(
    operation=st.sampled_from(sorted(patch.OPERATIONS)),
    model=st.sampled_from(["anthropic.claude-3-5-haiku-20241022-v1:0", "amazon.nova-micro-v1:0",
                           "amazon.titan-text-express-v1", "meta.llama3-1-8b-instruct-v1:0",
                           "cohere.command-r-v1:0", "openai.gpt-oss-20b-1:0", "x", ""]),
    request_body=body_bytes,
    headers=headers_like,
    body=body_bytes,
    fields=json_like,
    capture=st.booleans(),
    parse_body=st.booleans(),
)
def test_response_handler_takes_any_result(
    sdk: Any, operation: str, model: str, request_body: bytes, headers: dict[str, str],
    body: bytes, fields: Any, capture: bool, parse_body: bool,
) -> None:
    telemetry, tel, ledger = _fresh(sdk)
    settings_ = config.Settings(capture_content=capture, content_max_length=64,
                                parse_response_body=parse_body)
    handler = patch.Handler(settings_, tel, None)
    spec = patch.OPERATIONS[operation]
    params: dict[str, Any] = {"modelId": model}
    if spec.kind == "invoke":
        params["body"] = request_body
    elif isinstance(fields, dict):
        params.update(fields)
    call = patch.Call(handler, object(), handler.describe(operation, spec, object(), params),
                      params, None)
    call.open(None)
    record = call.record
    assert record is not None
    result: dict[str, Any] = {"ResponseMetadata": {"RequestId": "r", "HTTPHeaders": headers}}
    if isinstance(fields, dict):
        result.update(fields)
    if spec.kind == "invoke" and spec.stream_key is None:
        result["body"] = StreamingBody(io.BytesIO(body), len(body))
    if call.settle(result, StreamProxy):  # what the sync driver does with a result
        call.settle_body(patch.take_body(result))
    if spec.kind == "invoke" and spec.stream_key is None:
        assert result["body"].read() == body  # the user's body is intact
    del result  # a stream proxy, if one was made, is abandoned (and collected at once)
    assert record.ended
    _check_spans(telemetry, ledger)


# -- content capture ---------------------------------------------------------------------------
@PROPERTY
@given(value=json_like, limit=st.integers(min_value=1, max_value=200))
def test_content_helpers_take_anything(value: Any, limit: int) -> None:
    request = value if not isinstance(value, dict) else {
        "messages": value.get("messages", [value]), "system": value.get("system", value),
        "prompt": value.get("prompt")}
    attrs = content.input_attributes(request, limit)
    assert all(isinstance(v, str) and len(v) <= limit for v in attrs.values())
    text = content.reply_text(value)
    assert text is None or isinstance(text, str)
    finish = ("stop",) if isinstance(value, dict) else None
    out = content.output_attributes(text, finish, limit)
    assert all(isinstance(v, str) and len(v) <= limit for v in out.values())
    delta = content.stream_delta_text(value)
    collector = content.TextCollector(limit)
    for item in (delta, value, text, delta):
        collector.add(item)
    joined = collector.text()
    assert joined is None or (isinstance(joined, str) and len(joined) <= limit)


# -- settings -----------------------------------------------------------------------------------
setting_text = st.text(max_size=12) | st.sampled_from(
    ["0", "1", "-1", "0.5", "1.5", "nan", "inf", "-inf", "1e300", "1e10", "true", "FALSE", "on",
     "blocking", "Background", " off ", "9" * 30, "1_0", "\u0661"])
option_value = setting_text | st.integers(min_value=-(2**65), max_value=2**65) | st.floats() \
    | st.booleans() | st.none()


def _usable(s: config.Settings) -> None:
    """Every value the settings can hold is one the instrumentation can use as is."""
    assert s.precount in config.PRECOUNT_MODES
    assert isinstance(s.precount_sample_ratio, float) and 0.0 <= s.precount_sample_ratio <= 1.0
    # the blocking pre-count waits this long on a threading.Event
    assert isinstance(s.precount_timeout, float) and math.isfinite(s.precount_timeout)
    assert 0.0 < s.precount_timeout <= threading.TIMEOUT_MAX
    for name in ("precount_workers", "precount_queue_size", "content_max_length"):
        value = getattr(s, name)
        assert type(value) is int and value >= 1, name
    for name in ("capture_content", "parse_response_body", "emit_legacy_system",
                 "replace_contrib"):
        assert type(getattr(s, name)) is bool, name


@PROPERTY
@given(
    environ=st.dictionaries(st.sampled_from([spec.env for spec in config.SETTINGS]
                                            + [config.CAPTURE_CONTENT_ENV]), setting_text),
    options=st.dictionaries(st.sampled_from([spec.name for spec in config.SETTINGS]
                                            + ["capture_content"]), option_value),
)
def test_any_settings_load_into_usable_values(
    environ: dict[str, str], options: dict[str, Any]
) -> None:
    import logging

    logging.getLogger(config.__name__).disabled = True
    try:
        _usable(config.load_settings(options, environ))
    finally:
        logging.getLogger(config.__name__).disabled = False


@pytest.mark.parametrize("timeout", ["1e9", repr(threading.TIMEOUT_MAX)])
def test_an_accepted_precount_timeout_works(
    timeout: str, instrument: Any, make_client: Any, bedrock_emulator: Any,
    bedrock_telemetry: Any, watch: Any,
) -> None:
    """A timeout the settings accept must give a working blocking pre-count: the estimate on
    the invocation span, and the count span ended."""
    from .support import assert_clean, default_params, flush_precounts

    settings_ = config.load_settings({"precount": "blocking", "precount_timeout": timeout})
    # the value itself, not the default a rejected value falls back to (its 0.25 s budget is
    # one a loaded machine can miss)
    assert settings_.precount_timeout == float(timeout)
    client = make_client()
    instrument(precount="blocking", precount_timeout=settings_.precount_timeout)
    client.converse(**default_params("Converse"))
    flush_precounts()
    spans = bedrock_telemetry.spans()
    names_ = sorted(s.name.split()[0] for s in spans)
    assert names_ == ["chat", "count_tokens"], names_
    chat = next(s for s in spans if s.name.startswith("chat"))
    assert chat.attributes[names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS] == chat.attributes[
        names.GEN_AI_USAGE_INPUT_TOKENS]
    assert_clean(watch)


# -- error types and model ids ------------------------------------------------------------------
class _Odd(Exception):
    pass


@PROPERTY
@given(response=json_like | st.builds(object))
def test_error_type_of_any_exception(response: Any) -> None:
    exc = _Odd("x")
    exc.response = response  # type: ignore[attr-defined]
    kind = error_type(exc)
    assert isinstance(kind, str) and kind


arn_part = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._:/", max_size=24)
model_ids = st.one_of(
    st.text(max_size=80),
    st.tuples(st.sampled_from(["", "us.", "eu.", "global.", "us-gov.", "x.", "..", "a.b."]),
              st.sampled_from(["anthropic.", "amazon.titan-embed", "amazon.nova", "meta.llama",
                               "cohere.command-r", "cohere.embed", "mistral.", "acme.", ""]),
              arn_part).map("".join),
    st.tuples(st.just("arn:"), arn_part, st.sampled_from([":", "::", ""]),
              st.sampled_from(["foundation-model/", "inference-profile/", "custom-model/",
                               "application-inference-profile/", "provisioned-model/", "", "/"]),
              arn_part).map("".join),
)


@PROPERTY
@given(model_ids)
def test_any_model_id_parses(model_id: str) -> None:
    info = parse_model_id(model_id)
    assert info.raw == model_id
    assert info.family in families.FAMILIES
    assert isinstance(info.is_embedding, bool)
    assert info.base_id is None or info.base_id in model_id
    assert isinstance(info.kind, str) and info.kind


@PROPERTY
@given(json_like)
def test_request_attributes_have_attribute_types(body: Any) -> None:
    for name, value in families.request_attributes(body).items():
        if name == names.GEN_AI_REQUEST_STOP_SEQUENCES:
            assert isinstance(value, tuple) and all(isinstance(s, str) for s in value)
        elif name == names.GEN_AI_REQUEST_MAX_TOKENS:
            assert type(value) is int and 0 <= value <= INT64_MAX
        else:
            assert type(value) is float
