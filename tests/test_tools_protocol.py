"""Tool calls through Model.chat on random-weight checkpoints (reference and cpu backends)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Set
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from backends import BACKENDS
from hypothesis import given, settings
from hypothesis import strategies as st

import bitnet_backend as bb
from bitnet_backend.constraints import (
    ToolCallStream,
    ToolProtocol,
    template_uses_tools,
    tool_call_schema,
)
from bitnet_backend.sampling import mask_allows
from bitnet_backend.testing import CHAT_TEMPLATE

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"enum": ["Paris", "Rome", "Oslo"]},
                "unit": {"enum": ["C", "F"]},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
# The bare form is accepted too.
ADD = {
    "name": "add",
    "description": "Add two integers.",
    "parameters": {
        "type": "object",
        "properties": {
            "a": {"type": "integer", "minimum": -99, "maximum": 99},
            "b": {"type": "integer", "minimum": -99, "maximum": 99},
        },
        "required": ["a", "b"],
        "additionalProperties": False,
    },
}
TOOLS = [WEATHER, ADD]
PARAMS = {"get_weather": WEATHER["function"]["parameters"], "add": ADD["parameters"]}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
# Sampling that leaves every allowed token a chance, so random weights pick either tool.
WIDE = {"temperature": 2.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0}
CALL_ID = re.compile(r"^call_[0-9a-f]{24}$")
# A template that knows tools, in the style of tool-aware Hugging Face templates.
TOOL_TEMPLATE = (
    "{{ bos_token }}{% if tools %}Tools: {{ tools | tojson }}\n{% endif %}"
    "{% for m in messages %}{{ m.role }}: "
    "{% if m.tool_calls %}{{ m.tool_calls | tojson }}{% else %}{{ m.content }}{% endif %}"
    "{% if m.tool_call_id %} [{{ m.tool_call_id }}]{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


@pytest.fixture(scope="session")
def ckpt(make_checkpoint) -> Path:
    return make_checkpoint(shape={"vocab_size": 576})


@pytest.fixture(scope="session", params=BACKENDS)
def model(request, ckpt):
    with bb.load(ckpt, backend=request.param, n_threads=2) as m:
        yield m


def _assert_valid_calls(reply: Any, allowed: Set[str] = frozenset(PARAMS)) -> None:
    assert reply.finish_reason == "tool_calls"
    assert reply.message["role"] == "assistant"
    assert reply.message["content"] is None
    assert reply.tool_calls
    for call in reply.tool_calls:
        assert CALL_ID.match(call["id"])
        assert call["type"] == "function"
        name = call["function"]["name"]
        assert name in allowed
        jsonschema.validate(call["function"]["arguments"], PARAMS[name])


# -- tool_choice ----------------------------------------------------------------------------


def test_required_tool_choice_always_returns_a_valid_call(model):
    names = set()
    for seed in range(6):
        r = model.chat(ASK, tools=TOOLS, tool_choice="required", seed=seed, max_tokens=60, **WIDE)
        _assert_valid_calls(r)
        assert len(r.tool_calls) == 1
        names.add(r.tool_calls[0]["function"]["name"])
    assert names == {"get_weather", "add"}  # the model's choice, not always the first tool


@pytest.mark.parametrize(
    "choice", [{"name": "add"}, {"type": "function", "function": {"name": "add"}}]
)
def test_named_tool_choice_calls_that_tool(model, choice):
    for seed in range(3):
        r = model.chat(ASK, tools=TOOLS, tool_choice=choice, seed=seed, max_tokens=60)
        _assert_valid_calls(r, {"add"})


def test_auto_tool_choice_gives_either_text_or_a_valid_call(model):
    for seed in range(6):
        r = model.chat(ASK, tools=TOOLS, seed=seed, max_tokens=24)
        if r.finish_reason == "tool_calls":
            _assert_valid_calls(r)
        else:
            assert "tool_calls" not in r.message
            assert not r.content.lstrip().startswith("{")
            assert r.content.strip()


def test_auto_grammar_admits_a_call_and_plain_text(model):
    compiler = model._constraints()
    grammar = ToolProtocol.from_request(TOOLS, "auto").grammar(compiler)
    call = ' {"name": "add", "arguments": {"a": 1, "b": -2}}'
    for text, finished in ((call, True), ("It is sunny {really}.", False)):
        state = grammar.start()
        for t in model.tokenize(text, add_special=False):
            state.consume(t)
        assert state.accepting
        assert state.finished is finished
    stream = ToolProtocol.from_request(TOOLS, "auto").stream()
    stream.feed(call)
    message, finish = stream.finish("stop")
    assert finish == "tool_calls"
    assert message["tool_calls"][0]["function"] == {"name": "add", "arguments": {"a": 1, "b": -2}}


def test_none_tool_choice_hides_the_tools_and_returns_text(model):
    r = model.chat(ASK, tools=TOOLS, tool_choice="none", seed=0, max_tokens=8)
    plain = model.chat(ASK, seed=0, max_tokens=8)
    assert r.finish_reason in ("stop", "length")
    assert "tool_calls" not in r.message
    assert r.content == plain.content
    assert r.usage["prompt_tokens"] == plain.usage["prompt_tokens"]


def test_parallel_calls_come_back_as_several_valid_calls(model):
    two = json.dumps(
        [
            {"name": "add", "arguments": {"a": 1, "b": 2}},
            {"name": "get_weather", "arguments": {"city": "Rome"}},
        ]
    )
    ids = model.tokenize(two, add_special=False)
    parallel = ToolProtocol.from_request(TOOLS, "required", parallel_tool_calls=True)
    state = parallel.grammar(model._constraints()).start()
    for t in ids:
        state.consume(t)
    assert state.finished
    single = ToolProtocol.from_request(TOOLS, "required").grammar(model._constraints()).start()
    assert not mask_allows(single.mask(), model.vocab_size)[ids[0]]  # no list without parallel
    stream = parallel.stream()
    stream.feed(two)
    message, finish = stream.finish("stop")
    assert finish == "tool_calls"
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["add", "get_weather"]

    for seed in range(4):
        r = model.chat(
            ASK,
            tools=TOOLS,
            tool_choice="required",
            parallel_tool_calls=True,
            seed=seed,
            max_tokens=80,
        )
        if r.finish_reason == "length":  # random weights may go on listing calls
            assert "tool_calls" not in r.message
            continue
        _assert_valid_calls(r)
        assert len({c["id"] for c in r.tool_calls}) == len(r.tool_calls)


def test_call_ids_are_reproducible_for_a_conversation_and_differ_between_turns(model):
    def call(messages: list[dict[str, Any]]) -> Any:
        r = model.chat(messages, tools=TOOLS, tool_choice="required", seed=0, max_tokens=60)
        _assert_valid_calls(r)
        return r

    def ids(reply: Any) -> list[str]:
        return [c["id"] for c in reply.tool_calls]

    r = call(ASK)
    first = ids(r)
    # The ids are part of the next prompt: the same conversation gets the same ones ...
    assert ids(call(ASK)) == first
    streamed = model.stream_chat(ASK, tools=TOOLS, tool_choice="required", seed=0, max_tokens=60)
    assert ids(list(streamed)[-1]) == first
    # ... a different one (here the next turn, which holds the first call) other ones.
    history = [
        *ASK,
        r.message,
        {"role": "tool", "tool_call_id": first[0], "content": "21"},
        *ASK,
    ]
    assert set(ids(call(history))).isdisjoint(first)


def test_parallel_call_ids_differ_within_a_reply() -> None:
    two = json.dumps([{"name": "f", "arguments": {}}, {"name": "f", "arguments": {}}])
    stream = ToolCallStream(parallel=True, names={"f"}, id_seed="prompt")
    stream.feed(two)
    ids = [c["id"] for c in stream.finish("stop")[0]["tool_calls"]]
    assert all(CALL_ID.match(i) for i in ids) and ids[0] != ids[1]
    again = ToolCallStream(parallel=True, names={"f"}, id_seed="prompt")
    again.feed(two)
    assert [c["id"] for c in again.finish("stop")[0]["tool_calls"]] == ids
    unseeded = ToolCallStream(parallel=True, names={"f"})  # no prompt given: random ids
    unseeded.feed(two)
    assert set(c["id"] for c in unseeded.finish("stop")[0]["tool_calls"]).isdisjoint(ids)


def test_call_cut_by_max_tokens_is_not_returned_as_a_call(model):
    r = model.chat(ASK, tools=TOOLS, tool_choice="required", seed=0, max_tokens=4)
    assert r.finish_reason == "length"
    assert "tool_calls" not in r.message
    assert r.content.startswith('{"')


# -- prompts and the next turn ---------------------------------------------------------------


def test_fallback_prompt_describes_the_tools_in_a_system_message():
    protocol = ToolProtocol.from_request(TOOLS, "auto")
    messages, shown = protocol.prompt(
        [{"role": "system", "content": "Be brief."}, *ASK], template_uses_tools=False
    )
    assert shown is None
    assert messages[1:] == ASK
    assert messages[0]["role"] == "system"
    assert messages[0]["content"] == (
        "Be brief.\n\n"
        "You can call these tools. Each line describes one tool as JSON: its name, what it "
        "does and the JSON schema of its arguments.\n"
        + json.dumps(
            {
                "name": "get_weather",
                "description": "Current weather in a city.",
                "parameters": PARAMS["get_weather"],
            }
        )
        + "\n"
        + json.dumps(
            {"name": "add", "description": "Add two integers.", "parameters": PARAMS["add"]}
        )
        + "\nTo call a tool, reply with only a JSON object of the form "
        '{"name": <tool name>, "arguments": <arguments object>}. Otherwise reply in plain text.'
    )
    named, _ = ToolProtocol.from_request(TOOLS, {"name": "add"}).prompt(ASK, False)
    assert named[0]["content"].endswith(
        'You must call the tool "add": reply with only a JSON object of the form '
        '{"name": <tool name>, "arguments": <arguments object>}.'
    )
    assert named[1:] == ASK


def test_tool_results_feed_back_into_a_second_turn(model):
    first = model.chat(ASK, tools=TOOLS, tool_choice={"name": "get_weather"}, seed=1, max_tokens=60)
    _assert_valid_calls(first, {"get_weather"})
    call = first.tool_calls[0]
    history = [
        *ASK,
        first.message,
        {"role": "tool", "tool_call_id": call["id"], "content": {"temp_c": 21, "sky": "clear"}},
    ]
    protocol = ToolProtocol.from_request(TOOLS, "auto")
    rendered, _ = protocol.prompt(history, template_uses_tools=False)
    assert rendered[2] == {
        "role": "assistant",
        "content": json.dumps({"name": "get_weather", "arguments": call["function"]["arguments"]}),
    }
    assert rendered[3] == {
        "role": "user",
        "content": f"Result of tool call {call['id']} (get_weather):\n"
        + '{"temp_c": 21, "sky": "clear"}',
    }
    prompt = model.apply_chat_template(rendered)
    assert json.dumps(call["function"]["arguments"]) in prompt
    assert '{"temp_c": 21, "sky": "clear"}' in prompt

    second = model.chat(history, tools=TOOLS, seed=2, max_tokens=24)
    assert second.usage["prompt_tokens"] == len(model.tokenize(prompt, add_special=False))
    assert second.finish_reason in ("stop", "length", "tool_calls")
    if second.finish_reason == "tool_calls":
        _assert_valid_calls(second)
    # A later turn without tools still renders the earlier call and its result.
    third = model.chat([*history, {"role": "assistant", "content": "Sunny."}, *ASK], max_tokens=4)
    assert third.finish_reason in ("stop", "length")


def test_a_template_that_knows_tools_gets_them_and_the_raw_messages(model):
    assert template_uses_tools(TOOL_TEMPLATE)
    assert not template_uses_tools(CHAT_TEMPLATE)
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Oslo"}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "-3 C"},
    ]
    kwargs = {"chat_template": TOOL_TEMPLATE}
    r = model.chat(history, tools=TOOLS, template_kwargs=kwargs, seed=0, max_tokens=16)
    expected = model.apply_chat_template(
        history,
        tools=[WEATHER, {"type": "function", "function": ADD}],
        chat_template=TOOL_TEMPLATE,
    )
    assert "tool: -3 C [call_1]" in expected
    assert '"name": "get_weather"' in expected.splitlines()[0]
    assert r.usage["prompt_tokens"] == len(model.tokenize(expected, add_special=False))


# -- streaming and async ----------------------------------------------------------------------


def test_streamed_call_deltas_rebuild_the_final_call(model):
    for seed in range(3):
        chunks = list(
            model.stream_chat(ASK, tools=TOOLS, tool_choice="required", seed=seed, max_tokens=60)
        )
        final = chunks[-1]
        assert final.finish_reason == "tool_calls"
        assert all(c.finish_reason is None and c.tool_calls is None for c in chunks[:-1])
        assert chunks[0].delta["role"] == "assistant"
        pieces = [p for c in chunks for p in c.delta.get("tool_calls", [])]
        head = pieces[0]
        (call,) = final.tool_calls
        assert head["id"] == call["id"] and head["function"]["name"] == call["function"]["name"]
        args = "".join(p["function"]["arguments"] for p in pieces)
        assert json.loads(args) == call["function"]["arguments"]
        assert "".join(c.content for c in chunks) == ""
        whole = model.chat(ASK, tools=TOOLS, tool_choice="required", seed=seed, max_tokens=60)
        assert whole.tool_calls[0]["function"] == call["function"]
        assert [t for c in chunks for t in c.token_ids] == whole.token_ids


def test_streamed_text_reply_under_auto_matches_chat(model):
    for seed in range(4):
        whole = model.chat(ASK, tools=TOOLS, seed=seed, max_tokens=16)
        chunks = list(model.stream_chat(ASK, tools=TOOLS, seed=seed, max_tokens=16))
        if whole.finish_reason == "tool_calls":
            assert chunks[-1].tool_calls[0]["function"] == whole.tool_calls[0]["function"]
        else:
            assert "".join(c.content for c in chunks) == whole.content
            assert chunks[-1].tool_calls is None


def test_async_chat_forms_return_tool_calls(model):
    async def run() -> tuple[Any, list[Any]]:
        r = await model.achat(ASK, tools=TOOLS, tool_choice="required", seed=3, max_tokens=60)
        chunks = [
            c
            async for c in model.astream_chat(
                ASK, tools=TOOLS, tool_choice="required", seed=3, max_tokens=60
            )
        ]
        return r, chunks

    r, chunks = asyncio.run(run())
    _assert_valid_calls(r)
    assert chunks[-1].tool_calls[0]["function"] == r.tool_calls[0]["function"]


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tools", "choice", "match"),
    [
        ([ADD, ADD], "auto", "duplicate tool name"),
        ([{"name": "bad name!"}], "auto", "tool names"),
        ([{"name": "f", "parameters": {"type": "string"}}], "auto", "must describe an object"),
        ([{"type": "retrieval", "name": "f"}], "auto", "unsupported tool type"),
        (TOOLS, {"name": "nope"}, "not among the tools"),
        (TOOLS, "sometimes", "tool_choice must be"),
        (None, "required", "needs tools"),
        ("add", "auto", "list of tool dicts"),
        (
            [{"name": "f", "parameters": {"type": "object", "not": {"required": ["a"]}}}],
            "required",
            "unsupported feature.*not",
        ),
    ],
)
def test_bad_tools_raise_invalid_parameter(model, tools, choice, match):
    with pytest.raises(bb.InvalidParameterError, match=match):
        model.chat(ASK, tools=tools, tool_choice=choice)
    with pytest.raises(bb.InvalidParameterError, match=match):
        model.stream_chat(ASK, tools=tools, tool_choice=choice)


def test_json_schema_and_active_tools_do_not_combine(model):
    with pytest.raises(bb.InvalidParameterError, match="json_schema cannot be combined"):
        model.chat(ASK, tools=TOOLS, json_schema={"type": "object"})
    r = model.chat(ASK, tools=TOOLS, tool_choice="none", json_schema={"type": "boolean"})
    assert r.content in ("true", "false")


def test_tool_schemas_with_defs_and_recursion_keep_their_references():
    node = {
        "type": "object",
        "properties": {"label": {"$ref": "#/$defs/Label"}, "child": {"$ref": "#"}},
        "required": ["label"],
        "$defs": {"Label": {"type": "string", "maxLength": 3}},
    }
    schema = tool_call_schema(
        ToolProtocol.from_request([{"name": "tree", "parameters": node}]).tools
    )
    args = {"label": "a", "child": {"label": "b"}}
    jsonschema.validate({"name": "tree", "arguments": args}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "tree", "arguments": {"label": "long"}}, schema)


# -- the stream parser --------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-999, 999) | st.text(alphabet='ab"\\{}[],: é\n'),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text('ab"{', max_size=3), kids, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(
    calls=st.lists(
        st.tuples(st.sampled_from(["f", "g_2"]), st.dictionaries(st.text("xy", max_size=2), _JSON)),
        min_size=1,
        max_size=3,
    ),
    cuts=st.lists(st.integers(0, 400), max_size=12),
    as_list=st.booleans(),
)
def test_call_deltas_do_not_depend_on_how_the_text_is_split(calls, cuts, as_list):
    objs = [{"name": n, "arguments": a} for n, a in calls]
    payload: Any = objs if as_list or len(objs) > 1 else objs[0]
    text = json.dumps(payload, ensure_ascii=False)
    stream = ToolCallStream(parallel=True, names={"f", "g_2"})
    deltas = []
    last = 0
    for cut in [*sorted({min(c, len(text)) for c in cuts}), len(text)]:
        deltas += stream.feed(text[last:cut])
        last = cut
    message, finish = stream.finish("stop")
    assert finish == "tool_calls"
    args: dict[int, str] = {}
    for d in deltas:
        for piece in d["tool_calls"]:
            args[piece["index"]] = args.get(piece["index"], "") + piece["function"]["arguments"]
            if "id" in piece:
                assert piece["id"] == message["tool_calls"][piece["index"]]["id"]
                assert piece["function"]["name"] == objs[piece["index"]]["name"]
    assert [json.loads(args[i]) for i in range(len(objs))] == [o["arguments"] for o in objs]
    assert [c["function"] for c in message["tool_calls"]] == objs
