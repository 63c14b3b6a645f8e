"""The fault matrix: every case is one way a Bedrock call can go wrong (or be used oddly), for
one operation. Each case runs in every pre-count mode it applies to, twice (uninstrumented, then
instrumented) against the local emulator; ``test_fault_matrix`` holds the checks.

A case says how to make the fault happen (an emulator ``Scenario`` restricted to the call's own
operation, a scenario for the pre-count's CountTokens only, or a response injected below
botocore), how the user consumes the response, and what the counts on the span must be:

``full``     every count the emulator reported for the request, exactly;
``none``     no count at all (nothing exact was available);
``subset``   exact or absent: whatever is on the span equals what the emulator reported;
a function   the exact counts, computed with the independent oracle from what the user saw.
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from opentelemetry.instrumentation.bedrock_tokens import names
from opentelemetry.instrumentation.bedrock_tokens.emulator import Scenario
from opentelemetry.instrumentation.bedrock_tokens.emulator.eventstream import (
    chunk_frame,
    encode_frame,
    event_frame,
    exception_frame,
)

from ..helpers import FAMILY_REQUESTS
from .support import (
    CLAUDE,
    CONVERSE,
    CONVERSE_STREAM,
    COUNT,
    EVENTSTREAM,
    INVOKE,
    INVOKE_STREAM,
    MODES,
    OPERATIONS,
    PROMPT,
    STREAM_CONSUMERS,
    STREAM_KEY,
    Canned,
    Observation,
    default_params,
    exact_count,
    first,
    usage_expectation,
)

Expect = Union[str, Callable[[Observation], dict[str, int]]]
PRECOUNT_MODES = ("blocking", "background")


@dataclass(frozen=True)
class Case:
    group: str
    name: str
    operation: str
    scenario: Optional[Scenario] = None  # for the call's own operation only
    count_scenario: Optional[Scenario] = None  # for CountTokens only (pre-count faults)
    canned: Optional[Canned] = None  # the call's response, injected below botocore
    canned_count: Optional[Canned] = None  # the pre-count's CountTokens answer, injected
    headers: Optional[dict[str, str]] = None  # response headers rewritten before parsing
    remove_headers: tuple[str, ...] = ()
    consume: str = "all"
    params: Optional[Callable[[], dict[str, Any]]] = None  # built afresh for every run
    alias: Optional[tuple[str, str]] = None  # emulator.register_alias(*alias)
    read_timeout: Optional[float] = None
    expect: Expect = "full"
    precounted: bool = True  # a pre-count is attempted in the pre-count modes
    precount_timeout: float = 10.0
    absent: tuple[str, ...] = ()  # attributes the span must not carry
    modes: tuple[str, ...] = MODES

    @property
    def id(self) -> str:
        return f"{self.group}/{self.operation}/{self.name}"

    @property
    def streamed(self) -> bool:
        return self.operation in STREAM_KEY

    def make_params(self) -> dict[str, Any]:
        return self.params() if self.params is not None else default_params(self.operation)


def _fault(op: str) -> Callable[..., Scenario]:
    """A scenario that applies to the call's own operation, never to a pre-count."""
    def make(**fields: Any) -> Scenario:
        return Scenario(operations=(op,), **fields)
    return make


CASES: list[Case] = []


def add(*cases: Case) -> None:
    CASES.extend(cases)


# -- healthy, HTTP errors, transport faults ------------------------------------------------------
HTTP_ERRORS = (400, 403, 404, 408, 424, 429, 500, 503)
for op in OPERATIONS:
    f = _fault(op)
    add(Case("healthy", "plain", op))
    for status in HTTP_ERRORS:
        add(Case("http-error", str(status), op, f(error_status=status), expect="none"))
    add(Case("http-error", "ModelNotReadyException", op, f(error_code="ModelNotReadyException"),
             expect="none"))
    add(Case("slow-first-byte", "0.1s", op, f(first_byte_delay=0.1)))
    add(Case("timeout", "read-timeout", op, f(first_byte_delay=1.5), read_timeout=0.2,
             expect="none"))
    add(Case("malformed-body", "half-json", op, f(malformed_body=True), expect="subset"))
    add(Case("float-counts", "28.0", op, f(float_counts=True)))

