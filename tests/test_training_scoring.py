"""The evaluation's scorers (benchmarks/eval_default_model.py) on hand-made replies."""

from __future__ import annotations

from typing import Any

import numpy as np

from bitnet_backend.training import scoring
from bitnet_backend.training.structured import JSON_MODE_SCHEMA, StructuredCase

JOKE_SCHEMA = {
    "type": "object",
    "properties": {"setup": {"type": "string"}, "punchline": {"type": "string"}},
    "required": ["setup", "punchline"],
    "additionalProperties": False,
}


def test_reading_match_ignores_case_quotes_space_and_a_final_period() -> None:
    assert scoring.reading_match(' "Glasgow." ', "glasgow")
    assert scoring.reading_match("the  Amber River", "the Amber River")
    assert not scoring.reading_match("Vienna", "Glasgow")
    assert not scoring.reading_match("Glasgow, Scotland", "Glasgow")


def test_exact_calls_need_every_character_of_the_arguments() -> None:
    tool: dict[str, Any] = {
        "name": "unicode_customer",
        "parameters": {
            "type": "object",
            "properties": {"customer_name": {"type": "string"}},
            "required": ["customer_name"],
        },
    }
    gold = {"customer_name": "你好啊集团"}
    right = {"name": "unicode_customer", "arguments": gold}
    assert scoring.call_right(right, tool) and scoring.call_exact(right, tool["name"], gold)
    escaped_away = {"name": "unicode_customer", "arguments": {"customer_name": "Hello Group"}}
    assert scoring.call_right(escaped_away, tool)
    assert not scoring.call_exact(escaped_away, tool["name"], gold)
    assert not scoring.call_right({"name": "other", "arguments": gold}, tool)
    assert not scoring.call_right({"name": "unicode_customer", "arguments": {}}, tool)


def test_an_answer_uses_a_result_when_it_repeats_all_its_values() -> None:
    result = '{"temperature": 9, "condition": "rainy", "ok": true}'
    assert scoring.result_values(result) == ["9", "rainy"]
    assert scoring.uses_result("It is 9 degrees and rainy in Bergen.", result)
    assert not scoring.uses_result("It is rainy in Bergen.", result)
    assert scoring.uses_result("It is 21 degrees and sunny.", "21 degrees, sunny")
    assert scoring.uses_result("Delivered to locker 4417.", "locker 4417")
    assert not scoring.uses_result("", '{"ok": true}')


def test_structured_replies_must_close_and_fit_the_schema() -> None:
    joke = '{"setup": "Why?", "punchline": "Because."}'
    assert scoring.structured_ok(joke, "stop", JOKE_SCHEMA)
    assert not scoring.structured_ok(joke, "length", JOKE_SCHEMA)  # cut by max_tokens
    assert not scoring.structured_ok('{"setup": "Why?"}', "stop", JOKE_SCHEMA)
    assert not scoring.structured_ok('{"setup": "Why?hashashash', "stop", JOKE_SCHEMA)


def test_json_mode_replies_must_be_non_empty_and_relevant() -> None:
    messages = ({"role": "user", "content": "Tell me a joke about cats."},)
    value = {"setup": "Why?", "punchline": "Because."}
    named = StructuredCase("json_mode", messages, JSON_MODE_SCHEMA, value, ("setup",), True)
    assert scoring.json_mode_ok('{"setup": "Why did the cat sit?"}', "stop", named)
    assert not scoring.json_mode_ok("{}", "stop", named)
    assert not scoring.json_mode_ok('{"setup": ""}', "stop", named)
    topic = StructuredCase("json_mode", messages, JSON_MODE_SCHEMA, value, ("cat",))
    assert scoring.json_mode_ok('{"joke": "A cat walks in."}', "stop", topic)
    assert not scoring.json_mode_ok('{"joke": "A dog walks in."}', "stop", topic)
    assert not scoring.json_mode_ok('{"joke": "A cat', "length", topic)
    assert not scoring.json_mode_ok('{"joke": "A cat', "stop", topic)  # not JSON


def test_top1_needs_the_answer_strictly_first() -> None:
    passages = np.eye(3, dtype=np.float32)
    assert scoring.top1(np.array([0.1, 0.9, 0.0], dtype=np.float32), passages, 1)
    assert not scoring.top1(np.array([0.9, 0.1, 0.0], dtype=np.float32), passages, 1)
    assert not scoring.top1(np.array([0.5, 0.5, 0.0], dtype=np.float32), passages, 1)


def test_non_empty_needs_a_word() -> None:
    assert scoring.non_empty(" red, yellow and blue.")
    assert not scoring.non_empty("  \n ")
    assert scoring.rate([True, False, True, True]) == 0.75


def test_first_word_match_ignores_case_and_punctuation() -> None:
    assert scoring.first_word_match(" Paris, of course.", " paris. Paris is a city in France.")
    assert scoring.first_word_match(", there was a king", ", there was a small village")
    assert not scoring.first_word_match(" Berlin.", " Paris.")
    assert not scoring.first_word_match("", " Paris.")
