"""Run every fuzz target (or the named ones) for a time budget each; non-zero exit on a finding.

    python fuzz/run.py --seconds 20            # the short run .ci/run does
    python fuzz/run.py --seconds 3600 --corpus fuzz-corpus   # a long run, corpus kept

Each target runs in its own process under libFuzzer (atheris) with an RSS limit and a
per-input timeout. A finding is written next to the corpus as ``<target>-crash-...`` (or
``-timeout-``, ``-oom-``); copy it into fuzz/regressions/<target>/ once it is fixed, so the
test suite replays it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import FUZZ_DIR, TARGETS, regressions_dir, seeds_dir


def run_target(target: str, seconds: int, corpus_root: Path, rss_mb: int, timeout: int) -> bool:
    corpus = corpus_root / target
    corpus.mkdir(parents=True, exist_ok=True)
    inputs = [str(corpus)] + [
        str(d) for d in (seeds_dir(target), regressions_dir(target)) if d.is_dir()
    ]
    cmd = [
        sys.executable,
        str(FUZZ_DIR / "targets" / f"{target}.py"),
        f"-max_total_time={seconds}",
        f"-rss_limit_mb={rss_mb}",
        f"-timeout={timeout}",
        f"-artifact_prefix={corpus_root}/{target}-",
        "-print_final_stats=1",
        *inputs,
    ]
    print(f"== fuzz {target} ({seconds} s)", flush=True)
    # libFuzzer stops on its own after max_total_time; the margin covers start-up and the
    # initial pass over the corpus.
    proc = subprocess.run(cmd, timeout=seconds + 600, capture_output=True, text=True)
    tail = "\n".join(proc.stderr.splitlines()[-15:])
    if proc.returncode != 0:
        print(f"FINDING in {target} (rc {proc.returncode}):\n{tail}", flush=True)
        return False
    stats = [
        ln for ln in proc.stderr.splitlines() if ln.startswith(("stat::number_of_executed", "Done"))
    ]
    print("\n".join(stats) or tail, flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help=f"some of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--seconds", type=int, default=20, help="time budget per target")
    parser.add_argument("--corpus", type=Path, help="corpus directory kept between runs")
    parser.add_argument("--rss-limit-mb", type=int, default=2048)
    parser.add_argument("--timeout", type=int, default=20, help="seconds allowed per input")
    args = parser.parse_args(argv)
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target(s) {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="bitnet-fuzz-") as tmp:
        root = args.corpus or Path(tmp)
        ok = [
            run_target(t, args.seconds, root, args.rss_limit_mb, args.timeout)
            for t in args.targets or TARGETS
        ]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