STREAM_CODES = {
    INVOKE_STREAM: ("modelStreamErrorException", "throttlingException", "internalServerException",
                    "validationException", "serviceUnavailableException", "modelTimeoutException"),
    CONVERSE_STREAM: ("modelStreamErrorException", "throttlingException",
                      "internalServerException", "validationException",
                      "serviceUnavailableException"),
}
for op, codes in STREAM_CODES.items():
    f = _fault(op)
    for code in codes:
        for after in (0, 2):
            add(Case("mid-stream-exception", f"{code}@{after}", op,
                     f(stream_exception=code, stream_exception_after=after), expect="subset"))
    for after in (0, 3):
        add(Case("connection-drop", f"after-{after}-events", op, f(drop_after=after),
                 expect="subset"))
    for at in (0, 2):
        add(Case("corrupt-frame", f"crc@{at}", op, f(corrupt_crc_at=at), expect="subset"))
    add(Case("timeout", "stalled-stream", op, f(chunk_delay=1.5), read_timeout=0.2,
             expect="subset"))

for consume in ("read", "read-pieces", "read-twice"):
    add(Case("connection-drop", f"truncated-body-{consume}", INVOKE, _fault(INVOKE)(drop_after=1),
             consume=consume))
for op in (CONVERSE, COUNT):
    add(Case("connection-drop", "truncated-body", op, _fault(op)(drop_after=1), expect="none"))

# -- usage missing from where it usually is -----------------------------------------------------
fi, fs, fc = _fault(INVOKE), _fault(INVOKE_STREAM), _fault(CONVERSE_STREAM)
add(
    Case("missing-usage", "no-token-headers", INVOKE, fi(omit_token_headers=True)),
    Case("missing-usage", "no-body-usage", INVOKE, fi(omit_body_usage=True)),
    Case("missing-usage", "no-headers-no-body-usage", INVOKE,
         fi(omit_token_headers=True, omit_body_usage=True), expect="none"),
    Case("missing-usage", "no-invocation-metrics", INVOKE_STREAM, fs(omit_invocation_metrics=True)),
    Case("missing-usage", "no-in-stream-usage", INVOKE_STREAM, fs(omit_body_usage=True)),
    Case("missing-usage", "no-usage-anywhere", INVOKE_STREAM,
         fs(omit_invocation_metrics=True, omit_body_usage=True), expect="none"),
    Case("missing-usage", "no-metadata-event", CONVERSE_STREAM, fc(omit_stream_metadata=True),
         expect="none"),
)

# -- odd response headers (the emulator's body, headers rewritten before botocore parses) --------
H_IN, H_OUT = names.H_INPUT_TOKENS, names.H_OUTPUT_TOKENS
ODD_HEADER_VALUES: dict[str, str] = {
    "plain": "7", "spaces": " 7 ", "plus-sign": "+7", "decimal-point": "7.0", "exponent": "7e0",
    "negative-zero": "-0", "leading-zeros": "007", "negative": "-7", "fraction": "7.5",
    "hex": "0x7", "empty": "", "word": "seven", "nan": "NaN", "infinity": "Infinity",
    "underscore": "1_000", "fullwidth-digit": "\uff17", "arabic-digits": "\u0661\u0662",
    "duplicated": "7, 7", "int64-max": str(2**63 - 1), "int64-overflow": str(2**63),
    "forty-digits": "9" * 40, "huge-float": "1e30",
}


def _header_expect(overridden: str) -> Callable[[Observation], dict[str, int]]:
    """Headers win field by field; the body (Claude: usage in every body) fills what a bad
    header leaves out. Cache headers are present (0) for Claude 3.5."""
    def expect(obs: Observation) -> dict[str, int]:
        headers = obs.result["ResponseMetadata"]["HTTPHeaders"]
        assert obs.body is not None
        usage = json.loads(obs.body)["usage"]
        body_field = {H_IN: "input_tokens", H_OUT: "output_tokens",
                      names.H_CACHE_READ: "cache_read_input_tokens",
                      names.H_CACHE_WRITE: "cache_creation_input_tokens"}
        found = {h: first(exact_count(headers.get(h)), exact_count(usage.get(b)))
                 for h, b in body_field.items()}
        assert overridden in headers
        return usage_expectation(found[H_IN], found[H_OUT], found[names.H_CACHE_READ],
                                 found[names.H_CACHE_WRITE])
    return expect


