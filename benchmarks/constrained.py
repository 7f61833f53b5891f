"""Decode speed with and without a JSON schema on a model of the BitNet b1.58 2B-4T shape.

    python benchmarks/constrained.py [--threads N] [--rounds 3] [--tokens 128] [--quick]

Measures generated tokens per second through the public API (``Model.generate``), alternating
unconstrained and constrained runs, on the random 2B-4T-shaped checkpoint (written once to
benchmarks/.cache/model-2b-4t by ``python -m bitnet_backend.testing --shape 2b-4t``), with two
tokenizers:

* ``test-512``: the checkpoint's own small test tokenizer (512 tokens; the other 127744 ids
  of the 128256-row head exist but are never allowed by a schema);
* ``bpe-128k``: a byte-level BPE tokenizer of 128256 tokens (128000 trained on a generated
  corpus of pseudo-words, numbers and JSON, plus 256 llama-3-style special tokens), written
  once to benchmarks/.cache/constrained/ next to the same weights. The token mask is
  computed over the whole vocabulary, as with the real 2B-4T tokenizer.

Decode speed is (generated tokens - 1) / (time of the request - time of the same request
with max_tokens=1): the prompt evaluation and the first token are left out. The schema asks
for a long array of records with short strings, so the constrained runs generate as many
tokens as the unconstrained ones and go through every kind of grammar state. "paired ratio"
is the median over rounds of (schema / no schema) for the two back-to-back runs of a round.
The grammar column is the llguidance time per token (mask + consume), replayed over the
constrained output without the model. Prints a table; writes
benchmarks/results/constrained.json. Run it on an otherwise idle machine. It is a benchmark:
nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
RESULTS = HERE / "results"
PROMPT = "Here is the list of the members of the club, as JSON:\n"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "members": {
            "type": "array",
            "minItems": 200,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 16},
                    "age": {"type": "integer", "minimum": 0},
                    "active": {"type": "boolean"},
                    "role": {"enum": ["chair", "treasurer", "member"]},
                    "tags": {
                        "type": "array",
                        "items": {"type": "string", "maxLength": 10},
                        "maxItems": 3,
                    },
                },
                "required": ["name", "age", "active", "role", "tags"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["members"],
    "additionalProperties": False,
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_model(path: Path) -> Path:
    """The random 2B-4T-shaped checkpoint, written once by bitnet_backend.testing."""
    done = path / ".complete"
    if done.exists():
        return path
    log(f"writing a random 2B-4T-shaped checkpoint to {path} (once)")
    cmd = [sys.executable, "-m", "bitnet_backend.testing", "--shape", "2b-4t", str(path)]
    subprocess.run(cmd, check=True)
    done.write_text("ok\n")
    return path


def _pseudo_corpus(seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    onsets = ["", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s"]
    onsets += ["t", "v", "w", "z", "st", "tr", "ch", "sh", "br", "pl", "gr", "th"]
    nuclei = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "io", "y"]
    codas = ["", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck", "x", "th"]

    def word() -> str:
        n = rng.choice((1, 1, 2, 2, 2, 3, 3, 4))
        return "".join(
            rng.choice(onsets) + rng.choice(nuclei) + rng.choice(codas) for _ in range(n)
        )

    words = sorted({word() for _ in range(400_000)})
    lines = []
    for _ in range(60_000):
        ws = [rng.choice(words) for _ in range(rng.randint(4, 14))]
        ws = [w.capitalize() if rng.random() < 0.1 else w for w in ws]
        line = " ".join(ws)
        r = rng.random()
        if r < 0.2:
            line += f" {rng.randint(0, 99_999)}."
        elif r < 0.3:
            line = json.dumps({ws[0]: ws[1:3], "n": rng.randint(0, 999), "ok": r < 0.25})
        lines.append(line)
    return lines


def ensure_large_vocab_model(base: Path) -> Path:
    """``base``'s weights with a trained 128256-token byte-level BPE tokenizer (once)."""
    out = CACHE / "constrained" / "model-2b-4t-bpe128k"
    done = out / ".complete"
    if done.exists():
        return out
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    from bitnet_backend.testing import _SPLIT_PATTERN, BOS, CHAT_TEMPLATE, EOS, EOT

    log(f"training a 128k-token BPE tokenizer into {out} (once, ~20 s)")
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=128_000,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_pseudo_corpus(), trainer)
    if tok.get_vocab_size() != 128_000:
        raise SystemExit(f"the BPE trainer made {tok.get_vocab_size()} tokens, not 128000")
    # llama-3's layout: ids 128000.. are special, the ones the test tokenizer knows first.
    specials = [BOS, EOS] + [f"<|reserved_special_token_{i}|>" for i in range(253)] + [EOT]
    tok.add_special_tokens(specials)
    tok.save(str(out / "tokenizer.json"))
    ids = {s: tok.token_to_id(s) for s in (BOS, EOS, EOT)}
    config = json.loads((base / "config.json").read_text())
    config.update(bos_token_id=ids[BOS], eos_token_id=ids[EOT])
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    gen = json.loads((base / "generation_config.json").read_text())
    gen.update(bos_token_id=ids[BOS], eos_token_id=[ids[EOS], ids[EOT]])
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    tok_cfg = {
        "bos_token": BOS,
        "eos_token": EOT,
        "chat_template": CHAT_TEMPLATE,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2) + "\n")
    for f in base.glob("*.safetensors*"):
        link = out / f.name
        if not link.exists():
            link.symlink_to(f.resolve())
    done.write_text("ok\n")
    return out


