"""Single-stream speed of two installs of this engine, side by side in one run.

    python benchmarks/compare_builds.py --baseline /path/to/other/venv/bin/python \
        [--checkpoint DIR] [--threads 2] [--rounds 3] [--out FILE]

Each round runs ``engine_worker.py`` once with this interpreter and once with the baseline's
(alternating which goes first), each in a fresh process on the same checkpoint, and the table
shows the median prefill and decode speed of each and their ratio. Use it to check that a
change leaves single-stream speed where it was: install the older commit into another venv
(``pip install -e .`` from a checkout of it) and pass that venv's python as ``--baseline``.
Each interpreter runs the ``engine_worker.py`` beside its own ``bitnet_backend`` package, so
the worker matches the install it measures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT = HERE / ".cache" / "model-2b-4t"
WORKER_TIMEOUT_S = 900


def _worker_of(python: str) -> Path:
    """The engine_worker.py of the checkout that ``python`` imports bitnet_backend from."""
    code = "import bitnet_backend, pathlib; print(pathlib.Path(bitnet_backend.__file__).parent)"
    out = subprocess.run(
        [python, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=tempfile.gettempdir(),
    )
    worker = Path(out.stdout.strip()).parent / "benchmarks" / "engine_worker.py"
    if not worker.is_file():
        raise SystemExit(f"{python}: no benchmarks/engine_worker.py beside its package ({worker})")
    return worker


def _measure(python: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        python,
        str(_worker_of(python)),
        str(args.checkpoint),
        "--threads",
        str(args.threads),
        "--prompts",
        str(args.prompt),
        "--n-gen",
        str(args.gen),
    ]
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=True,
        timeout=WORKER_TIMEOUT_S,
        cwd=tempfile.gettempdir(),
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line entry: prints the table and writes the JSON."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--baseline", required=True, help="python of the install to compare against")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--prompt", type=int, default=128, help="prefill length (128)")
    p.add_argument("--gen", type=int, default=64, help="decode steps (64)")
    p.add_argument("--out", type=Path, help="results JSON (default results/builds-<time>.json)")
    args = p.parse_args(argv)
    if not args.checkpoint.is_dir():
        raise SystemExit(f"no checkpoint at {args.checkpoint} (python -m bitnet_backend.testing)")

    builds = {"this": sys.executable, "baseline": args.baseline}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in builds}
    for r in range(args.rounds):
        order = list(builds) if r % 2 == 0 else list(reversed(builds))
        for name in order:
            res = _measure(builds[name], args)
            runs[name].append(res)
            print(
                f"round {r + 1} {name}: pp{args.prompt} {res[f'pp{args.prompt}']:.1f}"
                f" tg{args.gen} {res[f'tg{args.gen}']:.2f} tok/s",
                file=sys.stderr,
            )

    keys = [f"pp{args.prompt}", f"tg{args.gen}"]
    medians = {n: {k: statistics.median(x[k] for x in runs[n]) for k in keys} for n in builds}
    print(f"\n| build | {' | '.join(k + ' tok/s' for k in keys)} |")
    print("|---|" + "---|" * len(keys))
    for name in builds:
        print(f"| {name} | {' | '.join(f'{medians[name][k]:.2f}' for k in keys)} |")
    ratios = {k: medians["this"][k] / medians["baseline"][k] for k in keys}
    print(f"| this / baseline | {' | '.join(f'{ratios[k]:.3f}' for k in keys)} |")

    out = args.out or HERE / "results" / f"builds-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "builds": builds,
        "threads": args.threads,
        "runs": runs,
        "medians": medians,
        "ratios": ratios,
        "checkpoint": str(args.checkpoint),
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
