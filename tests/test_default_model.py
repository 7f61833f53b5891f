"""The embedded default model: bundled, small, exact against transformers, and useful.

Behaviour checks use greedy decoding on requests written for these tests (names, tools and
passages the training stream did not contain verbatim).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from oracle import check_loose, check_strict, oracle_greedy, oracle_logits

import bitnet_backend as bb
from bitnet_backend.model import DEFAULT_MODEL_DIR

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "config.json").is_file(), reason="no default model bundled"
)


@pytest.fixture(scope="module")
def model() -> bb.Model:
    with bb.load() as m:
        yield m


def test_bundled_in_the_real_format_and_small() -> None:
    names = {p.name for p in DEFAULT_MODEL_DIR.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    size = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir() if p.is_file())
    assert size < 25 * 1024 * 1024
    cfg = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
    assert cfg["architectures"] == ["BitNetForCausalLM"]
    assert cfg["quantization_config"]["quantization_mode"] == "offline"


def test_load_without_a_source_uses_it(model: bb.Model) -> None:
    assert model.info["source"] == "default"
    assert model.info["path"] == str(DEFAULT_MODEL_DIR)


def test_tokenizer_is_the_recipes() -> None:
    from bitnet_backend.training.train import train_tokenizer

    assert (DEFAULT_MODEL_DIR / "tokenizer.json").read_text() == train_tokenizer(
        seed=0, recipe="v2"
    )


def _chat_ids(model: bb.Model) -> list[int]:
    # A prompt on which no activation of the oracle lies within one ulp of an int8 rounding
    # tie (oracle.near_ties; the nearest here is 1.4e-5): most prompts have one within 2e-6 to
    # 8e-6 somewhere, which a one-ulp difference in summation order flips (every chat that
    # starts with a user turn has one at position 1 on this model, hence the system turn).
    messages = [
        {"role": "system", "content": "Hi."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    text = model.apply_chat_template(messages)
    return model.tokenize(text, add_special=False)


def test_matches_transformers(model: bb.Model) -> None:
    ids = _chat_ids(model)
    want = oracle_logits(DEFAULT_MODEL_DIR, ids)
    with bb.load(lm_head="f32") as exact:
        check_strict(exact.logits(ids), want, DEFAULT_MODEL_DIR, ids)
        got = exact.generate(ids, max_tokens=12, temperature=0.0).token_ids
    oracle = oracle_greedy(DEFAULT_MODEL_DIR, ids, 12)
    assert oracle[: len(got)] == got
    assert len(got) == 12 or oracle[len(got)] in model.tokenizer.eos_token_ids
    check_loose(model.logits(ids), want)  # the default head (int8 or 6-bit, exact top logits)


def test_answers_from_the_context(model: bb.Model) -> None:
    passage = (
        "Quinn Haas is a geologist. Quinn was born in 1987. They live in Tallinn. "
        "Quinn's parrot is called Juniper."
    )
    for question, answer in [
        ("Where does Quinn Haas live?", "Tallinn"),
        ("What is the name of Quinn Haas's parrot?", "Juniper"),
        ("When was Quinn Haas born?", "1987"),
    ]:
        reply = model.chat(
            [{"role": "user", "content": f"Context:\n{passage}\n\nQuestion: {question}"}],
            max_tokens=16,
            temperature=0.0,
        )
        assert reply.message["content"].strip().rstrip(".") == answer


def test_calls_a_tool_it_never_saw_with_the_users_arguments(model: bb.Model) -> None:
    magic = {
        "name": "magic_function",
        "description": "Applies a magic function to an input.",
        "parameters": {
            "type": "object",
            "properties": {"input": {"type": "integer"}},
            "required": ["input"],
        },
    }
    weather = {
        "name": "get_weather",
        "description": "Get the weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
    question = "What is the value of magic_function(3)? Use the tool."
    reply = model.chat([{"role": "user", "content": question}], tools=[magic, weather])
    assert reply.finish_reason == "tool_calls"
    assert reply.tool_calls[0]["function"] == {"name": "magic_function", "arguments": {"input": 3}}

    messages = [{"role": "user", "content": "What's the weather in SF?"}]
    reply = model.chat(messages, tools=[magic, weather])
    call = reply.tool_calls[0]
    assert call["function"] == {"name": "get_weather", "arguments": {"city": "SF"}}

    messages += [
        reply.message,
        {
            "role": "tool",
            "tool_call_id": call["id"],
            "content": '{"temperature": 17, "condition": "foggy"}',
        },
    ]
    answer = model.chat(messages, tools=[magic, weather], max_tokens=40).message["content"]
    assert "17" in answer and "foggy" in answer


def test_replies_in_text_when_no_tool_fits(model: bb.Model) -> None:
    tool = {
        "name": "get_stock_price",
        "description": "Latest price of a stock.",
        "parameters": {
            "type": "object",
            "properties": {"symbol": {"type": "string"}},
            "required": ["symbol"],
        },
    }
    reply = model.chat([{"role": "user", "content": "Hello!"}], tools=[tool], max_tokens=24)
    assert reply.finish_reason == "stop"
    assert reply.message["content"]


def test_copy_probe_second_copy_is_cheaper() -> None:
    """The model has begun to copy: a passage's second copy costs less than its first
    (benchmarks/copy_probe.py; the model trained on reply tokens only paid more for it)."""
    spec = importlib.util.spec_from_file_location("copy_probe", BENCHMARKS / "copy_probe.py")
    assert spec is not None and spec.loader is not None
    copy_probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy_probe)
    with bb.load(lm_head="f32") as m:
        result = copy_probe.probe(m, 4)
    assert result["second_copy_loss"] < 0.9 * result["first_copy_loss"]
