"""Zero code: a small app run under the real ``opentelemetry-instrument`` launcher, with the
contrib botocore instrumentation also installed (as in most deployments), exports one span
per Bedrock call carrying the exact token counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

APP = textwrap.dedent(
    """
    import os, boto3
    from botocore.config import Config

    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=os.environ["EMULATOR_URL"],
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}),
    )
    client.converse(
        modelId="us.anthropic.claude-3-5-haiku-20241022-v1:0",
        messages=[{"role": "user", "content": [{"text": "How many tokens is this?"}]}],
    )
    """
)


def _json_objects(text: str) -> list[Any]:
    decoder, found, i = json.JSONDecoder(), [], 0
    while i < len(text):
        start = text.find("{", i)
        if start < 0:
            break
        obj, i = decoder.raw_decode(text, start)
        found.append(obj)
    return found


def test_zero_code_launcher_exports_token_counts(tmp_path: Path, bedrock_emulator: Any) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    launcher = Path(sys.executable).parent / "opentelemetry-instrument"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AWS_"))},
        "EMULATOR_URL": bedrock_emulator.endpoint_url,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "launcher-test",
    }
    done = subprocess.run(
        [str(launcher), sys.executable, str(app)], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    spans = [o for o in _json_objects(done.stdout) if "attributes" in o]
    bedrock = [s for s in spans if s["attributes"].get("gen_ai.provider.name") == "aws.bedrock"]
    assert len(bedrock) == 1, [s["name"] for s in spans]
    span = bedrock[0]
    assert span["name"] == "chat us.anthropic.claude-3-5-haiku-20241022-v1:0"
    recorded = bedrock_emulator.requests[-1]
    assert span["attributes"]["gen_ai.usage.input_tokens"] == recorded.input_tokens
    assert span["attributes"]["gen_ai.usage.output_tokens"] == recorded.output_tokens
    # contrib botocore is installed and active, yet stepped aside: no second Bedrock span
    assert not [s for s in spans if s["attributes"].get("rpc.service") == "Bedrock Runtime"]
