"""The reference backend: the ternary model forward in plain NumPy, top to bottom.

Slow and readable; it is the second implementation the C++ engine is checked against. It
computes the math of docs/formats.md#forward in float32 and follows transformers'
BitNetForCausalLM operation by operation where the rounding decides int8 activation ties:

* the activation scale is ``float32(1 / max(max|x|, 1e-5)) * 127``, because torch evaluates
  ``127 / t`` as ``t.reciprocal() * 127``;
* the RMSNorm variance is summed in the order of torch's CPU sum kernel (``_torch_row_sum``),
  because NumPy's pairwise sum can differ in the last bit and flip a tie;
* pow, cos, sin and exp are rounded once from float64 (NumPy's float32 versions are not
  correctly rounded; torch's pow is).

What still differs from torch by an ulp now and then (and so, rarely, flips an int8 value):
the BitLinear output uses the exact integer dot product where torch's AutoBitLinear sums
dequantized activations in float32, torch's cos/sin/exp come from SLEEF, and its matmuls sum
in MKL's order. Ternary weights are unpacked to int8 once at load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pluggy

from ..checkpoints.ternary import LinearMode, linear_ternary
from ..errors import BitnetError, ContextOverflowError, InvalidParameterError
from ..rope import rope_inv_freq
from ..sampling import SplitMix64, sample
from .batching import check_batch, check_texts

if TYPE_CHECKING:
    from ..checkpoints.hf import Checkpoint
    from ..config import ModelConfig
    from ..sampling import SamplingParams

hookimpl = pluggy.HookimplMarker("bitnet_backend")

F32 = np.float32
# torch clamps max|x| with the Python float 1e-5, which it compares as a float32.
_ACT_FLOOR = F32(1e-5)


# -- numerics shared by every layer ------------------------------------------------------------


def _cascade_sum(elems: np.ndarray) -> np.ndarray:
    """Sum ``elems`` over axis 0 in the order of ATen's ``row_sum`` / ``multi_row_sum``.

    Four interleaved accumulators (ILP), each a cascade of four levels that flush upwards every
    ``2**level_power`` steps; then the tail, then the accumulators folded in order. The
    elements may be scalars per row or whole 8-lane vectors (trailing axes are carried).
    """
    ilp, levels = 4, 4
    size = elems.shape[0]
    rows = size // ilp
    acc = np.zeros((levels, ilp, *elems.shape[1:]), dtype=F32)
    ceil_log2 = 1 if rows <= 2 else (rows - 1).bit_length()
    level_power = max(4, ceil_log2 // levels)
    level_step = 1 << level_power
    level_mask = level_step - 1
    i = 0
    while i + level_step <= rows:
        for _ in range(level_step):
            acc[0] += elems[i * ilp : (i + 1) * ilp]
            i += 1
        for j in range(1, levels):
            acc[j] += acc[j - 1]
            acc[j - 1] = 0
            if i & (level_mask << (j * level_power)):
                break
    while i < rows:
        acc[0] += elems[i * ilp : (i + 1) * ilp]
        i += 1
    for j in range(1, levels):
        acc[0] += acc[j]
    total = acc[0, 0].copy()
    for r in range(rows * ilp, size):
        total += elems[r]
    for k in range(1, ilp):
        total += acc[0, k]
    return total


def _torch_row_sum(x: np.ndarray) -> np.ndarray:
    """Sum float32 ``x [T, n]`` over its last axis exactly as torch's CPU ``sum`` does.

    torch dispatches sum to its AVX2 kernel even on AVX-512 machines: the row is cut into
    8-float vectors summed with ``_cascade_sum``; the scalar tail is added first, then the
    eight lanes in order.
    """
    lanes = 8
    t, n = x.shape
    n_vec = n // lanes
    if n_vec == 0:
        return _cascade_sum(np.ascontiguousarray(x.T))
    vecs = x[:, : n_vec * lanes].reshape(t, n_vec, lanes).transpose(1, 0, 2)
    lane_sums = _cascade_sum(vecs)  # [T, 8]
    total = np.zeros(t, dtype=F32)
    for k in range(n_vec * lanes, n):
        total += x[:, k]
    for lane in range(lanes):
        total += lane_sums[:, lane]
    return total


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """BitNetRMSNorm in float32: ``weight * (x * rsqrt(mean(x**2) + eps))`` per row."""
    variance = _torch_row_sum(x * x) / F32(x.shape[-1])
    inv = F32(1.0) / np.sqrt(variance + F32(eps))
    return weight * (x * inv[:, None])


def optional_rms_norm(x: np.ndarray, weight: np.ndarray | None, eps: float) -> np.ndarray:
    """A family's sub-norm: ``rms_norm`` when the family has one, else ``x`` unchanged."""
    return x if weight is None else rms_norm(x, weight, eps)


