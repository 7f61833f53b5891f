"""Token log-probabilities over HTTP: the openai client and ChatOpenAI against a live server."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from live_server import LiveServer

import bitnet_backend as bb
from bitnet_backend.completion import TokenLogprob

CHAT = [{"role": "user", "content": "What is the capital of France?"}]
PROMPT = "The capital of France is"
SAMPLED = {"temperature": 0.9, "seed": 5}


def client(srv: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{srv.url}/v1", api_key="unused", timeout=60, max_retries=0)


def wire(e: TokenLogprob) -> dict[str, Any]:
    """An entry as OpenAI's chat shape spells it."""
    alternatives = [
        {"token": a.token, "logprob": a.logprob, "bytes": list(a.bytes)} for a in e.top_logprobs
    ]
    return {
        "token": e.token,
        "logprob": e.logprob,
        "bytes": list(e.bytes),
        "top_logprobs": alternatives,
    }


def test_chat_logprobs_equal_the_python_api(server: LiveServer, models: dict[str, bb.Model]):
    want = models["tiny"].chat(CHAT, max_tokens=12, logprobs=3, **SAMPLED)
    assert want.logprobs is not None
    got = client(server).chat.completions.create(
        model="tiny", messages=CHAT, max_tokens=12, logprobs=True, top_logprobs=3, **SAMPLED
    )
    logprobs = got.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert [c.model_dump() for c in logprobs.content] == [wire(e) for e in want.logprobs]
    assert got.choices[0].message.content == want.content


def test_streamed_chat_chunks_carry_their_tokens_logprobs(server: LiveServer):
    c = client(server)
    options: dict[str, Any] = {"max_tokens": 12, "logprobs": True, "top_logprobs": 2, **SAMPLED}
    whole = c.chat.completions.create(model="tiny", messages=CHAT, **options)
    assert whole.choices[0].logprobs is not None and whole.choices[0].logprobs.content
    pieces = []
    for chunk in c.chat.completions.create(model="tiny", messages=CHAT, stream=True, **options):
        for choice in chunk.choices:
            assert choice.logprobs is not None and choice.logprobs.content is not None
            pieces.extend(choice.logprobs.content)
    assert pieces == whole.choices[0].logprobs.content


def test_chat_without_logprobs_gets_none(server: LiveServer):
    got = client(server).chat.completions.create(model="tiny", messages=CHAT, max_tokens=4)
    assert got.choices[0].logprobs is None


def test_completion_logprobs_equal_the_python_api(server: LiveServer, models: dict[str, bb.Model]):
    want = models["tiny"].generate(PROMPT, max_tokens=12, logprobs=2, **SAMPLED)
    assert want.logprobs is not None
    got = client(server).completions.create(
        model="tiny", prompt=PROMPT, max_tokens=12, logprobs=2, **SAMPLED
    )
    lp = got.choices[0].logprobs
    assert lp is not None
    assert lp.tokens == [e.token for e in want.logprobs]
    assert lp.token_logprobs == [e.logprob for e in want.logprobs]
    assert lp.top_logprobs == [
        {a.token: a.logprob for a in (*e.top_logprobs, e)} for e in want.logprobs
    ]
    offsets = [len(PROMPT)]
    for e in want.logprobs[:-1]:
        offsets.append(offsets[-1] + len(e.token))
    assert lp.text_offset == offsets


def test_streamed_completion_chunks_carry_their_tokens_logprobs(server: LiveServer):
    c = client(server)
    options: dict[str, Any] = {"max_tokens": 12, "logprobs": 1, **SAMPLED}
    whole = c.completions.create(model="tiny", prompt=PROMPT, **options).choices[0].logprobs
    assert whole is not None
    tokens, values, offsets = [], [], []
    for chunk in c.completions.create(model="tiny", prompt=PROMPT, stream=True, **options):
        lp = chunk.choices[0].logprobs
        assert lp is not None
        tokens += lp.tokens or []
        values += lp.token_logprobs or []
        offsets += lp.text_offset or []
    assert (tokens, values, offsets) == (whole.tokens, whole.token_logprobs, whole.text_offset)


@pytest.mark.parametrize(
    ("endpoint", "extra", "param"),
    [
        ("chat", {"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ("chat", {"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
        ("chat", {"top_logprobs": 2}, "top_logprobs"),
        ("completions", {"logprobs": 6}, "logprobs"),
        ("completions", {"logprobs": -1}, "logprobs"),
    ],
)
def test_out_of_range_logprobs_are_a_400_naming_the_field(
    server: LiveServer, endpoint: str, extra: dict[str, Any], param: str
):
    c = client(server)
    with pytest.raises(openai.BadRequestError) as err:
        if endpoint == "chat":
            c.chat.completions.create(model="tiny", messages=CHAT, max_tokens=4, **extra)
        else:
            c.completions.create(model="tiny", prompt=PROMPT, max_tokens=4, **extra)
    assert isinstance(err.value.body, dict) and err.value.body["param"] == param


def test_chat_openai_puts_logprobs_in_the_response_metadata(
    server: LiveServer, models: dict[str, bb.Model]
):
    langchain_openai = pytest.importorskip("langchain_openai")
    want = models["tiny"].chat(CHAT, max_tokens=10, temperature=0, logprobs=2)
    assert want.logprobs is not None
    llm = langchain_openai.ChatOpenAI(
        model="tiny",
        base_url=f"{server.url}/v1",
        api_key="unused",
        timeout=60,
        max_retries=0,
        temperature=0,
        max_tokens=10,
        logprobs=True,
        top_logprobs=2,
    )
    reply = llm.invoke(CHAT[0]["content"])
    assert reply.response_metadata["logprobs"]["content"] == [wire(e) for e in want.logprobs]


def test_a_streamed_tool_call_carries_every_tokens_logprobs(server: LiveServer):
    """Chunks that say nothing yet (the call's JSON before its name) hand their tokens'
    entries on to the next chunk sent."""
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"enum": ["Paris", "Rome"]}},
                "required": ["city"],
            },
        },
    }
    options: dict[str, Any] = {
        "max_tokens": 48,
        "logprobs": True,
        "tools": [tool],
        "tool_choice": "required",
        **SAMPLED,
    }
    c = client(server)
    whole = c.chat.completions.create(model="tiny", messages=CHAT, **options)
    assert whole.usage is not None
    content = whole.choices[0].logprobs.content if whole.choices[0].logprobs else None
    assert content is not None and len(content) == whole.usage.completion_tokens
    pieces = []
    stream = c.chat.completions.create(model="tiny", messages=CHAT, stream=True, **options)
    for chunk in stream:
        for choice in chunk.choices:
            assert choice.logprobs is not None and choice.logprobs.content is not None
            pieces.extend(choice.logprobs.content)
    assert pieces == content