for label, value in ODD_HEADER_VALUES.items():
    add(Case("odd-headers", f"input-{label}", INVOKE, headers={H_IN: value},
             expect=_header_expect(H_IN)))
add(
    Case("odd-headers", "output-negative", INVOKE, headers={H_OUT: "-3"},
         expect=_header_expect(H_OUT)),
    # a cache figure so large that input + cache is no longer a 64-bit count
    Case("odd-headers", "cache-read-int64-max", INVOKE,
         headers={names.H_CACHE_READ: str(2**63 - 1)}, expect=_header_expect(names.H_CACHE_READ)),
    Case("odd-headers", "latency-negative", INVOKE, headers={names.H_INVOCATION_LATENCY: "-5"},
         absent=(names.AWS_BEDROCK_INVOCATION_LATENCY,)),
    Case("odd-headers", "latency-word", INVOKE, headers={names.H_INVOCATION_LATENCY: "slow"},
         absent=(names.AWS_BEDROCK_INVOCATION_LATENCY,)),
    Case("odd-headers", "no-request-id", INVOKE, remove_headers=("x-amzn-requestid",),
         absent=(names.AWS_REQUEST_ID,)),
    Case("odd-headers", "no-request-id", CONVERSE, remove_headers=("x-amzn-requestid",),
         absent=(names.AWS_REQUEST_ID,)),
    Case("odd-headers", "text-content-type", INVOKE, headers={"content-type": "text/plain"}),
)

# -- odd counts in bodies and streams (canned responses) -----------------------------------------
ODD_VALUES: dict[str, Any] = {
    "int": 7, "zero": 0, "float-integral": 7.0, "negative-zero": -0.0, "string-digits": "7",
    "string-spaces": " 7 ", "negative": -7, "fraction": 7.5, "negative-float": -7.0,
    "int64-max": 2**63 - 1, "int64-overflow": 2**63, "huge": 2**70, "huge-float": 1e30,
    "bool": True, "null": None, "nan": math.nan, "infinity": math.inf, "word": "seven",
    "list": [7], "object": {"value": 7},
}


def _j(value: Any) -> bytes:
    return json.dumps(value).encode()


def _claude_body(usage: dict[str, Any]) -> bytes:
    return _j({"id": "msg_canned", "type": "message", "role": "assistant",
               "model": "claude-3-5-haiku-20241022",
               "content": [{"type": "text", "text": "Hello."}],
               "stop_reason": "end_turn", "stop_sequence": None, "usage": usage})


