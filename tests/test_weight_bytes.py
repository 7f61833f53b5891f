"""``info["weight_bytes"]``: every byte of weights a decoded token reads, counted once: the
repacked linears with their per-row scales and the output head (what ``export_layout``
holds), the norm weights, one embedding row and the rows of the exact top logits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from backends import cpu_built

pytestmark = pytest.mark.skipif(not cpu_built(), reason="bitnet_backend._engine is not built")


def _is_norm(name: str) -> bool:
    module = name.removesuffix(".weight").rsplit(".", 1)[-1]
    return name.endswith(".weight") and module.endswith(("norm", "_ln"))


@pytest.mark.parametrize("family", ["bitnet-b1.58", "llama-bitnet", "1bitllm-bitnet"])
def test_weight_bytes_counts_linears_scales_norms_head_and_read_rows(
    make_checkpoint: Callable[..., Path], family: str
) -> None:
    from bitnet_backend.backends.cpu import BACKEND
    from bitnet_backend.checkpoints.hf import load_checkpoint

    ckpt = load_checkpoint(make_checkpoint(shape="tiny", family=family, seed=2))
    engine = BACKEND.load(ckpt, n_threads=1)
    h = engine.config.hidden_size
    norm_floats = sum(ref.data.size for name, ref in ckpt.tensors.items() if _is_norm(name))
    assert norm_floats > 0
    row_bytes = h * ckpt.tensors["model.embed_tokens.weight"].data.dtype.itemsize
    read_rows = 1 + int(engine.info["exact_logits"])  # an embedding row, the exact logits' rows
    layout = sum(a.nbytes for a in engine.export_layout().values())
    assert engine.info["weight_bytes"] == layout + 4 * norm_floats + read_rows * row_bytes
