"""Token counting with the model's own tokenizer: offline, without transformers.

The counts of messages are checked against what the model itself reports for the same
prompt (``usage_metadata["input_tokens"]``), tools included.
"""

from __future__ import annotations

import os
import sys

import pytest
from langchain_bitnet import BitnetLLM, ChatBitnet
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    trim_messages,
)
from langchain_core.tools import tool


@pytest.fixture(autouse=True)
def _no_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    """LangChain's fallback counter needs transformers' GPT-2 tokenizer: make it unavailable."""
    monkeypatch.setitem(sys.modules, "transformers", None)


@pytest.fixture
def llm() -> ChatBitnet:
    return ChatBitnet(model=os.environ["LANGCHAIN_BITNET_TINY"], temperature=0, max_tokens=2)


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return "21 C, sunny"


CONVERSATION: list[BaseMessage] = [
    SystemMessage("You are terse."),
    HumanMessage("What is the capital of France?"),
    AIMessage("Paris."),
    HumanMessage("And of Italy?"),
]


def test_text_counts_are_the_models_tokens(llm: ChatBitnet) -> None:
    text = "Riga is on the Baltic."
    ids = llm.loaded_model.tokenize(text, add_special=False)
    assert llm.get_token_ids(text) == ids
    assert llm.get_num_tokens(text) == len(ids) > 0
    completion = BitnetLLM(model=llm.model)
    assert completion.get_token_ids(text) == ids
    assert completion.get_num_tokens(text) == len(ids)
    # A completion model reads messages as LangChain's "Human: ..." text, counted likewise.
    assert completion.get_num_tokens_from_messages(CONVERSATION) > 0


def test_message_counts_equal_the_prompt_the_model_reads(llm: ChatBitnet) -> None:
    count = llm.get_num_tokens_from_messages(CONVERSATION)
    assert count == llm.invoke(CONVERSATION).usage_metadata["input_tokens"]  # type: ignore[index]


def test_tools_count_with_their_description(llm: ChatBitnet) -> None:
    with_tools = llm.get_num_tokens_from_messages(CONVERSATION, tools=[get_weather])
    assert with_tools > llm.get_num_tokens_from_messages(CONVERSATION)
    reply = llm.bind_tools([get_weather]).invoke(CONVERSATION)
    assert with_tools == reply.usage_metadata["input_tokens"]  # type: ignore[index]


def test_tool_calls_and_results_count(llm: ChatBitnet) -> None:
    call = {"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_1"}
    messages = [
        HumanMessage("Weather in Oslo?"),
        AIMessage("", tool_calls=[call]),
        ToolMessage("21 C, sunny", tool_call_id="call_1"),
    ]
    count = llm.get_num_tokens_from_messages(messages, tools=[get_weather])
    reply = llm.bind_tools([get_weather]).invoke(messages)
    assert count == reply.usage_metadata["input_tokens"]  # type: ignore[index]


def test_no_messages_count_nothing(llm: ChatBitnet) -> None:
    assert llm.get_num_tokens_from_messages([]) == 0


def test_trim_messages_counts_with_the_model(llm: ChatBitnet) -> None:
    budget = llm.get_num_tokens_from_messages(CONVERSATION) - 1  # one message has to go
    kept = trim_messages(
        CONVERSATION, max_tokens=budget, token_counter=llm, strategy="last", include_system=True
    )
    assert kept[0] == CONVERSATION[0] and kept[-1] == CONVERSATION[-1]
    assert len(kept) < len(CONVERSATION)
    assert llm.get_num_tokens_from_messages(kept) <= budget
    assert trim_messages(CONVERSATION, max_tokens=10**6, token_counter=llm) == CONVERSATION


def test_a_custom_counter_still_wins() -> None:
    def by_character(text: str) -> list[int]:
        return [ord(c) for c in text]

    llm = ChatBitnet(model=os.environ["LANGCHAIN_BITNET_TINY"], custom_get_token_ids=by_character)
    assert llm.get_num_tokens("abc") == 3
