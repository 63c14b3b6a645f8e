"""``bedrock-tokens demo``: the README's main command.

One real run (sample app under ``opentelemetry-instrument`` against the embedded emulator) is
shared by the tests that read its result; its counts are checked against numbers computed here
from the app's own requests with the emulator's tokenizer, independently of the demo's own
check against the emulator's request log. Other tests cover the parts that decide success:
the checks can fail, and missing credentials or permissions are said in plain words.
"""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path
from typing import Any

import pytest

from opentelemetry.instrumentation.bedrock_tokens import cli, demo, demo_app, names
from opentelemetry.instrumentation.bedrock_tokens.agents import AGENT_OPERATIONS
from opentelemetry.instrumentation.bedrock_tokens.emulator import (
    BedrockEmulator,
    Scenario,
    count_text_tokens,
    input_tokens_for,
    output_tokens_for,
)
from opentelemetry.instrumentation.bedrock_tokens.emulator.agents import plan_agent


@pytest.fixture(scope="module")
def run() -> tuple[demo.DemoResult, str]:
    out = io.StringIO()
    result = demo.run_demo(out=out)
    return result, out.getvalue()


def _plan() -> list[demo_app.Step]:
    return demo_app.steps("us-east-1", demo.EMULATOR_AGENT)


def _agent_steps(step: demo_app.Step) -> list[tuple[int, int]]:
    """The model steps the emulator's agent makes for the demo's agent call."""
    run = plan_agent(step.operation, step.params, Scenario())
    return [(s.input_tokens, s.output_tokens) for s in run.steps]


def _expected(step: demo_app.Step) -> tuple[int, int]:
    if step.service == "bedrock-agent-runtime":
        found = _agent_steps(step)
        return sum(i for i, _o in found), sum(o for _i, o in found)
    request: Any = step.params.get("body", step.params)
    model = step.params["modelId"]
    return (input_tokens_for(model, step.operation, request),
            output_tokens_for(model, step.operation, request))


def _recordings(step: demo_app.Step) -> int:
    """Token-metric recordings per direction: one per call, one per model step for agents."""
    return len(_agent_steps(step)) if step.service == "bedrock-agent-runtime" else 1


def test_demo_runs_every_call_and_passes_its_own_checks(run: tuple[demo.DemoResult, str]) -> None:
    result, text = run
    assert result.ok, result.problems
    assert result.returncode == 0
    assert result.emulated
    plan = _plan()
    assert [(s.operation, s.model) for s in result.steps] == [(p.operation, p.model) for p in plan]
    assert len(result.rows) == len(plan)
    # The demo said what it verified, in its own output.
    successful = sum(1 for s in plan if not s.expected_error)
    assert successful == 9  # the async call included: the test extra installs aiobotocore
    assert (f"{successful} of {successful} successful calls: input, output and cache counts "
            "equal what the emulator") in text
    assert "[XX]" not in text
    assert result.seconds < 30


def test_demo_counts_are_exact(run: tuple[demo.DemoResult, str]) -> None:
    result, _text = run
    plan = _plan()
    prefix = count_text_tokens(demo_app.HANDBOOK)  # the cached system prompt
    for step, row in zip(plan, result.rows):
        if step.expected_error:
            assert row.status == f"error {step.expected_error}"
            assert row.attr(names.GEN_AI_USAGE_INPUT_TOKENS) is None
            continue
        input_tokens, output_tokens = _expected(step)
        assert input_tokens > 0 and output_tokens > 0
        assert row.attr(names.GEN_AI_USAGE_INPUT_TOKENS) == input_tokens, step.label
        assert row.attr(names.GEN_AI_USAGE_OUTPUT_TOKENS) == output_tokens, step.label
    cached_write, cached_read = result.rows[5], result.rows[6]
    assert cached_write.attr(names.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS) == prefix
    assert cached_read.attr(names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS) == prefix
    usage = next(t for t in result.totals if t.name == names.METRIC_TOKEN_USAGE)
    ok_steps = [s for s in plan if not s.expected_error]
    recordings = sum(_recordings(s) for s in ok_steps)
    assert usage.groups["input"] == (recordings, sum(_expected(s)[0] for s in ok_steps))
    assert usage.groups["output"] == (recordings, sum(_expected(s)[1] for s in ok_steps))
    (agent,) = [r for r in result.rows if r.step is not None and r.step.operation == "InvokeAgent"]
    children = [s for s in result.spans if s.get("parent_id") == agent.span["context"]["span_id"]]
    assert len(children) == len(_agent_steps(plan[[p.operation for p in plan].index(
        "InvokeAgent")]))


