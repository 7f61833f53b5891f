"""ChatBitnet's logprobs: response_metadata["logprobs"] in OpenAI's shape, as ChatOpenAI."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from langchain_bitnet import ChatBitnet
from langchain_core.messages import AIMessageChunk

from bitnet_backend.logprobs import openai_chat_logprobs

MESSAGES = [{"role": "user", "content": "Hello"}]
SAMPLED: dict[str, Any] = {"temperature": 0.9, "seed": 4, "max_tokens": 10}


@pytest.fixture
def tiny() -> str:
    return os.environ["LANGCHAIN_BITNET_TINY"]


def test_logprobs_field_fills_the_response_metadata(tiny: str) -> None:
    llm = ChatBitnet(model=tiny, logprobs=True, top_logprobs=2, **SAMPLED)
    want = llm.loaded_model.chat(MESSAGES, logprobs=2, **SAMPLED)
    assert want.logprobs is not None
    reply = llm.invoke("Hello")
    assert reply.response_metadata["logprobs"] == openai_chat_logprobs(want.logprobs)
    content = reply.response_metadata["logprobs"]["content"]
    assert len(content) == len(want.token_ids)
    assert all(len(entry["top_logprobs"]) == 2 for entry in content)


def test_a_call_keyword_asks_for_logprobs(tiny: str) -> None:
    llm = ChatBitnet(model=tiny, **SAMPLED)
    assert "logprobs" not in llm.invoke("Hello").response_metadata
    reply = llm.bind(logprobs=True).invoke("Hello")
    content = reply.response_metadata["logprobs"]["content"]
    assert content and all(entry["top_logprobs"] == [] for entry in content)


def test_streamed_chunks_add_up_to_the_invoked_logprobs(tiny: str) -> None:
    llm = ChatBitnet(model=tiny, logprobs=True, top_logprobs=1, **SAMPLED)
    whole = llm.invoke("Hello").response_metadata["logprobs"]["content"]
    total: AIMessageChunk | None = None
    for chunk in llm.stream("Hello"):
        total = chunk if total is None else total + chunk
    assert total is not None and total.response_metadata["logprobs"]["content"] == whole

    async def astreamed() -> list[Any]:
        entries: list[Any] = []
        async for chunk in llm.astream("Hello"):
            entries += chunk.response_metadata.get("logprobs", {}).get("content", [])
        return entries

    assert asyncio.run(astreamed()) == whole
