"""``bedrock-tokens doctor``: each cause of "I see no tokens" it must name.

The launcher tests start a real ``opentelemetry-instrument`` process with a deliberately broken
environment: a bad setting, the contrib conflict (``replace_contrib=false``), a foreign Bedrock
instrumentation (a stand-in distribution registered through a real entry point), a disabled
entry point and a launcher that fails before loading anything.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opentelemetry.instrumentation.bedrock_tokens import cli, doctor
from opentelemetry.instrumentation.bedrock_tokens.emulator import BedrockEmulator, Scenario
from opentelemetry.instrumentation.bedrock_tokens.package import _instruments


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No OTEL_* from the developer's shell; console exporters so the launcher configures."""
    for key in list(os.environ):
        if key.startswith("OTEL_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
    yield monkeypatch


def _doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = cli.main(["doctor", *args])
    return status, capsys.readouterr().out


def test_healthy_setup_has_no_problem(clean_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = _doctor(capsys)
    assert status == 0, out
    assert "[ok] instrumentation: bedrock_tokens is active" in out
    assert "[ok] conflicts: contrib botocore is active; its Bedrock extension is neutralised" in out
    assert "0 problem(s)" in out
    # the range declared for botocore, as doctor prints it (from the package's own metadata)
    floor = _instruments[0].split(">=")[1].split(",")[0].strip()
    assert "botocore" in out and f"<2,>={floor}" in out and "OUT OF RANGE" not in out


def test_reports_a_bad_setting_and_the_contrib_conflict(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT", "sometimes")
    clean_env.setenv("OTEL_INSTRUMENTATION_BEDROCK_TOKENS_REPLACE_CONTRIB", "false")
    status, out = _doctor(capsys)
    assert status == 1
    assert ("[!!] settings: OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT='sometimes' is invalid;"
            " 'off' is used instead") in out
    assert ("[XX] conflicts: opentelemetry-instrumentation-botocore also instruments Bedrock: "
            "every call gets a second span and its tokens are counted twice") in out
    assert "OTEL_INSTRUMENTATION_BEDROCK_TOKENS_REPLACE_CONTRIB=true" in out
    assert "neutralised" not in out


def _fake_foreign_instrumentation(root: Path) -> None:
    """A stand-in for openinference-instrumentation-bedrock: same module, class and entry
    point, so the launcher loads it exactly as it would load the real one."""
    package = root / "openinference" / "instrumentation" / "bedrock"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent("""
        from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

        class BedrockInstrumentor(BaseInstrumentor):
            def instrumentation_dependencies(self):
                return ()

            def _instrument(self, **kwargs):
                pass

            def _uninstrument(self, **kwargs):
                pass
    """))
    info = root / "openinference_instrumentation_bedrock-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\n"
                                   "Name: openinference-instrumentation-bedrock\n"
                                   "Version: 0.0.1\n")
    (info / "entry_points.txt").write_text(
        "[opentelemetry_instrumentor]\n"
        "bedrock = openinference.instrumentation.bedrock:BedrockInstrumentor\n")


def test_reports_another_bedrock_instrumentation(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_foreign_instrumentation(tmp_path)
    clean_env.setenv("PYTHONPATH", str(tmp_path))
    status, out = _doctor(capsys, "--json")
    assert status == 1
    report = json.loads(out)
    foreign = [i for i in report["process"]["instrumentors"] if i["name"] == "bedrock"]
    assert foreign and foreign[0]["active"]
    problems = [f for f in report["findings"] if f["level"] == "error"]
    assert [f["topic"] for f in problems] == ["conflicts"]
    message = problems[0]["message"]
    assert "openinference-instrumentation-bedrock also instruments Bedrock" in message
    assert "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=bedrock (theirs)" in problems[0]["hint"]


def test_reports_a_disabled_entry_point(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "requests, bedrock_tokens")
    status, out = _doctor(capsys)
    assert status == 1
    assert ("bedrock_tokens is NOT active in a process started by the launcher: disabled by "
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS") in out


def test_reports_a_launcher_that_failed_before_instrumenting(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("OTEL_TRACES_EXPORTER", "no_such_exporter")
    status, out = _doctor(capsys)
    assert status == 1
    assert "opentelemetry-instrument failed before loading any instrumentation: RuntimeError" in out
    assert "no_such_exporter" in out
    assert "the launcher failed first" in out
    assert "Traceback" not in out  # the log is summarised


def test_settings_rows_flag_every_invalid_value() -> None:
    rows = doctor.settings_rows({
        "OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT_SAMPLE_RATIO": "1.5",
        "OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT_WORKERS": "4",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "yes please",
    })
    by_name = {row.variable: row for row in rows}
    ratio = by_name["OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT_SAMPLE_RATIO"]
    assert (ratio.valid, ratio.raw, ratio.effective) == (False, "1.5", "1.0")
    workers = by_name["OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT_WORKERS"]
    assert (workers.valid, workers.effective) == (True, "4")
    assert not by_name["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"].valid
    assert sum(not row.valid for row in rows) == 2


def test_backend_specific_findings_and_secrets_stay_hidden() -> None:
    report = {
        "ours": {"active": True, "wrapped": True},
        "tracing": {"sdk": True, "exporters": [
            {"class": "OTLPSpanExporter", "endpoint": "https://otlp.datadoghq.com/v1/traces",
             "headers": ["dd-api-key"]}]},
        "metrics": {"sdk": True, "readers": [
            {"class": "OTLPMetricExporter", "endpoint": "https://api.honeycomb.io/v1/metrics",
             "headers": ["x-honeycomb-team"], "histogram_temporality": "CUMULATIVE"}]},
    }
    found = doctor.findings(report, [], [], environ={})
    text = "\n".join(f.message for f in found)
    assert "without a dd-otlp-source header" in text
    assert "without an x-honeycomb-dataset header" in text
    env = {"OTEL_EXPORTER_OTLP_HEADERS": "x-honeycomb-team=s3cr3t,x-honeycomb-dataset=d",
           "OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT": "blocking", "DD_API_KEY": "k"}
    rendered = doctor.render([], [], None, found, environ=env)
    assert "s3cr3t" not in rendered
    assert "x-honeycomb-team=<redacted>,x-honeycomb-dataset=<redacted>" in rendered
    assert "OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT=blocking" in rendered


@pytest.mark.parametrize(("scenario", "level", "words"), [
    (None, doctor.OK, "allowed for"),
    (Scenario(count_tokens="forbidden"), doctor.ERROR, "Grant bedrock:CountTokens"),
    (Scenario(count_tokens="unsupported"), doctor.WARN, "cannot be counted"),
])
def test_count_tokens_permission_check(
    bedrock_emulator: BedrockEmulator, monkeypatch: pytest.MonkeyPatch,
    scenario: Any, level: str, words: str,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    bedrock_emulator.set_scenario(scenario)
    finding = doctor.check_count_tokens("us-east-1", bedrock_emulator.endpoint_url,
                                        "anthropic.claude-3-5-haiku-20241022-v1:0")
    assert finding.level == level
    assert words in finding.message + finding.hint


def test_count_tokens_check_without_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    finding = doctor.check_count_tokens("us-east-1", None, "anthropic.claude-v2")
    assert (finding.level, finding.message) == (doctor.ERROR, "no AWS credentials found")


def test_explain_in_process_for_manual_instrumentation(bedrock_telemetry: Any) -> None:
    from opentelemetry.instrumentation.bedrock_tokens import BedrockTokensInstrumentor

    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(tracer_provider=bedrock_telemetry.tracer_provider,
                            meter_provider=bedrock_telemetry.meter_provider)
    try:
        text = doctor.explain()
    finally:
        instrumentor.uninstrument()
    assert "[ok] instrumentation: bedrock_tokens is active" in text


def test_says_agents_need_enable_trace() -> None:
    versions: list[doctor.VersionRow] = []
    default = doctor.findings(None, doctor.settings_rows({}), versions, {})
    (note,) = [f for f in default if f.topic == "agents"]
    assert "enableTrace=True" in note.message and "no token counts" in note.message
    assert "OTEL_INSTRUMENTATION_BEDROCK_TOKENS_AGENT_ENABLE_TRACE=true" in note.hint
    assert "delivered to your code" in note.hint
    rows = doctor.settings_rows({"OTEL_INSTRUMENTATION_BEDROCK_TOKENS_AGENT_ENABLE_TRACE": "true"})
    (note,) = [f for f in doctor.findings(None, rows, versions, {}) if f.topic == "agents"]
    assert "agent_enable_trace is on" in note.message and "trace events too" in note.message


def test_reports_whether_the_price_table_can_be_used(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    good = tmp_path / "prices.json"
    good.write_text(json.dumps({"models": {"anthropic.claude-3-5-haiku-20241022-v1:0": {
        "input": 0.8, "output": 4.0}, "meta.llama3-*": {"input": 0.3, "output": 0.6}}}))
    clean_env.setenv("OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRICES", str(good))
    _, out = _doctor(capsys, "--no-launch")
    assert f"[ok] cost: price table {good}: 2 model entries" in out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"models": {"anthropic.claude-3-5-haiku-20241022-v1:0": {
        "inptu": 0.8}}}))
    clean_env.setenv("OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRICES", str(bad))
    _, out = _doctor(capsys, "--no-launch")
    assert "[!!] cost: the price table cannot be used, so no cost is recorded" in out
    assert "unknown field 'inptu'" in out
