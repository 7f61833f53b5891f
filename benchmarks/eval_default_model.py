"""Evaluate a model (by default the embedded one) on held-out generated tasks.

    python benchmarks/eval_default_model.py [--model DIR] [--n 300] [--threads 1] [--json out.json]

Everything runs through the public API (``Model.chat`` with the model's chat template, the
tool protocol and ``json_schema``, ``Model.generate``, ``Model.embed``; greedy decoding), on
examples drawn with a seed the training stream never uses. ``--n`` examples for each target
(the scorers: ``bitnet_backend.training.scoring``):

- reading: a question about one of 1-3 passages, in the prompt styles of RAG chains; exact
  match (case, surrounding space, quotes and a final period ignored); and a run of its own on
  3-passage contexts;
- tool call: 1-4 tools in the prompt, tool_choice "auto"; right tool with arguments valid
  for its schema, and (stricter) arguments equal to the ones the request implies; and a run of
  its own on requests with non-ASCII values (CJK, accents, emoji), which must be copied exactly,
  and one on invented values (places, people, order ids no word list holds);
- tool answer: after the gold call and the tool's result, the reply repeats the result's
  values (and, in the tool-call run, after the model's own right call);
- structured output: short free-text requests (jokes, descriptions, lists, facts from a note)
  decoded under a closed JSON schema with max_tokens 128: the reply closes by itself and is
  valid for the schema;
- JSON mode (``{"type": "object"}``): a complete, non-empty object relevant to the request;
- retrieval: a question and 8 passages embedded with ``Model.embed``; the passage that answers
  it ranks first (cosine);
- plain prompts (no chat template) continued with at least one word; instructions;
- perplexity of held-out passages (exact f32 head; also with the int8, 6-bit and 4-bit heads,
  with and without their top logits recomputed exactly).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from copy_probe import token_losses  # this script's own folder, first on sys.path

import bitnet_backend as bb
from bitnet_backend.training import instructions, passages, plain, retrieval, scoring, structured
from bitnet_backend.training import tools as tool_cases
from bitnet_backend.training.dataset import SYSTEMS, rag_messages
from bitnet_backend.training.novel_values import novel_tool_case
from bitnet_backend.training.scoring import normalize
from bitnet_backend.training.unicode_values import unicode_tool_case

EVAL_SEED = 20261123  # never used by training (the stream uses the --seed, 0 by default)
STRUCTURED_MAX_TOKENS = 128


def answer_kind(gold: str) -> str:
    """The kind of a reading answer, for the breakdown of where reading fails."""
    if gold.isdigit():
        return "number"
    words = gold.split()
    if len(words) == 2 and gold.istitle():
        return "two-word name"
    return "one word" if len(words) == 1 else "longer phrase"


def eval_reading(
    model: bb.Model, rng: random.Random, n: int, sizes: tuple[int, ...] = (1, 2, 3)
) -> dict[str, Any]:
    hits = contains = copied_wrong = 0
    failures: list[dict[str, Any]] = []
    # [hits, count] by number of passages in the context and by kind of answer.
    groups: dict[str, list[int]] = {}
    for _ in range(n):
        docs = [passages.passage(rng) for _ in range(rng.choice(sizes))]
        target = rng.choice(docs)
        question, gold = rng.choice(target.qa)
        context = "\n\n".join(d.text for d in docs)
        messages = rag_messages(rng, context, question)
        reply = model.chat(messages, max_tokens=24, temperature=0.0).message["content"] or ""
        ok = scoring.reading_match(reply, gold)
        hits += ok
        contains += normalize(gold) in normalize(reply)
        # A wrong reply that is a span of the prompt was copied from the wrong place; any
        # other wrong reply was not copied at all (a plausible value of the right kind).
        copied_wrong += not ok and bool(normalize(reply)) and normalize(reply) in normalize(context)
        size = f"{len(docs)} passage{'s' if len(docs) > 1 else ''}"
        for group in (size, answer_kind(gold)):
            tally = groups.setdefault(group, [0, 0])
            tally[0] += ok
            tally[1] += 1
        if not ok and len(failures) < 5:
            failures.append({"question": question, "gold": gold, "reply": reply})
    return {
        "n": n,
        "exact_match": hits / n,
        "contains": contains / n,
        "wrong_but_copied": copied_wrong / n,
        "exact_match_by_group": {
            g: {"exact_match": h / c, "n": c} for g, (h, c) in sorted(groups.items())
        },
        "failures": failures,
    }


def eval_tools(
    model: bb.Model,
    rng: random.Random,
    n: int,
    draw: Callable[[random.Random], tool_cases.ToolCase] = tool_cases.tool_case,
) -> dict[str, Any]:
    """Calls for requests drawn by ``draw``, and the answer after a right call's result."""
    right = exact = answered = answer_total = 0
    failures: list[dict[str, Any]] = []
    for _ in range(n):
        case = draw(rng)
        shown = [case.tool, *tool_cases.distractors(rng, case, rng.choice((0, 1, 2, 3)))]
        rng.shuffle(shown)
        messages: list[dict[str, Any]] = []
        if rng.random() < 0.3:
            messages.append({"role": "system", "content": rng.choice(SYSTEMS)})
        messages.append({"role": "user", "content": case.request})
        reply = model.chat(messages, tools=shown, max_tokens=96, temperature=0.0)
        calls = reply.tool_calls or []
        fn = calls[0]["function"] if calls else {}
        ok = scoring.call_right(fn, case.tool)
        right += ok
        same = ok and scoring.call_exact(fn, case.name, case.arguments)
        exact += same
        if not same and len(failures) < 5:
            failures.append(
                {
                    "request": case.request,
                    "gold": case.arguments,
                    "name": case.name,
                    "got": fn or reply.message.get("content"),
                }
            )
        if ok:
            answer_total += 1
            follow = [
                *messages,
                reply.message,
                {"role": "tool", "tool_call_id": calls[0]["id"], "content": case.result},
            ]
            text = model.chat(follow, tools=shown, max_tokens=48, temperature=0.0).message
            answered += scoring.uses_result(text.get("content") or "", case.result)
    return {
        "n": n,
        "right_tool_valid_args": right / n,
        "exact_arguments": exact / n,
        "answer_uses_result": answered / max(1, answer_total),
        "failures": failures,
    }


