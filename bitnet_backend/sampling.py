"""Token sampling: parameters, validation, and the reference algorithm.

Every backend samples exactly like ``sample`` below (the C++ engine mirrors it in
csrc/engine/sampler.cpp), so a seed means the same thing on every backend:

1. Tokens excluded by the mask get -inf.
2. Repetition penalty over the distinct tokens among the last ``repeat_last_n`` of the
   history: a positive logit is divided by the penalty, a negative one multiplied.
3. ``temperature <= 0``: greedy, the lowest index among the maxima.
4. Candidates sorted by logit, descending, ties by index; ``top_k > 0`` keeps the first k.
5. On the untempered softmax of the candidates (float64): ``top_p < 1`` keeps the shortest
   prefix whose mass reaches top_p; ``min_p > 0`` keeps those with p >= min_p * p_max.
6. Survivors get weights exp((l - l_max) / temperature); u = next SplitMix64 draw in [0, 1);
   the first candidate whose cumulative weight exceeds u * total is chosen.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from .errors import InvalidParameterError, NonFiniteOutputError

_MASK64 = (1 << 64) - 1
# top_k and repeat_last_n reach the engine as C ints.
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class SamplingParams:
    """How to pick each next token. ``temperature=0`` means greedy."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64

    def __post_init__(self) -> None:
        def bad(msg: str) -> InvalidParameterError:
            return InvalidParameterError(msg)

        if not _is_real(self.temperature) or self.temperature < 0:
            raise bad(f"temperature must be a finite number >= 0, got {self.temperature!r}")
        if not _is_int(self.top_k) or not 0 <= self.top_k <= _INT32_MAX:
            raise bad(
                f"top_k must be an integer in [0, {_INT32_MAX}] (0 disables it), got {self.top_k!r}"
            )
        if not _is_real(self.top_p) or not 0 < self.top_p <= 1:
            raise bad(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not _is_real(self.min_p) or not 0 <= self.min_p <= 1:
            raise bad(f"min_p must be in [0, 1], got {self.min_p!r}")
        if not _is_real(self.repeat_penalty) or self.repeat_penalty <= 0:
            raise bad(f"repeat_penalty must be a finite number > 0, got {self.repeat_penalty!r}")
        if not _is_int(self.repeat_last_n) or not 0 <= self.repeat_last_n <= _INT32_MAX:
            raise bad(
                f"repeat_last_n must be an integer in [0, {_INT32_MAX}], got {self.repeat_last_n!r}"
            )

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


def _is_real(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def resolve_seed(seed: int | None) -> int:
    """A 64-bit seed: the given one (validated) or a fresh random one."""
    if seed is None:
        return int.from_bytes(os.urandom(8), "little")
    if not _is_int(seed):
        raise InvalidParameterError(f"seed must be an integer or None, got {seed!r}")
    return int(seed) & _MASK64


class SplitMix64:
    """The RNG every backend uses (tiny, portable, identical in C++)."""

    def __init__(self, seed: int) -> None:
        self.state = seed & _MASK64

    def next_u64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)

    def next_double(self) -> float:
        return (self.next_u64() >> 11) * (1.0 / 9007199254740992.0)


def mask_allows(mask: np.ndarray, vocab: int) -> np.ndarray:
    """Expand a uint32 bitmask to a boolean array of length ``vocab``."""
    bits = np.unpackbits(mask.astype("<u4").view(np.uint8), bitorder="little")
    if bits.size < vocab:
        raise InvalidParameterError(f"mask covers {bits.size} tokens, vocabulary has {vocab}")
    return bits[:vocab].astype(bool)


def sample(
    logits: np.ndarray,
    params: SamplingParams,
    rng: SplitMix64,
    history: list[int] | tuple[int, ...] = (),
    mask: np.ndarray | None = None,
) -> int:
    """Pick one token id from float32 ``logits`` [vocab] (the reference algorithm)."""
    logits = np.array(logits, dtype=np.float32, copy=True)
    vocab = logits.shape[0]
    if mask is not None:
        allowed = mask_allows(mask, vocab)
        if not allowed.any():
            raise InvalidParameterError("the token mask allows no token")
        logits[~allowed] = -np.inf
    if params.repeat_penalty != 1.0 and params.repeat_last_n > 0 and history:
        recent = np.unique(np.asarray(history[-params.repeat_last_n :], dtype=np.int64))
        recent = recent[(recent >= 0) & (recent < vocab)]
        vals = logits[recent]
        pen = np.float32(params.repeat_penalty)
        logits[recent] = np.where(vals > 0, vals / pen, vals * pen)
    if not np.all(logits < np.inf):  # NaN or +inf: the model is broken (as sampler.cpp)
        raise NonFiniteOutputError("the model produced NaN or infinite logits")
    if not np.isfinite(logits.max()):
        raise NonFiniteOutputError("no finite logit to sample from")
    if params.greedy:
        return int(np.argmax(logits))
    finite = np.isfinite(logits)
    idx = np.nonzero(finite)[0]
    vals = logits[idx]
    order = np.lexsort((idx, -vals))
    if params.top_k > 0:
        order = order[: params.top_k]
    cand = idx[order]
    lv = logits[cand].astype(np.float64)
    lmax = lv[0]
    p = np.exp(lv - lmax)
    p /= p.sum()
    keep = len(cand)
    if params.top_p < 1.0:
        cum = np.cumsum(p)
        keep = min(keep, int(np.searchsorted(cum, params.top_p, side="left")) + 1)
    if params.min_p > 0.0:
        keep = min(keep, max(1, int(np.count_nonzero(p >= params.min_p * p[0]))))
    lv = lv[:keep]
    w = np.exp((lv - lmax) / params.temperature)
    cum_w = np.cumsum(w)
    u = rng.next_double() * cum_w[-1]
    pick = int(np.searchsorted(cum_w, u, side="right"))
    return int(cand[min(pick, keep - 1)])
