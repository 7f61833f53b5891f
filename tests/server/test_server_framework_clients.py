"""LangChain's ChatOpenAI and LlamaIndex's OpenAILike against a live server."""

from __future__ import annotations

import pytest
from live_server import LiveServer
from pydantic import BaseModel, Field

import bitnet_backend as bb

langchain_openai = pytest.importorskip("langchain_openai")
openai_like = pytest.importorskip("llama_index.llms.openai_like")

QUESTION = "What is the capital of France?"


def chat_openai(srv: LiveServer, **kwargs: object) -> object:
    options: dict[str, object] = {"temperature": 0, "max_tokens": 24, **kwargs}
    return langchain_openai.ChatOpenAI(
        model="bitnet",
        base_url=f"{srv.url}/v1",
        api_key="unused",
        timeout=60,
        max_retries=0,
        **options,
    )


def test_chat_openai_invoke_and_stream_equal_the_python_api(
    server: LiveServer, models: dict[str, bb.Model]
) -> None:
    want = models["bitnet"].chat(
        [{"role": "user", "content": QUESTION}], temperature=0, max_tokens=24
    )
    llm = chat_openai(server, stream_usage=True)
    reply = llm.invoke(QUESTION)  # type: ignore[attr-defined]
    assert reply.content == want.content
    assert reply.usage_metadata["output_tokens"] == want.usage["completion_tokens"]
    chunks = list(llm.stream(QUESTION))  # type: ignore[attr-defined]
    assert "".join(c.content for c in chunks) == want.content
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert usage and usage[-1]["output_tokens"] == want.usage["completion_tokens"]


def test_chat_openai_bind_tools_returns_a_tool_call(server: LiveServer) -> None:
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    llm = chat_openai(server, max_tokens=64).bind_tools(  # type: ignore[attr-defined]
        [get_weather], tool_choice="get_weather"
    )
    reply = llm.invoke("What is the weather in Paris?")
    assert reply.tool_calls and reply.tool_calls[0]["name"] == "get_weather"
    assert isinstance(reply.tool_calls[0]["args"].get("city"), str)
    streamed = None
    for chunk in llm.stream("What is the weather in Paris?"):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None and streamed.tool_calls[0]["name"] == "get_weather"
    assert streamed.tool_calls[0]["args"] == reply.tool_calls[0]["args"]


class City(BaseModel):
    name: str = Field(max_length=16)
    population: int = Field(ge=0, le=10**9)


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_chat_openai_with_structured_output(server: LiveServer, method: str) -> None:
    llm = chat_openai(server, max_tokens=64).with_structured_output(  # type: ignore[attr-defined]
        City, method=method
    )
    out = llm.invoke("Describe Paris as JSON with name and population.")
    assert isinstance(out, City)


def test_llama_index_openai_like_complete_chat_and_stream(
    server: LiveServer, models: dict[str, bb.Model]
) -> None:
    from llama_index.core.llms import ChatMessage

    kwargs = dict(
        model="bitnet",
        api_base=f"{server.url}/v1",
        api_key="unused",
        temperature=0,
        max_tokens=16,
        timeout=60,
        max_retries=0,
        context_window=2048,
    )
    completer = openai_like.OpenAILike(**kwargs)  # the default: legacy /v1/completions
    want = models["bitnet"].generate("The capital of France is", temperature=0, max_tokens=16)
    assert completer.complete("The capital of France is").text == want.text
    streamed = "".join(r.delta or "" for r in completer.stream_complete("The capital of France is"))
    assert streamed == want.text

    chatter = openai_like.OpenAILike(**kwargs, is_chat_model=True)
    want_chat = models["bitnet"].chat(
        [{"role": "user", "content": QUESTION}], temperature=0, max_tokens=16
    )
    reply = chatter.chat([ChatMessage(role="user", content=QUESTION)])
    assert reply.message.content == want_chat.content
    pieces = chatter.stream_chat([ChatMessage(role="user", content=QUESTION)])
    assert "".join(r.delta or "" for r in pieces) == want_chat.content