def test_demo_shows_estimates_streams_and_the_failure(run: tuple[demo.DemoResult, str]) -> None:
    result, text = run
    for row in result.rows:
        claude = "anthropic" in row.model
        agent = row.step is not None and row.step.operation == "InvokeAgent"
        if row.status == "ok" and not agent:  # agents are not pre-counted
            estimate = row.attr(names.AWS_BEDROCK_COUNT_TOKENS_INPUT_TOKENS)
            # Claude is counted (blocking pre-count, linked); Nova and Llama are refused.
            assert (estimate == row.attr(names.GEN_AI_USAGE_INPUT_TOKENS)) is claude
            assert (row.precount is not None)
        stream = row.step is not None and (row.step.operation.endswith("Stream") or agent)
        assert (row.attr(names.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK) is not None) is stream
    table = demo.render_table(result.rows)
    assert re.search(r"4,694 / 0|0 / 4,694", table)
    assert "n/a" in table and "(+0)" in table and "error ValidationException" in table
    assert "Metric totals" in text and names.METRIC_TIME_TO_FIRST_CHUNK in text
    # Progress lines were printed while it ran.
    total = len(_plan())
    assert f"[1/{total}] Converse" in text and f"[{total}/{total}]" in text


def test_sample_app_does_not_import_the_instrumentation() -> None:
    source = Path(demo_app.__file__).read_text()
    code = re.sub(r'""".*?"""', "", source, flags=re.S)
    assert not re.search(r"^\s*(import|from)\s+opentelemetry", code, flags=re.M)


def test_the_checks_fail_on_a_wrong_count(run: tuple[demo.DemoResult, str]) -> None:
    """Feed the demo's emulator check a log whose numbers differ from the spans."""
    result, _text = run
    row = result.rows[0]
    fake = [_Recorded(row.attr(names.AWS_REQUEST_ID), "Converse", row.model,
                      input_tokens=row.attr(names.AWS_BEDROCK_USAGE_UNCACHED_INPUT_TOKENS),
                      output_tokens=row.attr(names.GEN_AI_USAGE_OUTPUT_TOKENS) + 1)]
    _checks, problems = demo.check_against_emulator(result.rows[:1], fake)
    assert any("gen_ai.usage.output_tokens" in p for p in problems), problems
    broken = [dataclasses.replace(t, groups={**t.groups, "input": (1, 1.0)})
              for t in result.totals]
    _checks, problems = demo.check_metrics(result.rows, broken)
    assert any("input sum is 1" in p for p in problems), problems


@dataclasses.dataclass
class _Recorded:
    request_id: str
    operation: str
    model_id: str
    status: int = 200
    input_tokens: Any = None
    output_tokens: Any = None
    cache_read_tokens: Any = None
    cache_write_tokens: Any = None


def test_parse_documents_skips_what_is_not_json() -> None:
    text = 'hello\n{"a": 1}\n{"b": {"c": [1, 2]}}\nnot json {\n{"d": 2}'
    assert demo.parse_documents(text) == [{"a": 1}, {"b": {"c": [1, 2]}}, {"d": 2}]


