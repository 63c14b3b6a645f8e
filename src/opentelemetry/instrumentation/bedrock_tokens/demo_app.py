"""The sample application ``bedrock-tokens demo`` runs under ``opentelemetry-instrument``.

It is an ordinary boto3 program and deliberately imports neither OpenTelemetry nor this
package: everything the demo then shows was recorded by zero-code instrumentation, loaded by
the launcher through the ``bedrock_tokens`` entry point. That is the promise the demo checks.

The calls cover what a real application does: several model families, InvokeModel and
Converse, streamed and not, a long system prompt cached and then read from the cache, one
streamed call through an async client (aiobotocore, when it is installed), and one call that
fails. The list is data (``steps()``) so the demo's tests can compute, from the same
requests, the exact counts the emulator must have reported.

How it talks to the demo: one JSON line per event on stderr, prefixed with ``PROGRESS``
(stdout belongs to the console exporters the demo configures). Configuration comes from the
environment: ``BEDROCK_ENDPOINT_URL`` (unset: the real Bedrock endpoint of the region) and
the usual ``AWS_REGION`` / credentials.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import time
from typing import Any, NamedTuple, Optional

# The async call is made only where aiobotocore is installed (the demo extra installs it).
HAS_AIOBOTOCORE = importlib.util.find_spec("aiobotocore") is not None

PROGRESS = "bedrock-tokens-demo "

# A long, fixed system prompt: long enough (over 2,048 tokens for Claude) that real Bedrock
# caches it, and built from fixed text so its token count never changes between runs.
_TOPICS = (
    "refunds", "shipping delays", "damaged items", "warranty claims", "account access",
    "invoices", "gift cards", "subscriptions", "returns without a receipt", "price matching",
    "order changes", "loyalty points", "international orders", "bulk purchases",
    "product recalls", "accessibility requests", "data deletion requests", "complaints",
    "payment failures", "pre-orders",
)
HANDBOOK = "You are the support assistant of an online shop. Follow this handbook.\n" + "\n".join(
    f"Section {number}: {topic}. When a customer asks about {topic}, first confirm the order "
    f"number, then explain the policy for {topic} in plain words, quote the relevant time "
    "limits, offer the next concrete step, and never promise anything the policy does not "
    "allow. If the customer is upset, acknowledge it once, briefly, and move on to the "
    f"solution. Escalate {topic} cases older than ninety days to a human agent, and record "
    "the reason for the escalation in the ticket so the next agent does not ask again. Keep "
    "every answer under five sentences unless the customer asks for detail."
    for number, topic in enumerate(_TOPICS * 2, start=1)
)


class Step(NamedTuple):
    """One call of the sample app: what it shows, the botocore operation, its arguments."""

    label: str
    operation: str  # botocore operation name, e.g. "ConverseStream"
    params: dict[str, Any]
    expected_error: Optional[str] = None  # the error code of a call that fails on purpose
    driver: str = "boto3"  # or "aiobotocore": the same call through an async client


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def geo_prefix(region: str) -> str:
    """The cross-region inference profile prefix for a region (``us.``, ``eu.``, ``apac.``)."""
    area = region.split("-", 1)[0]
    return {"eu": "eu", "ap": "apac"}.get(area, "us")


def steps(region: str) -> list[Step]:
    """The calls, in order. Model ids are cross-region profiles of the region's geography."""
    geo = geo_prefix(region)
    nova_micro = f"{geo}.amazon.nova-micro-v1:0"
    nova_lite = f"{geo}.amazon.nova-lite-v1:0"
    haiku = f"{geo}.anthropic.claude-3-5-haiku-20241022-v1:0"
    llama = f"{geo}.meta.llama3-1-8b-instruct-v1:0"
    cached_system = [{"text": HANDBOOK}, {"cachePoint": {"type": "default"}}]
    plan = [
        Step("chat with Nova Micro", "Converse", {
            "modelId": nova_micro,
            "messages": _user("In one sentence: what is a token, for a language model?"),
            "inferenceConfig": {"maxTokens": 80, "temperature": 0.2},
        }),
        Step("streamed chat with Claude 3.5 Haiku", "ConverseStream", {
            "modelId": haiku,
            "messages": _user("Name three things that make a prompt expensive."),
            "inferenceConfig": {"maxTokens": 80},
        }),
        Step("Claude Messages API body", "InvokeModel", {
            "modelId": haiku,
            "body": json.dumps({
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 80,
                "messages": [{"role": "user", "content": "Why count tokens before a call?"}],
            }),
        }),
        Step("streamed Llama 3.1 completion", "InvokeModelWithResponseStream", {
            "modelId": llama,
            "body": json.dumps({
                "prompt": "Complete the sentence: observability for LLM calls means",
                "max_gen_len": 80,
            }),
        }),
        Step("Nova Lite native body", "InvokeModel", {
            "modelId": nova_lite,
            "body": json.dumps({
                "schemaVersion": "messages-v1",
                "messages": _user("Give one tip for keeping prompts short."),
                "inferenceConfig": {"max_new_tokens": 80},
            }),
        }),
        Step("long system prompt, cache written", "Converse", {
            "modelId": haiku,
            "system": cached_system,
            "messages": _user("My parcel is two weeks late. What now?"),
            "inferenceConfig": {"maxTokens": 80},
        }),
        Step("same system prompt, cache read", "Converse", {
            "modelId": haiku,
            "system": cached_system,
            "messages": _user("Can I return a gift without the receipt?"),
            "inferenceConfig": {"maxTokens": 80},
        }),
        Step("async streamed chat with Claude 3.5 Haiku", "ConverseStream", {
            "modelId": haiku,
            "messages": _user("In two sentences: why do streamed replies need their own timing?"),
            "inferenceConfig": {"maxTokens": 80},
        }, driver="aiobotocore"),
        Step("invalid request, fails on purpose", "Converse", {
            "modelId": nova_micro,
            "messages": [{"role": "assistant", "content": [{"text": "Conversations must start "
                                                             "with a user turn."}]}],
        }, expected_error="ValidationException"),
    ]
    return [step for step in plan if step.driver == "boto3" or HAS_AIOBOTOCORE]


