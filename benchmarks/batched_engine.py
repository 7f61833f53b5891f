"""Batched decode of the engine: aggregate tokens/s with B sequences sharing every step.

    python benchmarks/batched_engine.py [--shape 2b-4t|small] [--threads 2]
        [--batches 1,2,4,8,16] [--prompt 128] [--gen 96] [--llamacpp]

For each B, in a fresh process: B sequences get their own random prompt (prefilled together
through eval_batch), then every sequence decodes `--gen` greedy tokens, one eval_batch step
for all of them per token. Reports prefill and aggregate decode tokens/s, per-stream decode,
the time per step (median and p99), the speedup over B = 1 and peak RSS against weights + KV.
--llamacpp also runs llama.cpp's llama-batched-bench (same prompt and generation lengths,
same B values and threads) on the TQ2_0 GGUF of the same weights, built from the
llama-cpp-python sdist as in bench.py. Prints a markdown table and writes
benchmarks/results/batched-<timestamp>.json. Random weights: only speed is meaningful.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402
import llamacpp  # noqa: E402


def ensure_checkpoint(shape: str) -> Path:
    """A random checkpoint of `shape` (the 2B-4T one is shared with bench.py), written once."""
    if shape == "2b-4t":
        return bench.ensure_model(bench.CACHE / "model-2b-4t")
    path = bench.CACHE / f"model-{shape}"
    done = path / ".complete"
    if not done.exists():
        bench.log(f"writing a random {shape} checkpoint to {path} (once)")
        cmd = [sys.executable, "-m", "bitnet_backend.testing", "--shape", shape, str(path)]
        subprocess.run(cmd, check=True)
        done.write_text("ok\n")
    return path


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One B in this process: prefill B prompts together, then decode them step by step."""
    import numpy as np

    from bitnet_backend.backends.cpu import BACKEND
    from bitnet_backend.checkpoints.hf import load_checkpoint
    from bitnet_backend.sampling import SamplingParams

    greedy = SamplingParams(temperature=0.0)
    engine = BACKEND.load(load_checkpoint(args.checkpoint), n_threads=args.threads)
    vocab = engine.config.vocab_size
    rng = np.random.default_rng(0)
    b = args.batch
    prompts = [rng.integers(0, vocab, args.prompt).tolist() for _ in range(b)]
    sessions = [engine.new_session(args.prompt + args.gen) for _ in range(b)]

    t0 = time.perf_counter()
    engine.eval_batch(list(zip(sessions, prompts, strict=True)))
    prefill_s = time.perf_counter() - t0
    steps = []
    for _ in range(args.gen):
        t = time.perf_counter()
        tokens = [s.sample(greedy) for s in sessions]
        engine.eval_batch([(s, [tok]) for s, tok in zip(sessions, tokens, strict=True)])
        steps.append(time.perf_counter() - t)
    kv = 4 if engine.info["kv_dtype"] == "f32" else 2
    c = engine.config
    kv_bytes = 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * kv
    return {
        "batch": b,
        "prefill_tok_s": b * args.prompt / prefill_s,
        "decode_tok_s": b * args.gen / sum(steps),
        "per_stream_tok_s": args.gen / sum(steps),
        "step_ms_p50": 1e3 * statistics.median(steps),
        "step_ms_p99": 1e3 * float(np.percentile(steps, 99)),
        "weight_bytes": engine.info["weight_bytes"],
        "kv_bytes": kv_bytes * b * (args.prompt + args.gen),
        "info": engine.info,
    }


def run_batch(checkpoint: Path, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    """worker() for one B in a fresh process (its own peak RSS)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--batch", str(batch)]
    cmd += ["--checkpoint", str(checkpoint), "--threads", str(args.threads)]
    cmd += ["--prompt", str(args.prompt), "--gen", str(args.gen)]
    stdout, _, maxrss = llamacpp.run_with_rusage(cmd)
    res: dict[str, Any] = json.loads(stdout)
    res["rss_kib"] = maxrss
    return res


def table(runs: list[dict[str, Any]], llama: dict[str, Any] | None) -> str:
    """The results (markdown); speedups are against this run's B = 1."""
    base = next((r["decode_tok_s"] for r in runs if r["batch"] == 1), None)
    head = "| B | prefill tok/s | decode tok/s (all) | per stream | step ms p50 | step ms p99 "
    head += "| x B=1 | peak RSS MB | weights+KV MB |"
    sep = "|---" * 9 + "|"
    if llama:
        head += " llama.cpp TQ2_0 S_TG | ratio |"
        sep += "---|---|"
    lines = [head, sep]
    for r in runs:
        speedup = f"{r['decode_tok_s'] / base:.2f}" if base else "-"
        line = (
            f"| {r['batch']} | {r['prefill_tok_s']:.1f} | {r['decode_tok_s']:.1f} "
            f"| {r['per_stream_tok_s']:.1f} | {r['step_ms_p50']:.1f} | {r['step_ms_p99']:.1f} "
            f"| {speedup} | {r['rss_kib'] / 1024:.0f} "
            f"| {(r['weight_bytes'] + r['kv_bytes']) / 2**20:.0f} |"
        )
        if llama:
            theirs = llama["batches"].get(r["batch"], {}).get("speed_tg")
            ratio = f"{r['decode_tok_s'] / theirs:.2f}" if theirs else "-"
            line += f" {theirs or '-'} | {ratio} |"
        lines.append(line)
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shape", default="2b-4t", help="checkpoint shape (bitnet_backend.testing)")
    p.add_argument("--checkpoint", type=Path, help="use this checkpoint instead of a random one")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batches", default="1,2,4,8,16", help="numbers of sequences, comma-separated")
    p.add_argument("--prompt", type=int, default=128, help="prompt tokens per sequence")
    p.add_argument("--gen", type=int, default=96, help="decode steps per sequence")
    p.add_argument("--llamacpp", action="store_true", help="also run llama-batched-bench")
    p.add_argument("--llamacpp-version", default=llamacpp.DEFAULT_VERSION)
    p.add_argument("--out", type=Path, help="results JSON (default results/batched-<time>.json)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    batches = [int(x) for x in args.batches.split(",") if x]
    checkpoint = args.checkpoint or ensure_checkpoint(args.shape)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report: dict[str, Any] = {"date": stamp, "machine": bench.machine()}
    report["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    runs = []
    for b in batches:
        bench.log(f"engine: {b} sequence(s), {args.threads} thread(s)")
        runs.append(run_batch(checkpoint, b, args))
    report["runs"] = runs
    llama = None
    if args.llamacpp:
        lc = llamacpp.build(bench.CACHE, args.llamacpp_version)
        gguf = bench.ensure_ggufs(lc, checkpoint)["TQ2_0"]
        bench.log(f"llama-batched-bench on {gguf.name}")
        llama = llamacpp.batched_bench(
            lc, gguf, args.threads, n_prompt=args.prompt, n_gen=args.gen, parallel=tuple(batches)
        )
        report["llamacpp"] = {"build": lc.commit, **llama}
    m = report["machine"]
    print(f"\nMachine: {m['cpu']}, {m['cores']} cores; {args.threads} thread(s)")
    print(
        f"{args.prompt}-token prompts, then {args.gen} decode steps of every sequence; "
        "decode tok/s counts the tokens of all sequences.\n"
    )
    print(table(runs, llama))
    out = args.out or bench.RESULTS / f"batched-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    bench.log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
