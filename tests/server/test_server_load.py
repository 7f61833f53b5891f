"""Bounded load: 32 concurrent streaming clients for BITNET_SERVER_LOAD_SECONDS (default 10).

Every response must equal its prompt's greedy output (no lost, duplicated or interleaved
tokens), no response may be a 5xx, and the process's RSS must stay flat after warm-up.
Latency percentiles and throughput are printed (``pytest -s``); 60 s is the documented
longer run: ``BITNET_SERVER_LOAD_SECONDS=60 pytest tests/server/test_server_load.py -s``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time

import httpx
import psutil
from live_server import LiveServer

import bitnet_backend as bb

CLIENTS = 32
PROMPTS = [
    f"Tell me about {thing}."
    for thing in (
        "the sea",
        "a cat",
        "the moon",
        "bread",
        "a river",
        "music",
        "a forest",
        "the rain",
    )
]
MAX_TOKENS = 24
# Allocator noise, not a leak: a leak of one session or one response per request would
# grow by far more than this over hundreds of requests.
RSS_SLACK_BYTES = 96 * 1024 * 1024
REQUEST_TIMEOUT_S = 120.0


def _duration() -> float:
    return float(os.environ.get("BITNET_SERVER_LOAD_SECONDS", "10"))


async def _stream_one(client: httpx.AsyncClient, prompt: str) -> tuple[int, str, int]:
    body = {
        "model": "bitnet",
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": MAX_TOKENS,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    text, tokens = [], 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            await r.aread()
            return r.status_code, "", 0
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            assert "error" not in chunk, chunk
            for c in chunk["choices"]:
                text.append(c["delta"].get("content") or "")
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return 200, "".join(text), tokens


async def _run(srv: LiveServer, expected: dict[str, str], seconds: float) -> dict:
    proc = psutil.Process()
    latencies: list[float] = []
    statuses: list[int] = []
    mismatches: list[tuple[str, str]] = []
    tokens = 0
    rss_after_warmup = 0
    warm = asyncio.Event()
    warmed: set[int] = set()
    async with httpx.AsyncClient(
        base_url=srv.url, timeout=REQUEST_TIMEOUT_S, limits=httpx.Limits(max_connections=CLIENTS)
    ) as client:
        end = time.monotonic() + seconds

        async def worker(k: int) -> None:
            nonlocal tokens, rss_after_warmup
            i = k
            while time.monotonic() < end or k not in warmed:
                prompt = PROMPTS[i % len(PROMPTS)]
                start = time.perf_counter()
                status, text, n = await _stream_one(client, prompt)
                latencies.append(time.perf_counter() - start)
                statuses.append(status)
                tokens += n
                if status == 200 and text != expected[prompt]:
                    mismatches.append((prompt, text))
                i += 1
                warmed.add(k)
                if len(warmed) == CLIENTS and not warm.is_set():
                    rss_after_warmup = proc.memory_info().rss
                    warm.set()

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(CLIENTS)))
        elapsed = time.perf_counter() - started
    return {
        "latencies": latencies,
        "statuses": statuses,
        "mismatches": mismatches,
        "tokens": tokens,
        "elapsed": elapsed,
        "rss_warm": rss_after_warmup,
        "rss_end": proc.memory_info().rss,
    }


def test_32_streaming_clients_get_their_greedy_output(
    server: LiveServer, models: dict[str, bb.Model]
) -> None:
    expected = {
        p: models["bitnet"]
        .chat([{"role": "user", "content": p}], temperature=0, max_tokens=MAX_TOKENS)
        .content
        for p in PROMPTS
    }
    out = asyncio.run(_run(server, expected, _duration()))
    lat = sorted(out["latencies"])
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    print(
        f"\n{len(lat)} streamed requests from {CLIENTS} clients in {out['elapsed']:.1f} s: "
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"{out['tokens'] / out['elapsed']:.0f} generated tokens/s, "
        f"RSS {out['rss_warm'] / 2**20:.0f} -> {out['rss_end'] / 2**20:.0f} MiB"
    )
    assert not [s for s in out["statuses"] if s >= 500]
    assert set(out["statuses"]) == {200}
    assert not out["mismatches"], out["mismatches"][:3]
    assert len(lat) >= CLIENTS
    assert out["rss_end"] - out["rss_warm"] < RSS_SLACK_BYTES
