"""Shared driver of the fuzz targets: run one ``check(data)`` under atheris, or replay inputs.

A target module defines ``check(data: bytes) -> None`` that feeds the bytes to one reader and
lets only the typed errors of the package (BitnetError) pass; anything else escaping from
``check`` is a finding. ``python fuzz/targets/<name>.py [libFuzzer flags] [corpus dirs]``
fuzzes with coverage from the package's Python code; fuzz/run.py runs every target with a
time budget.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
TARGETS = (
    "safetensors_header",
    "config_json",
    "converted_checkpoint",
    "gguf_file",
    "chat_template",
    "schema",
)


def seeds_dir(target: str) -> Path:
    """Hand-written starting inputs of a target (also replayed by the test suite)."""
    return FUZZ_DIR / "seeds" / target


def regressions_dir(target: str) -> Path:
    """Inputs that once escaped a target's check; replayed by tests/test_fuzz_regressions.py."""
    return FUZZ_DIR / "regressions" / target


def fuzz(check: Callable[[bytes], None]) -> None:
    """Hand ``check`` to atheris (instrumentation is set up by the caller's imports)."""
    import atheris

    atheris.Setup(sys.argv, check)
    atheris.Fuzz()
