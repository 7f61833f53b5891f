"""Callback and instrumentation events: emitted as LlamaIndex's own LLMs emit them."""

from __future__ import annotations

import asyncio

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionStartEvent,
)
from llama_index.llms.bitnet import Bitnet

MESSAGES = [ChatMessage(role="user", content="Describe the market.")]


def kinds(events: list[BaseEvent]) -> list[type]:
    return [type(e) for e in events if "LLM" in type(e).__name__]


def test_chat_emits_start_and_end_events(llm: Bitnet, events: list[BaseEvent]) -> None:
    response = llm.chat(MESSAGES)
    assert kinds(events) == [LLMChatStartEvent, LLMChatEndEvent]
    [start] = [e for e in events if isinstance(e, LLMChatStartEvent)]
    [end] = [e for e in events if isinstance(e, LLMChatEndEvent)]
    assert start.messages == MESSAGES
    assert end.response is not None and end.response.message.content == response.message.content


def test_stream_chat_emits_progress_then_end(llm: Bitnet, events: list[BaseEvent]) -> None:
    n = len(list(llm.stream_chat(MESSAGES)))
    seen = kinds(events)
    assert seen[0] is LLMChatStartEvent and seen[-1] is LLMChatEndEvent
    assert seen.count(LLMChatInProgressEvent) == n


def test_complete_emits_completion_events_only(llm: Bitnet, events: list[BaseEvent]) -> None:
    asyncio.run(llm.acomplete("Describe the market."))
    llm.complete("Describe the market.")
    assert kinds(events) == [LLMCompletionStartEvent, LLMCompletionEndEvent] * 2


def test_token_counting_handler_sees_the_models_usage(model_source: str | None) -> None:
    # The model's tokenizer, not tiktoken's, for anything the handler has to count itself.
    counter = TokenCountingHandler(tokenizer=Bitnet(model=model_source).tokenizer)
    llm = Bitnet(
        model=model_source,
        max_new_tokens=8,
        temperature=0.0,
        callback_manager=CallbackManager([counter]),
    )
    response = llm.chat(MESSAGES)
    usage = response.raw["usage"]
    assert counter.prompt_llm_token_count == usage["prompt_tokens"]
    assert counter.completion_llm_token_count == usage["completion_tokens"]
    assert len(counter.llm_token_counts) == 1
