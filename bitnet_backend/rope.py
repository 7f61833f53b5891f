"""Rotary position embeddings: the rope scaling a config.json names and the inverse frequencies.

``rope_inv_freq`` is the one computation of the frequencies: both backends take them from
here (the C++ engine receives them in its ModelConfig), once per load. The float32 order of
operations is transformers' (``modeling_rope_utils``), so the tables match its model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import CheckpointError, UnsupportedModelError

F32 = np.float32
# rope_type values read here; transformers' others (dynamic, yarn, longrope, ...) are refused.
ROPE_TYPES = ("default", "linear", "llama3")


@dataclass(frozen=True)
class RopeScaling:
    """A non-default rope_type and its parameters (config.json ``rope_scaling``).

    ``linear`` divides every frequency by ``factor``; ``llama3`` (Llama 3.1) divides the low
    frequencies by ``factor``, keeps the high ones and interpolates between the two bands.
    """

    rope_type: str
    factor: float
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192


def rope_section(raw: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """The rope entry of a config.json and its key: ``rope_parameters`` (transformers 5)
    or ``rope_scaling``; an empty mapping when there is none."""
    for key in ("rope_parameters", "rope_scaling"):
        value = raw.get(key)
        if value:
            return key, value
    return "rope_scaling", {}


def parse_rope_scaling(raw: Mapping[str, Any], path: object) -> RopeScaling | None:
    """The rope scaling of a parsed config.json (None for plain RoPE).

    Raises UnsupportedModelError naming the field for a rope_type not in ROPE_TYPES, and
    CheckpointError for a malformed parameter.
    """
    key, rope = rope_section(raw)
    if not isinstance(rope, Mapping):
        raise CheckpointError(path, f"'{key}' must be an object")
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ROPE_TYPES:
        raise UnsupportedModelError(
            path,
            f"{key}.rope_type {rope_type!r} is not supported (supported: {', '.join(ROPE_TYPES)})",
        )
    partial = rope.get("partial_rotary_factor", raw.get("partial_rotary_factor", 1.0))
    if partial != 1.0:
        raise UnsupportedModelError(path, f"partial_rotary_factor {partial!r} is not supported")
    if rope_type == "default":
        return None

    def number(name: str, default: float | None = None, minimum: float = 0.0) -> float:
        v = rope.get(name, default)
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not math.isfinite(v)
            or v <= minimum
        ):
            raise CheckpointError(path, f"{key}.{name} must be a number > {minimum:g}, got {v!r}")
        return float(v)

    factor = number("factor")
    if rope_type == "linear":
        return RopeScaling("linear", factor)
    low, high = number("low_freq_factor"), number("high_freq_factor")
    if high <= low:
        raise CheckpointError(
            path, f"{key}.high_freq_factor {high:g} must exceed low_freq_factor {low:g}"
        )
    original = rope.get("original_max_position_embeddings")
    if isinstance(original, bool) or not isinstance(original, int) or original <= 0:
        raise CheckpointError(
            path,
            f"{key}.original_max_position_embeddings must be a positive integer, got {original!r}",
        )
    return RopeScaling("llama3", factor, low, high, original)


def rope_inv_freq(theta: float, head_dim: int, scaling: RopeScaling | None = None) -> np.ndarray:
    """``1 / theta ** (arange(0, d, 2) / d)`` in float32, then ``scaling`` applied.

    The power is rounded once from float64 (torch's float32 pow is correctly rounded here;
    NumPy's float32 pow is not, and is off by an ulp for a quarter of the entries). Python
    scalars meet float32 arrays as torch's wrapped numbers do: rounded to float32 first.
    """
    exponent = np.arange(0, head_dim, 2, dtype=F32) / F32(head_dim)
    power = np.power(np.float64(F32(theta)), exponent.astype(np.float64)).astype(F32)
    inv_freq = F32(1.0) / power
    if scaling is None:
        return inv_freq
    factor = F32(scaling.factor)
    if scaling.rope_type == "linear":
        return inv_freq / factor
    old_len = float(scaling.original_max_position_embeddings)
    low_wavelen = F32(old_len / scaling.low_freq_factor)
    high_wavelen = F32(old_len / scaling.high_freq_factor)
    wavelen = F32(2 * math.pi) / inv_freq
    scaled = np.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (F32(old_len) / wavelen - F32(scaling.low_freq_factor)) / F32(
        scaling.high_freq_factor - scaling.low_freq_factor
    )
    smoothed = (F32(1.0) - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return np.where(medium, smoothed, scaled).astype(F32)
