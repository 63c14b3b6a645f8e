"""Unit and property tests of the parsers: model ids, counts, headers, bodies, stream chunks.
Arbitrary input never raises and never yields a negative or non-integer count."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opentelemetry.instrumentation.bedrock_tokens import families, names
from opentelemetry.instrumentation.bedrock_tokens.models import parse_model_id
from opentelemetry.instrumentation.bedrock_tokens.usage import (
    Usage,
    from_converse,
    from_headers,
    from_invocation_metrics,
    merge,
    to_count,
)

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"


@pytest.mark.parametrize(
    ("model_id", "base", "family", "kind"),
    [
        (CLAUDE, CLAUDE, "anthropic", "foundation_model"),
        (f"us.{CLAUDE}", CLAUDE, "anthropic", "inference_profile"),
        (f"global.{CLAUDE}", CLAUDE, "anthropic", "inference_profile"),
        (f"us-gov.{CLAUDE}", CLAUDE, "anthropic", "inference_profile"),
        (f"jp.{CLAUDE}", CLAUDE, "anthropic", "inference_profile"),
        ("us.deepseek.r1-v1:0", "deepseek.r1-v1:0", "deepseek", "inference_profile"),
        ("amazon.titan-embed-text-v2:0", "amazon.titan-embed-text-v2:0", "titan_embed",
         "foundation_model"),
        ("cohere.command-r-plus-v1:0", "cohere.command-r-plus-v1:0", "cohere_chat",
         "foundation_model"),
        ("cohere.command-text-v14", "cohere.command-text-v14", "cohere_text", "foundation_model"),
        (f"arn:aws:bedrock:us-east-1::foundation-model/{CLAUDE}", CLAUDE, "anthropic",
         "foundation_model"),
        (f"arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:inference-profile/us-gov.{CLAUDE}",
         CLAUDE, "anthropic", "inference_profile"),
        ("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3",
         None, "unknown", "application_inference_profile"),
        ("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdef123456",
         None, "unknown", "provisioned_model"),
        ("arn:aws:bedrock:us-east-1:123456789012:custom-model/meta.llama3-8b-instruct-v1:0/xyz",
         "meta.llama3-8b-instruct-v1:0", "llama", "custom_model"),
        ("something-new", "something-new", "unknown", "foundation_model"),
        ("", "", "unknown", "foundation_model"),
    ],
)
def test_model_id_forms(model_id: str, base: Any, family: str, kind: str) -> None:
    info = parse_model_id(model_id)
    assert (info.raw, info.base_id, info.family, info.kind) == (model_id, base, family, kind)


@given(st.text(max_size=300))
def test_model_id_parsing_never_raises(model_id: str) -> None:
    info = parse_model_id(model_id)
    assert info.raw == model_id
    assert info.family in families.FAMILIES


@pytest.mark.parametrize(
    ("value", "expected"),
    [(14, 14), ("14", 14), (" 14 ", 14), (28.0, 28), ("28.0", 28), (0, 0), ("0", 0),
     (-1, None), ("-3", None), (2.5, None), ("2.5", None), ("abc", None), (None, None),
     (True, None), (float("nan"), None), (float("inf"), None), ("1e400", None),
     (2**64, None), ([], None), ({}, None), ("²", None), ("١٢", None), ("1_000", None)],
)
def test_to_count(value: Any, expected: Any) -> None:
    assert to_count(value) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=5),
    max_leaves=25,
)


def _valid(usage: Any) -> None:
    if usage is None:
        return
    for value in (usage.input, usage.output, usage.cache_read, usage.cache_write,
                  usage.total_input, usage.semconv_input()):
        assert value is None or (type(value) is int and value >= 0)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from([names.H_INPUT_TOKENS, names.H_OUTPUT_TOKENS,
                                        names.H_CACHE_READ, names.H_CACHE_WRITE, "x"]),
                       st.text(max_size=12)))
def test_headers_never_yield_bad_counts(headers: dict[str, str]) -> None:
    _valid(from_headers(headers))


@settings(max_examples=300)
@given(json_values)
def test_converse_and_metrics_never_yield_bad_counts(value: Any) -> None:
    _valid(from_converse(value))
    _valid(from_invocation_metrics(value))
    if isinstance(value, dict):
        _valid(from_converse({"inputTokens": 3, **value}))


@settings(max_examples=300)
@given(st.sampled_from(sorted(families.FAMILIES)), json_values)
def test_family_extractors_never_raise(family: str, body: Any) -> None:
    info = families.extract_body(family, body)
    _valid(info.usage)
    metrics, stream_info = families.extract_stream_chunks(family, [body, body])
    _valid(metrics)
    _valid(stream_info.usage)
    families.request_attributes(body)
    families.invoke_operation_name(body, False, family)
    families.sniff_family(body)


def test_titan_output_sums_results_and_float_counts() -> None:
    body = {"inputTextTokenCount": 28.0,
            "results": [{"tokenCount": 3.0, "outputText": "a", "completionReason": "FINISH"},
                        {"tokenCount": 4, "outputText": "b", "completionReason": "LENGTH"}]}
    info = families.extract_body("titan_text", body)
    assert info.usage == Usage(28, 7, None, None, "body")
    assert info.finish_reasons == ("FINISH", "LENGTH")


def test_one_bad_value_makes_the_figure_absent() -> None:
    body = {"results": [{"tokenCount": 3}, {"tokenCount": -1}]}
    assert families.extract_body("titan_text", body).usage is None


def test_converse_input_includes_cache_via_total() -> None:
    usage = from_converse({"inputTokens": 4, "outputTokens": 10, "totalTokens": 2715,
                           "cacheReadInputTokens": 2701, "cacheWriteInputTokens": 0})
    assert usage is not None
    assert usage.semconv_input() == 2705
    # inputTokens already including cache writes (seen in the field): total keeps it right
    odd = from_converse({"inputTokens": 4995, "outputTokens": 19, "totalTokens": 5014,
                         "cacheWriteInputTokens": 4993})
    assert odd is not None and odd.semconv_input() == 4995


def test_merge_prefers_the_trusted_source_field_by_field() -> None:
    headers = Usage(30, None, None, None, "headers")  # Nova with guardrail: body had no output
    body = Usage(30, 51, 0, 0, "body")
    merged = merge(headers, body)
    assert merged == Usage(30, 51, 0, 0, "headers")
    assert merge(None, body) == body
    assert merge(Usage(None, None, None, None, "x"), None) == Usage(None, None, None, None, "x")


def test_anthropic_stream_chunks_partial_and_final() -> None:
    start = {"type": "message_start", "message": {"id": "msg_1", "model": "claude",
             "usage": {"input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 5}}}
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
             "usage": {"output_tokens": 40}}
    stop = {"type": "message_stop", names.INVOCATION_METRICS_KEY: {
        "inputTokenCount": 12, "outputTokenCount": 40, "invocationLatency": 900,
        "firstByteLatency": 300, "cacheReadInputTokenCount": 5}}
    metrics, info = families.extract_stream_chunks("anthropic", [start, delta, stop])
    assert metrics == Usage(12, 40, 5, None, "invocation_metrics")
    assert info.usage == Usage(12, 40, 5, None, "stream_body")
    assert info.finish_reasons == ("end_turn",)
    assert info.response_id == "msg_1"
    assert families.invocation_latencies(stop) == (900, 300)
    partial_metrics, partial = families.extract_stream_chunks("anthropic", [start])
    assert partial_metrics is None and partial.usage == Usage(12, None, 5, None, "stream_body")


def test_request_attributes_per_shape() -> None:
    titan = {"inputText": "hi", "textGenerationConfig": {"maxTokenCount": 9, "temperature": 1,
                                                          "topP": 0.5, "stopSequences": ["x"]}}
    assert families.request_attributes(titan) == {
        names.GEN_AI_REQUEST_MAX_TOKENS: 9, names.GEN_AI_REQUEST_TEMPERATURE: 1.0,
        names.GEN_AI_REQUEST_TOP_P: 0.5, names.GEN_AI_REQUEST_STOP_SEQUENCES: ("x",)}
    assert families.request_attributes(json.loads('{"max_gen_len": 7, "top_p": 0.1}')) == {
        names.GEN_AI_REQUEST_MAX_TOKENS: 7, names.GEN_AI_REQUEST_TOP_P: 0.1}
    assert families.request_attributes("not json") == {}
