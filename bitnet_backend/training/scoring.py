"""How the evaluation scores a reply (benchmarks/eval_default_model.py), one function a target.

Pure functions of the reply and the gold answer, so they are tested on hand-made cases.
Schema validation needs ``jsonschema`` (the ``test`` extra).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .structured import StructuredCase, is_relevant


def normalize(text: str) -> str:
    """Case, surrounding space and quotes, a final period and runs of space ignored."""
    t = text.strip().strip("\"'").strip().rstrip(".").strip().lower()
    return re.sub(r"\s+", " ", t)


def reading_match(reply: str, gold: str) -> bool:
    """The reply is the answer (up to ``normalize``)."""
    return normalize(reply) == normalize(gold)


def valid_for(value: Any, schema: dict[str, Any]) -> bool:
    """``value`` is valid for the JSON schema ``schema``."""
    import jsonschema

    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return False
    return True


def call_right(function: dict[str, Any], tool: dict[str, Any]) -> bool:
    """The call names ``tool`` and its arguments are valid for the tool's schema."""
    return function.get("name") == tool["name"] and valid_for(
        function.get("arguments"), tool["parameters"]
    )


def call_exact(function: dict[str, Any], name: str, arguments: dict[str, Any]) -> bool:
    """The call names the tool and its arguments are exactly the gold ones (every character)."""
    return function.get("name") == name and function.get("arguments") == arguments


def result_values(result: str) -> list[str]:
    """What an answer that uses a tool result repeats: a JSON result's non-boolean values, or
    the comma-separated parts of a plain-text one ("21 degrees, sunny")."""
    try:
        parsed = json.loads(result)
    except json.JSONDecodeError:
        return [part for part in result.split(", ") if part.strip()]
    if isinstance(parsed, dict):
        return [str(v) for v in parsed.values() if not isinstance(v, bool)]
    return [str(parsed)] if not isinstance(parsed, bool) else []


def uses_result(answer: str, result: str) -> bool:
    """The answer repeats every value of the tool result (and is not empty)."""
    text = normalize(answer)
    values = result_values(result)
    return bool(text) and all(normalize(v) in text for v in values)


def _closed_json(content: str, finish_reason: str | None) -> tuple[bool, Any]:
    """``(True, value)`` when the reply closed by itself (not cut by max_tokens) and parses."""
    if finish_reason != "stop":
        return False, None
    try:
        return True, json.loads(content)
    except json.JSONDecodeError:
        return False, None


def structured_ok(content: str, finish_reason: str | None, schema: dict[str, Any]) -> bool:
    """The reply closed by itself (not cut by max_tokens) and is valid for the schema."""
    parsed, value = _closed_json(content, finish_reason)
    return parsed and valid_for(value, schema)


def json_mode_ok(content: str, finish_reason: str | None, case: StructuredCase) -> bool:
    """JSON mode: a complete, non-empty object relevant to the request."""
    parsed, value = _closed_json(content, finish_reason)
    return parsed and is_relevant(value, case)


def top1(query: np.ndarray, passages: np.ndarray, answer_index: int) -> bool:
    """The answering passage has the highest cosine similarity (ties count as misses)."""
    scores = passages @ query
    best = int(np.argmax(scores))
    return best == answer_index and int((scores == scores[best]).sum()) == 1


def non_empty(text: str) -> bool:
    """A continuation with at least one word character."""
    return any(c.isalnum() for c in text)


def first_word_match(text: str, gold: str) -> bool:
    """The continuation starts with the gold continuation's first word (punctuation aside)."""

    def first(t: str) -> str:
        words = re.findall(r"\w+", t)
        return words[0].lower() if words else ""

    return bool(first(gold)) and first(text) == first(gold)


def rate(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0
