"""Concurrent acomplete / achat calls share the model's forward steps."""

from __future__ import annotations

import asyncio

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.llms.bitnet import Bitnet

PROMPTS = [f"Name {n} fruits." for n in range(2, 8)]


def test_concurrent_acomplete_shares_steps_and_equals_one_call_at_a_time(llm: Bitnet) -> None:
    expected = [llm.complete(p).text for p in PROMPTS]
    before = llm.loaded_model.stats()

    async def main() -> list[str]:
        responses = await asyncio.gather(*(llm.acomplete(p) for p in PROMPTS))
        return [r.text for r in responses]

    assert asyncio.run(main()) == expected
    after = llm.loaded_model.stats()
    assert after["batched_steps"] > before["batched_steps"]
    assert after["max_sequences_per_step"] > 1


def test_concurrent_achat_shares_steps(llm: Bitnet) -> None:
    conversations = [[ChatMessage(role=MessageRole.USER, content=p)] for p in PROMPTS]
    expected = [llm.chat(c).message.content for c in conversations]
    before = llm.loaded_model.stats()

    async def main() -> list[str | None]:
        responses = await asyncio.gather(*(llm.achat(c) for c in conversations))
        return [r.message.content for r in responses]

    assert asyncio.run(main()) == expected
    assert llm.loaded_model.stats()["batched_steps"] > before["batched_steps"]
