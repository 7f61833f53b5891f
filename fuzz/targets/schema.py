"""Fuzz target: JSON-schema normalisation and grammar compilation (llguidance)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import fuzz

# Coverage is collected in the package's own code only: instrumenting its dependencies
# too would make every start-up take minutes.
with atheris.instrument_imports(include=["bitnet_backend"]):
    from bitnet_backend.constraints import ConstraintCompiler
    from bitnet_backend.errors import BitnetError

_COMPILER: ConstraintCompiler | None = None


def _compiler() -> ConstraintCompiler:
    global _COMPILER
    if _COMPILER is None:
        from bitnet_backend.model import DEFAULT_MODEL_DIR
        from bitnet_backend.tokenizer import Tokenizer

        tok = Tokenizer.from_dir(DEFAULT_MODEL_DIR)
        _COMPILER = ConstraintCompiler(tok, tok.eos_token_ids, tok.vocab_size)
    return _COMPILER


def check(data: bytes) -> None:
    with contextlib.suppress(BitnetError):
        _compiler().json_schema(data)


if __name__ == "__main__":
    fuzz(check)
