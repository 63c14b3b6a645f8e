"""strands-agents against the emulator: an agent with two tools running to its final answer
(ConverseStream and Converse), and structured output."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field
from strands import Agent, tool
from strands.models import BedrockModel

from .conftest import Flow

CLAUDE = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
CALLED: list[str] = []


@tool
def get_weather(city: str) -> str:
    """Return the current weather in a city.

    Args:
        city: the city's name
    """
    CALLED.append("get_weather")
    return f"It is sunny in {city}."


@tool
def get_time(city: str, utc_offset: int) -> str:
    """Return the local time in a city.

    Args:
        city: the city's name
        utc_offset: the city's offset from UTC, in hours
    """
    CALLED.append("get_time")
    return f"It is noon in {city} (UTC{utc_offset:+d})."


class Forecast(BaseModel):
    """A weather forecast."""

    city: str
    temperature_c: float = Field(ge=-90, le=60)
    conditions: list[str]


def _agent(streaming: bool) -> Agent:
    model = BedrockModel(model_id=CLAUDE, region_name="us-east-1", streaming=streaming)
    return Agent(model=model, tools=[get_weather, get_time], callback_handler=None)


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "converse"])
def test_agent_two_tools_to_final_answer(streaming: bool, flow: Flow) -> None:
    CALLED.clear()
    result = _agent(streaming)("Use get_weather and then get_time for Paris, then summarise.")
    assert CALLED == ["get_weather", "get_time"]
    assert result.stop_reason == "end_turn"
    assert str(result).strip()
    operations = {r.operation for r in flow.requests}
    assert operations == {"ConverseStream" if streaming else "Converse"}
    assert len(flow.requests) == 3  # weather, time, answer
    flow.check()


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "converse"])
def test_agent_structured_output(streaming: bool, flow: Flow) -> None:
    result = _agent(streaming)("What is the forecast for Oslo?", structured_output_model=Forecast)
    forecast = result.structured_output
    assert isinstance(forecast, Forecast)
    assert -90 <= forecast.temperature_c <= 60
    flow.check()
