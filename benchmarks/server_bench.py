"""Throughput and latency of the HTTP server against the same workload in-process.

W streaming clients (W in --clients, default 1,4,8,16) each send --requests greedy text
completions of --max-tokens tokens, at once, to:

- ``api``: the Python API in this process (``Model.astream``), the ceiling;
- ``http``: ``bitnet serve`` in a child process, through HTTP/SSE (httpx), the same way a
  real client talks to it; overhead = 1 - http/api aggregate tokens/s;
- ``llamacpp`` (``--llamacpp``): llama-cpp-python's own server (``python -m llama_cpp.server``)
  on the TQ2_0 GGUF of the same checkpoint, driven by the same client code. It runs in this
  Python when llama-cpp-python and its [server] dependencies are installed here, else in a
  venv under benchmarks/.cache built once from the llama-cpp-python sdist that
  benchmarks/llamacpp.py uses (a source build of llama.cpp: several minutes on 2 cores).

Throughput counts tokens, never text chunks (see ``http_request``).

Nothing here asserts a timing. Run it on an otherwise idle machine: on a shared one the
figures measure the neighbours. Smoke run on the bundled model:

    python benchmarks/server_bench.py --clients 1,4 --requests 2 --max-tokens 16

A real comparison (2B-4T-shaped checkpoint, as bench.py writes it):

    python benchmarks/server_bench.py --checkpoint benchmarks/.cache/model-2b-4t --llamacpp
    python benchmarks/server_bench.py --checkpoint benchmarks/.cache/model-2b-4t --llamacpp --quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
RESULTS = HERE / "results"
PROMPTS = ["Once upon a time", "The capital of France is", "def main():", "In the year 1900"]
START_TIMEOUT_S = 600.0  # a 2B model loads in seconds; llama-cpp-python's first start is slow
REQUEST_TIMEOUT_S = 600.0


def log(msg: str) -> None:
    print(f"[server_bench] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- one measurement: W clients x R requests -------------------------------------------------

Request = Callable[[str], Awaitable[tuple[float, float, int]]]  # -> (ttft, latency, tokens)


async def run_clients(request: Request, clients: int, requests: int) -> dict[str, Any]:
    ttfts: list[float] = []
    latencies: list[float] = []
    tokens = 0

    async def client(k: int) -> None:
        nonlocal tokens
        for i in range(requests):
            ttft, latency, n = await request(PROMPTS[(k + i) % len(PROMPTS)])
            ttfts.append(ttft)
            latencies.append(latency)
            tokens += n

    start = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - start
    lat = sorted(latencies)
    return {
        "clients": clients,
        "requests": len(lat),
        "tokens": tokens,
        "seconds": elapsed,
        "tokens_per_s": tokens / elapsed,
        "ttft_p50_ms": 1000 * statistics.median(ttfts),
        "latency_p50_ms": 1000 * statistics.median(lat),
        "latency_p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
    }


def api_request(model: Any, max_tokens: int) -> Request:
    async def request(prompt: str) -> tuple[float, float, int]:
        start = time.perf_counter()
        ttft, n = 0.0, 0
        async for chunk in model.astream(prompt, max_tokens=max_tokens, temperature=0):
            if not ttft:
                ttft = time.perf_counter() - start
            if chunk.usage is not None:
                n = chunk.usage["completion_tokens"]
        return ttft, time.perf_counter() - start, n

    return request


def http_request(
    client: Any, model: str, max_tokens: int, extra: dict[str, Any] | None = None
) -> Request:
    """A streaming /v1/completions request; its token count is the server's own.

    The count is ``usage.completion_tokens`` of the final chunk (``stream_options``). A
    server that sends no usage while streaming (llama_cpp.server) must run every request to
    ``max_tokens``: then a ``"length"`` finish means exactly ``max_tokens`` tokens. Text chunks
    are no count: a random-weight model's tokens are mostly partial UTF-8 that a server holds
    back or merges.
    """

    async def request(prompt: str) -> tuple[float, float, int]:
        body = {
            "model": model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
            **(extra or {}),
        }
        start = time.perf_counter()
        ttft, usage, finish = 0.0, None, None
        async with client.stream("POST", "/v1/completions", json=body) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                if not ttft:
                    ttft = time.perf_counter() - start
                data = json.loads(line[6:])
                if data.get("usage"):
                    usage = int(data["usage"]["completion_tokens"])
                for choice in data.get("choices") or ():
                    finish = choice.get("finish_reason") or finish
        latency = time.perf_counter() - start
        if usage is not None:
            return ttft, latency, usage
        if finish == "length":
            return ttft, latency, max_tokens
        raise RuntimeError(f"no usage and finish_reason {finish!r}: the tokens cannot be counted")

    return request


def banned_ends(gguf: Path) -> dict[str, float]:
    """A logit_bias that keeps llama.cpp from ending a completion before max_tokens.

    Every control token of the GGUF's vocabulary (end of text / turn among them; llama.cpp
    also treats some of them as end-of-generation by their text) gets -1e9.
    """
    from bitnet_backend.checkpoints.gguf import open_gguf

    meta, _ = open_gguf(gguf)
    control = 3  # llama.cpp's LLAMA_TOKEN_TYPE_CONTROL
    ids = {i for i, t in enumerate(meta.get("tokenizer.ggml.token_type") or ()) if t == control}
    for key in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"):
        if key in meta:
            ids.add(int(meta[key]))
    return {str(i): -1e9 for i in sorted(ids)}


# -- the servers -----------------------------------------------------------------------------


class ChildServer:
    """A server in a child process on 127.0.0.1, ready once GET /v1/models answers."""

    def __init__(self, cmd: list[str], port: int, env: dict[str, str] | None = None) -> None:
        self.url = f"http://127.0.0.1:{port}"
        log(" ".join(cmd))
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)

    def wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start in time")
            time.sleep(0.25)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


def bitnet_server(source: str | None, threads: int, parallel: int, port: int) -> ChildServer:
    cmd = [
        sys.executable,
        "-m",
        "bitnet_backend.cli",
        "serve",
        "--port",
        str(port),
        "--threads",
        str(threads),
        "--parallel",
        str(parallel),
        "--log-level",
        "warning",
    ]
    if source:
        cmd += ["--model", f"bench={source}"]
    return ChildServer(cmd, port)


SERVER_MODULES = ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context")


def llamacpp_python(version: str) -> Path:
    """A Python that runs ``llama_cpp.server``: this one if it has llama-cpp-python and the
    [server] dependencies, else a venv with llama-cpp-python[server] built from the sdist
    (cached under benchmarks/.cache)."""
    import importlib.util

    if all(importlib.util.find_spec(m) is not None for m in SERVER_MODULES):
        return Path(sys.executable)
    sys.path.insert(0, str(HERE))
    import llamacpp

    venv = CACHE / "llamacpp-server" / version
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return python
    llamacpp.fetch_source(CACHE, version)  # downloads the sdist once
    sdist = CACHE / "llamacpp" / f"llama_cpp_python-{version}.tar.gz"
    log(f"building llama-cpp-python[server]=={version} from {sdist.name} (once, several minutes)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "CMAKE_ARGS": "-DGGML_NATIVE=ON", "CMAKE_BUILD_PARALLEL_LEVEL": "2"}
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            f"llama-cpp-python[server] @ {sdist.as_uri()}",
        ],
        check=True,
        env=env,
    )
    (venv / ".complete").write_text("ok\n")
    return python


def tq2_gguf(checkpoint: Path, version: str) -> Path:
    """The TQ2_0 GGUF of ``checkpoint``, made by bench.py's conversion (cached)."""
    sys.path.insert(0, str(HERE))
    import bench
    import llamacpp

    lc = llamacpp.build(CACHE, version)
    return Path(bench.ensure_ggufs(lc, checkpoint, ("TQ2_0",))["TQ2_0"])