def eval_tool_answers(model: bb.Model, rng: random.Random, n: int) -> dict[str, Any]:
    """After the gold call and its result: the final answer repeats the result's values."""
    hits = 0
    failures: list[dict[str, Any]] = []
    for i in range(n):
        draw = unicode_tool_case if i % 5 == 0 else tool_cases.tool_case
        case = draw(rng)
        for _ in range(100):  # bounded; a result like {"ok": true} has nothing to repeat
            if scoring.result_values(case.result):
                break
            case = draw(rng)
        call_id = f"call_{i:024d}"
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": case.name, "arguments": case.arguments},
        }
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": case.request},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": case.result},
        ]
        reply = model.chat(messages, tools=[case.tool], max_tokens=64, temperature=0.0)
        text = reply.message.get("content") or ""
        ok = scoring.uses_result(text, case.result)
        hits += ok
        if not ok and len(failures) < 5:
            failures.append({"request": case.request, "result": case.result, "reply": text})
    return {"n": n, "answer_uses_result": hits / n, "failures": failures}


def eval_structured(model: bb.Model, rng: random.Random, n: int, json_mode: bool) -> dict[str, Any]:
    """Free-text requests under a schema (or JSON mode), max_tokens 128."""
    hits = closed = 0
    by_kind: dict[str, list[int]] = {}
    failures: list[dict[str, Any]] = []
    for _ in range(n):
        case = structured.json_mode_case(rng) if json_mode else structured.structured_case(rng)
        reply = model.chat(
            list(case.messages),
            json_schema=case.schema,
            max_tokens=STRUCTURED_MAX_TOKENS,
            temperature=0.0,
        )
        content = reply.message.get("content") or ""
        if json_mode:
            ok = scoring.json_mode_ok(content, reply.finish_reason, case)
        else:
            ok = scoring.structured_ok(content, reply.finish_reason, case.schema)
        hits += ok
        closed += reply.finish_reason == "stop"
        kind = ("keys named" if case.keys_named else "keys not named") if json_mode else case.kind
        tally = by_kind.setdefault(kind, [0, 0])
        tally[0] += ok
        tally[1] += 1
        if not ok and len(failures) < 5:
            failures.append(
                {
                    "request": case.messages[-1]["content"],
                    "reply": content[:300],
                    "finish_reason": reply.finish_reason,
                }
            )
    return {
        "n": n,
        "ok": hits / n,
        "closed_within_128_tokens": closed / n,
        "ok_by_kind": {k: {"ok": h / c, "n": c} for k, (h, c) in sorted(by_kind.items())},
        "failures": failures,
    }


def eval_retrieval(model: bb.Model, rng: random.Random, n: int, k: int = 8) -> dict[str, Any]:
    """A question embedded against ``k`` passages: the answering one ranks first."""
    hits = 0
    failures: list[dict[str, Any]] = []
    for _ in range(n):
        case = retrieval.retrieval_case(rng, k)
        vectors = model.embed([case.question, *case.passages])
        ok = scoring.top1(vectors[0], vectors[1:], case.answer_index)
        hits += ok
        if not ok and len(failures) < 5:
            best = int(np.argmax(vectors[1:] @ vectors[0]))
            failures.append(
                {
                    "question": case.question,
                    "answer": case.passages[case.answer_index],
                    "ranked_first": case.passages[best],
                }
            )
    return {"n": n, "k": k, "top1": hits / n, "failures": failures}


