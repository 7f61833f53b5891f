"""NumPy helpers for BitNet b1.58 ternary weights: bf16 conversion, 2-bit packing, absmean.

The packing layout and the quantization math follow transformers' ``integrations/bitnet.py``
(``pack_weights`` / ``unpack_weights`` / ``WeightQuant``), which is the reference this package
is checked against. See docs/formats.md#ternary-linears-in-safetensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from ..config import packed_weights
from ..errors import CheckpointError

if TYPE_CHECKING:
    from .hf import Checkpoint

VALUES_PER_BYTE = 4
# torch's clamp_(min=1e-5) on a float32 tensor compares against 1e-5 rounded to float32.
_ABSMEAN_FLOOR = np.float32(1e-5)

LinearMode = Literal["divide", "multiply"]


def bf16_to_f32(a: np.ndarray) -> np.ndarray:
    """Widen bfloat16 values stored as uint16 to float32 (exact)."""
    a = np.asarray(a)
    if a.dtype != np.uint16:
        raise TypeError(f"bfloat16 data must be stored as uint16, got {a.dtype}")
    return (a.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(a: np.ndarray) -> np.ndarray:
    """Round float32 values to bfloat16 (nearest, ties to even), returned as uint16.

    NaN becomes the canonical quiet NaN 0x7FC0, as in torch (c10::BFloat16).
    """
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = (bits + (np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1)))) >> 16
    out = rounded.astype(np.uint16)
    nan = np.isnan(bits.view(np.float32))
    if nan.any():
        out[nan] = 0x7FC0
    return out


def pack_ternary(w_q: np.ndarray) -> np.ndarray:
    """Pack ternary values {-1, 0, 1} ``[out, ...]`` into uint8 ``[ceil(out/4), ...]``.

    Byte ``[r, c]`` holds rows ``r, R+r, 2R+r, 3R+r`` (R = packed rows) at bit offsets 0, 2, 4,
    6, each stored as ``w + 1``. Rows past ``out`` (when out % 4 != 0) are zero bits, exactly
    as transformers' ``pack_weights`` leaves them.
    """
    w = np.asarray(w_q)
    if w.ndim < 1:
        raise ValueError("pack_ternary needs an array with at least one dimension")
    if w.size and (w.min() < -1 or w.max() > 1):
        raise ValueError("pack_ternary accepts only the values -1, 0 and 1")
    out = w.shape[0]
    rows = -(-out // VALUES_PER_BYTE)
    codes = np.zeros((VALUES_PER_BYTE * rows, *w.shape[1:]), dtype=np.uint8)
    codes[:out] = (w + 1).astype(np.uint8)
    planes = codes.reshape(VALUES_PER_BYTE, rows, *w.shape[1:])
    return planes[0] | (planes[1] << 2) | (planes[2] << 4) | (planes[3] << 6)


def unpack_ternary(packed: np.ndarray) -> np.ndarray:
    """Unpack uint8 ``[R, ...]`` into int8 ``[4R, ...]`` (the inverse of ``pack_ternary``).

    Like transformers' ``unpack_weights`` every 2-bit code c becomes ``c - 1``; padding rows
    come back as -1 and callers slice them off.
    """
    p = np.asarray(packed)
    if p.dtype != np.uint8:
        raise TypeError(f"packed ternary weights must be uint8, got {p.dtype}")
    if p.ndim < 1:
        raise ValueError("unpack_ternary needs an array with at least one dimension")
    out = np.empty((VALUES_PER_BYTE, *p.shape), dtype=np.int8)
    for i in range(VALUES_PER_BYTE):
        np.bitwise_and(p >> (2 * i), 3, out=out[i], casting="unsafe")
    out -= 1
    return out.reshape(VALUES_PER_BYTE * p.shape[0], *p.shape[1:])


def absmean(w: np.ndarray) -> np.float32:
    """mean(|w|) over the whole tensor as a float32, clamped below at 1e-5.

    The sum is accumulated in float64 and rounded once to float32, then divided by the element
    count in float32 (torch's mean is float32(sum) / n). torch sums float32 in an order that
    depends on its SIMD width and thread count, so its last bit can differ from this exactly
    rounded sum; the quantized codes are the same unless a value lies within one ulp of a
    rounding boundary.
    """
    a = np.asarray(w, dtype=np.float32)
    if a.size == 0:
        raise ValueError("absmean of an empty tensor")
    total = np.float32(np.abs(a).sum(dtype=np.float64))
    mean = np.float32(total / np.float32(a.size))
    return np.float32(max(mean, _ABSMEAN_FLOOR))


def quantize_weights_absmean(w: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """Ternary-quantize float master weights as transformers' WeightQuant does.

    ``s = 1 / max(mean|W|, 1e-5)`` (float32), ``w_q = clamp(round(W * s), -1, 1)`` with round
    half to even. Returns ``(w_q int8, mult)`` where ``mult = 1 / s`` (float32) is the dequant
    multiplier: WeightQuant's output equals ``w_q * mult``.
    """
    a = np.asarray(w, dtype=np.float32)
    s = np.float32(1.0) / absmean(a)
    w_q = np.rint(a * s)
    np.clip(w_q, -1, 1, out=w_q)
    return w_q.astype(np.int8), np.float32(np.float32(1.0) / s)


def linear_ternary(ckpt: Checkpoint, name_prefix: str) -> tuple[np.ndarray, float, LinearMode]:
    """The ternary weights of one BitLinear and how to rescale its output.

    ``name_prefix`` is e.g. ``"model.layers.0.self_attn.q_proj"``. Returns ``(w_q, scale, mode)``
    with ``w_q`` int8 ``[out, in]``. With mode ``"divide"`` (``ModelConfig.weight_scale_divides``):
    ``y = (x_q . w_q) / (s_x * scale)``; with ``"multiply"``: ``y = (x_q . w_q) / s_x * scale``.
    """
    cfg = ckpt.config
    weight = ckpt.tensor(f"{name_prefix}.weight")
    if cfg.packed_weights:
        if weight.dtype != "U8":
            raise CheckpointError(weight.file, f"{weight.name}: packed weights must be U8")
        scale_ref = ckpt.tensor(f"{name_prefix}.weight_scale")
        scale = float(scale_ref.to_float32().reshape(-1)[0])
        w_q = unpack_ternary(weight.data)
        mode: LinearMode = "divide" if cfg.weight_scale_divides else "multiply"
        return w_q, scale, mode
    w_q, mult = quantize_weights_absmean(weight.to_float32())
    return w_q, float(mult), "multiply"


def is_packed(linear_class: str, quantization_mode: str) -> bool:
    """Whether linears are stored packed (uint8 + weight_scale) rather than as float weights.

    Kept for existing callers; the rule is ``config.packed_weights``.
    """
    return packed_weights(linear_class, quantization_mode)
