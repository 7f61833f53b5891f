"""A query engine answering through ``Settings.llm = Bitnet(...)``, offline.

A SummaryIndex needs no embeddings, so this package's tests cover the LLM side of RAG on
their own (the embeddings package runs a VectorStoreIndex with both).
"""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core import Document, SummaryIndex
from llama_index.core.base.response.schema import StreamingResponse
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMChatStartEvent
from llama_index.llms.bitnet import Bitnet

DOCUMENTS = [
    Document(text="The old mill by the river was built in 1821 by the miller Tobias Brand."),
    Document(text="The village market opens at six in the morning and sells bread and fish."),
]
QUESTION = "Who built the old mill?"


def answered(events: list[BaseEvent]) -> tuple[str, str]:
    """The prompt text the model was sent and the reply it gave, from the LLM events."""
    [start] = [e for e in events if isinstance(e, LLMChatStartEvent)]
    [end] = [e for e in events if isinstance(e, LLMChatEndEvent)]
    assert end.response is not None
    prompt = "\n".join(m.content or "" for m in start.messages)
    return prompt, end.response.message.content or ""


def test_query_engine_answers_from_the_documents_through_bitnet(
    settings_llm: Bitnet, events: list[BaseEvent]
) -> None:
    engine = SummaryIndex.from_documents(DOCUMENTS).as_query_engine()
    response = engine.query(QUESTION)
    prompt, reply = answered(events)
    assert QUESTION in prompt
    assert all(d.text in prompt for d in DOCUMENTS)
    assert str(response) == (reply or "Empty Response")
    assert len(response.source_nodes) == len(DOCUMENTS)


def test_streaming_query_yields_the_reply(settings_llm: Bitnet, events: list[BaseEvent]) -> None:
    engine = SummaryIndex.from_documents(DOCUMENTS).as_query_engine(streaming=True)
    response = engine.query(QUESTION)
    assert isinstance(response, StreamingResponse)
    streamed = "".join(response.response_gen)
    assert streamed == answered(events)[1]


def test_async_query_gives_the_sync_answer(settings_llm: Bitnet) -> None:
    engine = SummaryIndex.from_documents(DOCUMENTS).as_query_engine()
    assert str(asyncio.run(engine.aquery(QUESTION))) == str(engine.query(QUESTION))


@pytest.mark.needs_trained_model
@pytest.mark.xfail(
    strict=True,
    reason="the embedded model does not yet copy values from its prompt (see its model card)",
)
def test_query_engine_answer_contains_the_fact(settings_llm: Bitnet) -> None:
    engine = SummaryIndex.from_documents(DOCUMENTS).as_query_engine()
    assert "Tobias Brand" in str(engine.query(QUESTION))
