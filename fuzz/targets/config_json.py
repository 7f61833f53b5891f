"""Fuzz target: config.json parsing and validation (ModelConfig)."""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import fuzz

# Coverage is collected in the package's own code only: instrumenting its dependencies
# too would make every start-up take minutes.
with atheris.instrument_imports(include=["bitnet_backend"]):
    from bitnet_backend.config import ModelConfig
    from bitnet_backend.errors import BitnetError
    from bitnet_backend.validation import parse_json


def check(data: bytes) -> None:
    try:
        raw = parse_json("config.json", data, "config.json")
        ModelConfig.from_dict(raw)
    except BitnetError:
        pass


if __name__ == "__main__":
    fuzz(check)
