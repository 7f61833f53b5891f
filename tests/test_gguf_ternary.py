"""The ternary GGUF codecs against the gguf package's own (de)quantizers."""

from __future__ import annotations

import numpy as np
import pytest

from bitnet_backend.checkpoints import gguf_ternary
from bitnet_backend.checkpoints.gguf_ternary import I2_S, TQ1_0, TQ2_0, TernaryFormatError

gguf = pytest.importorskip("gguf")


def ternary(rows: int, cols: int, seed: int) -> np.ndarray:
    w = np.random.default_rng(seed).integers(-1, 2, size=(rows, cols)).astype(np.int8)
    w[1, :256] = 0  # an all-zero block: its TQ scale is 0
    return w


@pytest.mark.parametrize("ggml_type", [TQ1_0, TQ2_0, I2_S])
def test_encode_then_decode_gives_the_codes_and_multiplier(ggml_type):
    w = ternary(8, 512, ggml_type)
    data = gguf_ternary.encode(w, 0.0234375, ggml_type)
    back, scale = gguf_ternary.decode(data, w.shape, ggml_type)
    np.testing.assert_array_equal(back, w)
    assert scale == 0.0234375


@pytest.mark.parametrize("ggml_type", [TQ1_0, TQ2_0])
def test_tq_bytes_dequantize_in_the_gguf_package_to_the_same_weights(ggml_type):
    w = ternary(4, 768, 1)
    data = gguf_ternary.encode(w, 0.5, ggml_type)
    values = gguf.quants.dequantize(data, gguf.GGMLQuantizationType(ggml_type))
    np.testing.assert_array_equal(values, w.astype(np.float32) * 0.5)


def test_i2s_layout_puts_the_first_group_in_the_high_bits():
    w = np.zeros((1, 128), dtype=np.int8)
    w[0, 0], w[0, 32], w[0, 64], w[0, 96] = 1, -1, 0, 1
    data = gguf_ternary.encode(w, 2.0, I2_S)
    assert data.size == 128 // 4 + 32
    # Byte 0 holds values 0, 32, 64, 96 at shifts 6, 4, 2, 0, each as w + 1.
    assert data[0] == (2 << 6) | (0 << 4) | (1 << 2) | 2
    assert data[1] == 0b01010101
    assert data[32:36].view("<f4")[0] == 2.0


def test_tq_blocks_with_different_scales_are_refused():
    w = ternary(2, 512, 2)
    values = w.astype(np.float32)
    values[0, :256] *= 0.5
    data = gguf.quants.quantize(values, gguf.GGMLQuantizationType.TQ2_0)
    with pytest.raises(TernaryFormatError, match="different scales"):
        gguf_ternary.decode(data, w.shape, TQ2_0)


def test_bad_i2s_bytes_are_refused():
    w = ternary(2, 128, 3)
    data = gguf_ternary.encode(w, 1.0, I2_S)
    with pytest.raises(TernaryFormatError, match="bytes"):
        gguf_ternary.decode(data[:-1], w.shape, I2_S)
    with pytest.raises(TernaryFormatError, match="bytes"):
        gguf_ternary.multiplier(data[:-1], w.shape, I2_S)
    data[0] = 0xFF
    with pytest.raises(TernaryFormatError, match="code 3"):
        gguf_ternary.decode(data, w.shape, I2_S)
    with pytest.raises(TernaryFormatError, match="multiple of 256"):
        gguf_ternary.encode(np.zeros((2, 128), dtype=np.int8), 1.0, TQ2_0)
