"""Decode and prefill speed by thread count, on a quiet machine and beside a busy process.

    python benchmarks/threads.py [--quick] [--models embedded,2b-4t] [--threads default,1,2]
        [--conditions quiet,busy] [--rounds 3] [--n-gen 64] [--depth 32] [--prompt 64]
        [--min-time S] [--busy-cpu N] [--out FILE]

For each round, condition and thread setting, one fresh process (``engine_worker.py``) loads
the model and measures ``tg`` (single-token decode steps after a ``depth``-token prompt) and
``pp`` (prompt tokens/s from an empty cache), each repeated in that process until it has run
``--min-time`` seconds (default 1, ``--quick`` 0.5): the embedded model's prompt takes a
few milliseconds, too short to time alone on a machine with other work, and its users make
many such calls in one process, over which the default team settles; the 2B-4T shape's parts
last longer than that once. ``default`` is what ``bb.load()`` does without
``n_threads``: the count ``bitnet_backend.threads.default_threads()`` picks on this machine,
with the team adapting to busy cores (``adapt_to_busy_cores``); each run records the pool's
counters (regions shared and run alone, the caller's waits for workers). The ``busy`` condition
runs one competing process that spins a core (``python -c "while True: pass"``; pinned to
``--busy-cpu`` when given) for the whole measurement, as another program on a laptop or a
server would.

Models: ``embedded`` (the small model inside the package) and ``2b-4t`` (random weights of
the exact microsoft/bitnet-b1.58-2B-4T shape, written once to benchmarks/.cache/model-2b-4t
by ``python -m bitnet_backend.testing``; ``--checkpoint-2b DIR`` uses an existing one).

``--quick`` runs the whole matrix in a few minutes (2 rounds, 32 decode steps, half a second
per timed part, unless given).
The settings are interleaved within each round, so their ratios hold better than absolute
figures on a machine that other work keeps busy (the load average at each run is recorded:
say the conditions with the figures).

Prints a table of medians over rounds with each setting's ratio to the best fixed thread
count in the same condition, and writes every round to JSON (default
benchmarks/results/threads-<time>.json). Run it on an otherwise idle machine; it is a
benchmark: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
WORKER = HERE / "engine_worker.py"
WORKER_TIMEOUT_S = 1800


def log(msg: str) -> None:
    print(f"[threads] {msg}", file=sys.stderr, flush=True)


def model_path(name: str, checkpoint_2b: Path | None) -> Path:
    """The checkpoint directory of a benchmark model (writes the 2B-4T shape once)."""
    if name == "embedded":
        from bitnet_backend.model import DEFAULT_MODEL_DIR

        return Path(DEFAULT_MODEL_DIR)
    if name == "2b-4t":
        path = checkpoint_2b or CACHE / "model-2b-4t"
        if not (path / "config.json").is_file():
            log(f"writing a 2B-4T-shaped checkpoint to {path} (once)")
            cmd = [sys.executable, "-m", "bitnet_backend.testing", "--shape", "2b-4t", str(path)]
            subprocess.run(cmd, check=True, timeout=WORKER_TIMEOUT_S)
        return path
    raise SystemExit(f"unknown model {name!r}: choose embedded or 2b-4t")


class BusyProcess:
    """A process that keeps one core busy until stopped (context manager)."""

    def __init__(self, cpu: int | None) -> None:
        self.cpu = cpu
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BusyProcess:
        cpu = self.cpu
        pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=pin)
        time.sleep(0.2)  # let it reach the spinning loop before the measurement starts
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)


def measure(
    checkpoint: Path,
    threads: int,
    adaptive: bool,
    n_gen: int,
    depth: int,
    prompt: int,
    min_time: float,
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(WORKER),
        str(checkpoint),
        "--threads",
        str(threads),
        "--prompts",
        str(prompt),
        "--n-gen",
        str(n_gen),
        "--depth",
        str(depth),
        "--min-time",
        str(min_time),
        *(["--adaptive"] if adaptive else []),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def parse_threads(spec: str, default: int) -> list[tuple[str, int, bool]]:
    """(label, thread count, adaptive) per setting; ``default`` adapts, as bb.load() does."""
    settings = []
    for item in spec.split(","):
        item = item.strip()
        if item == "default":
            settings.append((f"default ({default})", default, True))
        elif item:
            settings.append((item, int(item), False))
    return settings


def load_average() -> float | None:
    """The 1-minute load average (the machine's conditions during a run)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def solo_share(stats: dict[str, int]) -> str:
    """How often an adaptive pool ran alone, for the progress log."""
    total = stats.get("solo_regions", 0) + stats.get("shared_regions", 0)
    if not total:
        return ""
    short = stats.get("short_regions", 0) / total
    return f" alone {stats.get('solo_regions', 0) / total:.0%} (too short to share {short:.0%})"


def summarize(runs: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Medians per (model, condition, setting), with the ratio to the best fixed setting."""
    groups: dict[tuple[str, str, str], list[float]] = {}
    for r in runs:
        groups.setdefault((r["model"], r["condition"], r["setting"]), []).append(r[metric])
    rows = []
    for (model, condition, setting), values in groups.items():
        rows.append(
            {
                "model": model,
                "condition": condition,
                "setting": setting,
                "median": statistics.median(values),
            }
        )
    for row in rows:
        fixed = [
            r["median"]
            for r in rows
            if r["model"] == row["model"]
            and r["condition"] == row["condition"]
            and not r["setting"].startswith("default")
        ]
        row["vs_best_fixed"] = row["median"] / max(fixed) if fixed else None
    return rows


def table(rows: list[dict[str, Any]], metric: str) -> str:
    lines = [
        f"| model | condition | threads | {metric} tok/s | vs best fixed |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = "" if r["vs_best_fixed"] is None else f"{r['vs_best_fixed']:.2f}x"
        lines.append(
            f"| {r['model']} | {r['condition']} | {r['setting']} | {r['median']:.1f} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry: measure, print the tables, write the JSON."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--quick", action="store_true", help="the whole matrix in minutes: 2 rounds, short runs"
    )
    p.add_argument("--models", default="embedded,2b-4t")
    p.add_argument("--threads", default="default,1,2")
    p.add_argument("--conditions", default="quiet,busy")
    p.add_argument("--rounds", type=int, default=None, help="default 3 (--quick: 2)")
    p.add_argument("--n-gen", type=int, default=None, help="default 64 (--quick: 32)")
    p.add_argument("--depth", type=int, default=None, help="default 32 (--quick: 16)")
    p.add_argument("--prompt", type=int, default=64)
    p.add_argument(
        "--min-time",
        type=float,
        default=None,
        help="seconds per timed part (default 1, --quick 0.5)",
    )
    p.add_argument("--busy-cpu", type=int, default=None, help="pin the busy process to this CPU")
    p.add_argument("--checkpoint-2b", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    # --quick changes only the sizes not given explicitly.
    sizes = (("rounds", 3, 2), ("n_gen", 64, 32), ("depth", 32, 16), ("min_time", 1.0, 0.5))
    for name, normal, quick in sizes:
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else normal)

    from bitnet_backend.threads import default_threads

    settings = parse_threads(args.threads, default_threads())
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    for c in conditions:
        if c not in ("quiet", "busy"):
            raise SystemExit(f"unknown condition {c!r}: choose quiet or busy")
    paths = {m: model_path(m, args.checkpoint_2b) for m in models}

    runs: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        for model in models:
            for condition in conditions:
                # Alternate the order of the settings between rounds (drift in machine load).
                order = settings if rnd % 2 == 0 else settings[::-1]
                busy = BusyProcess(args.busy_cpu) if condition == "busy" else None
                if busy is not None:
                    busy.__enter__()
                try:
                    for label, n, adaptive in order:
                        res = measure(
                            paths[model],
                            n,
                            adaptive,
                            args.n_gen,
                            args.depth,
                            args.prompt,
                            args.min_time,
                        )
                        run = {
                            "round": rnd,
                            "model": model,
                            "condition": condition,
                            "setting": label,
                            "threads": n,
                            "tg": res[f"tg{args.n_gen}"],
                            "pp": res[f"pp{args.prompt}"],
                            "info": res["info"],
                            "thread_stats": res["thread_stats"],
                            "load_average": load_average(),
                        }
                        runs.append(run)
                        log(
                            f"round {rnd} {model} {condition} {label}: tg {run['tg']:.1f} "
                            f"pp {run['pp']:.1f} tok/s{solo_share(run['thread_stats'])} "
                            f"(load {run['load_average']})"
                        )
                finally:
                    if busy is not None:
                        busy.__exit__()

    report = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "affinity": sorted(os.sched_getaffinity(0)),
            "default_threads": default_threads(),
        },
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "runs": runs,
        "tg": summarize(runs, "tg"),
        "pp": summarize(runs, "pp"),
    }
    print(table(report["tg"], f"tg{args.n_gen}"))
    print()
    print(table(report["pp"], f"pp{args.prompt}"))
    out = args.out or HERE / "results" / f"threads-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
