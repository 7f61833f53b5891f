"""The openai client against a live server: same greedy output as the Python API."""

from __future__ import annotations

import base64
import json

import jsonschema
import numpy as np
import openai
import pytest
from live_server import LiveServer

import bitnet_backend as bb
from bitnet_backend.server.schema import CompletionRequest
from bitnet_backend.server.translate import REQUEST_OPTIONS

CHAT = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def client(srv: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{srv.url}/v1", api_key="unused", timeout=60, max_retries=0)


@pytest.mark.parametrize("name", ["bitnet", "tiny"])
def test_greedy_chat_over_http_equals_the_python_api(
    server: LiveServer, models: dict[str, bb.Model], name: str
) -> None:
    want = models[name].chat(CHAT, temperature=0, max_tokens=24)
    got = client(server).chat.completions.create(
        model=name, messages=CHAT, temperature=0, max_completion_tokens=24
    )
    assert got.choices[0].message.content == want.content
    assert got.choices[0].finish_reason == want.finish_reason
    assert got.usage is not None
    assert got.usage.prompt_tokens == want.usage["prompt_tokens"]
    assert got.usage.completion_tokens == want.usage["completion_tokens"]
    assert got.model == name
    assert got.id.startswith("chatcmpl-")


def test_every_request_option_reaches_the_model(
    server: LiveServer, models: dict[str, bb.Model]
) -> None:
    # Every generation option but max_tokens and json_schema is a request field of its own
    # name; the extensions go in extra_body.
    assert set(REQUEST_OPTIONS) <= set(CompletionRequest.model_fields)
    extensions = {"top_k": 5, "min_p": 0.1, "repeat_penalty": 1.3, "repeat_last_n": 8}
    assert set(REQUEST_OPTIONS) == set(extensions) | {"temperature", "top_p", "stop", "seed"}
    prompt = "The capital of France is"
    want = models["tiny"].generate(
        prompt, max_tokens=12, temperature=0.9, top_p=0.9, stop=["zzz"], seed=7, **extensions
    )
    got = client(server).completions.create(
        model="tiny",
        prompt=prompt,
        max_tokens=12,
        temperature=0.9,
        top_p=0.9,
        stop=["zzz"],
        seed=7,
        extra_body=extensions,
    )
    assert got.choices[0].text == want.text


@pytest.mark.parametrize("name", ["bitnet", "tiny"])
def test_greedy_completion_over_http_equals_the_python_api(
    server: LiveServer, models: dict[str, bb.Model], name: str
) -> None:
    want = models[name].generate("The capital of France is", temperature=0, max_tokens=12)
    got = client(server).completions.create(
        model=name, prompt="The capital of France is", temperature=0, max_tokens=12
    )
    assert got.choices[0].text == want.text
    assert got.usage is not None and got.usage.completion_tokens == want.usage["completion_tokens"]


def test_streamed_chat_has_one_id_a_role_first_and_usage_last(
    server: LiveServer, models: dict[str, bb.Model]
) -> None:
    want = models["bitnet"].chat(CHAT, temperature=0, max_tokens=24, stop=["\n"])
    chunks = list(
        client(server).chat.completions.create(
            model="bitnet",
            messages=CHAT,
            temperature=0,
            max_tokens=24,
            stop="\n",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == want.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == want.finish_reason and not any(finishes[:-1])
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == want.usage["completion_tokens"]
    assert all(c.usage is None for c in chunks[:-1])


def test_streamed_completion_without_include_usage_sends_no_usage(server: LiveServer) -> None:
    chunks = list(
        client(server).completions.create(
            model="tiny", prompt="hello", temperature=0, max_tokens=8, stream=True
        )
    )
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_n_choices_run_concurrently_with_distinct_seeds(
    server: LiveServer, models: dict[str, bb.Model]
) -> None:
    got = client(server).chat.completions.create(
        model="tiny", messages=CHAT, temperature=1.0, max_tokens=8, n=3, seed=7
    )
    assert [c.index for c in got.choices] == [0, 1, 2]
    for i, choice in enumerate(got.choices):
        want = models["tiny"].chat(CHAT, temperature=1.0, max_tokens=8, seed=7 + i)
        assert choice.message.content == want.content
    streamed = client(server).chat.completions.create(
        model="tiny", messages=CHAT, temperature=1.0, max_tokens=8, n=3, seed=7, stream=True
    )
    texts = ["", "", ""]
    for chunk in streamed:
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
    assert texts == [c.message.content for c in got.choices]


def test_streamed_tool_call_deltas_carry_index_id_and_name(
    server: LiveServer, models: dict[str, bb.Model]
) -> None:
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    want = models["bitnet"].chat(
        messages, tools=[WEATHER_TOOL], tool_choice="required", temperature=0, max_tokens=64
    )
    stream = client(server).chat.completions.create(
        model="bitnet",
        messages=messages,
        tools=[WEATHER_TOOL],
        tool_choice="required",
        temperature=0,
        max_tokens=64,
        stream=True,
    )
    pieces = [tc for c in stream for ch in c.choices for tc in (ch.delta.tool_calls or [])]
    assert pieces and all(p.index == 0 for p in pieces)
    assert pieces[0].id == want.tool_calls[0]["id"]
    assert pieces[0].function is not None and pieces[0].function.name == "get_weather"
    args = "".join((p.function.arguments or "") for p in pieces if p.function)
    assert json.loads(args) == want.tool_calls[0]["function"]["arguments"]

    whole = client(server).chat.completions.create(
        model="bitnet",
        messages=messages,
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        temperature=0,
        max_tokens=64,
    )
    call = whole.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert whole.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_time"  # type: ignore[union-attr]
    assert isinstance(json.loads(call.function.arguments), dict)  # type: ignore[union-attr]


def test_tool_choice_none_answers_in_text(server: LiveServer) -> None:
    got = client(server).chat.completions.create(
        model="bitnet",
        messages=CHAT,
        tools=[WEATHER_TOOL],
        tool_choice="none",
        temperature=0,
        max_tokens=16,
    )
    assert got.choices[0].message.tool_calls is None
    assert got.choices[0].message.content


def test_json_schema_response_format_is_enforced(
    server: LiveServer, models: dict[str, bb.Model]
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
        },
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    got = client(server).chat.completions.create(
        model="bitnet",
        messages=[{"role": "user", "content": "Describe a person as JSON."}],
        temperature=0,
        max_tokens=96,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema, "strict": True},
        },
    )
    assert got.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(got.choices[0].message.content or ""), schema)
    want = models["bitnet"].chat(
        [{"role": "user", "content": "Describe a person as JSON."}],
        temperature=0,
        max_tokens=96,
        json_schema=schema,
    )
    assert got.choices[0].message.content == want.content
    obj = client(server).chat.completions.create(
        model="tiny",
        messages=CHAT,
        temperature=0,
        max_tokens=64,
        response_format={"type": "json_object"},
    )
    if obj.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(obj.choices[0].message.content or ""), dict)


