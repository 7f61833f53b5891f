"""What asking for token log-probabilities costs, on a model of the BitNet b1.58 2B-4T shape.

    python benchmarks/logprobs.py [--threads N] [--rounds 3] [--tokens 64] [--quick]

Two measurements:

* ``token_logprob``: the per-token work alone (log-softmax over the vocabulary and the top-N
  alternatives), on random float32 logits of the 2B-4T vocabulary (128256), in microseconds;
* decode speed through the public API (``Model.generate``, greedy) with ``logprobs`` None, 0
  and 20, alternating in each round on the random 2B-4T-shaped checkpoint (written once to
  benchmarks/.cache/model-2b-4t, as constrained.py does). "ratio" is the median over rounds
  of (with logprobs / without) tokens per second of the runs of one round.

``--quick`` is a smoke run on a tiny generated checkpoint (its figures mean nothing). Run it on
an otherwise idle machine. It is a benchmark: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from constrained import CACHE, ensure_model

import bitnet_backend as bb
from bitnet_backend.logprobs import token_logprob

PROMPT = "The history of the city begins with a small settlement by the river, where"
VOCAB_2B_4T = 128256
SETTINGS: dict[str, int | None] = {"off": None, "0": 0, "20": 20}


def per_token_cost(vocab: int, repeats: int) -> dict[str, float]:
    """Microseconds per ``token_logprob`` call for each number of alternatives."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal(vocab).astype(np.float32) * 4
    table = [b"x"] * vocab
    out = {}
    for top in (0, 5, 20):
        t0 = time.perf_counter()
        for _ in range(repeats):
            token_logprob(logits, 7, top, table)
        out[f"top {top}"] = (time.perf_counter() - t0) / repeats * 1e6
    return out


def decode_speed(model: bb.Model, tokens: int, logprobs: int | None) -> float:
    """Generated tokens per second of one greedy request (prompt evaluation included)."""
    t0 = time.perf_counter()
    out = model.generate(PROMPT, max_tokens=tokens, temperature=0, logprobs=logprobs)
    return len(out.token_ids) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="smoke run on a tiny checkpoint")
    args = ap.parse_args()

    repeats = 20 if args.quick else 200
    print("token_logprob over 128256 logits (us per token):")
    for name, us in per_token_cost(VOCAB_2B_4T, repeats).items():
        print(f"  {name:>7}: {us:9.1f}")

    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:
            from bitnet_backend.testing import write_checkpoint

            path = write_checkpoint(Path(tmp) / "tiny")
            args.rounds, args.tokens = 1, 8
        else:
            path = ensure_model(CACHE / "model-2b-4t")
        with bb.load(path, n_threads=args.threads) as model:
            decode_speed(model, 2, None)  # warm-up: page in the weights
            speeds: dict[str, list[float]] = {name: [] for name in SETTINGS}
            for _ in range(args.rounds):
                for name, n in SETTINGS.items():
                    speeds[name].append(decode_speed(model, args.tokens, n))
    print(f"greedy decode, {args.tokens} tokens, {args.threads} threads, {args.rounds} rounds:")
    for name, values in speeds.items():
        ratios = [v / off for v, off in zip(values, speeds["off"], strict=True)]
        print(
            f"  logprobs {name:>3}: {statistics.median(values):8.2f} tok/s"
            f"  ratio {statistics.median(ratios):.3f}"
        )


if __name__ == "__main__":
    sys.exit(main())