def _claude_frames(input_in_start: Any, metrics: Optional[dict[str, Any]]) -> list[bytes]:
    final: dict[str, Any] = {"type": "message_stop"}
    if metrics is not None:
        final[names.INVOCATION_METRICS_KEY] = metrics
    chunks = [
        {"type": "message_start", "message": {"id": "msg_canned", "type": "message",
         "role": "assistant", "model": "claude", "content": [], "stop_reason": None,
         "usage": {"input_tokens": input_in_start, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta",
                                                              "text": "Hello."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
         "usage": {"output_tokens": 5}},
        final,
    ]
    return [chunk_frame(_j(c)) for c in chunks]


def _converse_frames(usage: Any, with_metadata: bool = True) -> list[bytes]:
    frames = [
        event_frame("messageStart", {"role": "assistant"}),
        event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hello."}}),
        event_frame("contentBlockStop", {"contentBlockIndex": 0}),
        event_frame("messageStop", {"stopReason": "end_turn"}),
    ]
    if with_metadata:
        frames.append(event_frame("metadata", {"usage": usage, "metrics": {"latencyMs": 10}}))
    return frames


def _stream(frames: list[bytes]) -> Canned:
    return Canned(b"".join(frames), content_type=EVENTSTREAM)


def _chunks(obs: Observation) -> list[dict[str, Any]]:
    """The user's chunks parsed, anything that is not a JSON object as ``{}``."""
    parsed: list[dict[str, Any]] = []
    for event in obs.events:
        try:
            value = json.loads(event["chunk"]["bytes"])
        except ValueError:
            value = None
        parsed.append(value if isinstance(value, dict) else {})
    return parsed


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _expect_invoke_body(obs: Observation) -> dict[str, int]:
    assert obs.body is not None
    usage = json.loads(obs.body)["usage"]
    return usage_expectation(exact_count(usage["input_tokens"]),
                             exact_count(usage["output_tokens"]))


def _expect_invoke_stream(obs: Observation) -> dict[str, int]:
    """invocationMetrics (last chunk) first; Claude's message_start / message_delta fill in."""
    chunks = _chunks(obs)
    metrics = _obj(chunks[-1].get(names.INVOCATION_METRICS_KEY))
    start = chunks[0] if chunks[0].get("type") == "message_start" else {}
    delta = chunks[-2] if len(chunks) > 1 and chunks[-2].get("type") == "message_delta" else {}
    return usage_expectation(
        first(exact_count(metrics.get("inputTokenCount")),
              exact_count(_obj(_obj(start.get("message")).get("usage")).get("input_tokens"))),
        first(exact_count(metrics.get("outputTokenCount")),
              exact_count(_obj(delta.get("usage")).get("output_tokens"))),
    )


def _expect_converse(obs: Observation) -> dict[str, int]:
    usage = obs.result["usage"]
    return usage_expectation(exact_count(usage.get("inputTokens")),
                             exact_count(usage.get("outputTokens")))


def _expect_converse_stream(obs: Observation) -> dict[str, int]:
    usage = obs.events[-1]["metadata"]["usage"]
    return usage_expectation(exact_count(usage.get("inputTokens")),
                             exact_count(usage.get("outputTokens")))


def _expect_count(obs: Observation) -> dict[str, int]:
    count = exact_count(obs.result.get("inputTokens"))
    return {} if count is None else {names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS: count}


for label, value in ODD_VALUES.items():
    add(
        Case("odd-counts", label, INVOKE, canned=Canned(_claude_body(
            {"input_tokens": value, "output_tokens": 5})), expect=_expect_invoke_body),
        Case("odd-counts", label, INVOKE_STREAM, canned=_stream(_claude_frames(11, {
            "inputTokenCount": value, "outputTokenCount": 5, "invocationLatency": 10,
            "firstByteLatency": 5})), expect=_expect_invoke_stream),
        Case("odd-counts", label, CONVERSE, canned=Canned(_j({
            "output": {"message": {"role": "assistant", "content": [{"text": "Hello."}]}},
            "stopReason": "end_turn", "usage": {"inputTokens": value, "outputTokens": 5},
            "metrics": {"latencyMs": 10}})), expect=_expect_converse),
        Case("odd-counts", label, CONVERSE_STREAM,
             canned=_stream(_converse_frames({"inputTokens": value, "outputTokens": 5})),
             expect=_expect_converse_stream),
        Case("odd-counts", label, COUNT, canned=Canned(_j({"inputTokens": value})),
             expect=_expect_count),
        # the pre-count's own answer is odd; the invocation itself is healthy
        Case("odd-precount-answer", label, CONVERSE,
             canned_count=Canned(_j({"inputTokens": value})), modes=PRECOUNT_MODES),
    )

# -- odd event streams (canned) -------------------------------------------------------------------
_start_only = _claude_frames(11, None)[:1]
_full = _claude_frames(11, {"inputTokenCount": 11, "outputTokenCount": 5})
_marker_stream = _stream([
    *_start_only, chunk_frame(_j({"type": "content_block_delta", "index": 0, "delta": {
        "type": "text_delta", "text": names.INVOCATION_METRICS_KEY}})), *_full[3:]])
add(
    Case("odd-stream", "truncated-frame", INVOKE_STREAM,
         canned=_stream([*_full[:3], _full[3][:10]]), expect=_expect_invoke_stream),
    Case("odd-stream", "no-events", INVOKE_STREAM, canned=_stream([]), expect="none"),
    Case("odd-stream", "chunk-not-json", INVOKE_STREAM,
         canned=_stream([chunk_frame(b"{not json"), *_full[1:]]), expect=_expect_invoke_stream),
    Case("odd-stream", "chunk-json-array", INVOKE_STREAM,
         canned=_stream([chunk_frame(b"[1, 2]"), chunk_frame(b"null"), chunk_frame(b"7")]),
         expect="none"),
    Case("odd-stream", "chunk-invalid-utf8", INVOKE_STREAM,
         canned=_stream([chunk_frame(b"\xff\xfe\xfd"), *_full[1:]]),
         expect=_expect_invoke_stream),
    Case("odd-stream", "metrics-marker-in-text", INVOKE_STREAM, canned=_marker_stream,
         expect=_expect_invoke_stream),
    # the reply mentions the metrics key: the stream has not ended when the user closes it
    Case("odd-stream", "metrics-marker-in-text-then-close", INVOKE_STREAM,
         canned=_marker_stream, consume="break-close", expect=_expect_invoke_stream),
    Case("odd-stream", "metrics-not-an-object", INVOKE_STREAM, canned=_stream([
        *_full[:-1], chunk_frame(_j({"type": "message_stop",
                                     names.INVOCATION_METRICS_KEY: [11, 5]}))]),
         expect=_expect_invoke_stream),
    Case("odd-stream", "unknown-exception-type", INVOKE_STREAM, canned=_stream([
        *_full[:2], exception_frame("somethingNewException", {"message": "new"})]),
         expect=_expect_invoke_stream),
    Case("odd-stream", "unknown-event-type", CONVERSE_STREAM, canned=_stream([
        event_frame("futureEvent", {"a": 1}),
        *_converse_frames({"inputTokens": 3, "outputTokens": 5})]),
         expect=_expect_converse_stream),
    Case("odd-stream", "metadata-without-usage", CONVERSE_STREAM, canned=_stream([
        *_converse_frames(None, with_metadata=False),
        event_frame("metadata", {"metrics": {"latencyMs": 10}})]), expect="none"),
    Case("odd-stream", "metadata-usage-not-object", CONVERSE_STREAM,
         canned=_stream(_converse_frames([3, 5])), expect="none"),
    Case("odd-stream", "no-events", CONVERSE_STREAM, canned=_stream([]), expect="none"),
    Case("odd-stream", "event-without-payload", CONVERSE_STREAM, canned=_stream([
        encode_frame(((":event-type", "messageStart"), (":content-type", "application/json"),
                      (":message-type", "event")), b""),
        *_converse_frames({"inputTokens": 3, "outputTokens": 5})[1:]]),
         expect=_expect_converse_stream),
)

# -- unknown families and odd model ids -----------------------------------------------------------
APP_PROFILE = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"
ODD_MODEL_IDS: dict[str, tuple[str, Optional[str], Expect]] = {
    # label: (model id, emulator alias, expectation)
    "us-profile": (f"us.{CLAUDE}", None, "full"),
    "global-profile": (f"global.{CLAUDE}", None, "full"),
    "foundation-model-arn": (f"arn:aws:bedrock:us-east-1::foundation-model/{CLAUDE}", None, "full"),
    "inference-profile-arn": (
        f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{CLAUDE}", None, "full"),
    "custom-model-arn": (
        f"arn:aws:bedrock:us-east-1:123456789012:custom-model/{CLAUDE}/abc123", None, "full"),
    "app-profile-aliased": (APP_PROFILE, CLAUDE, "full"),
    "app-profile-unaliased": (APP_PROFILE, None, "full"),
    "unknown-vendor": ("acme.future-model-v1:0", None, "none"),
    "spaces-and-unicode": ("anthropic.claude 3 \u00fc", None, "subset"),
    "slashes": ("anthropic/claude/../x", None, "subset"),
    "very-long": ("anthropic." + "x" * 3000, None, "subset"),
}
Params = Callable[[], dict[str, Any]]


def _model(operation: str, model: Any) -> Params:
    return lambda: {**default_params(operation), "modelId": model}


for label, (model, alias, expect) in ODD_MODEL_IDS.items():
    for op in OPERATIONS:
        add(Case("odd-model-id", label, op, alias=(model, alias) if alias else None,
                 params=_model(op, model), expect=expect))
    add(Case("odd-model-id", f"{label}-no-headers", INVOKE,
             alias=(model, alias) if alias else None, params=_model(INVOKE, model),
             scenario=_fault(INVOKE)(omit_token_headers=True), expect=expect))
for op in OPERATIONS:
    add(
        Case("odd-model-id", "empty", op, params=_model(op, ""), expect="none",
             precounted=False),
        Case("odd-model-id", "not-a-string", op, params=_model(op, 12345), expect="none",
             precounted=False),
    )


def _family_params(model: str) -> Params:
    body = FAMILY_REQUESTS[model][0]
    return lambda: {"modelId": APP_PROFILE, "body": json.dumps(body).encode()}


# Opaque ids of families we cannot sniff from the request body: only headers, or the generic
# (unambiguous) body paths, can give counts; a family without body usage gives none.
for base, expect in (("openai.gpt-oss-20b-1:0", "full"), ("cohere.command-r-v1:0", "none"),
                     ("mistral.mistral-7b-instruct-v0:2", "none")):
    add(
        Case("unknown-family", f"opaque-{base.split('.')[0]}", INVOKE, alias=(APP_PROFILE, base),
             params=_family_params(base)),
        Case("unknown-family", f"opaque-{base.split('.')[0]}-no-headers", INVOKE,
             alias=(APP_PROFILE, base), params=_family_params(base),
             scenario=_fault(INVOKE)(omit_token_headers=True), expect=expect),
        Case("unknown-family", f"opaque-{base.split('.')[0]}", INVOKE_STREAM,
             alias=(APP_PROFILE, base), params=_family_params(base)),
    )

def _body(model: str, make: Callable[[], Any]) -> Params:
    return lambda: {"modelId": model, "body": make()}


def _fixed(inp: Optional[int], out: Optional[int]) -> Callable[[Observation], dict[str, int]]:
    return lambda obs: usage_expectation(inp, out)


_UNKNOWN = "acme.future-model-v1:0"
# a request body no family claims (imported-model style), so nothing is sniffed from it
_NEUTRAL_BODY = _j({"inputs": PROMPT, "parameters": {"max_new_tokens": 40}})
for label, body, headers, expected in (
    ("generic-camel-usage", _j({"usage": {"inputTokens": 9, "outputTokens": 4}}), (), (9, 4)),
    ("generic-llama-like", _j({"prompt_token_count": 9, "generation_token_count": 4}), (), (9, 4)),
    ("unrecognised-shape", _j({"tokens": {"in": 9, "out": 4}}), (), (None, None)),
    ("json-array", _j([9, 4]), (), (None, None)),
    ("empty-body", b"", (), (None, None)),
    ("headers-only", _j({}), ((H_IN, "9"), (H_OUT, "4")), (9, 4)),
):
    add(Case("unknown-family", label, INVOKE, canned=Canned(body, headers=headers),
             params=_body(_UNKNOWN, lambda: _NEUTRAL_BODY), expect=_fixed(*expected)))

# -- request bodies ---------------------------------------------------------------------------
_BODY = json.loads(default_params(INVOKE)["body"])
_LARGE = {**_BODY, "messages": [{"role": "user", "content": "many words " * 30_000}]}
for op in (INVOKE, INVOKE_STREAM):
    add(
        Case("request-body", "str", op, params=_body(CLAUDE, lambda: json.dumps(_BODY))),
        Case("request-body", "bytearray", op,
             params=_body(CLAUDE, lambda: bytearray(json.dumps(_BODY).encode()))),
        Case("request-body", "file-like", op, precounted=False,
             params=_body(CLAUDE, lambda: io.BytesIO(json.dumps(_BODY).encode()))),
        Case("request-body", "larger-than-parsed", op,
             params=_body(CLAUDE, lambda: json.dumps(_LARGE).encode())),
    )

# -- how the user consumes the response -------------------------------------------------------
for consume in ("read-twice", "read-pieces", "read-partial", "iter-lines", "iter-chunks", "never",
                "close-then-read", "socket-timeout", "context-manager"):
    add(Case("body-consumption", consume, INVOKE, consume=consume,
             expect="full" if consume in ("read-twice", "read-pieces") else "subset"))
for op in (INVOKE_STREAM, CONVERSE_STREAM):
    for consume in [c for c in STREAM_CONSUMERS if c != "all"]:
        add(Case("stream-consumption", consume, op, consume=consume,
                 expect="full" if consume in ("all-close-twice", "break-resume") else "subset"))
    for consume in ("break-close", "never"):
        # a stream that would have failed later: the user's own end comes first
        add(Case("stream-consumption", f"{consume}-before-failure", op, consume=consume,
                 scenario=_fault(op)(stream_exception="throttlingException",
                                     stream_exception_after=4), expect="subset"))

# -- pre-count faults (the invocation is healthy; only CountTokens misbehaves) -------------------
_COUNT_FAULTS: dict[str, tuple[Scenario, float]] = {
    "unsupported-model": (Scenario(count_tokens="unsupported"), 10.0),
    "access-denied": (Scenario(count_tokens="forbidden"), 10.0),
    "throttled": (Scenario(error_status=429, operations=(COUNT,)), 10.0),
    "server-error": (Scenario(error_status=500, operations=(COUNT,)), 10.0),
    "connection-drop": (Scenario(drop_after=0, operations=(COUNT,)), 10.0),
    "malformed-answer": (Scenario(malformed_body=True, operations=(COUNT,)), 10.0),
    "slower-than-budget": (Scenario(count_tokens_delay=0.4), 0.05),
}
for op in (INVOKE, INVOKE_STREAM, CONVERSE, CONVERSE_STREAM):
    for label, (scenario, budget) in _COUNT_FAULTS.items():
        add(Case("precount-fault", label, op, count_scenario=scenario, precount_timeout=budget,
                 modes=PRECOUNT_MODES))


# -- the table --------------------------------------------------------------------------------
def matrix_ids() -> list[str]:
    ids = [c.id for c in CASES]
    duplicated = [i for i, n in Counter(ids).items() if n > 1]
    assert not duplicated, duplicated
    return ids


def runs() -> list[tuple[Case, str]]:
    return [(case, mode) for case in CASES for mode in case.modes]


def matrix_table() -> str:
    """RELIABILITY.md's matrix: runs per fault group and operation (each run is one case in one
    pre-count mode, made twice: uninstrumented and instrumented)."""
    groups: dict[str, Counter[str]] = {}
    for case, _mode in runs():
        groups.setdefault(case.group, Counter())[case.operation] += 1
    short = {INVOKE: "InvokeModel", INVOKE_STREAM: "InvokeModel stream", CONVERSE: "Converse",
             CONVERSE_STREAM: "ConverseStream", COUNT: "CountTokens"}
    lines = ["| fault group | cases | " + " | ".join(short[o] for o in OPERATIONS) + " | runs |",
             "|---|---:|" + "---:|" * len(OPERATIONS) + "---:|"]
    totals: Counter[str] = Counter()
    for group, per_op in groups.items():
        cases = len({c.id for c in CASES if c.group == group})
        cells = [str(per_op.get(o, 0) or "") for o in OPERATIONS]
        lines.append(f"| {group} | {cases} | " + " | ".join(cells) + f" | {sum(per_op.values())} |")
        totals.update(per_op)
    lines.append(f"| **all** | **{len(CASES)}** | "
                 + " | ".join(f"**{totals[o]}**" for o in OPERATIONS)
                 + f" | **{sum(totals.values())}** |")
    return "\n".join(lines)
