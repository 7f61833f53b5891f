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

import os
from dataclasses import dataclass, fields

import numpy as np

from .errors import InvalidParameterError, NonFiniteOutputError
from .options import OPTION_SPECS, GenerationOptions
from .validation import check_seed

_MASK64 = (1 << 64) - 1
_DEFAULTS = GenerationOptions()


@dataclass(frozen=True)
class SamplingParams:
    """How to pick each next token. ``temperature=0`` means greedy.

    The sampling subset of the generation options (options.py declares their defaults and
    checks).
    """

    temperature: float = _DEFAULTS.temperature
    top_k: int = _DEFAULTS.top_k
    top_p: float = _DEFAULTS.top_p
    min_p: float = _DEFAULTS.min_p
    repeat_penalty: float = _DEFAULTS.repeat_penalty
    repeat_last_n: int = _DEFAULTS.repeat_last_n

    def __post_init__(self) -> None:
        for f in fields(self):
            OPTION_SPECS[f.name].check(getattr(self, f.name))

    @classmethod
    def of(cls, options: GenerationOptions) -> SamplingParams:
        """The sampling part of validated generation options."""
        return cls(**{f.name: getattr(options, f.name) for f in fields(cls)})

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


def resolve_seed(seed: int | None) -> int:
    """A 64-bit seed: the given one (validated) or a fresh random one."""
    if seed is None:
        return int.from_bytes(os.urandom(8), "little")
    return int(check_seed(seed)) & _MASK64


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