def ffn_activation(activation: str, gate: np.ndarray) -> np.ndarray:
    """The gate activation in float32: ``relu(g)**2`` or ``silu(g) = g / (1 + e**-g)``.

    SiLU follows torch's float32 order of operations; its exponential is rounded once from
    float64, like the RoPE tables (NumPy's float32 exp is not correctly rounded).
    """
    if activation == "silu":
        e = np.exp(-gate.astype(np.float64)).astype(F32)
        return gate / (F32(1.0) + e)
    r = np.maximum(gate, F32(0.0))
    return r * r


def quantize_activations(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row absmax int8 quantization: ``(x_q int8 [T, n], s float32 [T])``.

    ``s = float32(1 / max(max|x|, 1e-5)) * 127`` (torch's rounding of ``127 / t``) and
    ``x_q = clip(round_half_even(x * s), -128, 127)``.
    """
    amax = np.maximum(np.max(np.abs(x), axis=-1), _ACT_FLOOR)
    s = (F32(1.0) / amax) * F32(127.0)
    x_q = np.clip(np.rint(x * s[:, None]), -128, 127).astype(np.int8)
    return x_q, s


@dataclass
class BitLinear:
    """One ternary linear: int8 weights ``[out, in]``, its float rescale and, with
    ``use_rms_norm``, the RMSNorm it applies to its input before quantizing it."""

    w_q: np.ndarray  # int8 {-1, 0, 1}, [out, in]
    scale: np.float32
    mode: LinearMode  # "divide": y = dot / (s * scale); "multiply": y = dot / s * scale
    input_norm: np.ndarray | None = None
    input_norm_eps: float = 1e-6

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = optional_rms_norm(x, self.input_norm, self.input_norm_eps)
        x_q, s = quantize_activations(x)
        # Exact integer dot products (|x_q| <= 128, so int32 holds any realistic width).
        acc = (x_q.astype(np.int32) @ self.w_q.T.astype(np.int32)).astype(F32)
        if self.mode == "divide":
            return acc / (self.scale * s)[:, None]
        return acc / s[:, None] * self.scale


@dataclass
class Layer:
    """The weights of one decoder layer."""

    input_norm: np.ndarray
    q: BitLinear
    k: BitLinear
    v: BitLinear
    attn_sub_norm: np.ndarray | None  # None when the family has no sub-norms
    o: BitLinear
    post_attention_norm: np.ndarray
    gate: BitLinear
    up: BitLinear
    ffn_sub_norm: np.ndarray | None
    down: BitLinear


def rope_cos_sin(inv_freq: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin tables ``[T, head_dim / 2]`` for the given absolute positions (float32).

    The angle is the float32 product ``position * inv_freq``; its cosine and sine are taken in
    float64 and rounded once, which is the float32 value closest to the exact result.
    """
    angle = positions.astype(F32)[:, None] * inv_freq[None, :]
    a64 = angle.astype(np.float64)
    return np.cos(a64).astype(F32), np.sin(a64).astype(F32)


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Llama ``x * cos + rotate_half(x) * sin`` on ``x [T, heads, head_dim]``."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([x1 * c + (-x2) * s, x2 * c + x1 * s], axis=-1)


def softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis in float32: ``exp(x - max) * (1 / sum)``.

    The exponential is rounded once from float64, like the RoPE tables: NumPy's float32 exp
    is not correctly rounded.
    """
    shifted = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(shifted.astype(np.float64)).astype(F32)
    return e * (F32(1.0) / e.sum(axis=-1, keepdims=True))


# -- the model -------------------------------------------------------------------------------


class ReferenceWeights:
    """Every weight of the model as NumPy float32 / int8 arrays (ternary unpacked once)."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        c = checkpoint.config

        def f32(name: str) -> np.ndarray:
            return np.ascontiguousarray(checkpoint.tensor(name).to_float32(), dtype=F32)

        def linear(prefix: str, out_features: int) -> BitLinear:
            w_q, scale, mode = linear_ternary(checkpoint, prefix)
            norm = c.architecture.linear_norm
            # Packed rows come in multiples of 4; the padding rows are not part of the layer.
            return BitLinear(
                np.ascontiguousarray(w_q[:out_features]),
                F32(scale),
                mode,
                None if norm is None else f32(f"{prefix}.{norm}"),
                c.linear_norm_eps,
            )

        def optional(name: str | None) -> np.ndarray | None:
            return None if name is None else f32(name)

        q_dim = c.num_attention_heads * c.head_dim
        kv_dim = c.num_key_value_heads * c.head_dim
        arch = c.architecture
        self.embed = f32("model.embed_tokens.weight")
        self.layers: list[Layer] = []
        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}."
            self.layers.append(
                Layer(
                    input_norm=f32(p + "input_layernorm.weight"),
                    q=linear(p + "self_attn.q_proj", q_dim),
                    k=linear(p + "self_attn.k_proj", kv_dim),
                    v=linear(p + "self_attn.v_proj", kv_dim),
                    attn_sub_norm=optional(arch.attn_sub_norm and p + arch.attn_sub_norm),
                    o=linear(p + "self_attn.o_proj", c.hidden_size),
                    post_attention_norm=f32(p + "post_attention_layernorm.weight"),
                    gate=linear(p + "mlp.gate_proj", c.intermediate_size),
                    up=linear(p + "mlp.up_proj", c.intermediate_size),
                    ffn_sub_norm=optional(arch.ffn_sub_norm and p + arch.ffn_sub_norm),
                    down=linear(p + "mlp.down_proj", c.hidden_size),
                )
            )
        self.norm = f32("model.norm.weight")
        self.lm_head = self.embed if c.tie_word_embeddings else f32("lm_head.weight")
        self.inv_freq = rope_inv_freq(c.rope_theta, c.head_dim, c.rope_scaling)

    @property
    def nbytes(self) -> int:
        arrays = [self.embed, self.norm, self.inv_freq]
        if self.lm_head is not self.embed:
            arrays.append(self.lm_head)
        for layer in self.layers:
            for value in vars(layer).values():
                if isinstance(value, BitLinear):
                    arrays.append(value.w_q)
                    if value.input_norm is not None:
                        arrays.append(value.input_norm)
                elif value is not None:
                    arrays.append(value)
        return sum(a.nbytes for a in arrays)


class KVCache:
    """Keys (after RoPE) and values per layer, ``[kv_heads, positions, head_dim]``.

    Grown on demand, so a long n_ctx costs nothing until it is used.
    """

    def __init__(self, config: ModelConfig, n_ctx: int) -> None:
        self.n_ctx = n_ctx
        self.length = 0
        empty = (config.num_key_value_heads, 0, config.head_dim)
        self.keys = [np.zeros(empty, dtype=F32) for _ in range(config.num_hidden_layers)]
        self.values = [np.zeros(empty, dtype=F32) for _ in range(config.num_hidden_layers)]

    def reserve(self, n: int) -> None:
        """Make room for ``n`` positions (capacity doubles, up to n_ctx)."""
        capacity = self.keys[0].shape[1]
        if n <= capacity:
            return
        new_cap = min(self.n_ctx, max(n, 2 * capacity, 16))
        for store in (self.keys, self.values):
            for i, old in enumerate(store):
                grown = np.zeros((old.shape[0], new_cap, old.shape[2]), dtype=F32)
                grown[:, : self.length] = old[:, : self.length]
                store[i] = grown


def forward(
    w: ReferenceWeights,
    config: ModelConfig,
    ids: np.ndarray,
    cache: KVCache,
    output: str,
) -> np.ndarray:
    """Run ``ids`` through the model after the ``cache.length`` cached positions.

    Appends the new keys/values to ``cache``. ``output``: "logits" (every position), "last"
    (logits of the last position, [1, vocab]) or "hidden" (final-normed hidden states).
    """
    c = config
    t = len(ids)
    start = cache.length
    total = start + t
    heads, kv_heads, d = c.num_attention_heads, c.num_key_value_heads, c.head_dim
    cos, sin = rope_cos_sin(w.inv_freq, np.arange(start, total))
    cache.reserve(total)

    h = w.embed[ids]  # [T, hidden]
    for li, layer in enumerate(w.layers):
        # Self-attention.
        a = rms_norm(h, layer.input_norm, c.rms_norm_eps)
        q = apply_rope(layer.q(a).reshape(t, heads, d), cos, sin)
        k = apply_rope(layer.k(a).reshape(t, kv_heads, d), cos, sin)
        v = layer.v(a).reshape(t, kv_heads, d)
        cache.keys[li][:, start:total] = k.transpose(1, 0, 2)
        cache.values[li][:, start:total] = v.transpose(1, 0, 2)
        attn = attention(q, cache.keys[li], cache.values[li], start)
        o_in = optional_rms_norm(attn.reshape(t, heads * d), layer.attn_sub_norm, c.rms_norm_eps)
        h = h + layer.o(o_in)

        # Feed-forward: act(gate) * up, the family's sub-norm, down.
        m = rms_norm(h, layer.post_attention_norm, c.rms_norm_eps)
        u = ffn_activation(c.architecture.activation, layer.gate(m)) * layer.up(m)
        h = h + layer.down(optional_rms_norm(u, layer.ffn_sub_norm, c.rms_norm_eps))
    cache.length = total

    if output == "last":
        h = h[-1:]
    hn = rms_norm(h, w.norm, c.rms_norm_eps)
    if output == "hidden":
        return hn
    # The output head is a float32 product with the (tied) embedding: not ternary, not
    # quantized. One row at a time, so a position's logits do not depend on the batch.
    return np.stack([row @ w.lm_head.T for row in hn])


def attention(q: np.ndarray, keys: np.ndarray, values: np.ndarray, start: int) -> np.ndarray:
    """Causal grouped-query attention for queries at positions ``start .. start + T - 1``.

    ``q`` is ``[T, heads, d]`` (after RoPE); ``keys`` / ``values`` are the cache,
    ``[kv_heads, >= start + T, d]``. Each kv head serves ``heads / kv_heads`` consecutive query
    heads (transformers' repeat_kv). Every query row attends over exactly its own prefix, with
    sums in a fixed order, so decoding token by token gives the same bits as a batched prefill.
    """
    t, heads, d = q.shape
    kv_heads = keys.shape[0]
    group = heads // kv_heads
    # torch multiplies the float32 scores by the Python float head_dim ** -0.5 as a float32.
    scaling = F32(d**-0.5)
    out = np.empty((t, heads, d), dtype=F32)
    for i in range(t):
        n = start + i + 1  # position start + i sees keys 0 .. start + i
        qi = q[i].reshape(kv_heads, group, 1, d)
        k = keys[:, None, :n, :]  # [kv_heads, 1, n, d]
        v = values[:, None, :n, :]
        scores = (qi * k).sum(axis=-1) * scaling  # [kv_heads, group, n]
        p = softmax(scores)
        out[i] = (p[..., None] * v).sum(axis=-2).reshape(heads, d)
    return out


# -- Backend / Engine / Session ----------------------------------------------------------------


def _check_ids(ids: Sequence[int], vocab: int) -> np.ndarray:
    arr = np.asarray(ids, dtype=np.int64).reshape(-1)
    if arr.size == 0:
        raise InvalidParameterError("eval needs at least one token")
    if arr.min() < 0 or arr.max() >= vocab:
        raise InvalidParameterError(
            f"token ids must be in [0, {vocab}), got {arr.min()}..{arr.max()}"
        )
    return arr


class ReferenceSession:
    """One sequence with its KV cache (implements ``backend.Session``)."""

    def __init__(self, engine: ReferenceEngine, n_ctx: int) -> None:
        self._engine = engine
        self._cache: KVCache | None = KVCache(engine.config, n_ctx)
        self._n_ctx = n_ctx
        self._tokens: list[int] = []
        self._last: np.ndarray | None = None
        self._rng = SplitMix64(0)

    def _live(self) -> KVCache:
        if self._cache is None:
            raise InvalidParameterError("the session is closed")
        return self._cache

    @property
    def n_past(self) -> int:
        return len(self._tokens)

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def tokens(self) -> list[int]:
        return list(self._tokens)

    def _run(self, ids: Sequence[int], output: str) -> np.ndarray:
        cache = self._live()
        arr = _check_ids(ids, self._engine.config.vocab_size)
        needed = self.n_past + int(arr.size)
        if needed > self._n_ctx:
            raise ContextOverflowError(needed, self._n_ctx)
        out = forward(self._engine.weights, self._engine.config, arr, cache, output)
        self._tokens.extend(int(t) for t in arr)
        return out

    def eval(self, ids: Sequence[int], all_logits: bool = False) -> np.ndarray | None:
        """Append ``ids``; logits of every position when ``all_logits``."""
        out = self._run(ids, "logits" if all_logits else "last")
        self._last = out[-1].copy()
        return out if all_logits else None

    def hidden(self, ids: Sequence[int]) -> np.ndarray:
        """Append ``ids``; final-normed hidden states [len(ids), hidden] (no logits kept)."""
        out = self._run(ids, "hidden")
        self._last = None
        return out

    def last_logits(self) -> np.ndarray:
        self._live()
        if self._last is None:
            raise InvalidParameterError("no logits yet: eval() some tokens first")
        return self._last.copy()

    def sample(self, params: SamplingParams, mask: np.ndarray | None = None) -> int:
        return sample(self.last_logits(), params, self._rng, self._tokens, mask)

    def set_seed(self, seed: int) -> None:
        self._live()
        self._rng = SplitMix64(int(seed))

    def truncate(self, n: int) -> None:
        cache = self._live()
        if not 0 <= n <= self.n_past:
            raise InvalidParameterError(f"truncate position {n} is outside [0, {self.n_past}]")
        if n == self.n_past:
            return
        cache.length = n
        del self._tokens[n:]
        # The kept logits belonged to a position that is gone.
        self._last = None

    def copy_prefix(self, src: ReferenceSession, n: int) -> None:
        """Hold the first ``n`` positions of ``src`` (a session of the same engine)."""
        if not isinstance(src, ReferenceSession) or src._engine is not self._engine:
            raise InvalidParameterError("copy_prefix needs an open session of the same engine")
        theirs, cache = src._live(), self._live()
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= src.n_past:
            raise InvalidParameterError(f"copy_prefix position {n!r} is outside [0, {src.n_past}]")
        if n > self._n_ctx:
            raise ContextOverflowError(n, self._n_ctx)
        if src is self:
            self.truncate(n)
            return
        cache.reserve(n)
        for mine, other in ((cache.keys, theirs.keys), (cache.values, theirs.values)):
            for layer, rows in enumerate(other):
                mine[layer][:, :n] = rows[:, :n]
        cache.length = n
        self._tokens = src._tokens[:n]
        # A session that evaluated exactly these tokens would hold their last logits.
        self._last = src._last.copy() if n == src.n_past and src._last is not None else None

    def close(self) -> None:
        self._cache = None
        self._last = None


class ReferenceEngine:
    """A model held as NumPy arrays (implements ``backend.Engine``)."""

    backend_name = "reference"

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.config: ModelConfig = checkpoint.config
        self._weights: ReferenceWeights | None = ReferenceWeights(checkpoint)

    @property
    def weights(self) -> ReferenceWeights:
        """The loaded weights (BitnetError once the engine is closed)."""
        if self._weights is None:
            raise BitnetError("the engine is closed")
        return self._weights

    @property
    def info(self) -> dict[str, Any]:
        c = self.config
        return {
            "isa": "numpy",
            "weight_format": f"int8 ternary, unpacked ({c.quantization_mode}, {c.linear_class})",
            "n_threads": 1,
            "lm_head": "f32",
            "weight_bytes": 0 if self._weights is None else self._weights.nbytes,
        }

    def new_session(self, n_ctx: int) -> ReferenceSession:
        limit = self.config.max_position_embeddings
        if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or not 1 <= n_ctx <= limit:
            raise InvalidParameterError(f"n_ctx must be in [1, {limit}], got {n_ctx!r}")
        return ReferenceSession(self, n_ctx)

    def _fresh(self, ids: Sequence[int], output: str) -> np.ndarray:
        n = len(ids)
        if n > self.config.max_position_embeddings:
            raise ContextOverflowError(n, self.config.max_position_embeddings)
        session = self.new_session(max(n, 1))
        return session._run(ids, output)

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        return self._fresh(ids, "logits")

    def hidden_states(self, ids: Sequence[int]) -> np.ndarray:
        return self._fresh(ids, "hidden")

    def eval_batch(self, items: Sequence[tuple[ReferenceSession, Sequence[int]]]) -> None:
        """Each item's ``session.eval(ids)`` in turn, after checking the whole batch."""
        for session, ids in check_batch(items, self._owns, self.config.vocab_size):
            session.eval(ids.tolist())

    def hidden_states_batch(self, batch: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """``hidden_states`` of each text, after checking them all."""
        c = self.config
        arrays = check_texts(batch, c.vocab_size, c.max_position_embeddings)
        return [self.hidden_states(ids.tolist()) for ids in arrays]

    def _owns(self, session: object) -> bool:
        return (
            isinstance(session, ReferenceSession)
            and session._engine is self
            and session._cache is not None
        )

    def close(self) -> None:
        self._weights = None


class ReferenceBackend:
    """Backend plugin for the NumPy reference implementation."""

    name = "reference"
    priority = 10
    description = "pure NumPy reference forward (slow; for tests and tiny models)"

    def available(self) -> tuple[bool, str]:
        return True, ""

    def load(self, checkpoint: Checkpoint, *, n_threads: int, **options: Any) -> ReferenceEngine:
        if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
            raise InvalidParameterError(f"n_threads must be a positive integer, got {n_threads!r}")
        options.pop("progress", None)  # preparing NumPy weights is quick: nothing to report
        if options:
            raise InvalidParameterError(f"unknown reference backend options: {sorted(options)}")
        return ReferenceEngine(checkpoint)


BACKEND = ReferenceBackend()


@hookimpl
def bitnet_backend_register(registry: Any) -> None:
    """Register the NumPy reference backend."""
    registry.add(BACKEND)


__all__ = [
    "BACKEND",
    "BitLinear",
    "ReferenceBackend",
    "ReferenceEngine",
    "ReferenceSession",
    "bitnet_backend_register",
    "forward",
    "quantize_activations",
    "rms_norm",
]
