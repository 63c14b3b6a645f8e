"""Values and objects the user or the service hands over mean what they meant before: a header
that is not a count the service sends gives no count (never a rounded or re-read one), and the
stream proxy copies and pickles exactly like botocore's ``EventStream``."""

from __future__ import annotations

import copy
import pickle
from typing import Any, Callable

import pytest

from opentelemetry.instrumentation.bedrock_tokens import names
from opentelemetry.instrumentation.bedrock_tokens.usage import to_count

from .support import default_params, figure, rewrite_headers

COHERE = "cohere.command-text-v14"  # no usage in its body: the header is the only count

# Header values no service sends, that float() would read as a (wrong or re-read) number.
NOT_COUNTS = {
    "exponent": "1e3",  # float(): 1000
    "beyond-2**53": "9007199254740993.0",  # float(): 9007199254740992
    "fraction-below-float-precision": "12.0000000000000001",  # float(): 12
}


@pytest.mark.parametrize("label", list(NOT_COUNTS))
def test_header_that_is_not_a_service_count_gives_no_count(
    label: str, make_client: Callable[..., Any], instrument: Callable[..., Any],
    bedrock_telemetry: Any,
) -> None:
    value = NOT_COUNTS[label]
    client = make_client()
    rewrite_headers(client, "InvokeModel", {names.H_INPUT_TOKENS: value})
    instrument()
    body = b'{"prompt": "Count me", "max_tokens": 20}'
    client.invoke_model(modelId=COHERE, body=body)["body"].read()
    (span,) = bedrock_telemetry.spans()
    got = span.attributes.get(names.GEN_AI_USAGE_INPUT_TOKENS)
    figure(f"header count {value!r}", f"input tokens on the span: {got!r} (to_count: "
           f"{to_count(value)!r})")
    assert got is None, f"{value!r} became the count {got!r}"
    assert span.attributes[names.GEN_AI_USAGE_OUTPUT_TOKENS] >= 0  # the sane header still counts


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7), (" 7 ", 7), ("28.0", 28), ("28.000", 28), (28.0, 28), ("9007199254740993",
     9007199254740993), ("9007199254740992.0", 2**53), (float(2**53), 2**53),
     (float(2**53 + 2), None), ("1e3", None), ("1E3", None), ("7e0", None), ("+7", None),
     ("-0", None), ("7.", None), (".0", None), ("9007199254740993.0", None),
     ("12.0000000000000001", None), ("12.5", None)],
)
def test_to_count_accepts_only_what_the_service_sends(value: Any, expected: Any) -> None:
    assert to_count(value) == expected


def _outcome(action: Callable[[], Any]) -> tuple[str, str]:
    try:
        value = action()
    except Exception as exc:
        return ("raised", f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
    return ("returned", f"{type(value).__module__}.{type(value).__qualname__}")


COPIES: dict[str, Callable[[Any], Any]] = {
    "copy": copy.copy, "deepcopy": copy.deepcopy, "pickle": pickle.dumps,
    "pickle-protocol-2": lambda stream: pickle.dumps(stream, protocol=2),
}


@pytest.mark.parametrize("operation", ["InvokeModelWithResponseStream", "ConverseStream"])
def test_stream_copies_and_pickles_like_botocores_event_stream(
    operation: str, make_client: Callable[..., Any], instrument: Callable[..., Any],
    bedrock_telemetry: Any,
) -> None:
    client = make_client()
    method = (client.invoke_model_with_response_stream
              if operation == "InvokeModelWithResponseStream" else client.converse_stream)
    key = "body" if operation == "InvokeModelWithResponseStream" else "stream"

    def outcomes() -> dict[str, tuple[str, str]]:
        stream = method(**default_params(operation))[key]
        seen = {label: _outcome(lambda f=f: f(stream)) for label, f in COPIES.items()}
        events = list(stream)  # the original still works after being copied
        assert events
        stream.close()
        return seen

    plain = outcomes()
    instrument()
    instrumented = outcomes()
    figure(f"copy/pickle of a {operation} stream", "; ".join(
        f"{label}: {what} {detail.split(':')[0]}" for label, (what, detail) in
        instrumented.items()) + (" (as uninstrumented)" if instrumented == plain else
                                 f" (uninstrumented: {plain})"))
    assert instrumented == plain
    (span,) = bedrock_telemetry.spans()
    assert span.attributes[names.AWS_BEDROCK_STREAM_OUTCOME] == names.STREAM_COMPLETED
