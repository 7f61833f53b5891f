"""Ternary helpers match transformers' pack_weights / unpack_weights / WeightQuant exactly."""

from __future__ import annotations

import numpy as np
import pytest

from bitnet_backend.checkpoints import load_checkpoint
from bitnet_backend.checkpoints.ternary import (
    absmean,
    bf16_to_f32,
    f32_to_bf16,
    linear_ternary,
    pack_ternary,
    quantize_weights_absmean,
    unpack_ternary,
)

torch = pytest.importorskip("torch")
hf_bitnet = pytest.importorskip("transformers.integrations.bitnet")


def random_ternary(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(-1, 2, size=shape).astype(np.int8)


@pytest.mark.parametrize("shape", [(4, 3), (64, 64), (72, 196), (8,), (5, 3), (9, 2), (1, 7)])
def test_pack_equals_transformers_pack_weights(shape: tuple[int, ...]) -> None:
    w = random_ternary(np.random.default_rng(sum(shape)), shape)
    theirs = hf_bitnet.pack_weights(torch.from_numpy(w.copy())).numpy()
    ours = pack_ternary(w)
    assert ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("shape", [(1, 3), (16, 64), (49, 196), (6,)])
def test_unpack_equals_transformers_unpack_weights(shape: tuple[int, ...]) -> None:
    packed = np.random.default_rng(3).integers(0, 256, size=shape, dtype=np.uint8)
    theirs = hf_bitnet.unpack_weights(torch.from_numpy(packed), dtype=torch.int8).numpy()
    np.testing.assert_array_equal(unpack_ternary(packed), theirs)


@pytest.mark.parametrize("out", [4, 8, 160, 5, 7])
def test_pack_unpack_round_trip(out: int) -> None:
    w = random_ternary(np.random.default_rng(out), (out, 33))
    np.testing.assert_array_equal(unpack_ternary(pack_ternary(w))[:out], w)


def test_packed_byte_holds_rows_r_R_plus_r_in_planes() -> None:
    # Row r, R+r, 2R+r, 3R+r of column c land in bits 0-1, 2-3, 4-5, 6-7 of byte [r, c].
    w = np.zeros((8, 1), dtype=np.int8)
    w[[0, 2, 4, 6], 0] = [-1, 0, 1, 1]  # plane rows of packed row 0 (R = 2)
    packed = pack_ternary(w)
    assert packed[0, 0] == 0b10_10_01_00
    assert packed[1, 0] == 0b01_01_01_01  # rows 1, 3, 5, 7 are all 0 -> code 1


def test_pack_rejects_non_ternary_values() -> None:
    with pytest.raises(ValueError, match="-1, 0 and 1"):
        pack_ternary(np.array([[2, 0, 0, 0]], dtype=np.int8).T)


def weight_quant(w: np.ndarray) -> np.ndarray:
    return hf_bitnet.WeightQuant.forward(None, torch.from_numpy(w.copy())).numpy()


def test_absmean_ties_round_half_to_even_like_weight_quant() -> None:
    # mean|W| = 0.5 exactly, so s = 2 and W*s hits the .5 ties -1.5, -0.5, 0.5, 1.5 exactly.
    w = np.array([[-0.75, -0.25, 0.25, 0.75, 0.5, 0.5, -0.5, -0.5]], dtype=np.float32)
    assert absmean(w) == np.float32(0.5)
    w_q, mult = quantize_weights_absmean(w)
    np.testing.assert_array_equal(w_q, [[-1, 0, 0, 1, 1, 1, -1, -1]])
    assert mult == np.float32(0.5)
    np.testing.assert_array_equal(w_q * mult, weight_quant(w))


@pytest.mark.parametrize("seed", range(6))
def test_absmean_quantization_equals_weight_quant_bit_for_bit_on_exact_sums(seed: int) -> None:
    # Values on a 1/64 grid with a small count: every float32 summation order gives the same
    # exact sum, so torch and NumPy see the same mean and everything after must agree bitwise.
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 40)), int(rng.integers(1, 60)))
    w = (rng.integers(-96, 97, size=shape) / 64).astype(np.float32)
    w_q, mult = quantize_weights_absmean(w)
    theirs = weight_quant(w)
    ours = w_q.astype(np.float32) * mult
    np.testing.assert_array_equal(ours, theirs)
    assert np.array_equal(np.abs(ours).view(np.uint32), np.abs(theirs).view(np.uint32))


@pytest.mark.parametrize("shape", [(64, 64), (160, 64), (72, 196), (640, 256)])
def test_absmean_quantization_equals_weight_quant_on_gaussian_weights(
    shape: tuple[int, ...],
) -> None:
    # torch sums float32 in a SIMD/thread dependent order: the multiplier may differ in the
    # last bit, the ternary codes may not.
    w = (np.random.default_rng(shape[0]).standard_normal(shape) * 0.02).astype(np.float32)
    w_q, mult = quantize_weights_absmean(w)
    theirs = weight_quant(w)
    np.testing.assert_array_equal(w_q, np.sign(theirs).astype(np.int8))
    nz = theirs[theirs != 0]
    assert np.all(np.abs(np.abs(nz) - mult) <= np.spacing(mult))


def test_absmean_floor_keeps_zero_weights_finite() -> None:
    w_q, mult = quantize_weights_absmean(np.zeros((4, 4), dtype=np.float32))
    assert not w_q.any()
    assert mult == np.float32(1) / (np.float32(1) / np.float32(1e-5))
    np.testing.assert_array_equal(w_q * mult, weight_quant(np.zeros((4, 4), np.float32)))


def test_bf16_conversion_matches_torch() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            rng.standard_normal(10000).astype(np.float32) * 10.0 ** rng.integers(-30, 30, 10000),
            np.array([0.0, -0.0, np.inf, -np.inf, 3.3895314e38, 1e-40], np.float32),
            # exact ties: halfway between two bf16 values, even and odd lower neighbour
            np.array([1.00390625, 1.01171875], np.float32),
        ]
    ).astype(np.float32)
    theirs = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    ours = f32_to_bf16(x)
    np.testing.assert_array_equal(ours, theirs)
    assert np.isnan(bf16_to_f32(f32_to_bf16(np.array([np.nan, -np.nan], np.float32)))).all()
    widened = torch.from_numpy(ours.view(np.int16)).view(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(bf16_to_f32(ours), widened)


@pytest.mark.parametrize(
    ("kwargs", "mode"),
    [
        ({"linear_class": "bitlinear"}, "divide"),
        ({"linear_class": "autobitlinear"}, "multiply"),
        ({"mode": "online"}, "multiply"),
    ],
)
def test_linear_ternary_reads_each_checkpoint_kind(make_checkpoint, kwargs, mode) -> None:
    with load_checkpoint(make_checkpoint(**kwargs)) as ckpt:
        w_q, scale, got_mode = linear_ternary(ckpt, "model.layers.1.self_attn.k_proj")
        assert got_mode == mode
        assert w_q.shape == (32, 64) and w_q.dtype == np.int8
        assert set(np.unique(w_q)) == {-1, 0, 1}
        weight = ckpt.tensor("model.layers.1.self_attn.k_proj.weight")
        if weight.dtype == "U8":
            np.testing.assert_array_equal(pack_ternary(w_q), weight.data)
            stored = ckpt.tensor("model.layers.1.self_attn.k_proj.weight_scale").to_float32()
            assert scale == float(stored[0])
        else:
            expected_q, mult = quantize_weights_absmean(weight.to_float32())
            np.testing.assert_array_equal(w_q, expected_q)
            assert scale == float(mult)
