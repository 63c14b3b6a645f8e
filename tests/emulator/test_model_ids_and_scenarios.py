"""Every model-id form, aliases, scenario precedence, and concurrent clients."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import boto3
import pytest
from botocore.config import Config

from opentelemetry.instrumentation.bedrock_tokens.emulator import (
    DEFAULT_REPLY,
    SCENARIO_HEADER,
    BedrockEmulator,
    Scenario,
    parse_model_id,
)

from .support import FAMILIES, REPLY_TOKENS, converse_messages

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
ACCOUNT = "123456789012"
MODEL_ID_FORMS = [
    (CLAUDE, "foundation-model", CLAUDE),
    *[
        (f"{geo}.{CLAUDE}", "inference-profile", CLAUDE)
        for geo in ("us", "eu", "apac", "global", "us-gov", "jp", "au", "ca")
    ],
    (f"arn:aws:bedrock:us-east-1::foundation-model/{CLAUDE}", "foundation-model", CLAUDE),
    (
        f"arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/{CLAUDE}",
        "foundation-model",
        CLAUDE,
    ),
    (
        f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.{CLAUDE}",
        "inference-profile",
        CLAUDE,
    ),
    (
        f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/a1b2c3d4e5f6",
        "application-inference-profile",
        None,
    ),
    (
        f"arn:aws:bedrock:us-east-1:{ACCOUNT}:provisioned-model/abcdef123456",
        "provisioned-model",
        None,
    ),
    (
        f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model/{CLAUDE}/abcdef123456",
        "custom-model",
        CLAUDE,
    ),
]


@pytest.mark.parametrize(("model_id", "kind", "base"), MODEL_ID_FORMS)
def test_parse_model_id(model_id: str, kind: str, base: Any) -> None:
    ref = parse_model_id(model_id)
    assert (ref.kind, ref.base_id) == (kind, base)
    assert ref.is_cross_region_profile == (kind == "inference-profile")


@pytest.mark.parametrize(("model_id", "kind", "base"), MODEL_ID_FORMS)
def test_every_model_id_form_through_boto3(
    model_id: str, kind: str, base: Any, bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    """Opaque ARNs are recognised by the Anthropic body shape, without any alias."""
    family = FAMILIES["anthropic"]
    response = bedrock_client.invoke_model(modelId=model_id, body=family.raw())
    body = json.loads(response["body"].read())
    assert body["usage"]["input_tokens"] == family.input_tokens
    # Caching was not asked for, so no cache counts, whatever the id form.
    assert (
        "x-amzn-bedrock-cache-read-input-token-count"
        not in response["ResponseMetadata"]["HTTPHeaders"]
    )
    converse = bedrock_client.converse(modelId=model_id, messages=converse_messages())
    assert converse["usage"]["inputTokens"] == 10
    count = bedrock_client.count_tokens(
        modelId=model_id, input={"invokeModel": {"body": family.raw()}}
    )
    assert count["inputTokens"] == family.input_tokens
    assert [r.model_id for r in bedrock_emulator.requests] == [model_id] * 3
    assert "%3A" in bedrock_emulator.requests[0].path  # it really was percent-encoded


def test_alias_decides_the_family_of_an_opaque_arn(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    arn = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/llamaprofile"
    body = FAMILIES["llama"].raw()
    # by body shape, a bare {"prompt", "max_gen_len"} is Llama anyway
    assert "generation" in json.loads(
        bedrock_client.invoke_model(modelId=arn, body=body)["body"].read()
    )
    # an alias to Mistral changes the response shape of the same body
    bedrock_emulator.register_alias(arn, "us.mistral.mistral-7b-instruct-v0:2")
    raw = bedrock_client.invoke_model(modelId=arn, body=json.dumps({"prompt": "hi"}))["body"]
    assert "outputs" in json.loads(raw.read())
    # an alias to an embedding model makes Converse refuse it
    bedrock_emulator.register_alias(arn, "amazon.titan-embed-text-v2:0")
    with pytest.raises(bedrock_client.exceptions.ValidationException):
        bedrock_client.converse(modelId=arn, messages=converse_messages())
    bedrock_emulator.reset()  # aliases are forgotten
    assert bedrock_client.converse(modelId=arn, messages=converse_messages())


@pytest.mark.parametrize(
    ("body", "expected_key"),
    [
        (
            {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
            },
            "content",
        ),
        ({"prompt": "\n\nHuman: x\n\nAssistant:", "max_tokens_to_sample": 5}, "completion"),
        ({"inputText": "x", "textGenerationConfig": {}}, "results"),
        ({"inputText": "x", "dimensions": 256}, "embedding"),
        ({"texts": ["x"], "input_type": "search_query"}, "embeddings"),
        ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "output"),
        ({"messages": [{"role": "user", "content": "x"}]}, "choices"),
        ({"message": "x"}, "chat_history"),
        ({"prompt": "x", "max_gen_len": 5}, "generation"),
        ({"prompt": "x", "p": 0.5}, "generations"),
        ({"prompt": "x"}, "generation"),
    ],
)
def test_family_from_body_shape(
    body: dict[str, Any], expected_key: str, bedrock_client: Any
) -> None:
    arn = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:provisioned-model/abcdef123456"
    raw = bedrock_client.invoke_model(modelId=arn, body=json.dumps(body))["body"].read()
    assert expected_key in json.loads(raw)


def test_scenario_precedence(bedrock_client: Any, bedrock_emulator: BedrockEmulator) -> None:
    nova = "amazon.nova-micro-v1:0"

    def text(model: str = nova) -> str:
        result = bedrock_client.converse(modelId=model, messages=converse_messages())
        return str(result["output"]["message"]["content"][0]["text"])

    bedrock_emulator.set_scenario(Scenario(output_text="everyone"))
    bedrock_emulator.set_scenario(Scenario(output_text="nova only"), model_id=nova)
    bedrock_emulator.push_scenario(Scenario(output_text="once"), Scenario(output_text="twice"))
    assert [text(), text(), text(), text(CLAUDE)] == ["once", "twice", "nova only", "everyone"]
    bedrock_emulator.set_scenario(None, model_id=nova)
    assert text() == "everyone"
    bedrock_emulator.set_scenario(None)
    assert text() == DEFAULT_REPLY


def test_pushed_scenario_waits_for_its_operation(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.push_scenario(Scenario(error_status=429, operations=("Converse",)))
    assert (
        bedrock_client.count_tokens(
            modelId=CLAUDE, input={"converse": {"messages": converse_messages()}}
        )["inputTokens"]
        == 10
    )
    with pytest.raises(bedrock_client.exceptions.ThrottlingException):
        bedrock_client.converse(modelId=CLAUDE, messages=converse_messages())
    assert bedrock_client.converse(modelId=CLAUDE, messages=converse_messages())


def test_scenario_header_from_another_process(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    """A client that cannot reach the emulator object drives it with a request header."""
    scenario = Scenario(error_status=503)
    assert json.loads(scenario.to_json()) == {"error_status": 503}

    def add_header(request: Any, **_: Any) -> None:
        request.headers[SCENARIO_HEADER] = scenario.to_json()

    bedrock_client.meta.events.register("before-sign.bedrock-runtime.Converse", add_header)
    bedrock_emulator.push_scenario(Scenario(output_text="not used"))
    with pytest.raises(bedrock_client.exceptions.ServiceUnavailableException):
        bedrock_client.converse(modelId=CLAUDE, messages=converse_messages())
    bedrock_client.meta.events.unregister("before-sign.bedrock-runtime.Converse", add_header)
    # the header took precedence and the pushed scenario is still queued
    result = bedrock_client.converse(modelId=CLAUDE, messages=converse_messages())
    assert result["output"]["message"]["content"][0]["text"] == "not used"


def test_bad_scenario_header_is_a_validation_error(
    bedrock_client: Any, bedrock_emulator: BedrockEmulator
) -> None:
    def add_header(request: Any, **_: Any) -> None:
        request.headers[SCENARIO_HEADER] = '{"no_such_field": 1}'

    bedrock_client.meta.events.register("before-sign.bedrock-runtime.Converse", add_header)
    with pytest.raises(bedrock_client.exceptions.ValidationException, match="no_such_field"):
        bedrock_client.converse(modelId=CLAUDE, messages=converse_messages())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"error_status": 200},
        {"stream_exception": "ThrottlingException"},
        {"count_tokens": "maybe"},
        {"drop_after": -1},
        {"chunk_delay": -0.5},
        {"operations": ("Invoke",)},
    ],
)
def test_scenario_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Scenario(**kwargs)


def test_scenario_json_round_trip() -> None:
    scenario = Scenario(
        error_status=429, stream_events=100_000, float_counts=True, operations=("Converse",)
    )
    assert Scenario.from_json(scenario.to_json()) == scenario
    assert Scenario().to_json() == "{}"
    with pytest.raises(ValueError, match="JSON"):
        Scenario.from_json("{")
    with pytest.raises(ValueError):
        Scenario.from_json('{"error_status": "429"}')
    assert Scenario(error_status=424).error == (
        424,
        "ModelErrorException",
        "The system encountered an unexpected error during processing.",
    )


def test_requests_log_is_bounded() -> None:
    with BedrockEmulator(max_recorded_requests=5) as emulator:
        client = boto3.client(
            "bedrock-runtime",
            config=Config(retries={"total_max_attempts": 1}, proxies={}),
            **emulator.client_kwargs(),
        )
        for index in range(8):
            client.converse(
                modelId="amazon.nova-micro-v1:0", messages=converse_messages(f"call {index}")
            )
        recorded = emulator.requests
        assert len(recorded) == 5
        assert [json.loads(r.body)["messages"][0]["content"][0]["text"] for r in recorded] == [
            f"call {i}" for i in range(3, 8)
        ]


def test_concurrent_clients(bedrock_emulator: BedrockEmulator) -> None:
    threads, calls = 8, 15
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)
    session = boto3.session.Session()
    clients = [
        session.client(
            "bedrock-runtime",
            config=Config(retries={"total_max_attempts": 1}, proxies={}),
            **bedrock_emulator.client_kwargs(),
        )
        for _ in range(threads)
    ]
    system = [
        {"text": "Shared cached prefix for every thread."},
        {"cachePoint": {"type": "default"}},
    ]

    def work(index: int) -> None:
        client = clients[index]
        try:
            barrier.wait()
            for call in range(calls):
                prompt = f"thread {index} call {call}"
                kind = call % 3
                if kind == 0:
                    result = client.converse(
                        modelId=CLAUDE, system=system, messages=converse_messages(prompt)
                    )
                    assert result["usage"]["inputTokens"] == 4
                    assert result["usage"]["outputTokens"] == REPLY_TOKENS
                elif kind == 1:
                    events = list(
                        client.converse_stream(
                            modelId="amazon.nova-micro-v1:0", messages=converse_messages(prompt)
                        )["stream"]
                    )
                    assert events[-1]["metadata"]["usage"]["inputTokens"] == 4
                else:
                    family = FAMILIES["llama"]
                    response = client.invoke_model_with_response_stream(
                        modelId=family.model_id, body=json.dumps({"prompt": prompt})
                    )
                    chunks = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
                    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
                    assert metrics["inputTokenCount"] == 4
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert not errors, errors[:3]
    recorded = bedrock_emulator.requests
    assert len(recorded) == threads * calls
    assert Counter(r.operation for r in recorded) == {
        "Converse": 40,
        "ConverseStream": 40,
        "InvokeModelWithResponseStream": 40,
    }
    assert len({r.request_id for r in recorded}) == threads * calls
    # the shared prefix was written exactly once, then read by every other Converse call
    converse = [r for r in recorded if r.operation == "Converse"]
    assert sorted(r.cache_write_tokens for r in converse).count(7) == 1
    assert sum(1 for r in converse if r.cache_read_tokens == 7) == 39


def test_get_inference_profile_for_aliases_and_system_profiles(
    bedrock_emulator: BedrockEmulator,
) -> None:
    control = boto3.client("bedrock", **bedrock_emulator.client_kwargs(),
                           config=Config(retries={"total_max_attempts": 1}))
    arn = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/p1"
    bedrock_emulator.register_alias(arn, f"eu.{CLAUDE}")
    got = control.get_inference_profile(inferenceProfileIdentifier=arn)
    assert (got["type"], got["status"], got["inferenceProfileArn"]) == (
        "APPLICATION", "ACTIVE", arn)
    assert {m["modelArn"].split("/", 1)[1] for m in got["models"]} == {CLAUDE}
    assert len(got["models"]) == 3  # one per Region of the eu. profile
    system = control.get_inference_profile(inferenceProfileIdentifier=f"global.{CLAUDE}")
    assert system["type"] == "SYSTEM_DEFINED"
    assert system["models"][0]["modelArn"].endswith(f"foundation-model/{CLAUDE}")
    for unknown in (f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/no",
                    CLAUDE):
        with pytest.raises(control.exceptions.ResourceNotFoundException):
            control.get_inference_profile(inferenceProfileIdentifier=unknown)
    bedrock_emulator.set_scenario(Scenario(error_status=403,
                                           operations=("GetInferenceProfile",)))
    with pytest.raises(control.exceptions.AccessDeniedException):
        control.get_inference_profile(inferenceProfileIdentifier=arn)
    assert [r.operation for r in bedrock_emulator.requests].count("GetInferenceProfile") == 5
