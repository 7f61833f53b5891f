"""transformers' models as the oracle, and the two checks every backend must pass.

The oracle runs in float32 with eager attention (docs/formats.md#comparing-with-transformers).
TORCHDYNAMO_DISABLE must be set before torch is first imported (tests/conftest.py does it)
so the torch.compile-decorated quant helpers run the documented math eagerly.

Checks (docs/formats.md#comparing-with-transformers): activation quantization is discontinuous,
so a one-ulp difference can flip an int8 value and move later logits. ``check_strict`` must
hold on short prompts; ``check_loose`` must hold everywhere.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

STRICT_MAX_ABS = 1e-3
LOOSE_MIN_ARGMAX = 0.995
LOOSE_MAX_REL_RMS = 0.05


@functools.lru_cache(maxsize=16)
def load_oracle(path: str | Path) -> Any:
    """transformers' model for a checkpoint directory (the class its config.json names:
    BitNetForCausalLM, or LlamaForCausalLM with the bitnet quantization config): pure
    float32, eager."""
    if os.environ.get("TORCHDYNAMO_DISABLE") != "1":
        raise RuntimeError("set TORCHDYNAMO_DISABLE=1 before importing torch")
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(path), dtype=torch.float32, attn_implementation="eager"
    )
    # Packed checkpoints leave embeddings/norms in bf16 when only dtype is given; widening
    # bf16 to f32 is exact, so this gives the pure float32 reference.
    model = model.to(torch.float32)
    model.eval()
    return model


_logits_cache: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}
_greedy_cache: dict[tuple[str, tuple[int, ...], int], list[int]] = {}


def oracle_logits(path: str | Path, ids: Sequence[int]) -> np.ndarray:
    """Logits at every position of ``ids``: float32 [len(ids), vocab] (memoized)."""
    import torch

    key = (str(path), tuple(int(t) for t in ids))
    if key not in _logits_cache:
        model = load_oracle(path)
        with torch.no_grad():
            out = model(torch.tensor([key[1]], dtype=torch.long), use_cache=False)
        _logits_cache[key] = np.asarray(out.logits[0].numpy(), dtype=np.float32)
    return _logits_cache[key].copy()


def oracle_greedy(path: str | Path, ids: Sequence[int], n_new: int) -> list[int]:
    """``n_new`` tokens of transformers' greedy ``generate`` (KV cache), end-of-sequence off."""
    import torch
    from transformers import GenerationConfig

    key = (str(path), tuple(int(t) for t in ids), n_new)
    if key not in _greedy_cache:
        model = load_oracle(path)
        # No eos, so the run lasts exactly n_new tokens and no logits processor alters the
        # argmax (min_new_tokens would instead mask eos and pick the runner-up). Replacing
        # the checkpoint's generation_config also drops its sampling defaults.
        model.generation_config = GenerationConfig(
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
            bos_token_id=model.config.bos_token_id,
        )
        with torch.no_grad():
            out = model.generate(torch.tensor([key[1]], dtype=torch.long), max_new_tokens=n_new)
        new = [int(t) for t in out[0, len(ids) :]]
        if len(new) != n_new:
            raise AssertionError(f"oracle generated {len(new)} tokens, expected {n_new}")
        _greedy_cache[key] = new
    return list(_greedy_cache[key])


@dataclass(frozen=True)
class NearTie:
    """An activation the oracle quantized from within ``distance`` of a .5 rounding boundary."""

    module: str
    position: int
    scaled: float  # x * s_x as the oracle computed it
    distance: float

    def __str__(self) -> str:
        return f"{self.module} position {self.position}: x*s={self.scaled!r} ({self.distance:.2g})"


