"""A tiny run of benchmarks/threads.py: every setting measured, the default one adaptive."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "threads.py"
TIMEOUT_S = 300


def test_threads_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "threads.json"
    args = ["--models", "embedded", "--conditions", "quiet", "--rounds", "1"]
    args += ["--n-gen", "2", "--depth", "4", "--prompt", "16", "--min-time", "0.05"]
    args += ["--out", str(out)]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    runs = {r["setting"].split()[0]: r for r in report["runs"]}
    assert sorted(runs) == ["1", "2", "default"]
    assert runs["default"]["info"]["adaptive_threads"] is True
    assert runs["2"]["info"]["adaptive_threads"] is False
    for r in runs.values():
        assert r["tg"] > 0 and r["pp"] > 0
        counters = {"shared_regions", "solo_regions", "short_regions", "caller_wait_ns"}
        assert set(r["thread_stats"]) >= counters
    assert runs["2"]["thread_stats"]["solo_regions"] == 0
    assert {row["setting"].split()[0] for row in report["tg"]} == {"1", "2", "default"}
