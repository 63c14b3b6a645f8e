"""Large InvokeModel bodies cost what they cost without us: a body larger than
``patch.MAX_PARSED_RESPONSE`` (1 MiB) is never held for parsing. With its length known (the
service always sends one) it is not touched at all; without, only the first MiB is read and
handed back ahead of the live rest. Measured with a 64 MiB body without token headers (an
image model's reply, an unknown family), injected below botocore: return time and
tracemalloc peak, against the same call uninstrumented (the issue: 248-377 ms instead of
7 ms to return, a 192 MiB peak)."""

from __future__ import annotations

import gc
import hashlib
import time
import tracemalloc
from typing import Any, Callable

import pytest

from opentelemetry.instrumentation.bedrock_tokens import names, patch

from .support import Canned, default_params, figure, serve_canned

MIB = 1024 * 1024
SIZE = 64 * MIB
ROUNDS = 3


def _big_body() -> bytes:
    head = b'{"id": "msg_big", "type": "message", "content": [{"type": "text", "text": "'
    tail = b'"}], "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 5}}'
    return head + b"x" * (SIZE - len(head) - len(tail)) + tail


def _measure(client: Any) -> tuple[float, int, int, str]:
    """(seconds to return, traced peak during the call, traced peak during call and whole
    read, digest of what was read)."""
    gc.collect()
    tracemalloc.start()
    try:
        started = time.perf_counter()
        result = client.invoke_model(**default_params("InvokeModel"))
        returned = time.perf_counter() - started
        _, call_peak = tracemalloc.get_traced_memory()
        data = result["body"].read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    digest = hashlib.sha256(data).hexdigest()
    del data, result
    return returned, call_peak, peak, digest


@pytest.mark.parametrize("length", ["content-length", "no-length"])
def test_large_body_is_never_held_for_parsing(
    length: str, make_client: Callable[..., Any], instrument: Callable[..., Any],
    bedrock_telemetry: Any,
) -> None:
    body = _big_body()
    headers = (("content-length", str(len(body))),) if length == "content-length" else ()
    canned = Canned(body, headers=headers)  # and no token headers: the body would be parsed
    client = make_client()
    serve_canned(client, "InvokeModel", canned)
    expected = hashlib.sha256(body).hexdigest()

    plain = [_measure(client) for _ in range(ROUNDS)]
    instrument()
    ours = [_measure(client) for _ in range(ROUNDS)]
    assert {m[3] for m in plain + ours} == {expected}  # the user's bytes, every time

    def best(runs: list[tuple[float, int, int, str]], i: int) -> float:
        return min(run[i] for run in runs)

    figure(f"64 MiB InvokeModel body without token headers ({length})", (
        f"returned in {best(plain, 0) * 1000:.1f} ms uninstrumented, "
        f"{best(ours, 0) * 1000:.1f} ms instrumented; traced peak during the call "
        f"{best(plain, 1) / MIB:.1f} MiB uninstrumented, {best(ours, 1) / MIB:.1f} MiB "
        f"instrumented; with the user's whole read {best(plain, 2) / MIB:.0f} MiB and "
        f"{best(ours, 2) / MIB:.0f} MiB"))
    # never more than the cap (and its copies) held for parsing, and timing within noise
    assert best(ours, 1) <= best(plain, 1) + 3 * patch.MAX_PARSED_RESPONSE + MIB
    assert best(ours, 0) <= 2 * best(plain, 0) + 0.010
    if length == "content-length":  # untouched: the user's read is the same read
        assert best(ours, 2) <= best(plain, 2) + 2 * MIB
    else:  # no length: the whole read joins the pieces once, as urllib3 does for such a body
        assert best(ours, 2) <= 2 * SIZE + 4 * MIB
    spans = bedrock_telemetry.spans()
    assert len(spans) == ROUNDS
    for span in spans:  # too large to parse: no counts from it (and no guess)
        assert names.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes
        assert names.GEN_AI_RESPONSE_ID not in span.attributes


@pytest.mark.parametrize("size", [patch.MAX_PARSED_RESPONSE, patch.MAX_PARSED_RESPONSE + 1])
@pytest.mark.parametrize("length", ["content-length", "no-length"])
def test_body_at_the_cap_is_parsed_and_beyond_it_is_not(
    size: int, length: str, make_client: Callable[..., Any], instrument: Callable[..., Any],
    bedrock_telemetry: Any,
) -> None:
    head = b'{"id": "msg_cap", "stop_reason": "end_turn", "usage": {"input_tokens": 3, '
    head += b'"output_tokens": 5}, "content": [{"type": "text", "text": "'
    tail = b'"}]}'
    body = head + b"y" * (size - len(head) - len(tail)) + tail
    headers = (("content-length", str(len(body))),) if length == "content-length" else ()
    client = make_client()
    serve_canned(client, "InvokeModel", Canned(body, headers=headers))
    instrument()
    result = client.invoke_model(**default_params("InvokeModel"))
    pieces = [result["body"].read(7), result["body"].read(MIB), result["body"].read()]
    assert b"".join(pieces) == body and len(pieces[0]) == 7
    assert result["body"].read() == b""
    (span,) = bedrock_telemetry.spans()
    parsed = names.GEN_AI_RESPONSE_ID in span.attributes
    assert parsed == (size <= patch.MAX_PARSED_RESPONSE)
    if parsed:
        assert span.attributes[names.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