# botocore operation name -> boto3 client method
_METHODS = {
    "Converse": "converse",
    "ConverseStream": "converse_stream",
    "InvokeModel": "invoke_model",
    "InvokeModelWithResponseStream": "invoke_model_with_response_stream",
}


def _consume(operation: str, response: dict[str, Any]) -> None:
    """Read the response the way an application does, so streams run to their end."""
    if operation == "ConverseStream":
        for _event in response["stream"]:
            pass
    elif operation == "InvokeModelWithResponseStream":
        for _event in response["body"]:
            pass
    elif operation == "InvokeModel":
        response["body"].read()


async def _call_async(step: Step, region: str, endpoint_url: Optional[str]) -> None:
    """The step through aiobotocore, read with ``async for`` as an async app does."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    config = AioConfig(retries={"total_max_attempts": 2, "mode": "standard"}, read_timeout=60)
    async with get_session().create_client(
        "bedrock-runtime", region_name=region, endpoint_url=endpoint_url, config=config
    ) as client:
        response = await getattr(client, _METHODS[step.operation])(**step.params)
        if step.operation == "ConverseStream":
            async for _event in response["stream"]:
                pass
        elif step.operation == "InvokeModelWithResponseStream":
            async for _event in response["body"]:
                pass
        elif step.operation == "InvokeModel":
            await response["body"].read()


def _report(**event: Any) -> None:
    sys.stderr.write(PROGRESS + json.dumps(event) + "\n")
    sys.stderr.flush()


def main() -> int:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint_url = os.environ.get("BEDROCK_ENDPOINT_URL") or None
    client = boto3.client(
        "bedrock-runtime",
        region_name=region,
        endpoint_url=endpoint_url,
        config=Config(retries={"total_max_attempts": 2, "mode": "standard"}, read_timeout=60),
    )
    plan = steps(region)
    for number, step in enumerate(plan, start=1):
        _report(event="start", step=number, total=len(plan), label=step.label,
                operation=step.operation, model=step.params["modelId"],
                expected_error=step.expected_error)
        started = time.perf_counter()
        outcome: dict[str, Any] = {"ok": True}
        try:
            if step.driver == "aiobotocore":
                asyncio.run(_call_async(step, region, endpoint_url))
            else:
                response = getattr(client, _METHODS[step.operation])(**step.params)
                _consume(step.operation, response)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            outcome = {"ok": False, "code": error.get("Code", type(exc).__name__),
                       "message": error.get("Message", str(exc))}
        except BotoCoreError as exc:  # no credentials, endpoint unreachable, ...
            outcome = {"ok": False, "code": type(exc).__name__, "message": str(exc)}
        _report(event="done", step=number, seconds=round(time.perf_counter() - started, 3),
                **outcome)
    _report(event="finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
