"""A plain boto3 application: the program every zero-code example runs.

It contains no OpenTelemetry code at all. Run it under the launcher and the
``bedrock_tokens`` instrumentation is loaded for it:

    opentelemetry-instrument python app.py

Settings (environment variables):
    AWS_REGION            region of the Bedrock endpoint (default us-east-1)
    BEDROCK_MODEL_ID      model or inference profile (default: Claude 3.5 Haiku, US profile)
    BEDROCK_ENDPOINT_URL  optional; e.g. http://127.0.0.1:8765 for `bedrock-tokens emulator`
                          (then any dummy AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY will do)
    BEDROCK_APP_LINGER_SECONDS  optional; stay up this long after the calls, so that a
                          pull-based backend (Prometheus) can scrape the final metrics
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

MODEL_ID = os.environ.get("BEDROCK_MODEL_ID", "us.anthropic.claude-3-5-haiku-20241022-v1:0")
QUESTIONS = (
    "What is the capital of Portugal? One word.",
    "List three uses of a token counter.",
    "Say hello in French.",
)


def converse_request(question: str) -> dict[str, Any]:
    """Keyword arguments of a Converse / ConverseStream call."""
    return {
        "modelId": MODEL_ID,
        "messages": [{"role": "user", "content": [{"text": question}]}],
        "inferenceConfig": {"maxTokens": 200, "temperature": 0.3},
    }


def invoke_request(question: str) -> dict[str, Any]:
    """Keyword arguments of an InvokeModel call with an Anthropic Messages body."""
    return {
        "modelId": MODEL_ID,
        "body": json.dumps({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 200,
            "temperature": 0.3,
            "messages": [{"role": "user", "content": question}],
        }),
    }


def main() -> None:
    import boto3

    client = boto3.client(
        "bedrock-runtime",
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        endpoint_url=os.environ.get("BEDROCK_ENDPOINT_URL") or None,
    )

    answer = client.converse(**converse_request(QUESTIONS[0]))
    print("converse:", answer["output"]["message"]["content"][0]["text"])

    streamed = client.converse_stream(**converse_request(QUESTIONS[1]))
    parts = [event["contentBlockDelta"]["delta"].get("text", "")
             for event in streamed["stream"] if "contentBlockDelta" in event]
    print("converse_stream:", "".join(parts))

    invoked = client.invoke_model(**invoke_request(QUESTIONS[2]))
    print("invoke_model:", json.loads(invoked["body"].read())["content"][0]["text"])

    linger = float(os.environ.get("BEDROCK_APP_LINGER_SECONDS") or 0)
    if linger > 0:
        print(f"calls done; staying up {linger:g}s for scrapes", flush=True)
        time.sleep(linger)


if __name__ == "__main__":
    main()
