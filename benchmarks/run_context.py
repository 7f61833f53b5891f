"""Where benchmark inputs and results live, and the machine a result was measured on.

Kept apart from bench.py (which imports the llama.cpp build and GGUF tooling) so that a
benchmark that measures its own process's memory imports no more than it needs.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

import bandwidth

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
RESULTS = HERE / "results"


def log(msg: str) -> None:
    """Progress on stderr (stdout carries the table)."""
    print(msg, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    """CPU name, core count, THP policy, engine ISA: what the numbers depend on."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "thp": bandwidth.thp_mode(),
        "python": platform.python_version(),
    }
    try:
        from bitnet_backend import _engine  # type: ignore[attr-defined]
        from bitnet_backend.backends.cpu import resolve_choices

        info["engine_isas"] = list(_engine.available_isas())
        info["engine_default_isa"] = resolve_choices().isa
    except (ImportError, AttributeError):
        pass
    return info
