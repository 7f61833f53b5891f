"""ModelConfig: the architecture hyper-parameters read from a Hugging Face config.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .architecture import (
    ACTIVATIONS,
    BITNET_1BITLLM,
    BITNET_B158,
    Architecture,
    architecture,
    family_of,
)
from .errors import CheckpointError, UnsupportedModelError
from .rope import RopeScaling, parse_rope_scaling, rope_section
from .validation import check_config_values, parse_json, read_text

SUPPORTED_ARCHITECTURES = ("BitNetForCausalLM", "BitnetForCausalLM", "LlamaForCausalLM")


def packed_weights(linear_class: str, quantization_mode: str) -> bool:
    """Whether a quantization_config stores its linears packed (uint8 + weight_scale).

    transformers builds a packed BitLinear for every ``bitlinear`` checkpoint whatever its
    quantization_mode; only ``autobitlinear`` + ``online`` keeps float weights.
    """
    return not (linear_class == "autobitlinear" and quantization_mode == "online")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a ternary model, as the engine needs it."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    rms_norm_eps: float = 1e-5
    rope_theta: float = 500000.0
    # rope_scaling of a non-default type (None: plain RoPE).
    rope_scaling: RopeScaling | None = None
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = True
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None
    # "bitlinear": y = dot / (s_x * weight_scale); "autobitlinear": y = dot / s_x * weight_scale.
    linear_class: str = "bitlinear"
    # "offline": packed uint8 ternary weights; "online": float master weights quantized at load.
    quantization_mode: str = "offline"
    torch_dtype: str = "bfloat16"
    # quantization_config.rms_norm_eps: the eps of the BitLinear input norms, if any
    # (architecture.linear_norm).
    linear_norm_eps: float = 1e-6
    architecture: Architecture = field(default_factory=lambda: architecture(BITNET_B158, "relu2"))
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        d["eos_token_ids"] = list(self.eos_token_ids)
        return d

    @classmethod
    def from_dict(cls, raw: dict[str, Any], path: object = "config.json") -> ModelConfig:
        """Validate a parsed config.json; raise CheckpointError / UnsupportedModelError."""
        if not isinstance(raw, dict):
            raise CheckpointError(path, "config.json must contain a JSON object")
        check_config_values(raw, path)
        family = family_of(raw, path)
        act = raw.get("hidden_act", "relu2" if family == BITNET_B158 else "silu")
        if act not in ACTIVATIONS:
            raise UnsupportedModelError(
                path, f"hidden_act {act!r} is not supported (need 'relu2' or 'silu')"
            )

        def req_int(key: str) -> int:
            v = raw.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise CheckpointError(path, f"'{key}' must be a positive integer, got {v!r}")
            return v

        hidden = req_int("hidden_size")
        heads = req_int("num_attention_heads")
        kv_heads = raw.get("num_key_value_heads", heads)
        if not isinstance(kv_heads, int) or kv_heads <= 0 or heads % kv_heads:
            raise CheckpointError(
                path, f"num_key_value_heads {kv_heads!r} must divide num_attention_heads {heads}"
            )
        head_dim = raw.get("head_dim") or hidden // heads
        if not isinstance(head_dim, int) or head_dim <= 0 or head_dim % 2:
            raise CheckpointError(path, f"head_dim {head_dim!r} must be a positive even integer")
        rope_scaling = parse_rope_scaling(raw, path)
        theta = rope_section(raw)[1].get("rope_theta", raw.get("rope_theta", 500000.0))
        if not isinstance(theta, (int, float)) or theta <= 0:
            raise CheckpointError(path, f"rope_theta must be a positive number, got {theta!r}")
        eps = raw.get("rms_norm_eps", 1e-5)
        if not isinstance(eps, (int, float)) or eps <= 0:
            raise CheckpointError(path, f"rms_norm_eps must be a positive number, got {eps!r}")
        q = raw.get("quantization_config") or {}
        if not isinstance(q, dict):
            raise CheckpointError(path, "'quantization_config' must be an object")
        if family == BITNET_1BITLLM and not q:
            # Float latent weights ternarized per tensor at load (1bitLLM's utils_quant.py):
            # the math of an online AutoBitLinear.
            q = {"linear_class": "autobitlinear", "quantization_mode": "online"}
        if q.get("quant_method", "bitnet") != "bitnet":
            raise UnsupportedModelError(
                path, f"quant_method {q.get('quant_method')!r} is not supported (need 'bitnet')"
            )
        use_rms_norm = q.get("use_rms_norm") or False
        if not isinstance(use_rms_norm, bool):
            raise CheckpointError(
                path, f"quantization_config.use_rms_norm must be true or false: {use_rms_norm!r}"
            )
        # BitNetQuantConfig's default eps.
        linear_eps = q.get("rms_norm_eps", 1e-6)
        if (
            isinstance(linear_eps, bool)
            or not isinstance(linear_eps, (int, float))
            or not 0 < linear_eps < float("inf")
        ):
            raise CheckpointError(
                path,
                f"quantization_config.rms_norm_eps must be a positive number, got {linear_eps!r}",
            )
        linear_class = q.get("linear_class", "bitlinear")
        if linear_class not in ("bitlinear", "autobitlinear"):
            raise UnsupportedModelError(path, f"linear_class {linear_class!r} is not supported")
        mode = q.get("quantization_mode", "offline")
        if mode not in ("offline", "online"):
            raise UnsupportedModelError(path, f"quantization_mode {mode!r} is not supported")
        kept = q.get("modules_to_not_convert") or []
        if not isinstance(kept, list) or any(m != "lm_head" for m in kept):
            # Only the output head may stay float: the engine has no float linears.
            raise UnsupportedModelError(
                path, f"modules_to_not_convert {kept!r} is not supported (only 'lm_head')"
            )
        if raw.get("attention_bias") or raw.get("mlp_bias"):
            raise UnsupportedModelError(path, "linear biases are not supported")
        eos = raw.get("eos_token_id")
        eos_ids = tuple(eos) if isinstance(eos, list) else (() if eos is None else (eos,))
        return cls(
            hidden_size=hidden,
            intermediate_size=req_int("intermediate_size"),
            num_hidden_layers=req_int("num_hidden_layers"),
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            head_dim=head_dim,
            vocab_size=req_int("vocab_size"),
            rms_norm_eps=float(eps),
            rope_theta=float(theta),
            rope_scaling=rope_scaling,
            max_position_embeddings=int(raw.get("max_position_embeddings", 4096)),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", True)),
            bos_token_id=raw.get("bos_token_id"),
            eos_token_ids=tuple(int(e) for e in eos_ids),
            pad_token_id=raw.get("pad_token_id"),
            linear_class=linear_class,
            quantization_mode=mode,
            torch_dtype=str(raw.get("torch_dtype", raw.get("dtype", "bfloat16"))),
            linear_norm_eps=float(linear_eps),
            architecture=architecture(family, act, use_rms_norm),
            extra=raw,
        )

    @classmethod
    def from_file(cls, path: Path) -> ModelConfig:
        if not Path(path).exists() and not Path(path).is_symlink():
            raise CheckpointError(path, "config.json is missing")
        raw = parse_json(path, read_text(Path(path), "config.json"), "config.json")
        return cls.from_dict(raw, path)

    @property
    def packed_weights(self) -> bool:
        """Whether the linears are stored packed (uint8 + weight_scale), not as floats."""
        return packed_weights(self.linear_class, self.quantization_mode)

    @property
    def weight_scale_divides(self) -> bool:
        """The one rule for a linear's scale: True when its output is divided by it.

        BitLinear (``bitlinear``, offline or online) computes ``dot / (s_x * weight_scale)``;
        AutoBitLinear multiplies by ``weight_scale``, and float weights are ternarized with
        the multiplier mean|W|.
        """
        return self.linear_class == "bitlinear"

    def forward_options(self) -> dict[str, str]:
        """The forward's choices by the names the engine's ModelConfig gives them (for info)."""
        arch = self.architecture
        rope = self.rope_scaling
        return {
            "activation": arch.activation,
            "weight_scale": "divide" if self.weight_scale_divides else "multiply",
            "linear_norm": arch.linear_norm or "none",
            "rope_scaling": "none" if rope is None else f"{rope.rope_type} x{rope.factor:g}",
        }

    @property
    def parameter_count(self) -> int:
        """Number of parameters (ternary linears + embedding + norms), as reported by info."""
        h, i, L = self.hidden_size, self.intermediate_size, self.num_hidden_layers
        q = self.num_attention_heads * self.head_dim
        kv = self.num_key_value_heads * self.head_dim
        arch = self.architecture
        norms = 2 * h + (q if arch.attn_sub_norm else 0) + (i if arch.ffn_sub_norm else 0)
        if arch.linear_norm:
            norms += 5 * h + q + i  # the input width of each of the seven linears
        per_layer = h * q + 2 * h * kv + q * h + 3 * h * i + norms
        emb = self.vocab_size * h * (1 if self.tie_word_embeddings else 2)
        return L * per_layer + emb + h
