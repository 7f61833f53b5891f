"""Embedding lookups of random tokens leave no pages of the checkpoint mapping resident: the
table stays a file mapping, and each row read drops whatever the read fault mapped."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from backends import cpu_built

pytestmark = [
    pytest.mark.skipif(not cpu_built(), reason="bitnet_backend._engine is not built"),
    pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/smaps"),
]


def _resident_bytes_of(path: Path) -> int:
    """RSS of this process's mappings of `path`."""
    total, current = 0, ""
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and not fields[0].endswith(":"):
            current = fields[5] if len(fields) > 5 else ""
        elif fields and fields[0] == "Rss:" and current == str(path):
            total += int(fields[1]) * 1024
    return total


def test_random_token_lookups_do_not_grow_the_mapping(
    make_checkpoint: Callable[..., Path],
) -> None:
    from bitnet_backend.backends.cpu import BACKEND
    from bitnet_backend.checkpoints.hf import load_checkpoint

    # A 32 MB table (f32 rows of 1 KiB): rows of random tokens lie far apart.
    path = make_checkpoint(shape={"hidden_size": 256, "vocab_size": 32768}, seed=5)
    ckpt = load_checkpoint(path)
    engine = BACKEND.load(ckpt, n_threads=1, exact_logits=0)
    weights = path / "model.safetensors"
    session = engine.new_session(256)
    session.eval([1])
    before = _resident_bytes_of(weights)
    rng = np.random.default_rng(0)
    session.eval([int(t) for t in rng.integers(0, 32768, 100)])  # a prompt
    for t in rng.integers(0, 32768, 100):  # and decode steps
        session.eval([int(t)])
    # A read fault may map a whole page-cache folio: dropping only the 64 KiB fault-around
    # window around each row left ~2 MB of this table resident.
    assert _resident_bytes_of(weights) - before < 1 << 20


def test_a_load_leaves_no_pages_of_the_checkpoint_resident(
    make_checkpoint: Callable[..., Path],
) -> None:
    from bitnet_backend.backends.cpu import BACKEND
    from bitnet_backend.checkpoints.hf import load_checkpoint

    path = make_checkpoint(shape="small", seed=5)
    engine = BACKEND.load(load_checkpoint(path), n_threads=1)
    # The engine holds its own copies of norms and scales: reading them must not leave their
    # pages (and the neighbours their read faults mapped, ~140 KiB here) in RSS.
    assert _resident_bytes_of(path / "model.safetensors") < 32 << 10
    assert engine.info["weight_bytes"] > 0  # the engine stays alive while the mapping is read
