"""The ternary model families and how each one's forward differs from the others.

Every supported family is a Llama-shaped decoder whose seven linears are BitLinears; they
differ only in the feed-forward activation, in whether the attention output and the gated
feed-forward product pass through an extra RMSNorm (a "sub-norm") before their projection,
in what those sub-norms are called on disk, and in whether every BitLinear normalizes its
own input (quantization_config ``use_rms_norm``). ``Architecture`` names these choices once;
both backends read them from ``ModelConfig.architecture`` (docs/formats.md lists the
families).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import UnsupportedModelError

# Feed-forward activations: down(act(gate(x)) * up(x)).
ACTIVATIONS = ("relu2", "silu")


@dataclass(frozen=True)
class Architecture:
    """One family's forward: activation and sub-norm tensor names (None: no sub-norm)."""

    family: str
    activation: str
    # Per-layer tensor names (after "model.layers.N.") of the RMSNorm before o_proj and
    # before down_proj.
    attn_sub_norm: str | None
    ffn_sub_norm: str | None
    # Tensor name (after "<linear>.") of the RMSNorm weight each BitLinear applies to its
    # input before quantizing it (transformers' BitLinear with use_rms_norm); None: no norm.
    linear_norm: str | None = None

    @property
    def sub_norms(self) -> tuple[str, ...]:
        """The per-layer sub-norm tensor names this family has."""
        return tuple(n for n in (self.attn_sub_norm, self.ffn_sub_norm) if n is not None)


# microsoft/bitnet-b1.58-2B-4T (transformers' BitNetForCausalLM).
BITNET_B158 = "bitnet-b1.58"
# LlamaForCausalLM with quantization_config.quant_method "bitnet": Falcon3-*-1.58bit,
# Falcon-E, HF1BitLLM/Llama3-8B-1.58-100B-tokens.
LLAMA_BITNET = "llama-bitnet"
# 1bitLLM/bitnet_b1_58-{large,xl,3B} ("BitnetForCausalLM", float16 latent weights).
BITNET_1BITLLM = "1bitllm-bitnet"

_SUB_NORMS: dict[str, tuple[str | None, str | None]] = {
    BITNET_B158: ("self_attn.attn_sub_norm.weight", "mlp.ffn_sub_norm.weight"),
    LLAMA_BITNET: (None, None),
    BITNET_1BITLLM: ("self_attn.inner_attn_ln.weight", "mlp.ffn_layernorm.weight"),
}
FAMILIES = tuple(_SUB_NORMS)
# transformers' LlamaRMSNorm inside BitLinear / AutoBitLinear is the module "rms_norm".
LINEAR_NORM = "rms_norm.weight"


def architecture(family: str, activation: str, linear_norm: bool = False) -> Architecture:
    """The architecture of ``family`` with the feed-forward ``activation`` its config names
    and, when ``linear_norm``, an RMSNorm on every BitLinear's input."""
    if family not in _SUB_NORMS:
        raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {ACTIVATIONS}")
    attn, ffn = _SUB_NORMS[family]
    return Architecture(family, activation, attn, ffn, LINEAR_NORM if linear_norm else None)


def family_of(raw: dict[str, Any], path: object) -> str:
    """The family a parsed config.json belongs to; UnsupportedModelError when none."""
    archs = raw.get("architectures") or []
    if not isinstance(archs, list):
        archs = [archs]
    model_type = raw.get("model_type")
    quant = raw.get("quantization_config")
    bitnet_quant = isinstance(quant, dict) and quant.get("quant_method") == "bitnet"
    if "BitNetForCausalLM" in archs or (not archs and model_type == "bitnet"):
        return BITNET_B158
    # 1bitLLM's remote-code class: the same name as transformers' but a lowercase "n".
    if "BitnetForCausalLM" in archs:
        return BITNET_1BITLLM
    if "LlamaForCausalLM" in archs or (not archs and model_type == "llama"):
        if bitnet_quant:
            return LLAMA_BITNET
        raise UnsupportedModelError(
            path,
            "LlamaForCausalLM without quantization_config.quant_method 'bitnet' is not a "
            "ternary model",
        )
    raise UnsupportedModelError(
        path,
        f"unknown architecture {archs or model_type!r}: supported are BitNetForCausalLM, "
        "BitnetForCausalLM (1bitLLM) and LlamaForCausalLM with quant_method 'bitnet'",
    )
