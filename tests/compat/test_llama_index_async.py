"""llama-index-llms-bedrock-converse's async methods (``achat``, ``astream_chat``,
``achat_with_tools``), which go through aioboto3 / aiobotocore. Run in their own environment
(``tests/compat/requirements-async.txt``: aioboto3 pins an older botocore than the other
frameworks need); ``.ci/compat`` runs this file there and the others in the main one."""

from __future__ import annotations

import asyncio

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


def test_async_chat_and_stream(flow: Flow) -> None:
    async def run() -> list[str]:
        llm = _llm()
        reply = await llm.achat([ChatMessage(role="user", content="Say hello.")])
        assert reply.message.content
        stream = await llm.astream_chat([ChatMessage(role="user", content="Hi.")])
        return [r.delta async for r in stream]

    assert len(asyncio.run(run())) > 20
    flow.check()


def test_async_tools(flow: Flow) -> None:
    async def run() -> list[str]:
        llm = _llm()
        weather = FunctionTool.from_defaults(fn=get_weather)
        response = await llm.achat_with_tools([weather], user_msg="Use get_weather for Rome.")
        calls = llm.get_tool_calls_from_response(response, error_on_no_tool_call=True)
        return [c.tool_name for c in calls]

    assert asyncio.run(run()) == ["get_weather"]
    flow.check()
