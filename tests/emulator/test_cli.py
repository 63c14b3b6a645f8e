"""``bedrock-tokens emulator`` as a user runs it: a subprocess that a boto3 client can reach."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from opentelemetry.instrumentation.bedrock_tokens import cli

from .support import converse_messages


def _console_script() -> list[str]:
    script = Path(sysconfig.get_path("scripts")) / "bedrock-tokens"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "opentelemetry.instrumentation.bedrock_tokens.cli"]


def test_cli_serves_boto3_until_interrupted(monkeypatch: pytest.MonkeyPatch) -> None:
    process = subprocess.Popen(
        [*_console_script(), "emulator", "--port", "0", "--scenario", '{"output_text": "cli ok"}'],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", first)
        assert match, first
        endpoint = match.group(1)
        lines = []
        while not lines or not lines[-1].startswith("Press Ctrl+C"):
            lines.append(process.stdout.readline())
            assert lines[-1], "the CLI ended early"
        hint = "".join(lines)
        assert f'endpoint_url="{endpoint}"' in hint
        assert f"AWS_ENDPOINT_URL_BEDROCK_RUNTIME={endpoint}" in hint
        client = boto3.client(
            "bedrock-runtime",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"total_max_attempts": 1}, proxies={}),
        )
        result = client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())
        assert result["output"]["message"]["content"][0]["text"] == "cli ok"
        # the environment-variable route the hint offers works too
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", endpoint)
        by_env = boto3.session.Session().client(
            "bedrock-runtime",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"total_max_attempts": 1}, proxies={}),
        )
        assert by_env.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())
    finally:
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, err
    assert "stopped" in out
    assert "Traceback" not in err


def test_sigterm_stops_cleanly() -> None:
    process = subprocess.Popen(
        [*_console_script(), "emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert "listening on" in process.stdout.readline()
    process.terminate()
    _, err = process.communicate(timeout=10)
    assert process.returncode == 0, err


def test_help_and_errors(capsys: Any) -> None:
    assert cli.main([]) == 2
    assert "emulator" in capsys.readouterr().out
    assert cli.main(["emulator", "--scenario", "{nope"]) == 2
    assert "--scenario" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["emulator", "--port", "not-a-port"])
    parser = cli.build_parser()
    args = parser.parse_args(["emulator"])
    assert (args.host, args.port) == ("127.0.0.1", 8765)


def test_busy_port_is_reported(capsys: Any) -> None:
    from opentelemetry.instrumentation.bedrock_tokens.emulator import BedrockEmulator

    with BedrockEmulator() as emulator:
        assert cli.main(["emulator", "--port", str(emulator.port)]) == 1
    assert "cannot bind" in capsys.readouterr().err


def test_cli_warns_for_a_non_loopback_host_and_gates_scenario_headers() -> None:
    """``--host 0.0.0.0`` is served with a warning on stderr; the scenario header is refused
    unless ``--scenario-headers`` is given."""
    for flags, header_allowed in (([], False), (["--scenario-headers"], True)):
        process = subprocess.Popen(
            [*_console_script(), "emulator", "--host", "0.0.0.0", "--port", "0", *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert process.stdout is not None and process.stderr is not None
            warning = process.stderr.readline()
            assert "0.0.0.0 is not a loopback address" in warning
            match = re.search(r"listening on http://0\.0\.0\.0:(\d+)", process.stdout.readline())
            assert match
            client = boto3.client(
                "bedrock-runtime",
                endpoint_url=f"http://127.0.0.1:{match.group(1)}",
                region_name="us-east-1",
                aws_access_key_id="x",
                aws_secret_access_key="x",
                config=Config(retries={"total_max_attempts": 1}, proxies={}),
            )

            def add_header(request: Any, **_: Any) -> None:
                request.headers["x-bedrock-emulator-scenario"] = '{"output_text": "header"}'

            client.meta.events.register("before-sign.bedrock-runtime.*", add_header)
            if header_allowed:
                result = client.converse(
                    modelId="amazon.nova-micro-v1:0", messages=converse_messages()
                )
                assert result["output"]["message"]["content"][0]["text"] == "header"
            else:
                with pytest.raises(client.exceptions.ValidationException, match="--scenario"):
                    client.converse(modelId="amazon.nova-micro-v1:0", messages=converse_messages())
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=20)
