"""Recipe v2's data: structured output, non-ASCII values, tool loops, plain prompts.

Every generated target must be what the runtime would accept and what the evaluation scores
as right: a structured reply parses, fits its schema and closes well within 128 tokens; a
non-ASCII value is copied byte for byte; a tool loop's final answer repeats the results.
"""

from __future__ import annotations

import collections
import itertools
import json
import random

import jsonschema
import pytest

import bitnet_backend as bb
from bitnet_backend.testing import tokenizer_json
from bitnet_backend.training import plain, retrieval, scoring, structured, vocab
from bitnet_backend.training.dataset import EOT, Renderer, encode
from bitnet_backend.training.mix_v2 import MIX_V2, examples_v2, tool_loop_example
from bitnet_backend.training.novel_values import novel_tool_case
from bitnet_backend.training.train import make_tokenizer
from bitnet_backend.training.unicode_values import unicode_passage, unicode_tool_case


@pytest.fixture(scope="module")
def tokenizer() -> bb.Tokenizer:
    return make_tokenizer(tokenizer_json())


def test_structured_targets_parse_fit_their_schema_and_close_early(
    tokenizer: bb.Tokenizer,
) -> None:
    rng = random.Random(11)
    kinds: collections.Counter[str] = collections.Counter()
    for i in range(600):
        case = structured.json_mode_case(rng) if i % 3 == 0 else structured.structured_case(rng)
        kinds[case.kind] += 1
        assert json.loads(case.text) == case.value
        jsonschema.validate(case.value, case.schema)
        # The layout the JSON grammar forces: ", " and ": ", nothing escaped.
        assert case.text == json.dumps(case.value, ensure_ascii=False)
        assert len(tokenizer.encode(case.text, add_special=False)) < 100
        if case.schema != structured.JSON_MODE_SCHEMA:
            assert case.schema["additionalProperties"] is False
            assert list(case.value) == [k for k in case.schema["properties"] if k in case.value]
        assert structured.is_relevant(case.value, case)
    assert set(kinds) == {"joke", "description", "list", "extraction", "json_mode"}


def test_json_mode_relevance_needs_the_named_keys_or_the_topic() -> None:
    rng = random.Random(12)
    cases = [structured.json_mode_case(rng) for _ in range(200)]
    named = next(c for c in cases if c.keys_named)
    unnamed = next(c for c in cases if not c.keys_named)
    assert not structured.is_relevant({}, named)
    assert not structured.is_relevant({k: "" for k in named.value}, named)
    assert not structured.is_relevant({"answer": "something else entirely"}, unnamed)
    assert structured.is_relevant(unnamed.value, unnamed)


def test_non_ascii_values_are_copied_verbatim(tokenizer: bb.Tokenizer) -> None:
    renderer = Renderer(tokenizer)
    rng = random.Random(13)
    seen_scripts: set[str] = set()
    for _ in range(300):
        case = unicode_tool_case(rng)
        jsonschema.validate(case.arguments, case.tool["parameters"])
        values = [v for v in case.arguments.values() if isinstance(v, str)]
        assert any(not v.isascii() for v in values), case.arguments
        for value in values:
            assert value in case.request
            seen_scripts.update(c for c in value if not c.isascii())
        target = json.dumps({"name": case.name, "arguments": case.arguments}, ensure_ascii=False)
        prompt = renderer.chat([{"role": "user", "content": case.request}], [case.tool])
        for text in (target, prompt):
            ids = tokenizer.encode(text, add_special=False)
            assert tokenizer.decode(ids, skip_special=False) == text
    assert {"你", "好"} & seen_scripts or any("\u4e00" <= c <= "\u9fff" for c in seen_scripts)
    assert any("\uac00" <= c <= "\ud7af" for c in seen_scripts)  # Korean
    assert any("\u3040" <= c <= "\u30ff" for c in seen_scripts)  # Japanese kana
    for _ in range(100):
        p = unicode_passage(rng)
        for _, answer in p.qa:
            assert answer in p.text


def test_novel_values_are_in_no_word_list_and_only_in_the_request() -> None:
    known = {w for n in dir(vocab) if n.isupper() for w in getattr(vocab, n) if isinstance(w, str)}
    rng = random.Random(17)
    for _ in range(300):
        case = novel_tool_case(rng)
        jsonschema.validate(case.arguments, case.tool["parameters"])
        for value in case.arguments.values():
            assert value in case.request and value not in known
        assert scoring.uses_result(case.answer, case.result)


