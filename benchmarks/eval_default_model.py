"""Evaluate a model (by default the embedded one) on held-out generated tasks.

    python benchmarks/eval_default_model.py [--model DIR] [--n 300] [--json out.json]

Everything runs through the public API (``Model.chat`` with the model's chat template and
the tool protocol, greedy decoding), on examples drawn with a seed the training stream never
uses:

- reading: a question about one of 1-3 passages, in the prompt styles of RAG chains;
  exact match of the reply (case, surrounding space, quotes and a final period ignored);
- tool call: 1-4 tools in the prompt, tool_choice "auto"; right tool with arguments valid
  for its schema, and (stricter) arguments equal to the ones the request implies;
- tool answer: the reply after the tool's result contains the result;
- instructions: short-answer exact match;
- perplexity of held-out passages (exact f32 head; also with the int8, 6-bit and 4-bit heads,
  with and without their top logits recomputed exactly).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

from copy_probe import token_losses  # this script's own folder, first on sys.path

import bitnet_backend as bb
from bitnet_backend.training import instructions, passages, tools
from bitnet_backend.training.dataset import SYSTEMS, rag_messages

EVAL_SEED = 20261123  # never used by training (the stream uses the --seed, 0 by default)


def normalize(text: str) -> str:
    t = text.strip().strip("\"'").strip().rstrip(".").strip().lower()
    return re.sub(r"\s+", " ", t)


def answer_kind(gold: str) -> str:
    """The kind of a reading answer, for the breakdown of where reading fails."""
    if gold.isdigit():
        return "number"
    words = gold.split()
    if len(words) == 2 and gold.istitle():
        return "two-word name"
    return "one word" if len(words) == 1 else "longer phrase"


def eval_reading(model: bb.Model, rng: random.Random, n: int) -> dict[str, Any]:
    hits = contains = copied_wrong = 0
    failures: list[dict[str, Any]] = []
    # [hits, count] by number of passages in the context and by kind of answer.
    groups: dict[str, list[int]] = {}
    for _ in range(n):
        docs = [passages.passage(rng) for _ in range(rng.choice((1, 2, 3)))]
        target = rng.choice(docs)
        question, gold = rng.choice(target.qa)
        context = "\n\n".join(d.text for d in docs)
        messages = rag_messages(rng, context, question)
        reply = model.chat(messages, max_tokens=24, temperature=0.0).message["content"] or ""
        ok = normalize(reply) == normalize(gold)
        hits += ok
        contains += normalize(gold) in normalize(reply)
        # A wrong reply that is a span of the prompt was copied from the wrong place; any
        # other wrong reply was not copied at all (a plausible value of the right kind).
        copied_wrong += not ok and normalize(reply) in normalize(context)
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


def _valid(args: Any, schema: dict[str, Any]) -> bool:
    import jsonschema

    try:
        jsonschema.validate(args, schema)
    except jsonschema.ValidationError:
        return False
    return True


def eval_tools(model: bb.Model, rng: random.Random, n: int) -> dict[str, Any]:
    right = exact = answered = answer_total = 0
    failures: list[dict[str, Any]] = []
    for _ in range(n):
        case = tools.tool_case(rng)
        shown = [case.tool, *tools.distractors(rng, case, rng.choice((0, 1, 2, 3)))]
        rng.shuffle(shown)
        messages: list[dict[str, Any]] = []
        if rng.random() < 0.3:
            messages.append({"role": "system", "content": rng.choice(SYSTEMS)})
        messages.append({"role": "user", "content": case.request})
        reply = model.chat(messages, tools=shown, max_tokens=96, temperature=0.0)
        calls = reply.tool_calls or []
        fn = calls[0]["function"] if calls else {}
        ok = fn.get("name") == case.name and _valid(fn.get("arguments"), case.tool["parameters"])
        right += ok
        same = ok and fn.get("arguments") == case.arguments
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
            call = calls[0]
            follow = [
                *messages,
                reply.message,
                {"role": "tool", "tool_call_id": call["id"], "content": case.result},
            ]
            text = (
                model.chat(follow, tools=shown, max_tokens=48, temperature=0.0).message.get(
                    "content"
                )
                or ""
            )
            key = case.result
            if key.startswith("{"):
                key = str(
                    next(iter(v for v in json.loads(key).values() if not isinstance(v, bool)), key)
                )
            answered += normalize(key) in normalize(text)
    return {
        "n": n,
        "right_tool_valid_args": right / n,
        "exact_arguments": exact / n,
        "answer_uses_result": answered / max(1, answer_total),
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
    p.add_argument("--n", type=int, default=300, help="examples per task")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args(argv)
    t0 = time.time()
    model = bb.load(args.model)
    results: dict[str, Any] = {"model": args.model or "embedded default", "seed": EVAL_SEED}
    results["reading"] = eval_reading(model, random.Random(EVAL_SEED), args.n)
    results["tools"] = eval_tools(model, random.Random(EVAL_SEED + 1), args.n)
    results["spot_checks"] = eval_spot_checks(model)
    results["instructions"] = eval_instructions(
        model, random.Random(EVAL_SEED + 2), max(50, args.n // 3)
    )
    model.close()
    # The same passages with each head storage: the quality cost of the int8 and 6-bit heads
    # (the default is one of them, by CPU) and of the 4-bit head of the speed / memory presets,
    # with their top logits exact (the default) and without.
    n_ppl = max(50, args.n // 3)
    results["perplexity_by_head"] = {
        head: perplexity(args.model, random.Random(EVAL_SEED + 3), n_ppl, head)
        for head in ("f32", "int8", "q6", "q4")
    }
    results["perplexity_by_head_exact_logits_0"] = {
        head: perplexity(args.model, random.Random(EVAL_SEED + 3), n_ppl, head, exact_logits=0)
        for head in ("int8", "q6", "q4")
    }
    results["perplexity"] = results["perplexity_by_head"]["f32"]
    results["seconds"] = round(time.time() - t0, 1)
    r, t = results["reading"], results["tools"]
    rows = [
        ("reading: exact match", f"{r['exact_match']:.1%}"),
        ("reading: answer contained", f"{r['contains']:.1%}"),
        ("reading: wrong reply copied from the passages", f"{r['wrong_but_copied']:.1%}"),
        *(
            (f"reading, {group}", f"{v['exact_match']:.1%} of {v['n']}")
            for group, v in r["exact_match_by_group"].items()
        ),
        ("tool call: right tool, valid arguments", f"{t['right_tool_valid_args']:.1%}"),
        ("tool call: exact arguments", f"{t['exact_arguments']:.1%}"),
        ("tool answer uses the result", f"{t['answer_uses_result']:.1%}"),
        ("instructions: exact match", f"{results['instructions']['exact_match']:.1%}"),
        (
            "held-out text perplexity, f32 / int8 / q6 / q4 head",
            " / ".join(f"{v:.4f}" for v in results["perplexity_by_head"].values()),
        ),
        (
            "the same, int8 / q6 / q4 without exact top logits",
            " / ".join(f"{v:.4f}" for v in results["perplexity_by_head_exact_logits_0"].values()),
        ),
    ]
    rows += [
        (f"spot check: {s['request']}", f"{'ok' if s['ok'] else 'FAIL'} {json.dumps(s['got'])}")
        for s in results["spot_checks"]
    ]
    width = max(len(a) for a, _ in rows)
    print(f"{'metric':{width}s}  value   (n={args.n}, {results['seconds']} s)")
    for a, b in rows:
        print(f"{a:{width}s}  {b}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
