"""ChatBitnet.batch / abatch: the calls share the model's forward steps."""

from __future__ import annotations

import asyncio
import os

from langchain_bitnet import ChatBitnet
from langchain_core.language_models import LanguageModelInput

PROMPTS: list[LanguageModelInput] = [f"Tell me about the number {i}." for i in range(6)]


def chat() -> ChatBitnet:
    return ChatBitnet(model=os.environ["LANGCHAIN_BITNET_TINY"], temperature=0, max_tokens=24)


def test_batch_shares_steps_and_equals_one_call_at_a_time() -> None:
    llm = chat()
    expected = [llm.invoke(p).content for p in PROMPTS]
    before = llm.loaded_model.stats()
    results = llm.batch(PROMPTS)
    after = llm.loaded_model.stats()
    assert [r.content for r in results] == expected
    assert after["batched_steps"] > before["batched_steps"]
    assert after["max_sequences_per_step"] > 1


def test_abatch_shares_steps_and_equals_one_call_at_a_time() -> None:
    llm = chat()
    expected = [llm.invoke(p).content for p in PROMPTS]
    before = llm.loaded_model.stats()
    results = asyncio.run(llm.abatch(PROMPTS))
    after = llm.loaded_model.stats()
    assert [r.content for r in results] == expected
    assert after["batched_steps"] > before["batched_steps"]