def near_ties(path: str | Path, ids: Sequence[int], count: int = 3) -> list[NearTie]:
    """The ``count`` activations of the oracle's forward closest to an int8 rounding tie.

    When a strict comparison fails, a distance of about 1e-6 here means a one-ulp difference
    flipped an int8 value (docs/formats.md#comparing-with-transformers); no near tie means a
    real error. Exact ties are left out: they round half to even identically in every correct
    implementation.
    """
    import torch

    model = load_oracle(path)
    found: list[NearTie] = []

    def hook(name: str) -> Any:
        def record(_module: Any, inputs: tuple[Any, ...], _output: Any) -> None:
            x = inputs[0].detach()[0].float()
            # The oracle's own scale: 127 / amax is computed as amax.reciprocal() * 127.
            s = 127 / x.abs().max(dim=-1, keepdim=True).values.clamp(min=1e-5)
            scaled = (x * s).numpy()
            dist = np.abs(np.abs(scaled - np.trunc(scaled)) - 0.5)
            # Exact ties (bf16 inputs at layer 0) round to even the same way everywhere.
            dist[dist == 0] = np.inf
            for pos, col in np.argwhere(dist <= np.partition(dist.ravel(), count - 1)[count - 1]):
                found.append(
                    NearTie(name, int(pos), float(scaled[pos, col]), float(dist[pos, col]))
                )

        return record

    handles = [
        module.register_forward_hook(hook(name))
        for name, module in model.named_modules()
        # q/k/v and gate/up share their input: one hook per distinct input.
        if name.endswith(("q_proj", "o_proj", "gate_proj", "down_proj"))
    ]
    try:
        with torch.no_grad():
            model(torch.tensor([list(ids)], dtype=torch.long), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return sorted(found, key=lambda t: t.distance)[:count]


@dataclass(frozen=True)
class Agreement:
    """How closely two [positions, vocab] logit arrays agree."""

    max_abs: float
    argmax: float  # fraction of positions with the same argmax
    rel_rms: float  # RMS(a - b) / RMS(b)
    positions: int

    def __str__(self) -> str:
        return (
            f"max|diff|={self.max_abs:.3g} argmax={self.argmax:.4f} rel_rms={self.rel_rms:.3g} "
            f"over {self.positions} positions"
        )


def agreement(got: np.ndarray, want: np.ndarray) -> Agreement:
    """Compare ``got`` with the oracle's ``want`` (same shape)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape} != oracle shape {want.shape}")
    diff = got - want
    return Agreement(
        max_abs=float(np.max(np.abs(diff))),
        argmax=float(np.mean(got.argmax(-1) == want.argmax(-1))),
        rel_rms=float(np.sqrt(np.mean(diff**2)) / np.sqrt(np.mean(want**2))),
        positions=int(got.shape[0]),
    )


def check_strict(
    got: np.ndarray,
    want: np.ndarray,
    path: str | Path | None = None,
    ids: Sequence[int] | None = None,
) -> Agreement:
    """max |diff| <= 1e-3 and the same argmax everywhere (short prompts).

    With the checkpoint ``path`` and the prompt ``ids`` of an oracle comparison, a failure
    names the oracle's activations nearest to an int8 rounding tie.
    """
    a = agreement(got, want)
    if a.max_abs <= STRICT_MAX_ABS and a.argmax == 1.0:
        return a
    detail = ""
    if path is not None and ids is not None:
        ties = "; ".join(str(t) for t in near_ties(path, ids, count=5))
        detail = f"\nprompt {list(ids)}\noracle activations nearest a tie: {ties}"
    raise AssertionError(f"strict check failed: {a}{detail}")


def check_loose(got: np.ndarray, want: np.ndarray) -> Agreement:
    """argmax agreement >= 99.5% and relative RMS <= 0.05 (any prompt length)."""
    a = agreement(got, want)
    assert a.argmax >= LOOSE_MIN_ARGMAX and a.rel_rms <= LOOSE_MAX_REL_RMS, (
        f"loose check failed: {a}"
    )
    return a


def prompt_ids(vocab: int, n: int, seed: int = 0, bos: int | None = None) -> list[int]:
    """A deterministic pseudo-random prompt of ``n`` ids (starting with ``bos`` if given)."""
    rng = np.random.default_rng(seed)
    ids = [int(t) for t in rng.integers(0, vocab, size=n)]
    if bos is not None and ids:
        ids[0] = bos
    return ids
