"""Concurrent streams on one Model: aggregate decode speed and latency with continuous batching.

    python benchmarks/concurrent_streams.py [--streams 1,2,4,8,16] [--threads 2]
        [--prompt-tokens 128] [--tokens 96] [--shape 2b-4t] [--checkpoint DIR] [--quick]

For each N in --streams, N plain threads each stream one greedy generation from a prompt of
--prompt-tokens random token ids on one Model, started together. Per N it reports:

* aggregate decode tok/s over the window in which every stream decodes (from the last first
  token to the first stream's last token): tokens of all streams that arrive in that window /
  its length;
* time to first token (median and worst over the streams);
* inter-token latency p50 / p99: gaps between the arrivals of consecutive tokens of a stream
  (the tokens of a chunk that carries several arrive together; the gaps between chunks count);
* peak RSS during the run against weights + KV caches (below), and the scheduler's counters
  (engine calls and caller wake-ups per step among them).

Everything counts TOKENS (the ids of each CompletionChunk, checked against the final usage),
never text: a random-weight model's tokens may decode to no text at all. For the same reason
the random checkpoint this script writes gets a tokenizer in which every id of the vocabulary
decodes to text (" t<id>"), so the stream hands over every token as soon as it is sampled
instead of holding it back until some text comes (the test tokenizer has 512 tokens, the
2B-4T shape 128256 ids).

Memory: "weights" is the engine's ``weight_bytes`` (what one decoded token reads: the packed
linears with their scales, the norms, the output head, one embedding row and the exactly
recomputed head rows); "KV" is the
KV cache positions the streams fill (prompt + generated tokens, 2 x layers x kv heads x
head_dim values each, in the cache's element type). Peak RSS is the process's high-water mark
over the run (reset before each run where Linux allows it, else the process maximum so far):
it also holds the Python interpreter, numpy, the tokenizer and the scratch of the engine.

The model is a random checkpoint of --shape (written once under benchmarks/.cache by
``bitnet_backend.testing``) unless --checkpoint names one. Prints a table; writes
benchmarks/results/concurrent-streams-<time>.json. Run it on an otherwise idle machine: it is
a benchmark, nothing here asserts a timing. --quick (1 and 8 streams, 32-token generations)
takes a few minutes on the 2B-4T shape at 2 threads once the checkpoint exists.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run_context import CACHE, RESULTS, log, machine  # noqa: E402


def ensure_model(shape: str) -> Path:
    """A random checkpoint of ``shape`` whose every token id decodes to text, written once."""
    path = CACHE / f"model-{shape}-text-ids"
    done = path / ".complete"
    if done.exists():
        return path
    log(f"writing a random {shape}-shaped checkpoint to {path} (once)")
    cmd = [sys.executable, "-m", "bitnet_backend.testing", "--shape", shape, str(path)]
    subprocess.run(cmd, check=True, timeout=3600)
    vocab = json.loads((path / "config.json").read_text())["vocab_size"]
    give_every_id_text(path / "tokenizer.json", vocab)
    done.write_text("ok\n")
    return path


def give_every_id_text(tokenizer_json: Path, vocab: int) -> None:
    """Adds byte-level BPE entries " t<id>" for the ids the tokenizer does not cover."""
    spec = json.loads(tokenizer_json.read_text())
    model_vocab: dict[str, int] = spec["model"]["vocab"]
    taken = set(model_vocab.values()) | {t["id"] for t in spec.get("added_tokens", [])}
    for i in range(vocab):
        if i not in taken:
            model_vocab[f"\u0120t{i}"] = i  # "\u0120" is the byte-level form of a space
    tokenizer_json.write_text(json.dumps(spec))


class PeakRss:
    """The process's resident-set high-water mark, reset between runs where Linux allows."""

    def __init__(self) -> None:
        self.resettable = True

    def reset(self) -> None:
        try:
            Path("/proc/self/clear_refs").write_text("5\n")
        except OSError:
            self.resettable = False

    def bytes(self) -> int:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        self.resettable = False
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def kv_bytes_per_position(model: Any) -> int:
    """Bytes of one position of one sequence's KV cache (every layer, keys and values)."""
    cfg = model.config
    element = 2 if model.info["engine"].get("kv_dtype") == "bf16" else 4
    return 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * element


