"""JSON-schema constrained decoding on random-weight checkpoints (reference and cpu backends).

The weights are random, so whatever the output says comes from the grammar alone: every
output that ends with finish_reason "stop" must parse and validate.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from backends import BACKENDS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitnet_backend as bb
from bitnet_backend.constraints import compiler_for
from bitnet_backend.sampling import mask_allows
from bitnet_backend.testing import tokenizer_size

# More rows than the tokenizer has tokens, like 2B-4T's padded head: the extra ids exist in
# the logits and must never be allowed by a grammar.
VOCAB = 576
PROMPT = "The teacher reads a good story"
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "pets": {"type": "array", "items": {"enum": ["cat", "dog"]}, "maxItems": 3},
        "nick": {"anyOf": [{"type": "string", "maxLength": 4}, {"type": "null"}]},
    },
    "required": ["name", "age", "pets"],
    "additionalProperties": False,
}


@pytest.fixture(scope="session")
def padded_ckpt(make_checkpoint) -> Path:
    return make_checkpoint(shape={"vocab_size": VOCAB})


@pytest.fixture(scope="session", params=BACKENDS)
def model(request, padded_ckpt):
    with bb.load(padded_ckpt, backend=request.param, n_threads=2) as m:
        yield m


def _check(schema: dict[str, Any], c: Any, max_tokens: int) -> None:
    """The contract: "stop" = complete and valid; "length" = cut at max_tokens, never finished."""
    assert len(c.token_ids) <= max_tokens
    if c.finish_reason == "stop":
        jsonschema.validate(json.loads(c.text), schema)
    else:
        assert c.finish_reason == "length"
        assert len(c.token_ids) == max_tokens
        if schema.get("type") in ("object", "array"):
            # A closed object or array ends the generation at once ("stop"), so a cut one
            # is always unfinished.
            with pytest.raises(json.JSONDecodeError):
                json.loads(c.text)


# -- generated schemas --------------------------------------------------------------------

_NAMES = st.sampled_from(["a", "id", "name", "x_1", "Größe", "tags", "value", "ok"])
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-50, 50),
    st.text(alphabet="abcxyz é", max_size=5),
)


@st.composite
def _bounded_int(draw: st.DrawFn) -> dict[str, Any]:
    lo = draw(st.integers(-1000, 1000))
    return {"type": "integer", "minimum": lo, "maximum": lo + draw(st.integers(0, 500))}


@st.composite
def _string(draw: st.DrawFn) -> dict[str, Any]:
    hi = draw(st.integers(0, 8))
    s: dict[str, Any] = {"type": "string", "maxLength": hi}
    if draw(st.booleans()):
        s["minLength"] = draw(st.integers(0, hi))
    return s


_LEAVES = st.one_of(
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    _bounded_int(),
    _string(),
    st.builds(lambda lo: {"type": "number", "minimum": lo, "maximum": lo + 10}, st.integers(-5, 5)),
    st.just({"type": "integer"}),
    st.just({"type": "number"}),
    st.lists(_SCALARS, min_size=1, max_size=4, unique_by=lambda v: json.dumps(v)).map(
        lambda vs: {"enum": vs}
    ),
)


@st.composite
def _object(draw: st.DrawFn, children: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    names = draw(st.lists(_NAMES, min_size=1, max_size=3, unique=True))
    props = {n: draw(children) for n in names}
    required = [n for n in names if draw(st.booleans())]
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    # Mostly closed: an open object lets the model add properties without end.
    if draw(st.integers(0, 4)) > 0:
        schema["additionalProperties"] = False
    return schema


def _compound(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        _object(children),
        st.builds(
            lambda item, hi: {"type": "array", "items": item, "maxItems": hi},
            children,
            st.integers(0, 3),
        ),
        st.lists(children, min_size=2, max_size=3).map(lambda alts: {"anyOf": alts}),
    )


SCHEMAS = st.one_of(_object(st.recursive(_LEAVES, _compound, max_leaves=5)), _LEAVES)
SAMPLING = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32),
        "temperature": st.floats(0.6, 1.5),
        "repeat_penalty": st.floats(1.0, 1.4),
    }
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(schema=SCHEMAS, sampling=SAMPLING)
def test_constrained_output_always_validates_whatever_the_weights(model, schema, sampling):
    max_tokens = 96
    c = model.generate(PROMPT, max_tokens=max_tokens, json_schema=schema, **sampling)
    _check(schema, c, max_tokens)


# -- fixed cases --------------------------------------------------------------------------


def test_bounded_schema_finishes_with_stop_and_validates(model):
    for seed in range(4):
        c = model.generate(PROMPT, max_tokens=200, json_schema=PERSON, seed=seed)
        assert c.finish_reason == "stop"
        data = json.loads(c.text)
        jsonschema.validate(data, PERSON)
        assert list(data)[:3] == ["name", "age", "pets"]  # the schema's property order


def test_output_is_compact_json_with_default_separators(model):
    c = model.generate(PROMPT, max_tokens=200, json_schema=PERSON, seed=3)
    assert c.text == json.dumps(json.loads(c.text), ensure_ascii=False)


def test_generation_cut_by_max_tokens_reports_length_and_incomplete_json(model):
    c = model.generate(PROMPT, max_tokens=5, json_schema=PERSON, seed=0)
    assert c.finish_reason == "length"
    assert len(c.token_ids) == 5
    assert c.text.startswith('{"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(c.text)


def test_stream_with_schema_concatenates_to_the_generated_json(model):
    chunks = list(model.stream(PROMPT, max_tokens=200, json_schema=PERSON, seed=1))
    assert chunks[-1].finish_reason == "stop"
    assert all(c.finish_reason is None for c in chunks[:-1])
    text = "".join(c.text for c in chunks)
    jsonschema.validate(json.loads(text), PERSON)
    full = model.generate(PROMPT, max_tokens=200, json_schema=PERSON, seed=1)
    assert text == full.text
    assert [t for c in chunks for t in c.token_ids] == full.token_ids


def test_chat_and_async_forms_take_a_schema(model):
    messages = [{"role": "user", "content": "Describe a person."}]
    r = model.chat(messages, max_tokens=200, json_schema=PERSON, seed=2)
    assert r.finish_reason == "stop"
    jsonschema.validate(json.loads(r.content), PERSON)
    streamed = "".join(
        c.content for c in model.stream_chat(messages, max_tokens=200, json_schema=PERSON, seed=2)
    )
    assert streamed == r.content

    async def run() -> tuple[Any, Any]:
        a = await model.agenerate(PROMPT, max_tokens=200, json_schema=PERSON, seed=5)
        b = await model.achat(messages, max_tokens=200, json_schema=PERSON, seed=2)
        return a, b

    a, b = asyncio.run(run())
    jsonschema.validate(json.loads(a.text), PERSON)
    assert b.content == r.content


def test_stop_strings_do_not_cut_constrained_output(model):
    free = model.generate(PROMPT, max_tokens=200, json_schema=PERSON, seed=4)
    stopped = model.generate(PROMPT, max_tokens=200, json_schema=PERSON, seed=4, stop=['"'])
    assert stopped.text == free.text
    assert stopped.finish_reason == "stop"


def test_schema_given_as_json_text_true_or_a_model_class(model):
    class Pet:
        @staticmethod
        def model_json_schema() -> dict[str, Any]:
            return {"enum": ["cat", "dog"]}

    assert model.generate(PROMPT, json_schema=Pet, seed=0, max_tokens=8).text in ('"cat"', '"dog"')
    c = model.generate(PROMPT, json_schema=json.dumps({"type": "boolean"}), max_tokens=8)
    assert c.text in ("true", "false")
    anything = model.generate(PROMPT, json_schema=True, seed=0, max_tokens=40)
    if anything.finish_reason == "stop":
        json.loads(anything.text)


def test_tokens_past_the_tokenizer_are_never_allowed(model):
    assert model.vocab_size == VOCAB > tokenizer_size()
    grammar = compiler_for(model.tokenizer, model.eos_token_ids, model.vocab_size).json_schema(
        {"type": "string"}
    )
    state = grammar.start()
    mask = state.mask()
    assert mask.dtype == np.uint32 and mask.size * 32 >= VOCAB
    allowed = mask_allows(mask, VOCAB)
    assert allowed[: tokenizer_size()].any()
    assert not allowed[tokenizer_size() :].any()
    state.consume(model.tokenize('"', add_special=False)[0])
    inside = mask_allows(state.mask(), VOCAB)
    assert inside.sum() > 100  # most tokens may appear in a string
    assert not inside[tokenizer_size() :].any()


def test_end_of_sequence_is_allowed_only_once_the_json_is_complete(model):
    grammar = compiler_for(model.tokenizer, model.eos_token_ids, model.vocab_size).json_schema(
        {"type": "integer"}
    )
    state = grammar.start()
    eos = list(model.eos_token_ids)
    assert not mask_allows(state.mask(), VOCAB)[eos].any()
    for t in model.tokenize("12", add_special=False):
        state.consume(t)
    after = mask_allows(state.mask(), VOCAB)
    assert after[eos].any() and state.accepting and not state.finished


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"not": {"type": "string"}}, "not"),
        ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "uniqueItems"),
        ({"type": "array", "contains": {"type": "integer"}}, "contains"),
        ({"if": {"type": "string"}, "then": {"maxLength": 2}}, "if"),
        ({"type": "object", "propertyNames": {"maxLength": 2}}, "propertyNames"),
        ({"type": "object", "dependentRequired": {"a": ["b"]}}, "dependentRequired"),
        ({"type": "string", "pattern": "(?<=a)b"}, "look-around"),
        ({"type": "string", "format": "no-such-format"}, "no-such-format"),
        ({"type": "strnig"}, "strnig"),
        ({"$ref": "#/$defs/missing"}, "missing"),
        ({"type": "integer", "minimum": 5, "maximum": 2}, "minimum"),
        ('{"type": "object"', "not valid JSON"),
        (False, "allows no value"),
        ([1, 2], "must be a dict"),
    ],
)
def test_bad_schemas_raise_invalid_parameter_naming_the_feature(model, schema, named):
    with pytest.raises(bb.InvalidParameterError, match=named):
        model.generate(PROMPT, json_schema=schema)
    with pytest.raises(bb.InvalidParameterError, match=named):
        model.stream(PROMPT, json_schema=schema)  # raised by the call, before iterating
