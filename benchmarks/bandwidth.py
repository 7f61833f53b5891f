"""Machine read bandwidth (bandwidth.c, compiled on the fly into the cache) and rooflines."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def build(cache: Path) -> Path:
    """Compile bandwidth.c with the native ISA (cached by source mtime)."""
    source = HERE / "bandwidth.c"
    out = cache / "bandwidth"
    if out.exists() and out.stat().st_mtime >= source.stat().st_mtime:
        return out
    cache.mkdir(parents=True, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-O3", "-march=native", "-pthread", str(source), "-o", str(out)]
    subprocess.run(cmd, check=True)
    return out


def measure(
    cache: Path,
    threads: tuple[int, ...],
    size_mib: int = 1024,
    reps: int = 15,
    trials: int = 3,
) -> list[dict[str, Any]]:
    """Median read GB/s for each thread count, with 4 KiB pages and with 2 MiB huge pages.

    Each configuration runs ``trials`` times on a freshly mapped buffer, interleaved with the
    others: on a VM the physical backing of a new mapping (and so its speed) varies from one
    allocation to the next. The result is the median over trials of the median over passes.
    """
    tool = build(cache)
    configs = [(huge, t) for huge in (0, 1) for t in threads]
    samples: dict[tuple[int, int], list[dict[str, Any]]] = {c: [] for c in configs}
    for _ in range(trials):
        for huge, t in configs:
            out = subprocess.run(
                [str(tool), str(size_mib), str(t), str(reps), str(huge)],
                capture_output=True,
                text=True,
                check=True,
            )
            samples[(huge, t)].append(json.loads(out.stdout))
    results = []
    for (huge, _), recs in samples.items():
        rec = dict(sorted(recs, key=lambda r: r["median_gbs"])[len(recs) // 2])
        rec["trials_gbs"] = [r["median_gbs"] for r in recs]
        rec["pages"] = "2M" if huge else "4K"
        # THP is "madvise" on many machines and may be off entirely: say what we got.
        rec["huge_fraction"] = min(r["anon_huge_kib"] for r in recs) * 1024 / rec["bytes"]
        results.append(rec)
    return results


def thp_mode() -> str:
    """The kernel's transparent huge page policy, e.g. "madvise"."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "unknown"
    for word in text.split():
        if word.startswith("["):
            return word.strip("[]")
    return text.strip()


def gbs(results: list[dict[str, Any]], threads: int, pages: str) -> float | None:
    """The median GB/s measured for (threads, pages), if any."""
    for rec in results:
        if rec["threads"] == threads and rec["pages"] == pages:
            return float(rec["median_gbs"])
    return None