def run_streams(model: Any, prompts: list[list[int]], tokens: int, rss: PeakRss) -> dict[str, Any]:
    """Stream every prompt in its own thread at once; the measures of the run."""
    n = len(prompts)
    start = threading.Barrier(n + 1, timeout=600)
    times: list[list[float]] = [[] for _ in range(n)]  # arrival time of each token
    usage: list[int] = [0] * n
    errors: list[BaseException] = []

    def stream(i: int) -> None:
        try:
            start.wait()
            for chunk in model.stream(prompts[i], max_tokens=tokens, temperature=0.0):
                now = time.perf_counter()
                times[i].extend([now] * len(chunk.token_ids))
                if chunk.usage is not None:
                    usage[i] = chunk.usage["completion_tokens"]
        except BaseException as exc:  # reported after the run
            errors.append(exc)

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    before = model.stats()
    rss.reset()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    after = model.stats()
    counted = [len(ts) for ts in times]
    if counted != usage:
        raise RuntimeError(f"chunk token ids {counted} disagree with usage {usage}")
    firsts = [ts[0] - t0 for ts in times if ts]
    window_start = max(ts[0] for ts in times if ts)
    window_end = min(ts[-1] for ts in times if ts)
    in_window = sum(1 for ts in times for x in ts if window_start < x <= window_end)
    if in_window < 2 * n:  # no window in which every stream decodes: no aggregate rate
        window_end = window_start
    gaps = sorted(b - a for ts in times for a, b in itertools.pairwise(ts) if b > a)
    window = window_end - window_start
    steps = max(1, after["steps"] - before["steps"])
    per_position = kv_bytes_per_position(model)
    kv = per_position * sum(len(p) + c for p, c in zip(prompts, counted, strict=True))
    weights = int(model.info["engine"].get("weight_bytes", 0))
    peak = rss.bytes()
    return {
        "streams": n,
        "tokens": counted,
        "aggregate_decode_tok_s": in_window / window if window > 0 else None,
        "ttft_median_s": statistics.median(firsts) if firsts else None,
        "ttft_max_s": max(firsts) if firsts else None,
        "itl_p50_s": _quantile(gaps, 0.50),
        "itl_p99_s": _quantile(gaps, 0.99),
        "steps": steps,
        # GIL hand-offs and caller wake-ups the scheduler made per step (at most 2, and at
        # most one per stream): counts, so they compare across machines and loads.
        "engine_calls_per_step": (after["engine_calls"] - before["engine_calls"]) / steps,
        "wakeups_per_step": (after["wakeups"] - before["wakeups"]) / steps,
        "max_sequences_per_step": after["max_sequences_per_step"],
        "peak_rss_bytes": peak,
        "peak_rss_is_per_run": rss.resettable,
        "weight_bytes": weights,
        "kv_bytes": kv,
        "rss_over_weights_kv": peak / (weights + kv) if weights else None,
    }


def _quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def table(rows: list[dict[str, Any]]) -> str:
    """The runs as a markdown table; "x 1 stream" is against this run's single stream."""
    base = next((r["aggregate_decode_tok_s"] for r in rows if r["streams"] == 1), None)
    lines = [
        "| streams | agg decode tok/s | x 1 stream | TTFT med s | ITL p50 ms | ITL p99 ms "
        "| peak RSS MiB | weights+KV MiB | RSS / (weights+KV) |",
        "|---" * 9 + "|",
    ]
    for r in rows:
        agg = r["aggregate_decode_tok_s"] or 0.0
        ratio = f"{agg / base:.2f}" if base else "-"
        mib = 2**20
        lines.append(
            f"| {r['streams']} | {agg:.1f} | {ratio} | {r['ttft_median_s'] or 0:.3f} "
            f"| {(r['itl_p50_s'] or 0) * 1e3:.1f} | {(r['itl_p99_s'] or 0) * 1e3:.1f} "
            f"| {r['peak_rss_bytes'] / mib:.0f} | {(r['weight_bytes'] + r['kv_bytes']) / mib:.0f} "
            f"| {r['rss_over_weights_kv'] or 0:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--streams", default="1,2,4,8,16")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--tokens", type=int, default=96)
    p.add_argument("--shape", default="2b-4t")
    p.add_argument("--checkpoint", type=Path, help="an existing checkpoint directory")
    p.add_argument("--quick", action="store_true", help="1 and 8 streams, 32-token generations")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.quick:
        args.streams, args.tokens = "1,8", 32

    import bitnet_backend as bb

    counts = [int(s) for s in args.streams.split(",")]
    path = args.checkpoint or ensure_model(args.shape)
    model = bb.load(path, n_threads=args.threads, max_batch=max(counts), cache_prompt=False)
    rng = random.Random(0)
    vocab = model.vocab_size
    rss = PeakRss()
    rows = []
    with model:
        model.generate([1, 2, 3], max_tokens=2)  # warm-up: page the weights in
        for n in counts:
            prompts = [[rng.randrange(vocab) for _ in range(args.prompt_tokens)] for _ in range(n)]
            log(f"{n} streams ...")
            rows.append(run_streams(model, prompts, args.tokens, rss))
        info = model.info
    machine_info = machine()
    print(
        f"\n{machine_info['cpu']}, {machine_info['cores']} cores, {args.threads} thread(s); "
        f"{args.prompt_tokens}-token prompts, {args.tokens}-token greedy generations\n"
    )
    print(table(rows))
    RESULTS.mkdir(exist_ok=True)
    out = args.out or RESULTS / f"concurrent-streams-{time.strftime('%Y%m%d-%H%M%S')}.json"
    result = {
        "machine": machine_info,
        "threads": args.threads,
        "shape": None if args.checkpoint else args.shape,
        "prompt_tokens": args.prompt_tokens,
        "tokens": args.tokens,
        "engine": info["engine"],
        "runs": rows,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