def test_embeddings_float_base64_and_token_ids(
    server: LiveServer, models: dict[str, bb.Model]
) -> None:
    texts = ["a quiet sea", "a loud city"]
    want = models["bitnet"].embed(texts)
    c = client(server)
    floats = c.embeddings.create(model="bitnet", input=texts, encoding_format="float")
    np.testing.assert_allclose([d.embedding for d in floats.data], want, rtol=1e-6, atol=1e-7)
    assert floats.usage.prompt_tokens == sum(len(models["bitnet"].tokenize(t)) for t in texts)
    raw = c.with_raw_response.embeddings.create(
        model="bitnet", input=texts, encoding_format="base64"
    ).http_response.json()
    decoded = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in raw["data"]]
    np.testing.assert_array_equal(decoded, want)
    default = c.embeddings.create(model="bitnet", input=texts)  # the client asks for base64
    np.testing.assert_array_equal([d.embedding for d in default.data], want)
    ids = models["bitnet"].tokenize("a quiet sea", add_special=False)
    by_ids = c.embeddings.create(model="bitnet", input=[ids], encoding_format="float")
    np.testing.assert_allclose(by_ids.data[0].embedding, want[0], rtol=1e-6, atol=1e-7)


def test_models_lists_every_served_model(server: LiveServer) -> None:
    c = client(server)
    assert sorted(m.id for m in c.models.list()) == ["bitnet", "tiny"]
    assert c.models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("nope")


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"logit_bias": {"1": 5}}, "logit_bias"),
        ({"n": 99}, "n"),
    ],
)
def test_unsupported_parameters_are_a_400_naming_them(
    server: LiveServer, extra: dict, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client(server).chat.completions.create(model="tiny", messages=CHAT, max_tokens=4, **extra)
    assert err.value.status_code == 400
    assert isinstance(err.value.body, dict) and err.value.body["param"] == param


def test_unknown_fields_are_ignored(server: LiveServer) -> None:
    got = client(server).chat.completions.create(
        model="tiny",
        messages=CHAT,
        max_tokens=4,
        temperature=0,
        extra_body={"reasoning_effort": "low", "some_vendor_field": [1, 2]},
    )
    assert got.choices[0].finish_reason in ("stop", "length")


def test_a_batch_of_prompts_gets_n_choices_each_in_prompt_order(
    server: LiveServer, models: dict[str, bb.Model]
) -> None:
    prompts = ["The capital of France is", "Once upon a time"]
    want = [
        models["tiny"].generate(p, temperature=0.9, max_tokens=6, seed=3 + i).text
        for p in prompts
        for i in range(2)
    ]
    got = client(server).completions.create(
        model="tiny", prompt=prompts, temperature=0.9, max_tokens=6, seed=3, n=2
    )
    assert [c.text for c in sorted(got.choices, key=lambda c: c.index)] == want
    streamed = client(server).completions.create(
        model="tiny",
        prompt=prompts,
        temperature=0.9,
        max_tokens=6,
        seed=3,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts = [""] * 4
    usage = None
    for chunk in streamed:
        for c in chunk.choices:
            texts[c.index] += c.text
        usage = chunk.usage or usage
    assert texts == want
    assert usage is not None and usage.completion_tokens == got.usage.completion_tokens  # type: ignore[union-attr]
