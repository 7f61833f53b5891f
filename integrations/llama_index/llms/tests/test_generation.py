"""complete / chat / streams / async forms: the model's chat template, prompts, concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.llms.llm import LLM
from llama_index.llms.bitnet import Bitnet

MESSAGES = [
    ChatMessage(role=MessageRole.SYSTEM, content="You answer in one short sentence."),
    ChatMessage(role=MessageRole.USER, content="Where do the children play?"),
]
AS_DICTS = [
    {"role": "system", "content": "You answer in one short sentence."},
    {"role": "user", "content": "Where do the children play?"},
]


def greedy(llm: Bitnet) -> dict[str, object]:
    return {"max_tokens": llm.max_new_tokens, "temperature": 0.0}


def test_chat_goes_through_the_models_chat_template(llm: Bitnet) -> None:
    expected = llm.loaded_model.chat(AS_DICTS, **greedy(llm))
    response = llm.chat(MESSAGES)
    assert response.message.role == MessageRole.ASSISTANT
    assert response.message.content == expected.content
    # The same counts; how many prompt tokens the prefix cache held differs between the calls.
    counts = ("prompt_tokens", "completion_tokens", "total_tokens")
    assert [response.raw["usage"][k] for k in counts] == [expected.usage[k] for k in counts]
    assert response.additional_kwargs["completion_tokens"] == expected.usage["completion_tokens"]


def test_complete_sends_the_prompt_as_a_user_message(llm: Bitnet) -> None:
    expected = llm.loaded_model.chat([{"role": "user", "content": "Name a fruit."}], **greedy(llm))
    assert llm.complete("Name a fruit.").text == expected.content


def test_formatted_prompt_is_generated_from_as_is(llm: Bitnet) -> None:
    prompt = "User: Name a fruit.\nAssistant:"
    expected = llm.loaded_model.generate(prompt, **greedy(llm))
    assert llm.complete(prompt, formatted=True).text == expected.text


def test_custom_messages_to_prompt_replaces_the_chat_template(model_source: str | None) -> None:
    seen: list[Sequence[ChatMessage]] = []

    def to_prompt(messages: Sequence[ChatMessage]) -> str:
        seen.append(messages)
        return "\n".join(f"<{m.role.value}> {m.content}" for m in messages) + "\n<assistant>"

    llm = Bitnet(
        model=model_source, max_new_tokens=16, temperature=0.0, messages_to_prompt=to_prompt
    )
    expected = llm.loaded_model.generate(to_prompt(MESSAGES), max_tokens=16, temperature=0.0)
    assert llm.chat(MESSAGES).message.content == expected.text
    assert "".join(r.delta or "" for r in llm.stream_chat(MESSAGES)) == expected.text
    assert asyncio.run(llm.achat(MESSAGES)).message.content == expected.text
    assert len(seen) == 4


def test_custom_completion_to_prompt_is_applied(model_source: str | None) -> None:
    llm = Bitnet(
        model=model_source,
        max_new_tokens=16,
        temperature=0.0,
        completion_to_prompt=lambda p: f"Question: {p}\nAnswer:",
    )
    expected = llm.loaded_model.generate("Question: Why?\nAnswer:", max_tokens=16, temperature=0)
    assert llm.complete("Why?").text == expected.text
    assert asyncio.run(llm.acomplete("Why?")).text == expected.text


def test_custom_messages_to_prompt_refuses_tools(model_source: str | None) -> None:
    llm = Bitnet(model=model_source, messages_to_prompt=lambda ms: "x")
    tool = {"name": "noop", "description": "Does nothing.", "parameters": {"type": "object"}}
    with pytest.raises(ValueError, match="chat template"):
        llm.chat(MESSAGES, tools=[tool])


def test_stream_chat_deltas_add_up_to_the_chat_reply(llm: Bitnet) -> None:
    whole = llm.chat(MESSAGES).message.content
    responses = list(llm.stream_chat(MESSAGES))
    assert "".join(r.delta or "" for r in responses) == whole
    assert responses[-1].message.content == whole
    assert responses[-1].additional_kwargs["finish_reason"] in ("stop", "length")


def test_stream_complete_deltas_add_up_to_the_completion(llm: Bitnet) -> None:
    whole = llm.complete("Tell me about rivers.").text
    responses = list(llm.stream_complete("Tell me about rivers."))
    assert "".join(r.delta or "" for r in responses) == whole
    assert responses[-1].text == whole


def test_async_forms_give_the_sync_results(llm: Bitnet) -> None:
    async def run() -> tuple[str | None, str, str, str]:
        chat = await llm.achat(MESSAGES)
        complete = await llm.acomplete("Tell me about rivers.")
        chat_deltas = "".join([r.delta or "" async for r in await llm.astream_chat(MESSAGES)])
        gen = await llm.astream_complete("Tell me about rivers.")
        complete_deltas = "".join([r.delta or "" async for r in gen])
        return chat.message.content, complete.text, chat_deltas, complete_deltas

    chat, complete, chat_deltas, complete_deltas = asyncio.run(run())
    assert chat == chat_deltas == llm.chat(MESSAGES).message.content
    assert complete == complete_deltas == llm.complete("Tell me about rivers.").text


def test_achat_leaves_the_event_loop_free(model_source: str | None) -> None:
    llm = Bitnet(model=model_source, max_new_tokens=64, temperature=0.0)

    async def run() -> int:
        done = asyncio.Event()
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0)

        async def chat() -> None:
            await llm.achat(MESSAGES)
            done.set()

        await asyncio.gather(chat(), ticker())
        return ticks

    # Native work on the loop would block the ticker until the reply is complete.
    assert asyncio.run(run()) > 1


PROMPTS = ["Name a colour.", "Name a river.", "Name a fish.", "Name a book."]


def test_concurrent_threads_give_the_sequential_results(llm: Bitnet) -> None:
    sequential = [llm.complete(p).text for p in PROMPTS]
    with ThreadPoolExecutor(max_workers=len(PROMPTS)) as pool:
        threaded = list(pool.map(lambda p: llm.complete(p).text, PROMPTS * 2))
    assert threaded == sequential * 2


def test_asyncio_gather_gives_the_sequential_results(llm: Bitnet) -> None:
    sequential = [llm.complete(p).text for p in PROMPTS]

    async def run() -> list[str]:
        responses = await asyncio.gather(*(llm.acomplete(p) for p in PROMPTS * 2))
        return [r.text for r in responses]

    assert asyncio.run(run()) == sequential * 2


def test_call_options_override_the_fields(llm: Bitnet) -> None:
    response = llm.chat(MESSAGES, max_tokens=3)
    assert response.raw["usage"]["completion_tokens"] <= 3
    with pytest.raises(TypeError, match="bogus"):
        llm.chat(MESSAGES, bogus=1)


def test_predict_uses_settings_llm(settings_llm: Bitnet) -> None:
    from llama_index.core import Settings
    from llama_index.core.prompts import PromptTemplate

    assert isinstance(Settings.llm, LLM)
    prompt = PromptTemplate("Say something about {topic}.")
    expected = settings_llm.chat([ChatMessage(role="user", content="Say something about owls.")])
    assert Settings.llm.predict(prompt, topic="owls") == expected.message.content
