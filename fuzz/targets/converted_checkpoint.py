"""Fuzz target: loading a converted checkpoint whose files were mutated, then generating.

The input chooses byte edits (offset, value) applied to a small converted checkpoint's
model.safetensors and a few config.json values; load (with or without verification) and a
2-token greedy generate must either work or raise a BitnetError. A crash of the engine (a
signal) is reported by libFuzzer.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import fuzz

# Coverage is collected in the package's own code only: instrumenting its dependencies
# too would make every start-up take minutes.
with atheris.instrument_imports(include=["bitnet_backend"]):
    import bitnet_backend as bb
    from bitnet_backend.errors import BitnetError

_WORK = Path(tempfile.mkdtemp(prefix="bitnet-fuzz-"))
_CONFIG_KEYS = ("num_hidden_layers", "hidden_size", "vocab_size", "max_position_embeddings")


def _base() -> Path:
    base = _WORK / "base"
    if not base.exists():
        from bitnet_backend.convert import convert
        from bitnet_backend.testing import write_checkpoint

        convert(write_checkpoint(_WORK / "hf"), base)
    return base


def check(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    work = _WORK / "case"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(_base(), work)
    weights = work / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    for _ in range(fdp.ConsumeIntInRange(0, 8)):
        blob[fdp.ConsumeIntInRange(0, len(blob) - 1)] = fdp.ConsumeInt(1) & 0xFF
    weights.write_bytes(bytes(blob))
    if fdp.ConsumeBool():
        cfg = json.loads((work / "config.json").read_text())
        cfg[fdp.PickValueInList(list(_CONFIG_KEYS))] = fdp.ConsumeIntInRange(-2, 1 << 20)
        (work / "config.json").write_text(json.dumps(cfg))
    # Without verification the mutated engine tensors reach the engine's own size checks.
    verify = fdp.ConsumeBool()
    with contextlib.suppress(BitnetError), bb.load(work, n_threads=1, n_ctx=32, verify=verify) as m:
        m.generate("Hello", max_tokens=2, temperature=0)


if __name__ == "__main__":
    fuzz(check)
