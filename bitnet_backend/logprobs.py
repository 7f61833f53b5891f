"""Log-probabilities of generated tokens, and their OpenAI wire shapes.

Which distribution: the model's own. An entry is the log-softmax, over the full vocabulary,
of the logits the model computed for the position: before the repetition penalty,
temperature, top-k / top-p / min-p cuts and any json_schema or tool-call mask that the
sampler applies. That is what OpenAI reports, and it makes the figures independent of the
sampling options: the same tokens get the same log-probabilities whether they were picked
greedily or sampled, constrained or not. (A token picked under a mask may therefore have a
low log-probability: the model would not have chosen it on its own.)

How exact: each figure is the token's float32 logit minus the log of the normalising sum, in
float64; the sum adds float32 exponentials in float64 (float32 exp costs a tenth of float64's
over a large vocabulary, and its rounding moves the figures by about 1e-7). The logits are
those the engine leaves for sampling. With the float32 output head (``lm_head="f32"``) and
the reference backend they are the model's. A quantized head (int8, q6, q4) recomputes its
``exact_logits`` largest logits of each position in float32 (16 by default) and keeps the
quantized values for the rest: the likeliest tokens' figures are then exact but for the
normalising sum, which carries the quantization error of the tail (small: the exact top
logits dominate it), and alternatives ranked past ``exact_logits`` carry that error
themselves. Load with ``lm_head="f32"`` for exact figures throughout.

Cost: nothing unless a call asks (``logprobs=N``); then, per generated token, where the
scheduler samples, a few vectorised passes over the vocabulary (benchmarks/logprobs.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .completion import TokenLogprob


def token_logprob(
    logits: np.ndarray, token: int, top: int, token_bytes: Sequence[bytes] | None
) -> TokenLogprob:
    """The entry of ``token`` given the float32 ``logits`` [vocab] of its position.

    ``top``: how many of the likeliest tokens to list (likeliest first, ties by lower id).
    ``token_bytes``: each id's bytes (None when the model has no tokenizer: empty texts).
    """
    x = np.asarray(logits, dtype=np.float32)
    peak = x.max()
    log_norm = float(peak) + math.log(float(np.exp(x - peak).sum(dtype=np.float64)))
    alternatives: tuple[TokenLogprob, ...] = ()
    if top > 0:
        alternatives = tuple(
            _entry(int(t), float(x[t]) - log_norm, token_bytes) for t in _top_ids(x, top)
        )
    return _entry(token, float(x[token]) - log_norm, token_bytes, alternatives)


def _top_ids(logits: np.ndarray, k: int) -> np.ndarray:
    """The ids of the ``k`` largest logits, largest first, equal logits by lower id."""
    vocab = logits.shape[0]
    k = min(k, vocab)
    kth = np.partition(logits, vocab - k)[vocab - k]
    ids = np.flatnonzero(logits >= kth)  # the k largest, and any logits tied with the k-th
    return ids[np.lexsort((ids, -logits[ids]))[:k]]


def _entry(
    token: int,
    logprob: float,
    token_bytes: Sequence[bytes] | None,
    top: tuple[TokenLogprob, ...] = (),
) -> TokenLogprob:
    raw = token_bytes[token] if token_bytes is not None else b""
    return TokenLogprob(token, raw.decode("utf-8", errors="replace"), raw, logprob, top)


# -- OpenAI's shapes ---------------------------------------------------------------------------


def openai_chat_logprobs(entries: Sequence[TokenLogprob]) -> dict[str, Any]:
    """A chat choice's ``logprobs``: ``{"content": [{token, logprob, bytes, top_logprobs}]}``."""
    return {
        "content": [
            {
                **_openai_token(e),
                "top_logprobs": [_openai_token(a) for a in e.top_logprobs],
            }
            for e in entries
        ],
        "refusal": None,
    }


def _openai_token(e: TokenLogprob) -> dict[str, Any]:
    return {"token": e.token, "logprob": e.logprob, "bytes": list(e.bytes)}


def openai_completion_logprobs(entries: Sequence[TokenLogprob], offset: int) -> dict[str, Any]:
    """A text completion choice's ``logprobs`` (the legacy shape).

    ``top_logprobs[i]`` maps the texts of the listed alternatives and of the chosen token to
    their log-probabilities (OpenAI lists the chosen token too); ``text_offset[i]`` is the
    character offset of token i, counted from ``offset``.
    """
    offsets = []
    for e in entries:
        offsets.append(offset)
        offset += len(e.token)
    return {
        "tokens": [e.token for e in entries],
        "token_logprobs": [e.logprob for e in entries],
        "top_logprobs": [{a.token: a.logprob for a in (*e.top_logprobs, e)} for e in entries],
        "text_offset": offsets,
    }
