"""``Model.tokenize_chat``: the prompt ids ``chat`` generates from, tools included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bitnet_backend as bb

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is the weather in Paris?"},
]


@pytest.fixture(scope="module")
def model(make_checkpoint: Any) -> Iterator[bb.Model]:
    ckpt: Path = make_checkpoint()
    with bb.load(ckpt, n_threads=1) as m:
        yield m


@pytest.mark.parametrize(
    "tool_args",
    [
        {},
        {"tools": [WEATHER]},
        {"tools": [WEATHER], "tool_choice": "required"},
        {"tools": [WEATHER], "tool_choice": {"name": "get_weather"}},
        {"tools": [WEATHER], "parallel_tool_calls": True},
    ],
)
def test_ids_are_the_prompt_chat_reads(model: bb.Model, tool_args: dict[str, Any]) -> None:
    ids = model.tokenize_chat(CONVERSATION, **tool_args)
    reply = model.chat(CONVERSATION, max_tokens=1, temperature=0, **tool_args)
    assert len(ids) == reply.usage["prompt_tokens"]
    text = model.apply_chat_template(CONVERSATION)
    if tool_args:
        assert len(ids) > len(model.tokenize(text, add_special=False))
        assert "get_weather" in model.detokenize(ids)
    else:
        assert ids == model.tokenize(text, add_special=False)


def test_bad_tool_arguments_are_typed_errors(model: bb.Model) -> None:
    with pytest.raises(bb.InvalidParameterError, match="tool_choice"):
        model.tokenize_chat(CONVERSATION, [WEATHER], tool_choice="sometimes")
    with pytest.raises(bb.InvalidParameterError, match="needs tools"):
        model.tokenize_chat(CONVERSATION, tool_choice="required")
