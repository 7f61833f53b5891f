"""Prompt chunk size: how long new prompts hold up a running stream, and how long they wait.

    python benchmarks/prompt_chunks.py [--chunks 16,32,64] [--rounds 2] [--threads 2]
        [--joiners 7] [--prompt-tokens 128] [--shape 2b-4t] [--checkpoint DIR]

The arrivals a server sees: one stream is decoding when --joiners more requests arrive
together (0.3 s after its first token). While their prompts are prefilled, every step carries
the running stream's next token and a chunk of at most ``scheduler.PREFILL_CHUNK`` prompt
tokens; this script sets that constant to each of --chunks in turn (in the same process, one
model). Per chunk size (median over rounds): the running stream's longest and median gap
between tokens while the joiners are admitted, its median gap alone before they come, and the
joiners' time to first token (median and worst).

Model: the random checkpoint of ``concurrent_streams.py`` (--shape, written once under
benchmarks/.cache) unless --checkpoint names one. Prints a table; writes
benchmarks/results/prompt-chunks-<time>.json. A benchmark: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402
from concurrent_streams import ensure_model, log  # noqa: E402


def one_round(model: Any, prompts: list[list[int]]) -> dict[str, float]:
    """The running stream, then the joiners at once; the measures of this arrival pattern."""
    arrivals: list[list[float]] = [[] for _ in prompts]
    starts = [0.0] * len(prompts)
    decoding = threading.Event()

    def stream(i: int, max_tokens: int) -> None:
        starts[i] = time.perf_counter()
        for _ in model.stream(prompts[i], max_tokens=max_tokens, temperature=0.0):
            arrivals[i].append(time.perf_counter())
            decoding.set()

    first = threading.Thread(target=stream, args=(0, 64))
    first.start()
    decoding.wait()
    time.sleep(0.3)
    joined = time.perf_counter()
    joiners = [threading.Thread(target=stream, args=(i, 4)) for i in range(1, len(prompts))]
    for t in joiners:
        t.start()
    for t in [first, *joiners]:
        t.join()
    admitted = max(a[0] for a in arrivals[1:])
    own = arrivals[0]
    gaps = [(b - a, b) for a, b in itertools.pairwise(own)]
    during = [g for g, at in gaps if joined < at <= admitted] or [0.0]
    before = [g for g, at in gaps if at <= joined] or [0.0]
    ttft = [arrivals[i][0] - starts[i] for i in range(1, len(prompts))]
    return {
        "gap_max_during_s": max(during),
        "gap_median_during_s": statistics.median(during),
        "gap_median_before_s": statistics.median(before),
        "ttft_median_s": statistics.median(ttft),
        "ttft_max_s": max(ttft),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--chunks", default="16,32,64", help="prompt chunk sizes to compare")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--joiners", type=int, default=7, help="requests that arrive together")
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--shape", default="2b-4t")
    p.add_argument("--checkpoint", type=Path, help="an existing checkpoint directory")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)

    import bitnet_backend as bb
    from bitnet_backend import scheduler

    chunks = [int(c) for c in args.chunks.split(",")]
    path = args.checkpoint or ensure_model(args.shape)
    model = bb.load(path, n_threads=args.threads, max_batch=args.joiners + 1, cache_prompt=False)
    rng = random.Random(0)
    prompts = [
        [rng.randrange(model.vocab_size) for _ in range(args.prompt_tokens)]
        for _ in range(args.joiners + 1)
    ]
    shipped = scheduler.PREFILL_CHUNK
    runs: list[dict[str, Any]] = []
    with model:
        model.generate([1, 2, 3], max_tokens=2)  # warm-up: page the weights in
        try:
            for r in range(args.rounds):
                for chunk in chunks:  # interleaved, so that the ratios hold on a noisy machine
                    scheduler.PREFILL_CHUNK = chunk
                    log(f"round {r}, chunk {chunk} ...")
                    runs.append({"round": r, "chunk": chunk, **one_round(model, prompts)})
        finally:
            scheduler.PREFILL_CHUNK = shipped
    machine = bench.machine()
    print(
        f"\n{machine['cpu']}, {machine['cores']} cores, {args.threads} thread(s); one stream "
        f"decoding, {args.joiners} x {args.prompt_tokens}-token prompts join; shipped chunk "
        f"{shipped}\n"
    )
    print(
        "| chunk | gap alone ms | gap while joining: median / max ms | max / alone "
        "| joiners' TTFT median / max s |"
    )
    print("|---|---|---|---|---|")
    for chunk in chunks:
        mine = [r for r in runs if r["chunk"] == chunk]

        def med(key: str, rows: list[dict[str, Any]] = mine) -> float:
            return statistics.median(r[key] for r in rows)

        alone = med("gap_median_before_s")
        print(
            f"| {chunk} | {alone * 1e3:.0f} | {med('gap_median_during_s') * 1e3:.0f} / "
            f"{med('gap_max_during_s') * 1e3:.0f} | {med('gap_max_during_s') / alone:.1f}x "
            f"| {med('ttft_median_s'):.2f} / {med('ttft_max_s'):.2f} |"
        )
    bench.RESULTS.mkdir(exist_ok=True)
    out = args.out or bench.RESULTS / f"prompt-chunks-{time.strftime('%Y%m%d-%H%M%S')}.json"
    result = {
        "machine": machine,
        "args": {k: str(v) for k, v in vars(args).items()},
        "shipped_chunk": shipped,
        "runs": runs,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
