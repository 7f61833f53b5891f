"""BitNet b1.58 in PyTorch with quantization-aware training (needs the ``train`` extra).

The forward is the one the engine and transformers' BitNetForCausalLM run on the exported
checkpoint: absmean ternary weights times a bf16 scale, per-token absmax int8 activations,
RMSNorm before attention and MLP, sub-norms before o_proj and down_proj, squared ReLU, RoPE,
grouped-query attention, tied embeddings. Quantizers use the straight-through estimator:
the forward sees quantized values, the backward treats quantization as the identity, so the
float master weights keep learning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ModelShape:
    """Dimensions of the model (config.json fields of the same names)."""

    vocab_size: int
    hidden_size: int = 256
    intermediate_size: int = 640
    num_hidden_layers: int = 6
    num_attention_heads: int = 8
    num_key_value_heads: int = 4
    rope_theta: float = 500000.0
    rms_norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


def ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``q`` in the forward, gradient of ``x`` in the backward."""
    return x + (q - x).detach()


def weight_scale(w: torch.Tensor) -> torch.Tensor:
    """mean|W| as the exported checkpoint stores it (bf16): the multiplier of the codes."""
    return w.detach().abs().mean().clamp(min=1e-5).to(torch.bfloat16).to(torch.float32)


def ternary_codes(w: torch.Tensor) -> torch.Tensor:
    """The {-1, 0, 1} codes of ``w`` (absmean quantization, as transformers' WeightQuant)."""
    s = 1.0 / w.detach().abs().mean().clamp(min=1e-5)
    return (w.detach() * s).round().clamp(-1, 1)


class BitLinear(nn.Module):
    """Linear layer with ternary weights and int8 activations (no bias).

    The product is taken between the integer activations and the {-1, 0, 1} codes, then
    scaled, as the engine computes it. Both operands are small integers, exact in bfloat16,
    and the matmul accumulates in float32, so ``compute_dtype=torch.bfloat16`` changes only
    the rounding of the result (and its gradients). It is faster where the CPU has bfloat16
    matrix units (AMX); without them float32 is.
    """

    def __init__(
        self, in_features: int, out_features: int, compute_dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.compute_dtype = compute_dtype
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        s = 127.0 / x.detach().abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
        xs, ws = x * s, w / w.detach().abs().mean().clamp(min=1e-5)
        x_int = ste(xs, xs.detach().round().clamp(-128, 127))
        w_codes = ste(ws, ternary_codes(w))
        gamma = weight_scale(w)
        y = F.linear(x_int.to(self.compute_dtype), w_codes.to(self.compute_dtype))
        return y.float() * (gamma / s)


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rope_tables(shape: ModelShape, max_pos: int) -> tuple[torch.Tensor, torch.Tensor]:
    d = shape.head_dim
    inv = 1.0 / (shape.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    freqs = torch.outer(torch.arange(max_pos, dtype=torch.float32), inv)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Layer(nn.Module):
    def __init__(self, s: ModelShape, compute_dtype: torch.dtype) -> None:
        super().__init__()
        h, kv, ffn = s.hidden_size, s.num_key_value_heads * s.head_dim, s.intermediate_size
        self.shape = s
        self.input_layernorm = RMSNorm(h, s.rms_norm_eps)
        self.q_proj = BitLinear(h, h, compute_dtype)
        self.k_proj = BitLinear(h, kv, compute_dtype)
        self.v_proj = BitLinear(h, kv, compute_dtype)
        self.attn_sub_norm = RMSNorm(h, s.rms_norm_eps)
        self.o_proj = BitLinear(h, h, compute_dtype)
        self.post_attention_layernorm = RMSNorm(h, s.rms_norm_eps)
        self.gate_proj = BitLinear(h, ffn, compute_dtype)
        self.up_proj = BitLinear(h, ffn, compute_dtype)
        self.ffn_sub_norm = RMSNorm(ffn, s.rms_norm_eps)
        self.down_proj = BitLinear(ffn, h, compute_dtype)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        s = self.shape
        b, t, _ = x.shape
        y = self.input_layernorm(x)
        q = self.q_proj(y).view(b, t, s.num_attention_heads, s.head_dim).transpose(1, 2)
        k = self.k_proj(y).view(b, t, s.num_key_value_heads, s.head_dim).transpose(1, 2)
        v = self.v_proj(y).view(b, t, s.num_key_value_heads, s.head_dim).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        group = s.num_attention_heads // s.num_key_value_heads
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        a = a.transpose(1, 2).reshape(b, t, -1)
        x = x + self.o_proj(self.attn_sub_norm(a))
        y = self.post_attention_layernorm(x)
        hidden = F.relu(self.gate_proj(y)).square() * self.up_proj(y)
        return x + self.down_proj(self.ffn_sub_norm(hidden))


class BitNet(nn.Module):
    """The causal LM; ``forward`` takes per-token positions and example ids (packed rows).

    ``compute_dtype`` is the operand type of the matmuls (see BitLinear; the output head
    too): float32, or bfloat16 for speed.
    """

    cos: torch.Tensor
    sin: torch.Tensor

    def __init__(
        self, shape: ModelShape, max_pos: int = 2048, compute_dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__()
        self.shape = shape
        self.compute_dtype = compute_dtype
        self.embed_tokens = nn.Embedding(shape.vocab_size, shape.hidden_size)
        nn.init.normal_(self.embed_tokens.weight, std=0.02)
        self.layers = nn.ModuleList(
            Layer(shape, compute_dtype) for _ in range(shape.num_hidden_layers)
        )
        self.norm = RMSNorm(shape.hidden_size, shape.rms_norm_eps)
        cos, sin = rope_tables(shape, max_pos)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, tokens: torch.Tensor, pos: torch.Tensor, doc: torch.Tensor) -> torch.Tensor:
        dt = self.compute_dtype
        hidden = self.hidden_states(tokens, pos, doc)
        return F.linear(hidden.to(dt), self.embed_tokens.weight.to(dt)).float()

    def hidden_states(
        self, tokens: torch.Tensor, pos: torch.Tensor, doc: torch.Tensor
    ) -> torch.Tensor:
        """The final-normed hidden states ``[rows, T, hidden]`` (what ``Model.embed`` pools)."""
        t = tokens.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=tokens.device).tril()
        mask = (doc[:, :, None] == doc[:, None, :]) & causal  # attend within an example only
        mask = mask[:, None]
        cos, sin = self.cos[pos][:, None], self.sin[pos][:, None]
        x = self.embed_tokens(tokens)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.norm(x)
