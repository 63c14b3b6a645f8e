"""langchain-aws against the emulator: ChatBedrockConverse (Converse, ConverseStream) and
ChatBedrock (InvokeModel, InvokeModelWithResponseStream, Anthropic Messages), each through
invoke, stream, tools, structured output and prompt caching."""

from __future__ import annotations

from typing import Any

from langchain_aws import ChatBedrock, ChatBedrockConverse
from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from .conftest import Flow

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
NOVA = "amazon.nova-lite-v1:0"
LONG_SYSTEM = "You are a meticulous assistant who answers questions about the weather. " * 40


@tool
def get_weather(city: str) -> str:
    """Return the current weather in a city."""
    return f"It is sunny in {city}."


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str = Field(description="the person's name")
    age: int = Field(description="age in years", ge=0)
    tags: list[str]


def _converse(model: str = CLAUDE) -> ChatBedrockConverse:
    return ChatBedrockConverse(model=model, region_name="us-east-1", max_tokens=300)


def _invoke() -> ChatBedrock:
    return ChatBedrock(model_id=CLAUDE, region_name="us-east-1", model_kwargs={"max_tokens": 300})


def test_converse_invoke(flow: Flow) -> None:
    reply = _converse().invoke("Say hello.")
    assert isinstance(reply.content, str) and reply.content
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["output_tokens"] == flow.requests[-1].output_tokens
    flow.check()


def test_converse_stream(flow: Flow) -> None:
    chunks = list(_converse(NOVA).stream("Say hello."))
    assert len(chunks) > 20
    text = "".join(c.text for c in chunks)
    assert text.startswith("This is a deterministic reply")
    flow.check()


def _tool_then_answer(llm: Any, prompt: str) -> None:
    """One tool call, its result sent back, then a text answer."""
    bound = llm.bind_tools([get_weather])
    messages = [HumanMessage(prompt)]
    first = bound.invoke(messages)
    assert [c["name"] for c in first.tool_calls] == ["get_weather"]
    call = first.tool_calls[0]
    messages += [first, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    final = bound.invoke(messages)
    assert not final.tool_calls and final.content


def test_converse_tools_to_answer(flow: Flow) -> None:
    _tool_then_answer(_converse(), "Use get_weather to tell me the weather in Paris.")
    flow.check()


def _streamed_tool_call(llm: Any, prompt: str) -> None:
    """The tool call assembled from the stream's chunks, with schema-typed arguments."""
    gathered = None
    for chunk in llm.bind_tools([get_weather]).stream(prompt):
        gathered = chunk if gathered is None else gathered + chunk
    assert gathered is not None
    assert [c["name"] for c in gathered.tool_calls] == ["get_weather"]
    assert isinstance(gathered.tool_calls[0]["args"]["city"], str)


def test_converse_tools_stream(flow: Flow) -> None:
    _streamed_tool_call(_converse(), "Call get_weather for Rome.")
    flow.check()


def test_converse_structured_output(flow: Flow) -> None:
    person = _converse().with_structured_output(Person).invoke("Alice is 30.")
    assert isinstance(person, Person) and person.age >= 0
    flow.check()


def test_converse_prompt_caching(flow: Flow) -> None:
    llm = _converse()
    system = SystemMessage(content=[{"text": LONG_SYSTEM}, {"cachePoint": {"type": "default"}}])
    first = llm.invoke([system, HumanMessage("What is the weather like?")])
    second = llm.invoke([system, HumanMessage("And tomorrow?")])
    written, read = flow.requests[0].cache_write_tokens, flow.requests[1].cache_read_tokens
    assert written and read == written
    details = (second.usage_metadata or {}).get("input_token_details", {})
    assert details.get("cache_read") == read
    assert first.content and second.content
    flow.check()


def test_chatbedrock_invoke(flow: Flow) -> None:
    reply = _invoke().invoke("Say hello.")
    assert reply.content
    flow.check()


def test_chatbedrock_stream(flow: Flow) -> None:
    chunks = list(_invoke().stream("Say hello."))
    assert len(chunks) > 20
    flow.check()


def test_chatbedrock_tools(flow: Flow) -> None:
    _tool_then_answer(_invoke(), "Use get_weather for Oslo.")
    flow.check()


def test_chatbedrock_tools_stream(flow: Flow) -> None:
    _streamed_tool_call(_invoke(), "Use get_weather for Lima.")
    flow.check()


def test_chatbedrock_structured_output(flow: Flow) -> None:
    person = _invoke().with_structured_output(Person).invoke("Bob is 41.")
    assert isinstance(person, Person)
    flow.check()


def test_chatbedrock_prompt_caching(flow: Flow) -> None:
    llm = _invoke()
    system = SystemMessage(
        content=[{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    )
    llm.invoke([system, HumanMessage("What is the weather like?")])
    llm.invoke([system, HumanMessage("And tomorrow?")])
    first, second = flow.requests
    assert first.cache_write_tokens and second.cache_read_tokens == first.cache_write_tokens
    flow.check()
