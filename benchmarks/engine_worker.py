"""One measurement of this engine in a fresh process (so its peak RSS is its own).

    python benchmarks/engine_worker.py CHECKPOINT --threads N --options '{"lm_head": "q4"}'
        [--prompts 128,512] [--n-gen 64] [--depth 128] [--adaptive] [--min-time S]

Prints one JSON object: load_s, pp<N> and tg<N> in tokens/s, and the engine's info. The
timed parts mirror llama-bench: a warm-up pass, then each prompt size evaluated from an empty
KV cache, then n_gen single-token decode steps after a depth-token prompt. Prompt tokens are
random ids, as llama-bench's are. ``--adaptive`` lets the thread team shrink while other
programs take the cores, as ``bb.load()`` does for its default thread count; the pool's
counters (``thread_stats``) are part of the result. ``--min-time S`` repeats each timed part
(the prompt, or the depth prompt and its n_gen steps, of which only the steps are timed) until
it has run S seconds, and reports tokens over the total time: a small model's single prompt
lasts a few milliseconds, less than a scheduler time slice, while its real use (a chat, a
batch of requests) is many such calls in one process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run(
    checkpoint: Path,
    threads: int,
    options: dict[str, Any],
    prompts: list[int],
    n_gen: int,
    depth: int,
    seed: int = 0,
    adaptive: bool = False,
    min_time: float = 0.0,
) -> dict[str, Any]:
    """Load, warm up, and time prefill and decode; see the module docstring."""
    from bitnet_backend.backends.cpu import BACKEND
    from bitnet_backend.checkpoints.hf import load_checkpoint
    from bitnet_backend.sampling import SamplingParams
    from bitnet_backend.threads import adapt_to_busy_cores

    t0 = time.perf_counter()
    ckpt = load_checkpoint(checkpoint)
    eng = BACKEND.load(ckpt, n_threads=threads, **options)
    if adaptive:
        adapt_to_busy_cores(eng)
    load_s = time.perf_counter() - t0

    vocab = ckpt.config.vocab_size
    rng = np.random.default_rng(seed)
    longest = max([*prompts, depth])
    ids = [int(t) for t in rng.integers(0, vocab, longest)]
    n_ctx = max([*prompts, depth + n_gen]) + 1
    greedy = SamplingParams(temperature=0)
    out: dict[str, Any] = {"load_s": load_s, "info": dict(eng.info)}

    s = eng.new_session(n_ctx)
    # Warm-up: fault in the session's buffers and spin up the thread pool.
    s.eval(ids[: min(longest, 64)])
    s.sample(greedy)
    s.eval([ids[0]])
    s.truncate(0)

    for n in prompts:
        tokens, seconds = 0, 0.0
        while tokens == 0 or seconds < min_time:
            t = time.perf_counter()
            s.eval(ids[:n])
            seconds += time.perf_counter() - t
            tokens += n
            s.truncate(0)
        out[f"pp{n}"] = tokens / seconds

    if n_gen > 0:
        tokens, seconds = 0, 0.0
        while tokens == 0 or seconds < min_time:
            s.eval(ids[:depth])
            tok = s.sample(greedy)
            t = time.perf_counter()
            for _ in range(n_gen):
                s.eval([tok])
                tok = s.sample(greedy)
            seconds += time.perf_counter() - t
            tokens += n_gen
            s.truncate(0)
        out[f"tg{n_gen}"] = tokens / seconds
    out["vm_hwm_kib"] = _vm_hwm_kib()
    out["thread_stats"] = eng.thread_stats()
    s.close()
    eng.close()
    ckpt.close()
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line entry; prints the JSON result."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--options", default="{}", help="backend load options as JSON")
    p.add_argument("--prompts", default="128,512")
    p.add_argument("--n-gen", type=int, default=64)
    p.add_argument("--depth", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--adaptive", action="store_true", help="as bb.load()'s default threads")
    p.add_argument(
        "--min-time", type=float, default=0.0, help="repeat each timed part for S seconds"
    )
    args = p.parse_args(argv)
    prompts = [int(x) for x in args.prompts.split(",") if x]
    res = run(
        args.checkpoint,
        args.threads,
        json.loads(args.options),
        prompts,
        args.n_gen,
        args.depth,
        args.seed,
        args.adaptive,
        args.min_time,
    )
    json.dump(res, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
