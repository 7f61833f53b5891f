"""Decode and prefill per model family against llama.cpp TQ2_0 on the same shapes, one run.

    python benchmarks/families.py [--quick] [--shapes 2b-4t,falcon3-3b,llama3-8b] [--threads 2]
                                  [--rounds N] [--smoke] [--prepare-only] [--out FILE]

For each shape (random weights written by bitnet_backend.testing, cached): this engine with
its default load options (a fresh engine_worker.py process per measurement) and llama-bench
on the TQ2_0 GGUF of the same weights (2B-4T through an f16 GGUF and llama-quantize, the
Llama-architecture families through ``bitnet convert --to gguf``), in rounds that alternate
the order. The table gives tok/s, the ratio to llama.cpp (paired per round, median), that
ratio relative to 2B-4T's, and the weight bytes streamed per second in decode (tok/s x weight
bytes), so that a family slower per weight byte than 2B-4T shows. JSON goes to
benchmarks/results/families-<time>.json.

``--smoke`` swaps every shape for a tiny one of the same family (seconds; checks the script,
not the speed). ``--prepare-only`` builds llama.cpp and writes the checkpoints and GGUFs of the
chosen shapes, then stops: the long one-off work, done ahead of a timed run. Figures mean
something only on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402
import llamacpp  # noqa: E402

SHAPES = ("2b-4t", "falcon3-3b", "llama3-8b")
REFERENCE_SHAPE = "2b-4t"
DEFAULT_ENGINE = bench.EngineVariant("default", {}, "default load options")
LLAMACPP_TYPE = "TQ2_0"
FULL: dict[str, Any] = {"prompts": (128,), "n_gen": 64, "depth": 128, "rounds": 3}
# About 6 minutes for the three shapes on 2 cores once the models are cached: llama3-8b
# decodes at a few tok/s, and each measurement also loads the model.
QUICK: dict[str, Any] = {"prompts": (64,), "n_gen": 32, "depth": 32, "rounds": 2}
# Smallest dimensions the TQ types take (every linear's input a multiple of 256).
SMOKE_SHAPE = {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2}


def log(msg: str) -> None:
    print(f"[families] {msg}", file=sys.stderr, flush=True)


def ensure_smoke_model(shape: str) -> Path:
    """A tiny checkpoint of ``shape``'s family (written in-process: it is small)."""
    from bitnet_backend.testing import SHAPE_FAMILIES, SHAPES, write_checkpoint

    path = bench.CACHE / f"model-smoke-{shape}"
    if (path / ".complete").exists():
        return path
    real = SHAPES[shape]
    heads = 4
    kv = max(1, heads * real["num_key_value_heads"] // real["num_attention_heads"])
    dims = {**SMOKE_SHAPE, "num_attention_heads": heads, "num_key_value_heads": kv}
    if "head_dim" in real:  # keep a head_dim that differs from hidden / heads
        dims.update(hidden_size=512, head_dim=64)
    write_checkpoint(path, shape=dims, family=SHAPE_FAMILIES.get(shape))
    (path / ".complete").write_text("ok\n")
    return path


def prepare_shape(lc: llamacpp.LlamaCpp, shape: str, smoke: bool) -> tuple[Path, Path]:
    """The cached checkpoint of ``shape`` and its GGUF for llama.cpp, written if missing."""
    if smoke:
        model = ensure_smoke_model(shape)
    else:
        model = bench.ensure_model(bench.CACHE / f"model-{shape}", shape)
    return model, bench.ensure_ggufs(lc, model, (LLAMACPP_TYPE,))[LLAMACPP_TYPE]


def measure_shape(
    lc: llamacpp.LlamaCpp,
    shape: str,
    model: Path,
    gguf: Path,
    threads: int,
    cfg: dict[str, Any],
) -> dict[str, Any]:
    """Alternating rounds of this engine and llama-bench on one shape."""
    llama_bytes = bench.gguf_tensor_bytes(gguf)
    runs: list[dict[str, Any]] = []
    for rnd in range(cfg["rounds"]):
        order = ("engine", "llama.cpp") if rnd % 2 == 0 else ("llama.cpp", "engine")
        for system in order:
            other = bench.other_cpu_busy()
            busy = f" ({other:.1f} cores busy elsewhere: may skew this)" if other > 0.3 else ""
            log(f"{shape}, round {rnd + 1}/{cfg['rounds']}: {system}{busy}")
            if system == "engine":
                res = bench.run_engine(model, DEFAULT_ENGINE, threads, cfg)
                res["weight_bytes"] = int(res["info"]["weight_bytes"])
            else:
                sizes = {k: cfg[k] for k in ("prompts", "n_gen", "depth")}
                res = llamacpp.bench(lc, gguf, threads, **sizes)
                res["weight_bytes"] = llama_bytes
            res.update(system=system, round=rnd, other_cpu_busy=other)
            runs.append(res)
    return {"model": str(model), "gguf": str(gguf), "runs": runs}


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def summarize(results: dict[str, Any], metrics: list[str]) -> dict[str, Any]:
    """Per shape: median tok/s of both systems, paired ratios, decode weight GB/s."""
    tg = metrics[-1]
    summary: dict[str, Any] = {}
    for shape, res in results.items():
        runs = res["runs"]
        row: dict[str, Any] = {}
        for system in ("engine", "llama.cpp"):
            mine = [r for r in runs if r["system"] == system]
            row[system] = {m: _median([r[m] for r in mine if r.get(m)]) for m in metrics}
            row[system]["weight_bytes"] = mine[0]["weight_bytes"]
            rate, nbytes = row[system][tg], mine[0]["weight_bytes"]
            row[system]["decode_weight_gbs"] = rate * nbytes / 1e9 if rate else None
        row["ratio"] = {}
        for m in metrics:
            paired = []
            for r in runs:
                if r["system"] != "engine" or not r.get(m):
                    continue
                base = [b for b in runs if b["system"] == "llama.cpp" and b["round"] == r["round"]]
                if base and base[0].get(m):
                    paired.append(r[m] / base[0][m])
            row["ratio"][m] = _median(paired)
        summary[shape] = row
    ref = summary.get(REFERENCE_SHAPE)
    for row in summary.values():
        row["ratio_vs_2b4t"] = {
            m: _over(row["ratio"][m], ref["ratio"][m] if ref else None) for m in metrics
        }
        row["decode_weight_gbs_vs_2b4t"] = _over(
            row["engine"]["decode_weight_gbs"], ref["engine"]["decode_weight_gbs"] if ref else None
        )
    return summary


def _over(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def fmt(x: float | None, spec: str = ".1f", suffix: str = "") -> str:
    return "-" if x is None else format(x, spec) + suffix


def table(summary: dict[str, Any], metrics: list[str]) -> str:
    """The results as a markdown table."""
    tg = metrics[-1]
    head = ["shape", "weight MB (ours / TQ2_0)"]
    for m in metrics:
        head += [f"{m} ours", f"{m} llama.cpp", f"{m} ratio", f"{m} ratio / 2B-4T's"]
    head += [f"{tg} weight GB/s (ours / llama.cpp)", "ours GB/s / 2B-4T's"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for shape, row in summary.items():
        e, ll = row["engine"], row["llama.cpp"]
        cells = [shape, f"{e['weight_bytes'] / 1e6:.1f} / {ll['weight_bytes'] / 1e6:.1f}"]
        for m in metrics:
            cells += [fmt(e[m]), fmt(ll[m]), fmt(row["ratio"][m], ".2f", "x")]
            cells += [fmt(row["ratio_vs_2b4t"][m], ".2f")]
        cells += [f"{fmt(e['decode_weight_gbs'], '.2f')} / {fmt(ll['decode_weight_gbs'], '.2f')}"]
        cells += [fmt(row["decode_weight_gbs_vs_2b4t"], ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated model shapes")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="pp64, tg32, 2 rounds (~6 minutes)")
    p.add_argument("--rounds", type=int, help="alternating rounds (3; quick: 2)")
    p.add_argument("--smoke", action="store_true", help="tiny models of the same families")
    p.add_argument(
        "--prepare-only",
        action="store_true",
        help="build llama.cpp, write the checkpoints and GGUFs, measure nothing",
    )
    p.add_argument("--llamacpp-version", default=llamacpp.DEFAULT_VERSION)
    p.add_argument("--out", type=Path, help="results JSON (default results/families-<time>.json)")
    args = p.parse_args(argv)
    args.shapes = [s for s in args.shapes.split(",") if s]
    unknown = [s for s in args.shapes if s not in SHAPES]
    if unknown:
        p.error(f"unknown shape(s) {', '.join(unknown)}; choose from {', '.join(SHAPES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM as an exception, so that a measured child process is killed with us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cfg = dict(QUICK if args.quick or args.smoke else FULL)
    if args.smoke:
        cfg.update(prompts=(16,), n_gen=8, depth=8, rounds=1)
    if args.rounds:
        cfg["rounds"] = args.rounds
    metrics = [*(f"pp{n}" for n in cfg["prompts"]), f"tg{cfg['n_gen']}"]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    lc = llamacpp.build(bench.CACHE, args.llamacpp_version)
    if args.prepare_only:
        for shape in args.shapes:
            model, gguf = prepare_shape(lc, shape, args.smoke)
            log(f"{shape}: {model} and {gguf} are ready")
        return 0
    report: dict[str, Any] = {"date": stamp, "machine": bench.machine(), "llamacpp": lc.commit}
    report["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    report["config"] = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}

    results: dict[str, Any] = {}
    for shape in args.shapes:
        model, gguf = prepare_shape(lc, shape, args.smoke)
        results[shape] = measure_shape(lc, shape, model, gguf, args.threads, cfg)
    report["shapes"] = results
    report["summary"] = summarize(results, metrics)

    print(
        f"\n{report['machine']['cpu']}, {args.threads} threads, llama.cpp {lc.commit}; "
        f"{metrics[-1]} after {cfg['depth']} tokens, medians of {cfg['rounds']} round(s), "
        "ratios paired per round\n"
    )
    print(table(report["summary"], metrics))
    out = args.out or bench.RESULTS / f"families-{stamp}{'-smoke' if args.smoke else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
