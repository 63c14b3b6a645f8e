"""llama-index-llms-bedrock-converse against the emulator (sync: chat, stream, tools).

The async methods (``achat``, ``astream_chat``...) go through aiobotocore, which this package
does not instrument yet, so they have no rows here."""

from __future__ import annotations

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.tools import FunctionTool
from llama_index.llms.bedrock_converse import BedrockConverse

from .conftest import Flow

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"


def get_weather(city: str) -> str:
    """Return the current weather in a city."""
    return f"It is sunny in {city}."


def _llm() -> BedrockConverse:
    return BedrockConverse(model=CLAUDE, region_name="us-east-1", max_tokens=300)


def test_complete_and_chat(flow: Flow) -> None:
    llm = _llm()
    assert llm.complete("Say hello.").text
    reply = llm.chat([ChatMessage(role="user", content="Say hello.")])
    assert reply.message.content
    flow.check()


def test_stream_chat(flow: Flow) -> None:
    deltas = [r.delta for r in _llm().stream_chat([ChatMessage(role="user", content="Hi.")])]
    assert len(deltas) > 20
    flow.check()


def test_tools(flow: Flow) -> None:
    llm = _llm()
    weather = FunctionTool.from_defaults(fn=get_weather)
    response = llm.chat_with_tools([weather], user_msg="Use get_weather for Berlin.")
    calls = llm.get_tool_calls_from_response(response, error_on_no_tool_call=True)
    assert [c.tool_name for c in calls] == ["get_weather"]
    output = llm.predict_and_call([weather], user_msg="Use get_weather for Bern.")
    assert "sunny" in output.response
    flow.check()
