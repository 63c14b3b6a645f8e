"""A real Prometheus end to end: Debian's ``prometheus`` scrapes the OpenTelemetry Prometheus
exporter of the sample app (examples/app.py under ``opentelemetry-instrument``, calls to the
emulator), and the exact token sums and counts are read back through Prometheus' HTTP query
API. Then ``promtool`` checks the example's configuration and rules and runs the rule unit
tests, and the real server is shown to load and evaluate the same rules.

Run by ``.ci/prometheus`` (``BEDROCK_TOKENS_PROMETHEUS=1``); see tests/prometheus/conftest.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from opentelemetry.instrumentation.bedrock_tokens.doctor import launcher_command
from opentelemetry.instrumentation.bedrock_tokens.emulator import BedrockEmulator

from ..e2e.test_examples_e2e import SHAPES, expected_calls

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "prometheus"
APP = EXAMPLE.parent / "app.py"


def _ensure_prometheus() -> None:
    """Install Debian's prometheus (with promtool) when it is not there; CI runs as root."""
    if shutil.which("prometheus") and shutil.which("promtool"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail("prometheus is not installed and cannot be: run as root on Debian, or "
                    "apt-get install prometheus")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "prometheus"],
                   check=True, env=env, capture_output=True)
    assert shutil.which("prometheus") and shutil.which("promtool")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _promtool(*args: str) -> str:
    done = subprocess.run(["promtool", *args], cwd=EXAMPLE, capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def tools() -> None:
    _ensure_prometheus()


@pytest.mark.usefixtures("tools")
def test_promtool_checks_the_config() -> None:
    assert "SUCCESS" in _promtool("check", "config", "prometheus.yml")


@pytest.mark.usefixtures("tools")
def test_promtool_checks_the_rules() -> None:
    assert "SUCCESS: 9 rules found" in _promtool("check", "rules", "rules.yml")


@pytest.mark.usefixtures("tools")
def test_promtool_runs_the_rule_unit_tests() -> None:
    assert "SUCCESS" in _promtool("test", "rules", "rules_test.yml")


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _by(results: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in results}


@pytest.fixture(scope="module")
def scraped(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The sample app's metrics, scraped by a real Prometheus; yields its base URL."""
    work = tmp_path_factory.mktemp("prometheus")
    exporter_port, prometheus_port = _free_port(), _free_port()
    with BedrockEmulator() as emulator:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AWS_"))}
        env.update({
            # as run.sh sets it, on a free loopback port
            "OTEL_SERVICE_NAME": "bedrock-app", "OTEL_TRACES_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "prometheus",
            "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
            "OTEL_EXPORTER_PROMETHEUS_PORT": str(exporter_port),
            "BEDROCK_APP_LINGER_SECONDS": "300",
            "BEDROCK_ENDPOINT_URL": emulator.endpoint_url, "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_EC2_METADATA_DISABLED": "true",
        })
        app = subprocess.Popen([*launcher_command(), str(APP)], env=env, cwd=work,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # the example's configuration, pointed at the app, scraping and evaluating every second
        config = yaml.safe_load((EXAMPLE / "prometheus.yml").read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        config["rule_files"] = [str(EXAMPLE / "rules.yml")]
        config["scrape_configs"][0]["static_configs"] = [
            {"targets": [f"127.0.0.1:{exporter_port}"]}]
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        server = subprocess.Popen(
            ["prometheus", f"--config.file={work / 'prometheus.yml'}",
             f"--storage.tsdb.path={work / 'data'}",
             f"--web.listen-address=127.0.0.1:{prometheus_port}"],
            stdout=subprocess.DEVNULL, stderr=open(work / "prometheus.log", "w"))  # noqa: SIM115
        base = f"http://127.0.0.1:{prometheus_port}"
        try:
            assert app.stdout is not None
            for line in app.stdout:  # the calls are made before this line is printed
                if line.startswith("calls done"):
                    break
            else:
                pytest.fail(f"the app ended early: {app.wait()} {app.stderr.read()}")  # type: ignore[union-attr]
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    # a scrape after the calls: all three durations are in
                    if sum(_by(_query(base, "sum(gen_ai_client_operation_duration_seconds_count)"),
                               "").values()) == 3:
                        break
                except OSError:
                    pass  # not listening yet
                time.sleep(0.5)
            else:
                pytest.fail("Prometheus never scraped the app:\n"
                            + (work / "prometheus.log").read_text()[-3000:])
            yield base
        finally:
            app.terminate()
            server.terminate()
            for process in (app, server):
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()


def test_prometheus_has_the_exact_token_sums_and_counts(scraped: str) -> None:
    calls = expected_calls(SHAPES["zero-code"])  # the app's three calls, counted by the emulator
    sums = _by(_query(scraped, "sum by (gen_ai_token_type) (gen_ai_client_token_usage_sum)"),
               "gen_ai_token_type")
    assert sums == {"input": float(sum(c.input_tokens for c in calls)),
                    "output": float(sum(c.output_tokens for c in calls))}
    counts = _by(_query(scraped, "sum by (gen_ai_token_type) (gen_ai_client_token_usage_count)"),
                 "gen_ai_token_type")
    assert counts == {"input": 3.0, "output": 3.0}  # one recording per call and direction
    by_model = _by(_query(scraped, "sum by (gen_ai_request_model) "
                                   "(gen_ai_client_operation_duration_seconds_count)"),
                   "gen_ai_request_model")
    assert by_model == {calls[0].model: 3.0}
    streamed = _query(scraped, "sum(gen_ai_client_operation_time_to_first_chunk_seconds_count)")
    assert _by(streamed, "") == {"": 1.0}  # the one ConverseStream
    chunks = _query(scraped, "sum(gen_ai_client_operation_time_per_output_chunk_seconds_count)")
    assert _by(chunks, "")[""] >= 1  # every event after the first of that stream
    errors = _query(scraped, 'sum(gen_ai_client_operation_duration_seconds_count{error_type!=""})')
    assert errors == []  # no call failed


def test_the_real_server_loads_and_evaluates_the_rules(scraped: str) -> None:
    with urllib.request.urlopen(f"{scraped}/api/v1/rules", timeout=10) as response:
        groups = json.load(response)["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == 9
    assert all(rule["health"] == "ok" for rule in rules), rules
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the recording rule over the scraped token sums
        found = _query(scraped, "model_token_type:gen_ai_client_tokens:rate5m")
        if found:
            assert {r["metric"]["gen_ai_token_type"] for r in found} == {"input", "output"}
            return
        time.sleep(1)
    pytest.fail("the token-burn recording rule never produced a sample")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
