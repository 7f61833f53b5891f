"""``bitnet bench``: prompt and generation speed of a model, llama-bench style."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .options import add_command, counts, int32, load_model, model_options

if TYPE_CHECKING:
    from ..model import Model

DESCRIPTION = """\
Measure prompt processing (ppN: N prompt tokens evaluated in one batch) and generation
(tgN: N tokens sampled greedily and evaluated one at a time) in tokens per second, for each
thread count. Each test runs once untimed, then --repetitions times. The figures mean
something only on an otherwise idle machine.

examples:
  bitnet bench
  bitnet bench -m ./bitnet-2b-converted -p 128,512 -n 64 --threads 1,2 --json bench.json
"""


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    p = add_command(
        sub,
        "bench",
        "measure prompt and generation speed",
        DESCRIPTION,
        (model_options(thread_counts=True),),
    )
    p.add_argument(
        "-p",
        "--n-prompt",
        type=counts,
        default=[128],
        metavar="N[,N...]",
        help="prompt lengths to test, 0 for none (default: 128)",
    )
    p.add_argument(
        "-n",
        "--n-gen",
        type=counts,
        default=[64],
        metavar="N[,N...]",
        help="generation lengths to test, 0 for none (default: 64)",
    )
    p.add_argument(
        "-r",
        "--repetitions",
        type=int32,
        default=3,
        metavar="R",
        help="timed runs per test (default: %(default)s)",
    )
    p.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="also write the results as JSON to FILE (default: none)",
    )
    p.set_defaults(handler=bench)


@dataclass
class BenchResult:
    """One row of the table: a test at one thread count."""

    model: str
    backend: str
    isa: str
    parameters: int
    threads: int
    test: str
    n_prompt: int
    n_gen: int
    samples_ms: list[float] = field(default_factory=list)

    @property
    def samples_ts(self) -> list[float]:
        tokens = self.n_prompt + self.n_gen
        return [tokens * 1e3 / ms for ms in self.samples_ms if ms > 0]

    def as_json(self) -> dict[str, Any]:
        ts = self.samples_ts
        return {
            **asdict(self),
            "samples_ts": ts,
            "avg_ts": statistics.fmean(ts) if ts else 0.0,
            "stddev_ts": statistics.stdev(ts) if len(ts) > 1 else 0.0,
        }


def bench(args: argparse.Namespace) -> int:
    from ..errors import InvalidParameterError

    if args.repetitions < 1:
        raise InvalidParameterError(f"--repetitions must be >= 1, got {args.repetitions}")
    tests = [("pp", n) for n in args.n_prompt if n > 0] + [("tg", n) for n in args.n_gen if n > 0]
    if not tests:
        raise InvalidParameterError("nothing to measure: every -p and -n value is 0")
    if args.json is not None and not args.json.parent.is_dir():
        # Checked before minutes of measuring, not after.
        raise InvalidParameterError(f"--json: {args.json.parent} is not a directory")
    threads: list[int | None] = list(args.threads) if args.threads else [None]
    results: list[BenchResult] = []
    print("| model | params | backend | isa | threads | test | t/s |")
    print("| --- | ---: | --- | --- | ---: | ---: | ---: |")
    for n_threads in threads:
        model, _ = load_model(args, n_threads=n_threads)
        with model:
            info = model.info
            for kind, n in tests:
                row = BenchResult(
                    model=model.source,
                    backend=str(info["backend"]),
                    isa=str(info["kernel_isa"]),
                    parameters=int(info["parameters"]),
                    threads=int(info["threads"]),
                    test=f"{kind}{n}",
                    n_prompt=n if kind == "pp" else 0,
                    n_gen=n if kind == "tg" else 0,
                )
                measure = _prompt_ms if kind == "pp" else _generation_ms
                measure(model, n)  # warm-up: caches, page faults, thread start
                row.samples_ms = [measure(model, n) for _ in range(args.repetitions)]
                results.append(row)
                print(_table_row(row), flush=True)
    if args.json is not None:
        rows = [r.as_json() for r in results]
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _table_row(r: BenchResult) -> str:
    j = r.as_json()
    return (
        f"| {r.model} | {r.parameters / 1e6:.1f}M | {r.backend} | {r.isa} | {r.threads} "
        f"| {r.test} | {j['avg_ts']:.2f} ± {j['stddev_ts']:.2f} |"
    )


def _session(model: Model, n_tokens: int) -> Any:
    from ..errors import ContextOverflowError

    if n_tokens > model.n_ctx:
        raise ContextOverflowError(n_tokens, model.n_ctx)
    return model.engine.new_session(n_tokens)


def _prompt_ids(model: Model, n: int) -> list[int]:
    import numpy as np

    # Fixed pseudo-random ids: every run and machine measures the same prompt.
    return np.random.default_rng(0).integers(0, model.vocab_size, size=n).tolist()


def _prompt_ms(model: Model, n: int) -> float:
    ids = _prompt_ids(model, n)
    session = _session(model, n)
    try:
        start = time.perf_counter()
        session.eval(ids)
        return (time.perf_counter() - start) * 1e3
    finally:
        session.close()


def _generation_ms(model: Model, n: int) -> float:
    from ..sampling import SamplingParams

    greedy = SamplingParams(temperature=0.0)
    session = _session(model, n + 1)
    try:
        session.eval(_prompt_ids(model, 1))
        start = time.perf_counter()
        for _ in range(n):
            session.eval([session.sample(greedy)])
        return (time.perf_counter() - start) * 1e3
    finally:
        session.close()
