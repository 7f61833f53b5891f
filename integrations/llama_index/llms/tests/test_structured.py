"""structured_predict and as_structured_llm: decoded under the output class's JSON schema."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.bridge.pydantic import BaseModel, Field
from llama_index.core.constants import DEFAULT_NUM_OUTPUTS
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatStartEvent,
    LLMStructuredPredictEndEvent,
    LLMStructuredPredictStartEvent,
)
from llama_index.core.prompts import PromptTemplate
from llama_index.llms.bitnet import Bitnet


class Weather(BaseModel):
    """Today's weather in a city."""

    city: Literal["Paris", "Tokyo"]
    temp_c: int = Field(ge=-30, le=45)
    sunny: bool


PROMPT = PromptTemplate("Report the weather from this note: {note}")
NOTE = "Tokyo today: 21 degrees and sunny."


def test_structured_predict_returns_the_output_class(llm: Bitnet) -> None:
    weather = llm.structured_predict(Weather, PROMPT, note=NOTE)
    assert isinstance(weather, Weather)


def test_schema_constrains_decoding_and_the_prompt_is_untouched(
    llm: Bitnet, events: list[BaseEvent]
) -> None:
    llm.structured_predict(Weather, PROMPT, note=NOTE)
    [start] = [e for e in events if isinstance(e, LLMChatStartEvent)]
    schema = start.additional_kwargs["json_schema"]
    assert schema["properties"] == Weather.model_json_schema()["properties"]
    assert schema["additionalProperties"] is False
    assert [m.content for m in start.messages] == [PROMPT.format(note=NOTE)]
    kinds = [type(e) for e in events if "StructuredPredict" in type(e).__name__]
    assert kinds == [LLMStructuredPredictStartEvent, LLMStructuredPredictEndEvent]


def test_async_structured_predict_gives_the_sync_result(llm: Bitnet) -> None:
    expected = llm.structured_predict(Weather, PROMPT, note=NOTE)
    assert asyncio.run(llm.astructured_predict(Weather, PROMPT, note=NOTE)) == expected


def test_streamed_objects_end_with_the_complete_result(llm: Bitnet) -> None:
    expected = llm.structured_predict(Weather, PROMPT, note=NOTE)
    objects = list(llm.stream_structured_predict(Weather, PROMPT, note=NOTE))
    assert objects[-1] == expected
    assert len(objects) > 1

    async def run() -> list[object]:
        gen = await llm.astream_structured_predict(Weather, PROMPT, note=NOTE)
        return [o async for o in gen]

    assert asyncio.run(run())[-1] == expected


def test_as_structured_llm_replies_with_the_object(llm: Bitnet) -> None:
    sllm = llm.as_structured_llm(Weather)
    messages = [ChatMessage(role="user", content=PROMPT.format(note=NOTE))]
    response = sllm.chat(messages)
    assert isinstance(response.raw, Weather)
    assert Weather.model_validate_json(response.message.content or "") == response.raw
    assert asyncio.run(sllm.achat(messages)).raw == response.raw


def test_output_cut_by_the_token_limit_is_an_error(model_source: str | None) -> None:
    llm = Bitnet(model=model_source, max_new_tokens=3, temperature=0.0)
    with pytest.raises(ValueError, match="did not finish the Weather JSON within max_new_tokens"):
        llm.structured_predict(Weather, PROMPT, note=NOTE)
    with pytest.raises(ValueError, match="never closes a string"):
        asyncio.run(llm.astructured_predict(Weather, PROMPT, note=NOTE))
    with pytest.raises(ValueError, match="did not finish"):
        list(llm.stream_structured_predict(Weather, PROMPT, note=NOTE))


def test_default_max_new_tokens_is_that_of_llama_index_local_llms(model_source: str | None) -> None:
    # LlamaCPP and HuggingFaceLLM default to DEFAULT_NUM_OUTPUTS as well.
    llm = Bitnet(model=model_source)
    assert llm.max_new_tokens == DEFAULT_NUM_OUTPUTS == 256
    assert llm.metadata.num_output == DEFAULT_NUM_OUTPUTS


@pytest.mark.needs_trained_model
def test_structured_predict_extracts_the_facts(llm: Bitnet) -> None:
    assert llm.structured_predict(Weather, PROMPT, note=NOTE) == Weather(
        city="Tokyo", temp_c=21, sunny=True
    )