def llamacpp_server(python: Path, gguf: Path, threads: int, n_ctx: int, port: int) -> ChildServer:
    cmd = [
        str(python),
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--model_alias",
        "bench",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        str(threads),
        "--n_ctx",
        str(n_ctx),
        # Queue the requests: its default cancels a running stream when another arrives.
        "--interrupt_requests",
        "False",
        "--verbose",
        "False",
    ]
    return ChildServer(cmd, port)


# -- main ------------------------------------------------------------------------------------


async def measure_http(
    url: str, model: str, args: argparse.Namespace, extra: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    import httpx

    out = []
    limits = httpx.Limits(max_connections=max(args.clients))
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits) as c:
        request = http_request(c, model, args.max_tokens, extra)
        await run_clients(request, 1, 1)  # warm-up
        for w in args.clients:
            out.append(await run_clients(request, w, args.requests))
    return out


async def measure_api(model: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    request = api_request(model, args.max_tokens)
    await run_clients(request, 1, 1)
    return [await run_clients(request, w, args.requests) for w in args.clients]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--checkpoint", type=Path, help="model directory (default: the bundled one)")
    p.add_argument("--clients", default="1,4,8,16", help="concurrent streaming clients")
    p.add_argument("--requests", type=int, help="requests per client (4; quick: 1)")
    p.add_argument("--max-tokens", type=int, help="tokens per completion (64; quick: 32)")
    p.add_argument(
        "--quick", action="store_true", help="1 request of 32 tokens per client (~6 min, 2B-4T)"
    )
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--n-ctx", type=int, default=2048)
    p.add_argument("--llamacpp", action="store_true", help="also llama-cpp-python's server")
    p.add_argument("--gguf", type=Path, help="TQ2_0 GGUF for --llamacpp (default: converted)")
    p.add_argument("--llamacpp-version", default="0.3.36")
    p.add_argument("--out", type=Path, help="results JSON (default results/server-<time>.json)")
    args = p.parse_args(argv)
    args.clients = [int(x) for x in args.clients.split(",") if x]
    if args.requests is None:
        args.requests = 1 if args.quick else 4
    if args.max_tokens is None:
        args.max_tokens = 32 if args.quick else 64
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import bitnet_backend as bb

    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    source = str(args.checkpoint) if args.checkpoint else None

    log("api: the Python API in this process")
    with bb.load(source, n_threads=args.threads, n_ctx=args.n_ctx) as model:
        report["api"] = asyncio.run(measure_api(model, args))

    log("http: bitnet serve in a child process")
    srv = bitnet_server(source, args.threads, max(args.clients), free_port())
    try:
        srv.wait_ready()
        name = "bench" if source else "bitnet"
        report["http"] = asyncio.run(measure_http(srv.url, name, args))
    finally:
        srv.stop()

    if args.llamacpp:
        if not args.checkpoint and not args.gguf:
            raise SystemExit("--llamacpp needs --checkpoint (converted to TQ2_0) or --gguf")
        gguf = args.gguf or tq2_gguf(args.checkpoint, args.llamacpp_version)
        python = llamacpp_python(args.llamacpp_version)
        log("llamacpp: llama_cpp.server in a child process")
        lsrv = llamacpp_server(python, gguf, args.threads, args.n_ctx, free_port())
        try:
            lsrv.wait_ready()
            extra = {"logit_bias": banned_ends(gguf)}
            report["llamacpp"] = asyncio.run(measure_http(lsrv.url, "bench", args, extra))
        finally:
            lsrv.stop()

    print_report(report)
    out = args.out or RESULTS / f"server-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {out}")
    return 0


def print_report(report: dict[str, Any]) -> None:
    systems = [s for s in ("api", "http", "llamacpp") if s in report]
    print(
        "| clients | "
        + " | ".join(f"{s} tok/s | {s} p50/p99 ms" for s in systems)
        + " | http/api | http/llamacpp |"
    )
    print("|---" * (1 + 2 * len(systems) + 2) + "|")
    for i, row in enumerate(report["api"]):
        cells = [str(row["clients"])]
        for s in systems:
            r = report[s][i]
            cells += [
                f"{r['tokens_per_s']:.1f}",
                f"{r['latency_p50_ms']:.0f}/{r['latency_p99_ms']:.0f}",
            ]
        http = report["http"][i]["tokens_per_s"]
        cells.append(f"{http / row['tokens_per_s']:.2f}")
        if "llamacpp" in report:
            cells.append(f"{http / report['llamacpp'][i]['tokens_per_s']:.2f}")
        else:
            cells.append("n/a")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