def timed_run(model: Any, schema: Any, n_tokens: int, seed: int) -> dict[str, Any]:
    """One measurement: decode tok/s, tokens, finish reason.

    Chunks carry text, not single tokens (ids the tokenizer does not know have no text), so
    the first token's time is not observable inside one stream; instead the same request is
    timed with max_tokens=1 (prompt + first token) and with n_tokens, and the difference is
    the decode time of the other tokens.
    """

    def timed(max_tokens: int) -> tuple[float, Any]:
        t0 = time.perf_counter()
        out = model.generate(
            PROMPT, max_tokens=max_tokens, temperature=0.7, seed=seed, json_schema=schema
        )
        return time.perf_counter() - t0, out

    t_first, _ = timed(1)
    t_all, out = timed(n_tokens)
    n = len(out.token_ids)
    return {
        "tokens": n,
        "finish_reason": out.finish_reason,
        "first_token_s": t_first,
        "decode_tok_s": (n - 1) / (t_all - t_first) if n > 1 else 0.0,
        "ids": out.token_ids,
    }


def grammar_cost(model: Any, schema: Any, ids: list[int]) -> float:
    """llguidance seconds per token (mask + consume) replaying ``ids``, without the model."""
    from bitnet_backend.constraints import compiler_for

    compiler = compiler_for(model.tokenizer, model.eos_token_ids, model.vocab_size)
    grammar = compiler.json_schema(schema)
    best = float("inf")
    for _ in range(3):
        state = grammar.start()
        t0 = time.perf_counter()
        for t in ids:
            state.mask()
            state.consume(t)
        best = min(best, (time.perf_counter() - t0) / max(1, len(ids)))
    return best


def measure(path: Path, label: str, args: argparse.Namespace) -> dict[str, Any]:
    import bitnet_backend as bb

    log(f"[{label}] loading {path}")
    with bb.load(path, backend="cpu", n_threads=args.threads, cache_prompt=False) as model:
        timed_run(model, None, 4, 0)  # warm-up: page in the weights
        timed_run(model, SCHEMA, 4, 0)  # and build the tokenizer's grammar tables
        runs: dict[str, list[dict[str, Any]]] = {"none": [], "schema": []}
        for r in range(args.rounds):
            order = ("none", "schema") if r % 2 == 0 else ("schema", "none")
            for kind in order:
                res = timed_run(model, SCHEMA if kind == "schema" else None, args.tokens, 100 + r)
                log(
                    f"[{label}] round {r} {kind:6s}: {res['decode_tok_s']:.2f} tok/s "
                    f"({res['tokens']} tokens, {res['finish_reason']})"
                )
                runs[kind].append(res)
        grammar_s = grammar_cost(model, SCHEMA, runs["schema"][-1]["ids"])
        from bitnet_backend.constraints import compiler_for

        compiler = compiler_for(model.tokenizer, model.eos_token_ids, model.vocab_size)
        vocab = compiler.ll_tokenizer.vocab_size  # the tokenizer's own tokens
        sample_text = model.detokenize(runs["schema"][-1]["ids"])[:160]
    base = statistics.median(x["decode_tok_s"] for x in runs["none"])
    cons = statistics.median(x["decode_tok_s"] for x in runs["schema"])
    # Each round's two runs are back to back: their ratio is less exposed to slow drifts in
    # machine load than the ratio of the medians.
    paired = statistics.median(
        c["decode_tok_s"] / u["decode_tok_s"]
        for c, u in zip(runs["schema"], runs["none"], strict=True)
    )
    for rs in runs.values():
        for x in rs:
            del x["ids"]
    return {
        "tokenizer": label,
        "tokenizer_vocab": vocab,
        "unconstrained_tok_s": base,
        "constrained_tok_s": cons,
        "ratio": cons / base if base else 0.0,
        "paired_ratio": paired,
        "grammar_us_per_token": grammar_s * 1e6,
        "constrained_sample": sample_text,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--quick", action="store_true", help="1 round of 16 tokens")
    p.add_argument("--checkpoint", type=Path, default=None, help="an existing 2B-4T-shaped dir")
    p.add_argument("--out", type=Path, default=RESULTS / "constrained.json")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.tokens = 1, 16
    base = args.checkpoint or ensure_model(CACHE / "model-2b-4t")
    large = ensure_large_vocab_model(base)
    rows = [measure(base, "test-512", args), measure(large, "bpe-128k", args)]

    print(
        f"\nDecode speed, 2B-4T shape, {args.threads} threads, {args.tokens} tokens, "
        f"median of {args.rounds}\n"
    )
    print(
        "| tokenizer | vocab | no schema tok/s | schema tok/s | ratio | paired ratio "
        "| grammar µs/token |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['tokenizer']} | {r['tokenizer_vocab']} | {r['unconstrained_tok_s']:.2f} | "
            f"{r['constrained_tok_s']:.2f} | {r['ratio'] * 100:.1f}% | "
            f"{r['paired_ratio'] * 100:.1f}% | {r['grammar_us_per_token']:.0f} |"
        )
    import llguidance

    out = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "tokens": args.tokens,
        "rounds": args.rounds,
        "llguidance": llguidance.__version__,
        "schema": SCHEMA,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
