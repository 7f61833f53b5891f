"""Fuzz target: the safetensors header parser and its offset/shape validation."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import fuzz

# Coverage is collected in the package's own code only: instrumenting its dependencies
# too would make every start-up take minutes.
with atheris.instrument_imports(include=["bitnet_backend"]):
    from bitnet_backend.checkpoints.safetensors_file import _read_header
    from bitnet_backend.errors import BitnetError


def check(data: bytes) -> None:
    with contextlib.suppress(BitnetError):
        _read_header(Path("fuzz.safetensors"), io.BytesIO(data), len(data))


if __name__ == "__main__":
    fuzz(check)
