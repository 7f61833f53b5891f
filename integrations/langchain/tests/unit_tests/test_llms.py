"""BitnetLLM on a random tiny checkpoint: raw-prompt completion, streaming, stop, async."""

from __future__ import annotations

import os
from typing import Any

import pytest
from langchain_bitnet import BitnetLLM, ChatBitnet
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult


@pytest.fixture
def llm() -> BitnetLLM:
    return BitnetLLM(model=os.environ["LANGCHAIN_BITNET_TINY"], temperature=0, max_tokens=16)


def test_prompt_is_continued_as_is(llm: BitnetLLM) -> None:
    text = llm.invoke("The capital of France is")
    direct = llm.loaded_model.generate("The capital of France is", temperature=0, max_tokens=16)
    assert text == direct.text


def test_stream_and_async_match_invoke(llm: BitnetLLM) -> None:
    import asyncio

    text = llm.invoke("Once upon")
    assert "".join(llm.stream("Once upon")) == text
    assert asyncio.run(llm.ainvoke("Once upon")) == text

    async def collect() -> str:
        return "".join([t async for t in llm.astream("Once upon")])

    assert asyncio.run(collect()) == text


def test_generation_info_has_finish_reason_and_usage(llm: BitnetLLM) -> None:
    result = llm.generate(["Once upon"])
    assert isinstance(result, LLMResult)
    info = result.generations[0][0].generation_info
    assert info is None or "finish_reason" not in info  # invoke path: text only
    chunks = list(llm._stream("Once upon"))
    last = chunks[-1].generation_info
    assert last is not None and last["finish_reason"] == "length"
    assert last["usage"]["completion_tokens"] == 16


def test_stop_and_callbacks(llm: BitnetLLM) -> None:
    sampled = BitnetLLM(model=llm.model, temperature=1.0, seed=5, max_tokens=24)
    text = sampled.invoke("Once upon")
    at = next(i for i in range(1, len(text) - 2) if text.find(text[i : i + 2]) == i)
    assert sampled.invoke("Once upon", stop=[text[at : at + 2]]) == text[:at]

    tokens: list[Any] = []

    class Recorder(BaseCallbackHandler):
        def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
            tokens.append(token)

    streaming = BitnetLLM(model=llm.model, temperature=0, max_tokens=8, streaming=True)
    out = streaming.invoke("Once upon", config={"callbacks": [Recorder()]})
    assert "".join(tokens) == out and len(tokens) >= 2


def test_shares_the_model_with_chat(llm: BitnetLLM) -> None:
    assert ChatBitnet(model=llm.model).loaded_model is llm.loaded_model
    assert llm._get_ls_params()["ls_provider"] == "bitnet"
    assert llm._get_ls_params()["ls_model_type"] == "llm"
