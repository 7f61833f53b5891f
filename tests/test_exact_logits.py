"""Exact top logits: a quantized head's largest logits are recomputed in float32 from the table."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import bitnet_backend as bb
from bitnet_backend.checkpoints.hf import load_checkpoint

pytest.importorskip("bitnet_backend._engine")
from bitnet_backend.backends.cpu import BACKEND, DEFAULT_EXACT_LOGITS

IDS = [5, 17, 99, 3, 250, 31, 7, 64, 128, 200, 11, 42, 1, 2, 300, 77]
QUANTIZED = ["int8", "q6", "q4"]


# A vocabulary that is not a multiple of the 16-logit scan blocks nor of the head's 16-row
# blocks: the scan's scalar tail and the padded head rows are both exercised.
@pytest.fixture(scope="module", params=[True, False], ids=["tied", "untied"])
def ckpt_dir(request: pytest.FixtureRequest, make_checkpoint: Callable[..., Path]) -> Path:
    shape = {
        "hidden_size": 96,
        "intermediate_size": 200,
        "vocab_size": 1029,
        "tie_word_embeddings": request.param,
    }
    return make_checkpoint(shape=shape, seed=5)


def _logits(path: Path, **options: object) -> np.ndarray:
    engine = BACKEND.load(load_checkpoint(path), n_threads=3, **options)
    return engine.logits(IDS)


@pytest.mark.parametrize("lm_head", QUANTIZED)
@pytest.mark.parametrize("top", [1, 7, 64])
def test_the_top_logits_of_the_quantized_head_become_the_float_heads(
    ckpt_dir: Path, lm_head: str, top: int
) -> None:
    exact = _logits(ckpt_dir, lm_head="f32")
    quantized = _logits(ckpt_dir, lm_head=lm_head, exact_logits=0)
    refined = _logits(ckpt_dir, lm_head=lm_head, exact_logits=top)
    for t in range(len(IDS)):
        chosen = np.argsort(-quantized[t], kind="stable")[:top]
        rest = np.setdiff1d(np.arange(quantized.shape[1]), chosen)
        np.testing.assert_array_equal(refined[t, chosen], exact[t, chosen])
        np.testing.assert_array_equal(refined[t, rest], quantized[t, rest])


@pytest.mark.parametrize("lm_head", QUANTIZED)
def test_more_exact_logits_than_the_vocabulary_gives_the_float_head(
    ckpt_dir: Path, lm_head: str
) -> None:
    np.testing.assert_array_equal(
        _logits(ckpt_dir, lm_head=lm_head, exact_logits=5000), _logits(ckpt_dir, lm_head="f32")
    )


@pytest.mark.parametrize("lm_head", QUANTIZED)
def test_greedy_decoding_follows_the_float_head(ckpt_dir: Path, lm_head: str) -> None:
    def greedy(**options: object) -> list[int]:
        with bb.load(ckpt_dir, backend="cpu", n_threads=2, **options) as model:
            out = model.generate("The quick brown fox", max_tokens=24, temperature=0)
            return list(out.token_ids)

    assert greedy(lm_head=lm_head) == greedy(lm_head="f32")


def test_a_table_held_in_memory_gives_the_same_logits(ckpt_dir: Path) -> None:
    ckpt = load_checkpoint(ckpt_dir)
    # Every tensor copied out of the file mapping: the rows are read in place, not from the file.
    ckpt.tensors = {
        name: dataclasses.replace(ref, data=ref.data.copy()) for name, ref in ckpt.tensors.items()
    }
    in_memory = BACKEND.load(ckpt, n_threads=2, lm_head="q4", exact_logits=7).logits(IDS)
    np.testing.assert_array_equal(in_memory, _logits(ckpt_dir, lm_head="q4", exact_logits=7))


def test_a_sharded_checkpoint_reads_the_table_from_its_own_shard(
    make_checkpoint: Callable[..., Path],
) -> None:
    shape = {"hidden_size": 96, "intermediate_size": 200, "vocab_size": 1029}
    path = make_checkpoint(shape=shape, seed=5, shards=3)
    ckpt = load_checkpoint(path)
    assert len({ref.file for ref in ckpt.tensors.values()}) == 3
    exact = _logits(path, lm_head="f32")
    quantized = _logits(path, lm_head="q6", exact_logits=0)
    refined = _logits(path, lm_head="q6", exact_logits=5)
    for t in range(len(IDS)):
        chosen = np.argsort(-quantized[t], kind="stable")[:5]
        np.testing.assert_array_equal(refined[t, chosen], exact[t, chosen])


def test_info_reports_how_many_logits_are_exact(ckpt_dir: Path) -> None:
    ckpt = load_checkpoint(ckpt_dir)
    assert BACKEND.load(ckpt, n_threads=1).info["exact_logits"] == DEFAULT_EXACT_LOGITS
    assert BACKEND.load(ckpt, n_threads=1, exact_logits=3).info["exact_logits"] == 3
    # The float head is exact everywhere: nothing to recompute.
    assert BACKEND.load(ckpt, n_threads=1, lm_head="f32").info["exact_logits"] == 0


@pytest.mark.parametrize("value", [-1, 2.5, True, "8", None])
def test_bad_exact_logits_raise_invalid_parameter(ckpt_dir: Path, value: object) -> None:
    with pytest.raises(bb.InvalidParameterError, match="exact_logits"):
        BACKEND.load(load_checkpoint(ckpt_dir), n_threads=1, exact_logits=value)
