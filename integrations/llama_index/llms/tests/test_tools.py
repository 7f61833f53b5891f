"""Tool calls through LlamaIndex's function-calling API and a FunctionAgent.

Calls are decoded under a grammar built from the tools' schemas, so even random weights make
valid calls when one is required; the arguments here are enums so that any valid call is short.
"""

# No `from __future__ import annotations`: FunctionTool reads the real annotations.

import asyncio
from typing import Literal

import pytest
from llama_index.core.agent.workflow import AgentOutput, FunctionAgent, ToolCallResult
from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock, ToolCallBlock
from llama_index.core.tools import FunctionTool
from llama_index.llms.bitnet import Bitnet
from llama_index.llms.bitnet.messages import to_bitnet_messages

CAPITALS = {"France": "Paris", "Japan": "Tokyo"}
calls: list[str] = []


def get_capital(country: Literal["France", "Japan"]) -> str:
    """The capital city of a country."""
    calls.append(country)
    return CAPITALS[country]


def get_currency(country: Literal["France", "Japan"]) -> str:
    """The currency of a country."""
    return {"France": "euro", "Japan": "yen"}[country]


capital_tool = FunctionTool.from_defaults(fn=get_capital)
currency_tool = FunctionTool.from_defaults(fn=get_currency)
QUESTION = "What is the capital of Japan?"


def test_required_tool_call_names_a_tool_with_valid_arguments(llm: Bitnet) -> None:
    response = llm.chat_with_tools([capital_tool, currency_tool], QUESTION, tool_required=True)
    [selection] = llm.get_tool_calls_from_response(response)
    assert selection.tool_name in ("get_capital", "get_currency")
    assert selection.tool_kwargs["country"] in CAPITALS
    assert selection.tool_id.startswith("call_")
    assert response.additional_kwargs["finish_reason"] == "tool_calls"


def test_tool_choice_by_name_calls_that_tool(llm: Bitnet) -> None:
    response = llm.chat_with_tools(
        [capital_tool, currency_tool], QUESTION, tool_choice="get_currency"
    )
    assert [s.tool_name for s in llm.get_tool_calls_from_response(response)] == ["get_currency"]


def test_predict_and_call_runs_the_python_tool(llm: Bitnet) -> None:
    calls.clear()
    output = llm.predict_and_call([capital_tool], QUESTION, tool_choice="required")
    assert calls and output.response == CAPITALS[calls[0]]
    assert output.sources[0].tool_name == "get_capital"


def test_tool_options_reach_the_model(llm: Bitnet) -> None:
    # Parallel calls are a JSON list of any length, which random weights never end; what is
    # pinned here is that LlamaIndex's flags become the model's options.
    prepared = llm._prepare_chat_with_tools(
        [capital_tool], QUESTION, allow_parallel_tool_calls=True, tool_required=True
    )
    assert prepared["parallel_tool_calls"] is True
    assert prepared["tool_choice"] == "required"
    assert prepared["tools"][0]["function"]["parameters"]["additionalProperties"] is False
    named = llm._prepare_chat_with_tools([capital_tool], QUESTION, tool_choice="get_capital")
    assert named["tool_choice"] == {"name": "get_capital"}
    assert named["parallel_tool_calls"] is False


def test_async_and_streamed_calls_match_the_sync_call(llm: Bitnet) -> None:
    tools = [capital_tool]
    sync = llm.get_tool_calls_from_response(
        llm.chat_with_tools(tools, QUESTION, tool_required=True)
    )
    streamed = list(llm.stream_chat_with_tools(tools, QUESTION, tool_required=True))
    # Calls are handed out once complete, with the last response.
    assert all(not llm.get_tool_calls_from_response(r, False) for r in streamed[:-1])

    async def run() -> tuple[list, list]:
        achat = await llm.achat_with_tools(tools, QUESTION, tool_required=True)
        gen = await llm.astream_chat_with_tools(tools, QUESTION, tool_required=True)
        last = [r async for r in gen][-1]
        return (
            llm.get_tool_calls_from_response(achat),
            llm.get_tool_calls_from_response(last),
        )

    asynced, astreamed = asyncio.run(run())
    expected = [(s.tool_name, s.tool_kwargs) for s in sync]
    for got in (llm.get_tool_calls_from_response(streamed[-1]), asynced, astreamed):
        assert [(s.tool_name, s.tool_kwargs) for s in got] == expected


def test_text_reply_has_no_tool_calls(llm: Bitnet) -> None:
    response = llm.chat([ChatMessage(role="user", content="Hello")])
    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="tool call"):
        llm.get_tool_calls_from_response(response)


def test_chat_history_is_not_modified(llm: Bitnet) -> None:
    history = [ChatMessage(role="user", content="Hi")]
    llm.chat_with_tools([capital_tool], QUESTION, chat_history=history, tool_required=True)
    assert len(history) == 1


def test_tool_calls_and_results_reach_the_model_as_messages() -> None:
    history = [
        ChatMessage(role="user", content=QUESTION),
        ChatMessage(
            role=MessageRole.ASSISTANT,
            blocks=[
                TextBlock(text=""),
                ToolCallBlock(
                    tool_call_id="call_1", tool_name="get_capital", tool_kwargs={"country": "Japan"}
                ),
            ],
        ),
        ChatMessage(role="tool", content="Tokyo", additional_kwargs={"tool_call_id": "call_1"}),
    ]
    assert to_bitnet_messages(history) == [
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_capital", "arguments": {"country": "Japan"}},
                }
            ],
        },
        {"role": "tool", "content": "Tokyo", "tool_call_id": "call_1"},
    ]


def run_agent(agent: FunctionAgent, question: str) -> tuple[list[ToolCallResult], AgentOutput]:
    async def run() -> tuple[list[ToolCallResult], AgentOutput]:
        handler = agent.run(user_msg=question)
        results = [ev async for ev in handler.stream_events() if isinstance(ev, ToolCallResult)]
        return results, await handler

    return asyncio.run(run())


def test_function_agent_calls_the_python_tool(llm: Bitnet) -> None:
    calls.clear()
    tool = FunctionTool.from_defaults(fn=get_capital, return_direct=True)
    # The first step must call the tool; return_direct ends the run with the tool's output.
    # One call per step: a parallel call is a JSON list that random weights never close.
    agent = FunctionAgent(
        tools=[tool], llm=llm, initial_tool_choice="get_capital", allow_parallel_tool_calls=False
    )
    results, output = run_agent(agent, QUESTION)
    assert [r.tool_name for r in results] == ["get_capital"]
    assert calls == [results[0].tool_kwargs["country"]]
    assert output.response.content == CAPITALS[calls[0]]


def lookup_order(order_id: str) -> str:
    """Look up the delivery status of an order by its id."""
    return f"Order {order_id} was delivered to locker 4417 on Tuesday."


@pytest.mark.needs_trained_model
def test_function_agent_answers_with_the_tool_result(model_source: str | None) -> None:
    llm = Bitnet(model=model_source, max_new_tokens=96, temperature=0.0)
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=lookup_order)], llm=llm)
    results, output = run_agent(agent, "Where was order A-17 delivered?")
    assert [r.tool_name for r in results][:1] == ["lookup_order"]
    assert "4417" in (output.response.content or "")