def eval_plain(model: bb.Model, rng: random.Random, n: int) -> dict[str, Any]:
    """Plain prompts (no chat template): the continuation has at least one word, and (a
    stricter reading of "sensible") starts with the word the generator continues with."""
    hits = first_right = 0
    failures: list[dict[str, Any]] = []
    for _ in range(n):
        prompt, gold = plain.continuation(rng)
        text = model.generate(prompt, max_tokens=24, temperature=0.0).text
        ok = scoring.non_empty(text)
        hits += ok
        first_right += scoring.first_word_match(text, gold)
        if not ok and len(failures) < 5:
            failures.append({"prompt": prompt, "reply": text})
    return {
        "n": n,
        "non_empty": hits / n,
        "first_word_right": first_right / n,
        "failures": failures,
    }


SPOT_CHECKS = [
    (
        {
            "name": "magic_function",
            "description": "Applies a magic function to an input.",
            "parameters": {
                "type": "object",
                "properties": {"input": {"type": "integer"}},
                "required": ["input"],
            },
        },
        "What is the value of magic_function(3)? Use the tool.",
        {"input": 3},
    ),
    (
        {
            "name": "get_weather",
            "description": "Get the current weather in a given location.",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}},
                "required": ["location"],
            },
        },
        "What's the weather in SF?",
        {"location": "SF"},
    ),
]


def eval_spot_checks(model: bb.Model) -> list[dict[str, Any]]:
    out = []
    for tool, request, gold in SPOT_CHECKS:
        reply = model.chat(
            [{"role": "user", "content": request}], tools=[tool], max_tokens=64, temperature=0.0
        )
        fn = reply.tool_calls[0]["function"] if reply.tool_calls else {}
        out.append(
            {
                "request": request,
                "got": fn,
                "ok": fn.get("name") == tool["name"] and fn.get("arguments") == gold,
            }
        )
    return out


def eval_instructions(model: bb.Model, rng: random.Random, n: int) -> dict[str, Any]:
    hits = 0
    for _ in range(n):
        question, gold = instructions.instruction(rng)
        reply = model.chat([{"role": "user", "content": question}], max_tokens=48, temperature=0.0)
        hits += normalize(reply.message["content"] or "") == normalize(gold)
    return {"n": n, "exact_match": hits / n}