def test_tool_loops_end_with_an_answer_that_uses_every_result(tokenizer: bb.Tokenizer) -> None:
    eot, eos = tokenizer.token_to_id(EOT), tokenizer.token_to_id("<|end_of_text|>")
    assert eot is not None and eos is not None
    renderer = Renderer(tokenizer)
    rng = random.Random(14)
    for _ in range(60):
        e = tool_loop_example(rng, renderer)
        first_call, (_, second_call), (_, final) = e.completion, *e.turns
        assert json.loads(first_call)["name"] != json.loads(second_call)["name"]
        for result in e.answer:
            assert scoring.uses_result(final, result), (result, final)
        # The pieces put together are the chat as Model.chat renders it, results included.
        ids, _ = encode(tokenizer, e, eot, eos)
        text = e.prompt + e.completion + EOT + "".join(b + r + EOT for b, r in e.turns)
        assert tokenizer.decode(ids, skip_special=False) == text
        for result in e.answer:
            assert f"\n{result}{EOT}" in text


def test_plain_prompts_are_continued_with_words() -> None:
    rng = random.Random(15)
    for _ in range(200):
        prompt, rest = plain.continuation(rng)
        assert prompt and not prompt.endswith(" ")
        assert rest[0] in " ,." and scoring.non_empty(rest)


def test_retrieval_cases_have_exactly_one_answering_passage() -> None:
    rng = random.Random(16)
    for _ in range(50):
        case = retrieval.retrieval_case(rng, 8)
        assert len(set(case.passages)) == 8
        subject = case.question
        assert 0 <= case.answer_index < 8
        assert case.passages[case.answer_index] != subject
    pairs = retrieval.pairs(rng, 16)
    assert len({p for _, p in pairs}) == 16


def test_v2_stream_is_seeded_and_has_every_kind(tokenizer: bb.Tokenizer) -> None:
    first = list(itertools.islice(examples_v2(3, Renderer(tokenizer)), 500))
    again = list(itertools.islice(examples_v2(3, Renderer(tokenizer)), 500))
    other = list(itertools.islice(examples_v2(4, Renderer(tokenizer)), 500))
    assert first == again
    assert first != other
    kinds = {e.kind for e in first}
    assert {
        "rag",
        "rag_turns",
        "tool_call",
        "tool_answer",
        "unicode_tool_call",
        "unicode_tool_answer",
        "novel_tool_call",
        "unicode_rag",
        "tool_loop",
        "joke",
        "json_mode",
        "plain",
        "text",
        "echo",
    } <= kinds
    assert abs(sum(w for _, w, _ in MIX_V2) - 1.0) < 1e-9
    for e in first:
        if isinstance(e.answer, structured.StructuredCase):
            assert e.completion == e.answer.text
            assert e.prompt.endswith("Assistant: ")
        if e.kind == "unicode_rag":
            assert e.answer in e.prompt and not e.answer.isascii()
        if e.kind == "plain":
            assert not e.chat and e.completion


def test_targets_are_what_the_runtime_grammars_accept_token_by_token() -> None:
    # The model is decoded under these grammars at run time: a target they reject (another
    # layout, key order or escaping) would teach text the model can never write.
    from bitnet_backend.constraints import ToolProtocol, compiler_for
    from bitnet_backend.training.dataset import call_text

    with bb.load() as model:
        tok = model.tokenizer
        assert tok is not None
        compiler = compiler_for(tok, tok.eos_token_ids, model.vocab_size)
        rng = random.Random(18)
        targets = []
        for i in range(90):
            case = structured.json_mode_case(rng) if i % 3 else structured.structured_case(rng)
            targets.append((compiler.json_schema(case.schema), case.text))
        for i in range(60):
            tool = unicode_tool_case(rng) if i % 2 else novel_tool_case(rng)
            grammar = ToolProtocol.from_request([tool.tool], "auto").grammar(compiler)
            assert grammar is not None
            targets.append((grammar, call_text(tool.name, tool.arguments)))
        for grammar, text in targets:
            state = grammar.start()
            for token in tok.encode(text, add_special=False):
                state.mask()
                state.consume(token)  # raises if the grammar does not allow the token
            assert state.accepting, text
