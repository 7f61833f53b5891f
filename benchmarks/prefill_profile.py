"""Where the time of a prompt step goes, per operation: `perf` samples of one process that
evaluates the same prompt several times, grouped by the engine function they fall in.

    python benchmarks/prefill_profile.py [--shape 2b-4t] [--checkpoint DIR] [--isa avx2]
        [--threads 2] [--prompt 128] [--reps 6] [--out FILE]

Needs `perf` and an extension module with its symbols. The default install strips it, so
build one with Release code generation plus debug information first:

    pip install --no-build-isolation -e . -Cbuild-dir=build/prof -Cinstall.strip=false \\
        -Ccmake.build-type=RelWithDebInfo \\
        -Ccmake.define.CMAKE_CXX_FLAGS_RELWITHDEBINFO="-O3 -DNDEBUG -g"

perf attaches after the load and a warm-up eval, so only the timed evals are sampled. One
kernel runs the ternary GEMM of every matrix, so a second table times each matrix of a layer
alone at the prompt's token count (kernel_bench, one thread) for its share of the GEMM.
Samples include the threads' waits at the end of each parallel region: on a busy machine
they grow with the time the other programs take. Read the fractions; absolute figures need
an idle machine.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import batched_engine  # noqa: E402
import bench  # noqa: E402
from step_breakdown import linear_shapes  # noqa: E402

# Operation -> patterns of the function names whose samples it counts (first match wins).
OPS: list[tuple[str, tuple[str, ...]]] = [
    (
        "ternary GEMM",
        (r"gemm_panel", r"gemm_half_tile", r"gemv_block", r"gemm_(stream|tile<)|ternary5?_gemm"),
    ),
    ("GEMM rescale (int32 -> float)", (r"bitnet::rescale",)),
    ("activation quantization", (r"quantize_row",)),
    ("RMSNorm", (r"rms_norm", r"cascade_row_sum", r"reference_order_sum")),
    ("attention QK^T", (r"group_scores",)),
    ("attention softmax", (r"softmax_inplace",)),
    ("attention AV", (r"group_values",)),
    ("RoPE and KV store", (r"apply_rope", r"KVCache::store")),
    ("FFN activation", (r"relu2_gate", r"silu_gate")),
    ("residual adds", (r"add_inplace",)),
    ("output head", (r"q[468]_gem", r"OutputHead", r"ExactLogits", r"dot_f32")),
    ("threads waiting at region ends", (r"ThreadPool::wait", r"ThreadPool::run_chunk")),
]
KERNEL = "kernel (scheduler, page faults)"
OTHER = "other"
_LINE = re.compile(r"^\s*([\d.]+)%\s+\[(.)\]\s+(.*?)(?:\s+-)*\s*$")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shape", default="2b-4t")
    p.add_argument("--checkpoint", type=Path)
    p.add_argument("--isa", default="auto", help="kernel family (auto, avx2, avx512, ...)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt", type=int, default=128, help="prompt tokens per eval")
    p.add_argument("--reps", type=int, default=6, help="timed evals of the prompt")
    p.add_argument("--out", type=Path, help="results JSON (default results/prefill-profile-*)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def worker(args: argparse.Namespace, path: Path) -> int:
    """Load, warm up, say "ready", wait for "go", time the evals, print them as JSON."""
    from bitnet_backend.backends.cpu import BACKEND
    from bitnet_backend.checkpoints.hf import load_checkpoint

    engine = BACKEND.load(load_checkpoint(path), n_threads=args.threads, isa=args.isa)
    vocab = engine.config.vocab_size
    ids = [(7919 * i + 13) % vocab for i in range(args.prompt)]
    session = engine.new_session(args.prompt + 1)
    session.eval(ids)
    session.truncate(0)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    seconds = []
    for _ in range(args.reps):
        t = time.perf_counter()
        session.eval(ids)
        seconds.append(time.perf_counter() - t)
        session.truncate(0)
    print(json.dumps({"info": dict(engine.info), "seconds": seconds}), flush=True)
    return 0


def op_of(symbol: str, kernel_space: bool) -> str:
    """The operation a sampled function belongs to."""
    for name, patterns in OPS:
        if any(re.search(p, symbol) for p in patterns):
            return name
    return KERNEL if kernel_space else OTHER


def profile(args: argparse.Namespace, path: Path, data: Path) -> tuple[dict[str, Any], str]:
    """Runs the worker under `perf record`; returns its JSON and perf's symbol report."""
    cmd = [sys.executable, __file__, "--worker", "--checkpoint", str(path)]
    cmd += ["--isa", args.isa, "--threads", str(args.threads), "--prompt", str(args.prompt)]
    cmd += ["--reps", str(args.reps)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the profiled process stopped before its first eval")
        perf = subprocess.Popen(
            ["perf", "record", "-F", "999", "-p", str(proc.pid), "-o", str(data)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # perf attaches to every thread of the process
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, _ = proc.communicate(timeout=3600)
        perf.wait(timeout=120)  # perf record ends with the process it follows
    finally:
        if proc.poll() is None:
            proc.kill()
    if proc.returncode != 0:
        raise RuntimeError(f"the profiled process failed (exit {proc.returncode})")
    report = subprocess.run(
        ["perf", "report", "-i", str(data), "--no-children", "--sort", "symbol", "--stdio", "-q"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1]), report


def group(report: str) -> dict[str, float]:
    """Percent of samples per operation, from `perf report --sort symbol` lines."""
    shares: dict[str, float] = {}
    unresolved = 0.0
    for line in report.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        pct, space, symbol = float(m[1]), m[2], m[3]
        if symbol.startswith("0x"):
            unresolved += pct
        op = op_of(symbol, space == "k")
        shares[op] = shares.get(op, 0.0) + pct
    if unresolved > 20.0:
        raise RuntimeError(
            f"{unresolved:.0f}% of the samples have no symbol: build the extension with its "
            "symbols (see this script's docstring)"
        )
    return shares


def matrix_times(args: argparse.Namespace, info: dict[str, Any], cfg: Any) -> dict[str, float]:
    """Seconds of each matrix's ternary GEMM alone at the prompt's token count, one thread."""
    from bitnet_backend import _engine  # type: ignore[attr-defined]

    base3 = info["weight_format"] == "i1_r16"
    best: dict[str, float] = {}
    for _ in range(3):  # interleaved rounds, the fastest of each: other programs only add time
        for name, (rows, cols) in linear_shapes(cfg).items():
            sec = _engine.testing.kernel_bench(info["isa"], rows, cols, args.prompt, 2, 1, base3)
            best[name] = min(best.get(name, sec), sec)
    return best


def main(argv: list[str] | None = None) -> int:
    """Profile, print the tables, write the JSON."""
    args = parse_args(argv)
    path = args.checkpoint or batched_engine.ensure_checkpoint(args.shape)
    if args.worker:
        return worker(args, path)
    if shutil.which("perf") is None:
        bench.log("perf is not installed: nothing to profile with")
        return 1
    from bitnet_backend.checkpoints.hf import load_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        result, report = profile(args, path, Path(tmp) / "perf.data")
    shares = group(report)
    ckpt = load_checkpoint(path)
    cfg = ckpt.config
    ckpt.close()
    gemm = matrix_times(args, result["info"], cfg)
    tok_s = [args.prompt / s for s in result["seconds"]]

    print(f"\n{bench.machine()['cpu']}, isa {result['info']['isa']}, {args.threads} thread(s)")
    print(f"pp{args.prompt}: " + ", ".join(f"{t:.1f}" for t in tok_s) + " tok/s\n")
    print("| operation | % of samples |\n|---|---|")
    for name in [n for n, _ in OPS] + [KERNEL, OTHER]:
        if name in shares:
            print(f"| {name} | {shares[name]:.1f} |")
    total = sum(gemm.values())
    print("\n| matrix (one layer) | GEMM ms alone, 1 thread | % of the GEMM |\n|---|---|---|")
    for name, sec in gemm.items():
        print(f"| {name} | {1e3 * sec:.3f} | {100 * sec / total:.0f} |")

    out = args.out or bench.RESULTS / f"prefill-profile-{time.strftime('%Y%m%d-%H%M%S')}.json"
    record = {"machine": bench.machine(), "args": vars(args) | {"checkpoint": str(path)}}
    record |= {"engine": result["info"], "tok_s": tok_s, "ops": shares, "gemm_s": gemm}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, default=str) + "\n")
    bench.log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