def perplexity(
    path: str | None, rng: random.Random, n: int, lm_head: str = "f32", **options: Any
) -> float:
    """Perplexity of held-out passages with the output head stored as ``lm_head``."""
    model = bb.load(path, lm_head=lm_head, **options)
    nll, count = 0.0, 0
    for _ in range(n):
        text = "\n\n".join(passages.passage(rng).text for _ in range(rng.randint(1, 3)))
        ids = model.tokenize(text)
        nll += float(token_losses(model.logits(ids), ids).sum())
        count += len(ids) - 1
    model.close()
    return math.exp(nll / count)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model", default=None, help="checkpoint dir or hub id (default: embedded model)"
    )
    p.add_argument("--n", type=int, default=300, help="examples per target")
    p.add_argument("--threads", type=int, default=None, help="engine threads (default: all)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args(argv)
    t0 = time.time()
    load = {"n_threads": args.threads}
    model = bb.load(args.model, **load)
    n = args.n
    results: dict[str, Any] = {"model": args.model or "embedded default", "seed": EVAL_SEED}
    # Seeds: one per target, fixed, so every model meets the same examples (the first three
    # are those of the earlier versions of this script, so their figures stay comparable).
    results["reading"] = eval_reading(model, random.Random(EVAL_SEED), n)
    results["tools"] = eval_tools(model, random.Random(EVAL_SEED + 1), n)
    results["spot_checks"] = eval_spot_checks(model)
    results["instructions"] = eval_instructions(
        model, random.Random(EVAL_SEED + 2), max(50, n // 3)
    )
    results["reading_3_passages"] = eval_reading(model, random.Random(EVAL_SEED + 4), n, (3,))
    results["tools_non_ascii"] = eval_tools(
        model, random.Random(EVAL_SEED + 5), n, unicode_tool_case
    )
    results["tools_invented_values"] = eval_tools(
        model, random.Random(EVAL_SEED + 11), n, novel_tool_case
    )
    results["tool_answers"] = eval_tool_answers(model, random.Random(EVAL_SEED + 6), n)
    results["structured"] = eval_structured(model, random.Random(EVAL_SEED + 7), n, False)
    results["json_mode"] = eval_structured(model, random.Random(EVAL_SEED + 8), n, True)
    results["retrieval"] = eval_retrieval(model, random.Random(EVAL_SEED + 9), n)
    results["plain"] = eval_plain(model, random.Random(EVAL_SEED + 10), max(50, n // 3))
    model.close()
    # The same passages with each head storage: the quality cost of the int8 and 6-bit heads
    # (the default is one of them, by CPU) and of the 4-bit head of the speed / memory presets,
    # with their top logits exact (the default) and without.
    n_ppl = max(50, n // 3)
    results["perplexity_by_head"] = {
        head: perplexity(args.model, random.Random(EVAL_SEED + 3), n_ppl, head, **load)
        for head in ("f32", "int8", "q6", "q4")
    }
    results["perplexity_by_head_exact_logits_0"] = {
        head: perplexity(
            args.model, random.Random(EVAL_SEED + 3), n_ppl, head, exact_logits=0, **load
        )
        for head in ("int8", "q6", "q4")
    }
    results["perplexity"] = results["perplexity_by_head"]["f32"]
    results["seconds"] = round(time.time() - t0, 1)
    print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0


def _pct(value: float) -> str:
    return f"{value:.1%}"


def print_table(results: dict[str, Any]) -> None:
    """The figures, with the targets of the model's next version beside them."""
    r, t, u = results["reading"], results["tools"], results["tools_non_ascii"]
    rows = [
        ("reading: exact match", _pct(r["exact_match"]), ">= 95%"),
        (
            "reading, 3-passage contexts",
            _pct(results["reading_3_passages"]["exact_match"]),
            ">= 90%",
        ),
        ("reading: answer contained", _pct(r["contains"]), ""),
        ("reading: wrong reply copied from the passages", _pct(r["wrong_but_copied"]), ""),
        *(
            (f"reading, {group}", f"{v['exact_match']:.1%} of {v['n']}", "")
            for group, v in r["exact_match_by_group"].items()
        ),
        ("tool call: right tool, valid arguments", _pct(t["right_tool_valid_args"]), ""),
        ("tool call: right tool + exact arguments", _pct(t["exact_arguments"]), ">= 97%"),
        ("tool call, non-ASCII values: exact arguments", _pct(u["exact_arguments"]), ">= 97%"),
        (
            "tool call, invented values: exact arguments",
            _pct(results["tools_invented_values"]["exact_arguments"]),
            "",
        ),
        (
            "tool answer uses the result (after the gold call)",
            _pct(results["tool_answers"]["answer_uses_result"]),
            ">= 95%",
        ),
        ("tool answer uses the result (after a right call)", _pct(t["answer_uses_result"]), ""),
        (
            "structured output: closed + schema-valid in 128 tokens",
            _pct(results["structured"]["ok"]),
            ">= 95%",
        ),
        *(
            (f"structured output, {kind}", f"{v['ok']:.1%} of {v['n']}", "")
            for kind, v in results["structured"]["ok_by_kind"].items()
        ),
        ("JSON mode: non-empty, relevant object", _pct(results["json_mode"]["ok"]), ">= 90%"),
        ("retrieval: top-1 among 8 with embed", _pct(results["retrieval"]["top1"]), ">= 90%"),
        ("plain prompt: non-empty continuation", _pct(results["plain"]["non_empty"]), ""),
        ("plain prompt: first word right", _pct(results["plain"]["first_word_right"]), ""),
        ("instructions: exact match", _pct(results["instructions"]["exact_match"]), ""),
        (
            "held-out text perplexity, f32 / int8 / q6 / q4 head",
            " / ".join(f"{v:.4f}" for v in results["perplexity_by_head"].values()),
            "f32 <= 3.49",
        ),
        (
            "the same, int8 / q6 / q4 without exact top logits",
            " / ".join(f"{v:.4f}" for v in results["perplexity_by_head_exact_logits_0"].values()),
            "",
        ),
    ]
    rows += [
        (f"spot check: {s['request']}", f"{'ok' if s['ok'] else 'FAIL'} {json.dumps(s['got'])}", "")
        for s in results["spot_checks"]
    ]
    width = max(len(a) for a, _, _ in rows)
    value_width = max(len(b) for _, b, _ in rows)
    print(f"{'metric':{width}s}  {'value':{value_width}s}  target   ({results['seconds']} s)")
    for a, b, c in rows:
        print(f"{a:{width}s}  {b:{value_width}s}  {c}")


if __name__ == "__main__":
    sys.exit(main())
