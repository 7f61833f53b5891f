"""The ternary GGUF tensor types: llama.cpp's TQ1_0 / TQ2_0 and bitnet.cpp's I2_S.

Each codec turns a ternary matrix ``w_q`` (int8 {-1, 0, 1}, ``[out, in]``, rows are output
channels) and its per-tensor multiplier into the bytes GGUF stores, and back. docs/formats.md
describes the layouts. TQ1_0 / TQ2_0 go through the ``gguf`` package's codecs; I2_S is not in
that package (bitnet.cpp's own type) and is coded here.
"""

from __future__ import annotations

import numpy as np

# ggml type ids (ggml.h; I2_S from bitnet.cpp's ggml fork).
TQ1_0 = 34
TQ2_0 = 35
I2_S = 36
TERNARY_TYPES = {"tq1_0": TQ1_0, "tq2_0": TQ2_0, "i2_s": I2_S}
TYPE_NAMES = {v: k.upper() for k, v in TERNARY_TYPES.items()}

# TQ blocks: 256 values with a trailing float16 scale.
QK_K = 256
# I2_S: groups of 128 values in 32 bytes, then one float32 scale padded to 32 bytes.
_I2S_BLOCK = 128
_I2S_TAIL = 32


class TernaryFormatError(ValueError):
    """The bytes are not a per-tensor-scaled ternary matrix of the stated type."""


def i2s_nbytes(n_elements: int) -> int:
    """Bytes of an I2_S tensor of ``n_elements`` values."""
    return n_elements // 4 + _I2S_TAIL


def encode(w_q: np.ndarray, multiplier: float, ggml_type: int) -> np.ndarray:
    """The GGUF bytes of ``w_q * multiplier``: uint8 ``[out, bytes per row]`` (I2_S: flat)."""
    w = np.asarray(w_q, dtype=np.int8)
    if ggml_type == I2_S:
        if w.size % _I2S_BLOCK:
            raise TernaryFormatError(f"I2_S needs a multiple of {_I2S_BLOCK} values, got {w.size}")
        codes = (w.reshape(-1, 4, 32) + 1).astype(np.uint8)
        packed = (codes[:, 0] << 6) | (codes[:, 1] << 4) | (codes[:, 2] << 2) | codes[:, 3]
        tail = np.zeros(_I2S_TAIL, dtype=np.uint8)
        tail[:4] = np.array([multiplier], dtype="<f4").view(np.uint8)
        return np.concatenate([packed.reshape(-1), tail])
    import gguf

    if w.shape[-1] % QK_K:
        raise TernaryFormatError(f"{TYPE_NAMES[ggml_type]} needs rows of a multiple of {QK_K}")
    # The block scale is max|x| of the block: exactly the multiplier (as float16) wherever a
    # block holds a non-zero weight.
    values = w.astype(np.float32) * np.float32(np.float16(multiplier))
    return np.asarray(gguf.quants.quantize(values, gguf.GGMLQuantizationType(ggml_type)))


def multiplier(data: np.ndarray, shape: tuple[int, int], ggml_type: int) -> float:
    """The per-tensor multiplier of ternary GGUF bytes, without decoding the codes.

    TernaryFormatError as ``decode`` raises it for a wrong size or several TQ block scales.
    """
    raw = np.asarray(data, dtype=np.uint8).reshape(-1)
    if ggml_type == I2_S:
        n = _i2s_elements(raw, shape)
        return float(raw[n // 4 : n // 4 + 4].view("<f4")[0])
    return _tq_scale(raw, shape, ggml_type)[1]


def _i2s_elements(raw: np.ndarray, shape: tuple[int, int]) -> int:
    """The element count of I2_S bytes ``raw`` for ``shape`` (TernaryFormatError: a wrong size)."""
    n = shape[0] * shape[1]
    if raw.size != i2s_nbytes(n) or n % _I2S_BLOCK:
        raise TernaryFormatError(f"I2_S data has {raw.size} bytes, expected {i2s_nbytes(n)}")
    return n


def _tq_scale(raw: np.ndarray, shape: tuple[int, int], ggml_type: int) -> tuple[np.ndarray, float]:
    """(block scales, the one non-zero scale) of TQ bytes."""
    import gguf

    out_f, in_f = shape
    qtype = gguf.GGMLQuantizationType(ggml_type)
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    if in_f % block_size or raw.size != out_f * in_f // block_size * type_size:
        raise TernaryFormatError(
            f"{qtype.name} data has {raw.size} bytes, not {out_f}x{in_f} values"
        )
    scales = raw.reshape(-1, type_size)[:, -2:].copy().view(np.float16).reshape(-1)
    used = np.unique(scales[scales != 0])
    if used.size > 1:
        raise TernaryFormatError(
            f"{qtype.name} blocks have {used.size} different scales: not one ternary scale"
        )
    return scales, float(used[0]) if used.size else 0.0


def decode(data: np.ndarray, shape: tuple[int, int], ggml_type: int) -> tuple[np.ndarray, float]:
    """``(w_q int8 [out, in], multiplier)`` from GGUF bytes of a ternary type.

    TernaryFormatError when the tensor has no single scale (TQ blocks with different scales)
    or the byte count does not match ``shape``.
    """
    out_f, in_f = shape
    raw = np.asarray(data, dtype=np.uint8).reshape(-1)
    if ggml_type == I2_S:
        n = _i2s_elements(raw, shape)
        packed = raw[: n // 4].reshape(-1, 1, 32)
        shifts = np.array([6, 4, 2, 0], dtype=np.uint8).reshape(1, 4, 1)
        codes = (packed >> shifts) & np.uint8(3)
        if (codes == 3).any():
            raise TernaryFormatError("I2_S data holds the unused code 3")
        w = (codes.astype(np.int8) - np.int8(1)).reshape(out_f, in_f)
        scale = float(raw[n // 4 : n // 4 + 4].view("<f4")[0])
        return w, scale
    import gguf

    scales, scale = _tq_scale(raw, shape, ggml_type)
    if ggml_type == TQ2_0:
        # Straight from the 2-bit fields (no float pass): byte m of 32-byte chunk j holds
        # values 128j + 32l + m at bits 2l.
        qs = raw.reshape(scales.size, -1)[:, : QK_K // 4].reshape(-1, 2, 1, 32)
        codes = (qs >> np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 1, 4, 1)) & np.uint8(3)
        if (codes == 3).any():
            raise TernaryFormatError("TQ2_0 data holds the unused code 3")
        w = codes.astype(np.int8).reshape(-1, QK_K) - np.int8(1)
        w[scales == 0] = 0  # a block with scale 0 is zero whatever its codes
        w = w.reshape(out_f, in_f)
    else:
        values = gguf.quants.dequantize(raw.reshape(out_f, -1), gguf.GGMLQuantizationType(TQ1_0))
        w = np.sign(values).astype(np.int8).reshape(out_f, in_f)
    return w, scale
