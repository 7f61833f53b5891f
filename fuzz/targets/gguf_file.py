"""Fuzz target: reading a GGUF file whose bytes were mutated or cut, then generating.

The input chooses a cut point and byte edits (offset, value) applied to a small TQ2_0 or I2_S
GGUF file (header, metadata, tensor infos and data alike); loading it (reference backend,
which decodes every tensor) and a 2-token greedy generate must either work or raise a
BitnetError.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import fuzz

# Coverage is collected in the package's own code only (see converted_checkpoint.py).
with atheris.instrument_imports(include=["bitnet_backend"]):
    import bitnet_backend as bb
    from bitnet_backend.errors import BitnetError

_WORK = Path(tempfile.mkdtemp(prefix="bitnet-fuzz-"))
_TYPES = ("tq2_0", "i2_s")
# Ternary rows must fill whole TQ blocks (256 values) and I2_S groups (128).
_SHAPE = {"base": "tiny", "hidden_size": 256, "intermediate_size": 256}


def _base(ggml_type: str) -> bytes:
    path = _WORK / f"base-{ggml_type}.gguf"
    if not path.exists():
        from bitnet_backend.testing import write_gguf

        write_gguf(path, ggml_type=ggml_type, shape=_SHAPE)
    return path.read_bytes()


def check(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    blob = bytearray(_base(fdp.PickValueInList(list(_TYPES))))
    if fdp.ConsumeBool():
        blob = blob[: fdp.ConsumeIntInRange(0, len(blob))]
    # Most edits land in the header and metadata, where the structure is.
    head = min(len(blob), 1 << 14)
    for _ in range(fdp.ConsumeIntInRange(0, 8)):
        if not blob:
            break
        span = head if fdp.ConsumeBool() else len(blob)
        blob[fdp.ConsumeIntInRange(0, max(0, span - 1))] = fdp.ConsumeInt(1) & 0xFF
    case = _WORK / "case.gguf"
    case.write_bytes(bytes(blob))
    with contextlib.suppress(BitnetError), bb.load(case, backend="reference", n_ctx=32) as m:
        m.generate("Hello", max_tokens=2, temperature=0)


if __name__ == "__main__":
    fuzz(check)
