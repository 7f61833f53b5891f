"""Soak: concurrent generate / stream / cancel / close on one model, logging RSS and fds.

    python benchmarks/soak.py --minutes 30                 # the documented long run
    python benchmarks/soak.py --seconds 10 --model DIR     # a short run (tests/test_soak.py)

Worker threads share one model: greedy and seeded generate, streams abandoned after a few
chunks (closed), async generations cancelled by a timeout, chats with a JSON schema. Every
``--round`` seconds the workers finish their current call, the model is closed and loaded
again (closing while calls are running is a lifecycle question of its own). Every
``--interval`` seconds one CSV line goes to stderr: elapsed s, RSS MiB, open fds, threads,
calls done, errors. The last stdout line is a JSON summary; the exit status is 1 when a call
failed with anything but the expected cancellation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import bitnet_backend as bb

PROMPTS = ("Once upon a time", "The capital of France is", "def add(a, b):", "Hello")
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Soak:
    def __init__(self, source: str | None, threads: int, n_threads: int) -> None:
        self.source = source
        self.workers = threads
        self.n_threads = n_threads
        self.calls = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def load(self) -> bb.Model:
        return bb.load(self.source, n_threads=self.n_threads)

    def _count(self, error: BaseException | None = None) -> None:
        with self._lock:
            self.calls += 1
            if error is not None:
                self.errors.append(f"{type(error).__name__}: {error}")

    def _one_call(self, model: bb.Model, kind: int, i: int) -> None:
        prompt = PROMPTS[i % len(PROMPTS)]
        if kind == 0:
            model.generate(prompt, max_tokens=8, temperature=0)
        elif kind == 1:
            model.generate(prompt, max_tokens=8, temperature=0.9, seed=i)
        elif kind == 2:
            stream = model.stream(prompt, max_tokens=32, temperature=0.7, seed=i)
            for _ in itertools.islice(stream, 2):
                pass
            stream.close()  # type: ignore[attr-defined]
        elif kind == 3:
            asyncio.run(self._cancelled(model, prompt))
        else:
            messages = [{"role": "user", "content": prompt}]
            model.chat(messages, max_tokens=12, temperature=0, json_schema=SCHEMA)

    @staticmethod
    async def _cancelled(model: bb.Model, prompt: str) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(model.agenerate(prompt, max_tokens=64), timeout=0.01)

    def _worker(self, model: bb.Model, index: int, stop: threading.Event) -> None:
        for i in itertools.count(index):
            if stop.is_set():
                return
            try:
                self._one_call(model, (index + i) % 5, i)
                self._count()
            except Exception as exc:
                self._count(exc)

    def run(self, seconds: float, round_seconds: float, interval: float) -> dict[str, Any]:
        fds_before = open_fds()
        start = time.monotonic()
        samples: list[tuple[float, float, int]] = []
        next_log = 0.0
        print("elapsed_s,rss_mib,fds,threads,calls,errors", file=sys.stderr, flush=True)
        while time.monotonic() - start < seconds:
            model = self.load()
            stop = threading.Event()
            pool = [
                threading.Thread(target=self._worker, args=(model, k, stop), daemon=True)
                for k in range(self.workers)
            ]
            for t in pool:
                t.start()
            round_end = min(time.monotonic() + round_seconds, start + seconds)
            while time.monotonic() < round_end:
                time.sleep(min(0.2, max(0.0, round_end - time.monotonic())))
                elapsed = time.monotonic() - start
                if elapsed >= next_log:
                    next_log = elapsed + interval
                    sample = (elapsed, rss_mib(), open_fds())
                    samples.append(sample)
                    print(
                        f"{elapsed:.1f},{sample[1]:.1f},{sample[2]},{threading.active_count()},"
                        f"{self.calls},{len(self.errors)}",
                        file=sys.stderr,
                        flush=True,
                    )
            stop.set()
            for t in pool:
                t.join()
            model.close()
        # The first sample after warm-up (first quarter of the run) is the baseline.
        warm = [s for s in samples if s[0] >= seconds / 4] or samples
        return {
            "seconds": round(time.monotonic() - start, 1),
            "calls": self.calls,
            "errors": self.errors[:20],
            "error_count": len(self.errors),
            "rss_mib_start": round(warm[0][1], 1),
            "rss_mib_end": round(rss_mib(), 1),
            "rss_mib_max": round(max(s[1] for s in samples), 1),
            "fds_before": fds_before,
            "fds_start": warm[0][2],
            "fds_end": open_fds(),
            "threads_end": threading.active_count(),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float)
    length.add_argument("--seconds", type=float)
    parser.add_argument("--model", help="checkpoint directory or hub id (default: embedded)")
    parser.add_argument("--workers", type=int, default=6, help="concurrent caller threads")
    parser.add_argument("--n-threads", type=int, default=2, help="engine threads")
    parser.add_argument("--round", type=float, default=60.0, help="seconds between reloads")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between logs")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else 60 * (args.minutes or 30)
    soak = Soak(args.model and str(Path(args.model)), args.workers, args.n_threads)
    summary = soak.run(seconds, args.round, args.interval)
    print(json.dumps(summary), flush=True)
    return 1 if summary["error_count"] else 0


if __name__ == "__main__":
    sys.exit(main())
