"""A short run of benchmarks/soak.py: concurrent calls and reloads leave nothing behind."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

SOAK = Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 * 1024**3, 4 * 1024**3))


def test_short_soak_has_no_errors_or_leaked_fds_and_threads(
    make_checkpoint: Callable[..., Path],
) -> None:
    cmd = [sys.executable, "-X", "faulthandler", str(SOAK), "--seconds", "10"]
    cmd += ["--round", "4", "--interval", "1", "--workers", "4", "--model", str(make_checkpoint())]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, preexec_fn=_limit_memory
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    summary = json.loads(proc.stdout.splitlines()[-1])
    log = proc.stderr.splitlines()
    assert log[0] == "elapsed_s,rss_mib,fds,threads,calls,errors" and len(log) > 2
    assert summary["calls"] > 0 and summary["error_count"] == 0
    # Three load/close rounds: the models' files and worker threads are all released.
    assert summary["fds_end"] <= summary["fds_before"]
    assert summary["threads_end"] == 1
    assert summary["rss_mib_end"] - summary["rss_mib_start"] < 100
