"""ChatBitnet on a random tiny checkpoint: plumbing, options, tools, structured output, errors.

Random weights make noise for text, so these tests check what does not depend on the quality
of the model: token accounting, stop strings, streaming, callbacks, grammar-valid tool calls
and JSON, sharing, threads and the event loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import pytest
from langchain_bitnet import ChatBitnet
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field, ValidationError
from typing_extensions import TypedDict

import bitnet_backend as bb
from bitnet_backend.options import OPTION_NAMES


@pytest.fixture
def tiny() -> str:
    return os.environ["LANGCHAIN_BITNET_TINY"]


@pytest.fixture
def llm(tiny: str) -> ChatBitnet:
    return ChatBitnet(model=tiny, temperature=0, max_tokens=24)


# Bounded strings and numbers: random weights never close an unbounded string, while these
# schemas end within the token budget whatever the weights say.
class ForecastArgs(BaseModel):
    city: str = Field(max_length=8)
    days: int = Field(ge=0, le=30)


@tool(args_schema=ForecastArgs)
def lookup_city(city: str, days: int) -> str:
    """Look up a forecast for a city."""
    return f"{city}: sunny for {days} days"


class Person(BaseModel):
    name: str = Field(max_length=8)
    age: int = Field(ge=0, le=150)


class PersonDict(TypedDict):
    name: Annotated[str, ..., "first name"]
    age: Annotated[int, ..., "age in years"]


def test_invoke_reports_usage_and_metadata(llm: ChatBitnet, tiny: str) -> None:
    result = llm.invoke("Hello")
    prompt_ids = llm.loaded_model.tokenize(
        llm.loaded_model.apply_chat_template([{"role": "user", "content": "Hello"}]),
        add_special=False,
    )
    assert isinstance(result, AIMessage)
    assert result.usage_metadata is not None
    assert result.usage_metadata["input_tokens"] == len(prompt_ids)
    assert result.usage_metadata["output_tokens"] == 24  # random weights rarely stop early
    assert result.usage_metadata["total_tokens"] == len(prompt_ids) + 24
    assert result.response_metadata == {"finish_reason": "length", "model_name": tiny}


def test_greedy_is_deterministic_and_stream_matches_invoke(llm: ChatBitnet) -> None:
    text = llm.invoke("Hello").content
    assert llm.invoke("Hello").content == text
    chunks = list(llm.stream("Hello"))
    assert "".join(str(c.content) for c in chunks) == text
    assert chunks[-1].chunk_position == "last"
    # Usage and metadata are set once, on the last chunk, so the sum counts them once.
    assert all(c.usage_metadata is None for c in chunks[:-1])
    full = sum(chunks[1:], chunks[0])
    assert isinstance(full, AIMessageChunk)
    assert full.usage_metadata is not None and full.usage_metadata["output_tokens"] == 24
    assert full.response_metadata["finish_reason"] == "length"


def test_call_options_override_fields(llm: ChatBitnet) -> None:
    result = llm.invoke("Hello", max_tokens=5)
    assert result.usage_metadata is not None and result.usage_metadata["output_tokens"] == 5
    assert result.response_metadata["finish_reason"] == "length"


def test_every_sampling_field_reaches_the_model(tiny: str) -> None:
    fields: dict[str, Any] = {"max_tokens": 12, "temperature": 0.9, "top_k": 5, "top_p": 0.9}
    fields |= {"min_p": 0.1, "repeat_penalty": 1.3, "seed": 7}
    # The fields that name a generation option are exactly these (stop goes by call;
    # logprobs is spelled as on ChatOpenAI, see test_logprobs.py).
    assert set(OPTION_NAMES) & set(ChatBitnet.model_fields) == set(fields) | {"stop", "logprobs"}
    llm = ChatBitnet(model=tiny, **fields)
    want = llm.loaded_model.chat([{"role": "user", "content": "Hello"}], **fields)
    assert llm.invoke("Hello").content == want.content


def test_stop_string_cuts_the_reply(tiny: str) -> None:
    # Seeded sampling: varied text (greedy decoding of random weights repeats one token).
    llm = ChatBitnet(model=tiny, temperature=1.0, seed=3, max_tokens=24)
    text = str(llm.invoke("Hello").content)
    at = next(i for i in range(1, len(text) - 2) if text.find(text[i : i + 2]) == i)
    stop = text[at : at + 2]
    cut = llm.invoke("Hello", stop=[stop])
    assert cut.content == text[:at]
    assert cut.response_metadata["finish_reason"] == "stop"
    # The field works the same way.
    field = ChatBitnet(model=tiny, temperature=1.0, seed=3, max_tokens=24, stop=[stop])
    assert field.invoke("Hello").content == cut.content


def test_on_llm_new_token_fires_per_streamed_token(tiny: str) -> None:
    tokens: list[str] = []

    class Recorder(BaseCallbackHandler):
        def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
            tokens.append(token)

    llm = ChatBitnet(model=tiny, temperature=0, max_tokens=12, streaming=True)
    result = llm.invoke("Hello", config={"callbacks": [Recorder()]})
    assert len(tokens) >= 2
    assert "".join(tokens) == result.content


async def test_async_forms_match_sync(llm: ChatBitnet) -> None:
    text = llm.invoke("Hello").content
    assert (await llm.ainvoke("Hello")).content == text
    parts = [str(c.content) async for c in llm.astream("Hello")]
    assert "".join(parts) == text
    assert [m.content for m in await llm.abatch(["Hello", "Hello"])] == [text, text]


async def test_async_generation_leaves_the_event_loop_free(tiny: str) -> None:
    llm = ChatBitnet(model=tiny, temperature=0, max_tokens=200)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await llm.ainvoke("Hello")
    done.set()
    await task
    assert ticks > 3


def test_threads_share_one_model(llm: ChatBitnet, tiny: str) -> None:
    other = ChatBitnet(model=tiny, temperature=0.7, max_tokens=8)
    assert other.loaded_model is llm.loaded_model
    expected = [llm.invoke(f"Hello {i}").content for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: llm.invoke(f"Hello {i}").content, range(4)))
    assert got == expected


def test_model_keyword_runs_the_call_on_another_checkpoint(
    llm: ChatBitnet, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = str(bb.testing.write_checkpoint(tmp_path_factory.mktemp("other"), seed=7))
    result = llm.invoke("Hello", model=other)
    assert result.response_metadata["model_name"] == other
    assert result.content != llm.invoke("Hello").content
    assert llm._get_ls_params(model=other)["ls_model_name"] == other


def test_messages_of_every_kind_reach_the_template(llm: ChatBitnet) -> None:
    call = {"name": "lookup_city", "args": {"city": "Oslo", "days": 2}, "id": "c1"}
    history = [
        HumanMessage([{"type": "text", "text": "Weather in Oslo?"}]),
        AIMessage(
            [{"type": "tool_use", "id": "c1", "name": "lookup_city", "input": call["args"]}],
            tool_calls=[call],
        ),
        ToolMessage("Oslo: sunny for 2 days", tool_call_id="c1"),
    ]
    from langchain_bitnet._messages import to_bitnet_messages

    converted = to_bitnet_messages(history)
    assert converted[1]["tool_calls"][0]["function"] == {
        "name": "lookup_city",
        "arguments": {"city": "Oslo", "days": 2},
    }
    assert converted[2] == {
        "role": "tool",
        "content": "Oslo: sunny for 2 days",
        "tool_call_id": "c1",
        "name": "lookup_city",  # taken from the call it answers
    }
    prompt = llm.loaded_model.apply_chat_template(converted)
    assert "Oslo: sunny for 2 days" in prompt
    assert isinstance(llm.bind_tools([lookup_city]).invoke(history), AIMessage)


def test_media_content_is_refused_clearly(llm: ChatBitnet) -> None:
    image = HumanMessage([{"type": "image", "base64": "AAAA", "mime_type": "image/png"}])
    with pytest.raises(ValueError, match="text only"):
        llm.invoke([image])


@pytest.mark.parametrize("choice", ["any", "required", True, "lookup_city"])
def test_forced_tool_call_is_valid(llm: ChatBitnet, choice: Any) -> None:
    bound = ChatBitnet(model=llm.model, temperature=0, max_tokens=64).bind_tools(
        [lookup_city], tool_choice=choice
    )
    result = bound.invoke("Weather?")
    assert result.response_metadata["finish_reason"] == "tool_calls"
    (call,) = result.tool_calls
    assert call["name"] == "lookup_city"
    assert set(call["args"]) == {"city", "days"}
    assert isinstance(call["args"]["days"], int)
    assert call["id"]
    # The tool accepts what the grammar allowed.
    assert isinstance(lookup_city.invoke(call), ToolMessage)


def test_streamed_tool_call_arrives_as_chunks(llm: ChatBitnet) -> None:
    bound = ChatBitnet(model=llm.model, temperature=0, max_tokens=64).bind_tools(
        [lookup_city], tool_choice="any"
    )
    expected = bound.invoke("Weather?").tool_calls
    chunks = [c for c in bound.stream("Weather?") if isinstance(c, AIMessageChunk)]
    assert sum(len(c.tool_call_chunks) for c in chunks) >= 2  # name first, then arguments
    full = sum(chunks[1:], chunks[0])
    assert isinstance(full, AIMessageChunk)
    # Call ids are fresh per reply; the rest is the same greedy call.
    assert [{**c, "id": None} for c in full.tool_calls] == [{**c, "id": None} for c in expected]
    assert full.tool_calls[0]["id"]
    assert full.response_metadata["finish_reason"] == "tool_calls"


def test_tool_choice_none_and_bad_names(llm: ChatBitnet) -> None:
    result = llm.bind_tools([lookup_city], tool_choice="none").invoke("Weather?")
    assert result.tool_calls == []
    with pytest.raises(ValueError, match="names none of the bound tools"):
        llm.bind_tools([lookup_city], tool_choice="no_such_tool")


def test_bound_tool_schemas_are_closed(llm: ChatBitnet) -> None:
    bound = llm.bind_tools([lookup_city, Person])
    tools = bound.kwargs["tools"]  # type: ignore[attr-defined]
    assert [t["function"]["name"] for t in tools] == ["lookup_city", "Person"]
    assert all(t["function"]["parameters"]["additionalProperties"] is False for t in tools)


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
@pytest.mark.parametrize("schema", [Person, Person.model_json_schema()])
def test_structured_output_has_the_schema(llm: ChatBitnet, method: str, schema: Any) -> None:
    chain = ChatBitnet(model=llm.model, temperature=0, max_tokens=64).with_structured_output(
        schema,
        method=method,  # type: ignore[arg-type]
    )
    result = chain.invoke("Who?")
    if schema is Person:
        assert isinstance(result, Person)
    else:
        assert isinstance(result, dict) and set(result) == {"name", "age"}
        assert isinstance(result["age"], int) and len(result["name"]) <= 8


def test_structured_output_schema_of_a_typeddict(llm: ChatBitnet) -> None:
    chain = llm.with_structured_output(PersonDict)
    bound = chain.first  # type: ignore[attr-defined]
    schema = bound.kwargs["json_schema"]
    assert schema["required"] == ["name", "age"]
    assert schema["properties"]["age"] == {"type": "integer", "description": "age in years"}
    assert schema["additionalProperties"] is False


def test_json_mode_gives_an_object(llm: ChatBitnet) -> None:
    chain = ChatBitnet(model=llm.model, temperature=0, max_tokens=48).with_structured_output(
        Person.model_json_schema(), method="json_mode", include_raw=True
    )
    out = chain.invoke("JSON please")
    # Any object is allowed, so random weights may run past the budget; what there is must
    # be the start of one.
    text = str(out["raw"].content)
    assert text.startswith("{")
    if out["raw"].response_metadata["finish_reason"] == "stop":
        assert isinstance(out["parsed"], dict)


def test_include_raw_reports_a_cut_reply_as_a_parsing_error(llm: ChatBitnet) -> None:
    chain = ChatBitnet(model=llm.model, temperature=0, max_tokens=4).with_structured_output(
        Person, include_raw=True
    )
    out = chain.invoke("Who?")
    assert isinstance(out["raw"], AIMessage)
    assert out["raw"].response_metadata["finish_reason"] == "length"
    assert out["parsed"] is None
    assert out["parsing_error"] is not None


class Note(BaseModel):
    text: str  # unbounded: random weights run out of tokens inside it


@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode"])
@pytest.mark.parametrize("schema", [Note, Note.model_json_schema()])
def test_a_reply_cut_inside_a_string_is_a_parsing_error(
    llm: ChatBitnet, method: str, schema: Any
) -> None:
    # LangChain's JSON parsers would close the open string (or object) and hand out a Note of
    # whatever text was there; a cut reply must be an error instead. JSON mode allows any
    # object, which random weights may close early: one token is sure to cut it.
    budget = 1 if method == "json_mode" else 8
    cut = ChatBitnet(model=llm.model, temperature=0, max_tokens=budget)
    kwargs: dict[str, Any] = {"method": method}
    out = cut.with_structured_output(schema, include_raw=True, **kwargs).invoke("Note?")
    assert out["raw"].response_metadata["finish_reason"] == "length"
    assert out["parsed"] is None
    assert isinstance(out["parsing_error"], OutputParserException)
    assert "did not finish the JSON within max_tokens" in str(out["parsing_error"])
    chain = cut.with_structured_output(schema, **kwargs)
    with pytest.raises(OutputParserException, match="max_tokens"):
        chain.invoke("Note?")
    with pytest.raises(OutputParserException, match="max_tokens"):
        list(chain.stream("Note?"))


def test_bad_input_raises_typed_errors(tiny: str, tmp_path: Any) -> None:
    with pytest.raises(bb.CheckpointError):
        ChatBitnet(model=str(tmp_path / "missing"))
    with pytest.raises(ValidationError):
        ChatBitnet(model=tiny, temperature=-1)
    with pytest.raises(ValidationError):
        ChatBitnet(model=tiny, top_p=1.5)
    llm = ChatBitnet(model=tiny)
    with pytest.raises(TypeError, match="unexpected generation option"):
        llm.invoke("Hello", temprature=0.5)
    with pytest.raises(bb.ContextOverflowError):
        llm.invoke("word " * (llm.loaded_model.n_ctx + 10))
    with pytest.raises(ValueError, match="method"):
        llm.with_structured_output(Person, method="xml")  # type: ignore[arg-type]


def test_concurrent_streams_do_not_interfere(llm: ChatBitnet) -> None:
    expected = {i: llm.invoke(f"Story {i}").content for i in range(3)}
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = "".join(str(c.content) for c in llm.stream(f"Story {i}"))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert results == expected