def test_missing_credentials_are_said_plainly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert cli.main(["demo", "--region", "eu-west-1"]) == 2
    err = capsys.readouterr().err
    assert "No AWS credentials were found" in err and "without --endpoint-url/--region" in err


def test_missing_permissions_are_said_plainly() -> None:
    """Against an endpoint that denies everything (the emulator told to), as real Bedrock does
    for an identity without bedrock:InvokeModel: the demo fails and says what to grant."""
    with BedrockEmulator() as emulator:
        emulator.set_scenario(Scenario(error_code="AccessDeniedException"))
        out = io.StringIO()
        result = demo.run_demo(endpoint_url=emulator.endpoint_url, region="us-east-1", out=out)
    assert not result.ok and not result.emulated
    assert "every call failed" in result.problems
    text = out.getvalue()
    assert "Bedrock denied access to" in text
    assert "bedrock:InvokeModel" in text and "model access must be enabled" in text
    assert "CountTokens was denied" in text


def test_hints_for_rejected_credentials_and_unreachable_endpoints() -> None:
    steps = [demo.Step(1, "a", "Converse", "m", ok=False, code="ExpiredTokenException"),
             demo.Step(2, "b", "Converse", "m", ok=False, code="EndpointConnectionError")]
    hints = demo.real_bedrock_hints(steps, [], "us-east-1")
    assert any("did not accept the credentials (ExpiredTokenException)" in h for h in hints)
    assert any("could not be reached" in h for h in hints)


def test_child_environment_is_isolated_from_the_shell() -> None:
    env = demo.child_environment(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://example", "AWS_PROFILE": "prod", "PATH": "/bin"},
        "http://127.0.0.1:1", "us-east-1", "blocking", dummy_credentials=True)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env and "AWS_PROFILE" not in env
    assert env["OTEL_TRACES_EXPORTER"] == "console" and env["PATH"] == "/bin"
    assert env["OTEL_INSTRUMENTATION_BEDROCK_TOKENS_PRECOUNT"] == "blocking"
    assert env["BEDROCK_ENDPOINT_URL"] == "http://127.0.0.1:1"


def test_demo_shows_cost_from_the_example_table_and_the_quota_burn(
    run: tuple[demo.DemoResult, str],
) -> None:
    from opentelemetry.instrumentation.bedrock_tokens import pricing, quota

    result, text = run
    table = pricing.PriceTable(pricing.example_table())
    total_burn = 0.0
    for row in result.rows:
        if row.status != "ok":
            continue
        if row.step.operation in AGENT_OPERATIONS:
            # An agent's total spans several models: no price or burndown rate applies to it
            # (absent, never a guess). Its model steps are not priced yet either.
            assert row.attr(names.AWS_BEDROCK_USAGE_COST) is None
            assert row.attr(names.AWS_BEDROCK_USAGE_QUOTA_TOKENS) is None
            continue
        inp = row.attr(names.AWS_BEDROCK_USAGE_UNCACHED_INPUT_TOKENS)
        out = row.attr(names.GEN_AI_USAGE_OUTPUT_TOKENS)
        read = row.attr(names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS) or 0
        write = row.attr(names.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS) or 0
        prices = table.prices_for(row.model)
        cost = row.attr(names.AWS_BEDROCK_USAGE_COST)
        if prices is None:  # Llama is not in the example table: no cost, never a guess
            assert cost is None, row.model
        else:
            expected = (inp * prices["input"] + out * prices["output"]
                        + read * prices.get("cache_read", 0) + write * prices.get(
                            "cache_write", 0)) / 1e6
            assert cost == pytest.approx(expected), row.model
        burn = inp + write + out * quota.burndown_rate(row.model)
        assert row.attr(names.AWS_BEDROCK_USAGE_QUOTA_TOKENS) == burn
        total_burn += burn
    assert "cost USD" in text
    assert f"Quota burn: {total_burn:,.0f} tokens" in text
    assert "[ok] aws.bedrock.usage.cost sum" in text
