"""Write a trained BitNet as a Hugging Face checkpoint in the packed format of 2B-4T.

Linear weights become 2-bit packed codes + a bf16 ``weight_scale`` (linear_class
autobitlinear, quantization_mode offline: the multiplier, mean|W|); embeddings and norms are
bf16. The files load through ``bitnet_backend.load`` and transformers' BitNetForCausalLM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch

from ..checkpoints.safetensors_file import TensorSpec, write_safetensors
from ..checkpoints.ternary import f32_to_bf16, pack_ternary
from ..testing import BOS, EOS, EOT, build_config, special_ids, tokenizer_config, write_json
from .model import BitNet, Layer, ternary_codes, weight_scale

LINEARS = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
)


def _bf16(t: torch.Tensor) -> TensorSpec:
    return TensorSpec.of(f32_to_bf16(t.detach().to(torch.float32).numpy()), "BF16")


def config_dict(model: BitNet, ids: dict[str, int], max_positions: int) -> dict[str, Any]:
    s = model.shape
    cfg = build_config(
        {
            "hidden_size": s.hidden_size,
            "intermediate_size": s.intermediate_size,
            "num_hidden_layers": s.num_hidden_layers,
            "num_attention_heads": s.num_attention_heads,
            "num_key_value_heads": s.num_key_value_heads,
            "vocab_size": s.vocab_size,
            "rope_theta": s.rope_theta,
            "rms_norm_eps": s.rms_norm_eps,
            "max_position_embeddings": max_positions,
        },
        mode="offline",
        linear_class="autobitlinear",
    )
    cfg["bos_token_id"], cfg["eos_token_id"] = ids[BOS], ids[EOS]
    return cfg


def export(model: BitNet, tokenizer_json: str, out_dir: Path, max_positions: int) -> Path:
    """Write config, generation config, tokenizer and model.safetensors to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = special_ids(tokenizer_json)
    cfg = config_dict(model, ids, max_positions)
    write_json(out_dir / "config.json", cfg)
    write_json(
        out_dir / "generation_config.json",
        {
            "bos_token_id": ids[BOS],
            "do_sample": False,
            "eos_token_id": [ids[EOS], ids[EOT]],
            "max_length": max_positions,
        },
    )
    (out_dir / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    write_json(out_dir / "tokenizer_config.json", tokenizer_config(cfg, ids))
    write_json(out_dir / "special_tokens_map.json", {"bos_token": BOS, "eos_token": EOT})

    tensors: dict[str, TensorSpec] = {"model.embed_tokens.weight": _bf16(model.embed_tokens.weight)}
    modules = {
        "self_attn": ("q_proj", "k_proj", "v_proj", "o_proj"),
        "mlp": ("gate_proj", "up_proj", "down_proj"),
    }
    for i, module in enumerate(model.layers):
        layer = cast(Layer, module)
        p = f"model.layers.{i}."
        tensors[p + "input_layernorm.weight"] = _bf16(layer.input_layernorm.weight)
        for group, names in modules.items():
            for name in names:
                w = getattr(layer, name).weight
                codes = ternary_codes(w).to(torch.int8).numpy()
                tensors[f"{p}{group}.{name}.weight"] = TensorSpec.of(pack_ternary(codes), "U8")
                tensors[f"{p}{group}.{name}.weight_scale"] = _bf16(weight_scale(w).reshape(1))
        tensors[p + "self_attn.attn_sub_norm.weight"] = _bf16(layer.attn_sub_norm.weight)
        tensors[p + "post_attention_layernorm.weight"] = _bf16(
            layer.post_attention_layernorm.weight
        )
        tensors[p + "mlp.ffn_sub_norm.weight"] = _bf16(layer.ffn_sub_norm.weight)
    tensors["model.norm.weight"] = _bf16(model.norm.weight)
    write_safetensors(
        out_dir / "model.safetensors", dict(sorted(tensors.items())), {"format": "pt"}
    )
    return out_dir
