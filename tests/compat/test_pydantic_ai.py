"""pydantic-ai against the emulator: tools, ``output_type``, streaming and
``count_tokens_before_request`` (CountTokens before every request)."""

from __future__ import annotations

import inspect

from pydantic import BaseModel, Field
from pydantic_ai import Agent
from pydantic_ai.models.bedrock import BedrockConverseModel
from pydantic_ai.providers.bedrock import BedrockProvider
from pydantic_ai.usage import UsageLimits

from .conftest import Flow

CLAUDE = "us.anthropic.claude-3-5-haiku-20241022-v1:0"


class City(BaseModel):
    name: str
    population: int = Field(ge=0)
    landmarks: list[str]


def _model() -> BedrockConverseModel:
    return BedrockConverseModel(CLAUDE, provider=BedrockProvider(region_name="us-east-1"))


def _agent(**kwargs: object) -> Agent[None, object]:
    agent: Agent[None, object] = Agent(_model(), **kwargs)  # type: ignore[call-overload]

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Return the current weather in a city."""
        return f"It is sunny in {city}."

    return agent


def test_tools(flow: Flow) -> None:
    result = _agent().run_sync("Use get_weather for Madrid.")
    assert isinstance(result.output, str) and result.output
    tool_returns = [
        part
        for message in result.all_messages()
        for part in getattr(message, "parts", [])
        if part.part_kind == "tool-return"
    ]
    assert [p.tool_name for p in tool_returns] == ["get_weather"]
    usage = result.usage  # a method before pydantic-ai 2, a property since
    usage = usage() if inspect.ismethod(usage) else usage
    assert usage.output_tokens == sum(r.output_tokens for r in flow.requests)
    flow.check()


def test_output_type(flow: Flow) -> None:
    result = _agent(output_type=City).run_sync("Use get_weather for Lisbon, then describe it.")
    assert isinstance(result.output, City)
    assert [r.operation for r in flow.requests] == ["Converse", "Converse"]
    flow.check()


def test_streaming(flow: Flow) -> None:
    with _agent().run_stream_sync("Tell me something.") as result:
        pieces = list(result.stream_text(delta=True, debounce_by=None))
    assert len(pieces) > 1
    assert "".join(pieces).startswith("This is a deterministic reply")
    assert {r.operation for r in flow.requests} == {"ConverseStream"}
    flow.check()


def test_count_tokens_before_request(flow: Flow) -> None:
    limits = UsageLimits(count_tokens_before_request=True, input_tokens_limit=100_000)
    result = _agent().run_sync("Use get_weather for Quito.", usage_limits=limits)
    assert result.output
    operations = [r.operation for r in flow.requests]
    assert operations == ["CountTokens", "Converse", "CountTokens", "Converse"]
    # CountTokens answered exactly what the Converse after it then reported as input
    for count, call in zip(flow.requests[::2], flow.requests[1::2]):
        assert count.input_tokens == call.input_tokens
    flow.check()
