"""RoPE scaling and BitLinear input norms across GGUF: what is written, read, or refused.

Linear rope scaling has a GGUF form (``<arch>.rope.scaling.type`` / ``.factor``) and round
trips; llama.cpp writes Llama 3.1 scaling as a ``rope_freqs`` tensor and quantization_config's
use_rms_norm has no form at all: both are refused by name, never loaded as something else.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from oracle import check_strict, prompt_ids
from test_gguf import _rewrite

from bitnet_backend.architecture import LLAMA_BITNET
from bitnet_backend.checkpoints.gguf import open_gguf
from bitnet_backend.checkpoints.hf import load_checkpoint
from bitnet_backend.errors import CheckpointError, UnsupportedModelError
from bitnet_backend.gguf_export import export_gguf
from bitnet_backend.rope import RopeScaling

pytest.importorskip("gguf")

# I2_S holds tensors of a multiple of 128 values per row.
SHAPE = {"hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4}
LINEAR = {"rope_type": "linear", "factor": 2.0}
LLAMA3 = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}


@pytest.fixture(scope="module")
def linear_gguf(
    make_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    src = make_checkpoint(family=LLAMA_BITNET, shape={**SHAPE, "rope_scaling": LINEAR}, seed=3)
    return src, export_gguf(src, tmp_path_factory.mktemp("gguf") / "linear.gguf", "i2_s")


def test_linear_rope_scaling_round_trips_through_gguf(linear_gguf):
    from bitnet_backend.backends import reference

    src, path = linear_gguf
    meta, _ = open_gguf(path)
    assert meta["llama.rope.scaling.type"] == "linear"
    assert meta["llama.rope.scaling.factor"] == 2.0
    with load_checkpoint(src) as a, load_checkpoint(path) as b:
        assert b.config.rope_scaling == a.config.rope_scaling == RopeScaling("linear", 2.0)
        want = reference.BACKEND.load(a, n_threads=1)
        got = reference.BACKEND.load(b, n_threads=1)
        ids = prompt_ids(a.config.vocab_size, 12, seed=4, bos=a.config.bos_token_id)
        check_strict(got.logits(ids), want.logits(ids))


@pytest.mark.parametrize(
    ("checkpoint", "reason"),
    [
        ({"shape": {**SHAPE, "rope_scaling": LLAMA3}}, "rope_type 'llama3'"),
        ({"shape": SHAPE, "use_rms_norm": True}, "use_rms_norm"),
    ],
)
def test_export_refuses_what_gguf_cannot_say(make_checkpoint, tmp_path, checkpoint, reason):
    src = make_checkpoint(family=LLAMA_BITNET, **checkpoint)
    with pytest.raises(UnsupportedModelError, match=reason):
        export_gguf(src, tmp_path / "out.gguf", "i2_s")
    assert not (tmp_path / "out.gguf").exists()


def test_rope_freqs_tensor_is_refused_by_name(linear_gguf, tmp_path):
    def edit(meta: dict[str, Any], tensors: dict[str, Any]) -> None:
        factors = np.ones(SHAPE["hidden_size"] // SHAPE["num_attention_heads"] // 2, np.float32)
        tensors["rope_freqs.weight"] = (0, factors.shape, factors.view(np.uint8))

    bad = _rewrite(linear_gguf[1], tmp_path / "freqs.gguf", edit)
    with pytest.raises(UnsupportedModelError, match=r"rope_freqs\.weight") as info:
        load_checkpoint(bad)
    assert info.value.path == str(bad)


@pytest.mark.parametrize(
    ("kind", "factor", "error", "reason"),
    [
        ("yarn", 4.0, UnsupportedModelError, r"llama\.rope\.scaling\.type 'yarn'"),
        ("linear", -1.0, CheckpointError, r"llama\.rope\.scaling\.factor"),
    ],
)
def test_bad_gguf_rope_scaling_names_the_key(linear_gguf, tmp_path, kind, factor, error, reason):
    def edit(meta: dict[str, Any], _: dict[str, Any]) -> None:
        meta["llama.rope.scaling.type"] = kind
        meta["llama.rope.scaling.factor"] = factor

    bad = _rewrite(linear_gguf[1], tmp_path / "scaling.gguf", edit)
    with pytest.raises(error, match=reason):
        load_checkpoint(bad)
