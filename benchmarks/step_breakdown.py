"""Where the time of a batched decode step goes: the whole step against its kernels alone.

    python benchmarks/step_breakdown.py [--shape 2b-4t] [--threads 2] [--rows 1,8]
        [--context 128] [--reps 20] [--checkpoint DIR]

In one process, interleaved round by round (so a busy machine shifts every figure alike):

* step: one eval_batch of one new token for each of R sessions that already hold --context
  tokens (a decode step of R streams), on the model of --shape (median over --reps);
* the kernels of that step alone, through bitnet_backend._engine.testing: the ternary GEMM
  of each linear of a layer at R rows (times the number of layers) and the output head at R
  rows, on random data of the model's shapes and the model's head kind.

The kernel benches reuse one matrix per linear, which stays partly in the CPU caches, so at
one row (memory-bound) they understate the step's GEMM time; at 8 rows the GEMM is bound by
arithmetic and the figures add up. "other" is the step minus the kernels: attention,
norms, activation quantization, the exact top logits, thread-pool hand-offs. Read the
ratios; absolute figures need an idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import batched_engine  # noqa: E402
import bench  # noqa: E402


def linear_shapes(cfg: Any) -> dict[str, tuple[int, int]]:
    """(rows, cols) of the fused linears of one layer, as the engine stores them."""
    h, i = cfg.hidden_size, cfg.intermediate_size
    q = cfg.num_attention_heads * cfg.head_dim
    kv = cfg.num_key_value_heads * cfg.head_dim
    return {"qkv": (q + 2 * kv, h), "o": (h, q), "gate_up": (2 * i, h), "down": (h, i)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shape", default="2b-4t")
    p.add_argument("--checkpoint", type=Path)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rows", default="1,8", help="sequences per step, comma-separated")
    p.add_argument("--context", type=int, default=128, help="tokens each sequence holds")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)

    from bitnet_backend import _engine  # type: ignore[attr-defined]
    from bitnet_backend.backends.cpu import BACKEND
    from bitnet_backend.checkpoints.hf import load_checkpoint

    hooks = _engine.testing
    path = args.checkpoint or batched_engine.ensure_checkpoint(args.shape)
    engine = BACKEND.load(load_checkpoint(path), n_threads=args.threads)
    cfg, info = engine.config, engine.info
    isa = info["isa"]
    head = _engine.HeadKind.__members__[info["lm_head"]]
    rows = [int(r) for r in args.rows.split(",") if r]
    sessions = {
        r: [engine.new_session(args.context + args.reps + 4) for _ in range(r)] for r in rows
    }
    for group in sessions.values():
        for i, s in enumerate(group):
            s.eval([(7 * i + j) % cfg.vocab_size for j in range(args.context)])

    shapes = linear_shapes(cfg)
    times: dict[int, dict[str, list[float]]] = {r: {} for r in rows}
    for rep in range(args.reps):
        for r in rows:
            t = time.perf_counter()
            engine.eval_batch(
                [(s, [(rep * 31 + i) % cfg.vocab_size]) for i, s in enumerate(sessions[r])]
            )
            times[r].setdefault("step", []).append(time.perf_counter() - t)
            if rep % 5 == 0:  # the kernel figures vary less: a few rounds suffice
                for name, (n_out, n_in) in shapes.items():
                    sec = hooks.kernel_bench(isa, n_out, n_in, r, 3, args.threads)
                    times[r].setdefault(name, []).append(sec * cfg.num_hidden_layers)
                sec = hooks.kernel_head_bench(
                    isa, head, cfg.vocab_size, cfg.hidden_size, 2, args.threads, r
                )
                times[r].setdefault("head", []).append(sec)
        bench.log(f"round {rep + 1}/{args.reps}")

    parts = [*shapes, "head"]
    result: dict[str, Any] = {
        "machine": bench.machine(),
        "args": vars(args) | {"checkpoint": str(path)},
    }
    result["engine"] = info
    print(
        f"\n{result['machine']['cpu']}, {args.threads} thread(s), {args.context} tokens of context"
    )
    print("| rows | step ms | " + " | ".join(f"{n} ms" for n in parts) + " | other ms |")
    print("|---" * (len(parts) + 3) + "|")
    for r in rows:
        med = {k: 1e3 * statistics.median(v) for k, v in times[r].items()}
        other = med["step"] - sum(med[n] for n in parts)
        print(
            f"| {r} | {med['step']:.1f} | "
            + " | ".join(f"{med[n]:.1f}" for n in parts)
            + f" | {other:.1f} |"
        )
        result[f"rows_{r}"] = med | {"other": other}
    if len(rows) > 1:
        lo, hi = rows[0], rows[-1]
        ratio = result[f"rows_{hi}"]["step"] / result[f"rows_{lo}"]["step"]
        print(f"\nstep at {hi} rows / step at {lo} rows: {ratio:.2f}")
    out = args.out or bench.RESULTS / f"step-breakdown-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    bench.log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
