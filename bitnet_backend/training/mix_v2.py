"""The example stream of recipe v2: recipe v1's kinds plus what v1 left untrained.

Added: replies inside JSON schemas and in JSON mode (``structured``), non-ASCII values in tool
arguments and passages (``unicode_values``), invented values that can only be copied
(``novel_values``), plain prompts continued (``plain``) and tool
loops of two calls whose final answer uses both results. Everything is rendered as
``Model.chat`` renders it (``Renderer``: the tool protocol and the model's chat template).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
from collections.abc import Iterator
from typing import Any

from . import passages, plain, structured, tools
from .dataset import (
    EOT,
    Example,
    Mix,
    Renderer,
    _call_id,
    _context,
    call_text,
    completion_example,
    echo_example,
    examples,
    instruction_example,
    one,
    rag_example,
    rag_messages,
    rag_turns_example,
    text_example,
    tool_examples,
    unrendered,
)
from .novel_values import novel_tool_case
from .unicode_values import unicode_passage, unicode_tool_case


def structured_example(rng: random.Random, r: Renderer, json_mode: bool) -> Example:
    case = structured.json_mode_case(rng) if json_mode else structured.structured_case(rng)
    return Example(case.kind, r.chat(list(case.messages)), case.text, True, case)


def unicode_rag_example(rng: random.Random, r: Renderer) -> Example:
    """A question whose answer (a name, company or city) is written outside ASCII."""
    target = unicode_passage(rng)
    docs = [target, *(passages.passage(rng) for _ in range(rng.choice((0, 1, 2))))]
    rng.shuffle(docs)
    question, answer = rng.choice([qa for qa in target.qa if not qa[1].isascii()])
    messages = rag_messages(rng, _context(rng, docs), question)
    return Example("unicode_rag", r.chat(messages), answer, True, answer)


def plain_example(rng: random.Random) -> Example:
    prompt, rest = plain.continuation(rng)
    return Example("plain", prompt, rest, False, rest)


def result_values(result: str) -> list[str]:
    """The values of a tool result a reply that uses it repeats (all of a plain-text result)."""
    if not result.startswith("{"):
        return [result]
    return [str(v) for v in json.loads(result).values() if not isinstance(v, bool)]


def tool_loop_example(rng: random.Random, r: Renderer) -> Example:
    """Two requests in one message: call, result, call, result, then one answer using both."""
    first = tools.tool_case(rng)
    second = unicode_tool_case(rng) if rng.random() < 0.3 else tools.tool_case(rng)
    for _ in range(20):  # bounded: two different tool names are almost always drawn at once
        if second.name != first.name:
            break
        second = tools.tool_case(rng)
    else:
        raise RuntimeError("could not draw two different tools")
    shown = [first.tool, second.tool]
    shown += [t for t in tools.distractors(rng, first, 2) if t["name"] != second.name][
        : rng.choice((0, 1, 2))
    ]
    rng.shuffle(shown)
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": f"{first.request} {second.request}"}
    ]
    prompt = r.chat(messages, shown)
    final = f"{first.answer} {second.answer}"
    rendered, previous, turns = prompt, call_text(first.name, first.arguments), []
    for case, reply in ((first, call_text(second.name, second.arguments)), (second, final)):
        call_id = _call_id(rng)
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": case.name, "arguments": json.dumps(case.arguments)},
        }
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": case.result},
        ]
        full = r.chat(messages, shown)
        head = rendered + previous + EOT
        if not full.startswith(head):
            raise ValueError("the chat template does not extend a chat by appending turns")
        turns.append((full[len(head) :], reply))
        rendered, previous = full, reply
    results = (first.result, second.result)
    return Example(
        "tool_loop", prompt, call_text(first.name, first.arguments), True, results, tuple(turns)
    )


def _tool_examples_of(
    prefix: str, case: tools.ToolCase, rng: random.Random, r: Renderer
) -> list[Example]:
    out = tool_examples(rng, r, case)
    return [dataclasses.replace(e, kind=prefix + e.kind) for e in out]


def unicode_tool_examples(rng: random.Random, r: Renderer) -> list[Example]:
    """A call (and usually its answer) whose arguments hold non-ASCII values."""
    return _tool_examples_of("unicode_", unicode_tool_case(rng), rng, r)


def novel_tool_examples(rng: random.Random, r: Renderer) -> list[Example]:
    """A call (and usually its answer) whose arguments are invented values, only copyable."""
    return _tool_examples_of("novel_", novel_tool_case(rng), rng, r)


MIX_V2: Mix = (
    ("rag", 0.21, one(rag_example)),
    ("rag_turns", 0.14, one(rag_turns_example)),
    ("tool", 0.13, tool_examples),
    ("novel_tool", 0.04, novel_tool_examples),
    ("unicode_tool", 0.06, unicode_tool_examples),
    ("unicode_rag", 0.03, one(unicode_rag_example)),
    ("tool_loop", 0.06, one(tool_loop_example)),
    ("structured", 0.10, one(functools.partial(structured_example, json_mode=False))),
    ("json_mode", 0.05, one(functools.partial(structured_example, json_mode=True))),
    ("instruction", 0.06, one(instruction_example)),
    ("plain", 0.03, unrendered(plain_example)),
    ("completion", 0.02, unrendered(completion_example)),
    ("text", 0.03, unrendered(text_example)),
    ("echo", 0.04, unrendered(echo_example)),
)


def examples_v2(seed: int, renderer: Renderer) -> Iterator[Example]:
    """An endless, seeded stream of examples in the proportions of MIX_V2."""
    return examples(seed, renderer, MIX_V2)
