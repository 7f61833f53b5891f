"""How well a model copies from its context: held-out passages written twice.

    python benchmarks/copy_probe.py [--model DIR] [--n 8] [--json out.json]

A model that copies predicts the second copy of a passage almost for free; one that does not
pays as much for it as for the first. Prints the mean loss (nats per token, exact f32 head)
of each copy and the greedy next-token accuracy on the second.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

import bitnet_backend as bb
from bitnet_backend.training import passages

PROBE_SEED = 777  # not a seed the training stream uses


def token_losses(logits: np.ndarray, ids: list[int]) -> np.ndarray:
    """Loss of predicting ids[1:] from ``logits`` (one row per position), one value per token."""
    logits = logits.astype(np.float64)
    top = logits.max(-1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(-1))
    picked = logits[np.arange(len(ids) - 1), ids[1:]]
    return np.asarray(log_z[:-1] - picked)


def probe(model: bb.Model, n: int) -> dict[str, float]:
    rng = random.Random(PROBE_SEED)
    first, second, hits = [], [], []
    for _ in range(n):
        text = passages.passage(rng).text
        a = model.tokenizer.encode(text, add_special=True)
        b = model.tokenizer.encode("\n\n" + text, add_special=False)
        ids = a + b
        logits = model.logits(ids)
        loss = token_losses(logits, ids)
        # Skip the separator: the second copy starts two tokens after the first ends.
        first.append(loss[: len(a) - 1].mean())
        second.append(loss[len(a) + 1 :].mean())
        guess = logits.argmax(-1)[len(a) + 1 : -1]
        hits.append(float((guess == np.array(ids[len(a) + 2 :])).mean()))
    return {
        "first_copy_loss": float(np.mean(first)),
        "second_copy_loss": float(np.mean(second)),
        "second_copy_top1": float(np.mean(hits)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default=None, help="checkpoint dir or hub id (default: embedded)")
    p.add_argument("--n", type=int, default=8, help="passages")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args(argv)
    with bb.load(args.model, lm_head="f32") as model:
        result = probe(model, args.n)
    for k, v in result.items():
        print(f"{k:18s} {v:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model or "embedded default", **result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
