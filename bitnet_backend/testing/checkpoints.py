"""Random checkpoints in the exact on-disk format of microsoft/bitnet-b1.58-2B-4T and the
other supported families (config.json, generation_config.json, tokenizer, safetensors).
"""

from __future__ import annotations

import itertools
import json
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..architecture import BITNET_B158, FAMILIES, LLAMA_BITNET
from ..checkpoints.safetensors_file import TensorSpec, write_safetensors
from ..checkpoints.ternary import f32_to_bf16
from ..config import ModelConfig
from .tokenizer import (
    BOS,
    CHAT_TEMPLATE,
    EOS,
    EOT,
    tokenizer_json,
    tokenizer_size,
    tokenizer_special_ids,
)

SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 160,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
    "small": {
        "hidden_size": 256,
        "intermediate_size": 640,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
    },
    # microsoft/bitnet-b1.58-2B-4T
    "2b-4t": {
        "hidden_size": 2560,
        "intermediate_size": 6912,
        "num_hidden_layers": 30,
        "num_attention_heads": 20,
        "num_key_value_heads": 5,
        "vocab_size": 128256,
    },
    # tiiuae/Falcon3-3B-Instruct-1.58bit (llama-bitnet)
    "falcon3-3b": {
        "hidden_size": 3072,
        "intermediate_size": 9216,
        "num_hidden_layers": 22,
        "num_attention_heads": 12,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "vocab_size": 131072,
    },
    # HF1BitLLM/Llama3-8B-1.58-100B-tokens (llama-bitnet)
    "llama3-8b": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-05,
        "rope_theta": 500000.0,
    },
}
# The family a named shape is written as unless one is given.
SHAPE_FAMILIES = {"falcon3-3b": LLAMA_BITNET, "llama3-8b": LLAMA_BITNET}
# config.json keys of tiiuae/Falcon3-1B-Instruct-1.58bit that differ from 2B-4T's.
_LLAMA_BITNET_KEYS: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_act": "silu",
    "is_bitnet_config": True,
    "mlp_bias": False,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000042,
    "tie_word_embeddings": False,
}
# ... and of 1bitLLM/bitnet_b1_58-large.
_1BITLLM_KEYS: dict[str, Any] = {
    "architectures": ["BitnetForCausalLM"],
    "model_type": "llama",
    "hidden_act": "silu",
    "input_bits": 8,
    "weight_bits": 1,
    "pretraining_tp": 1,
    "rope_scaling": None,
    "rope_theta": 10000.0,
}
_CHUNK_ELEMENTS = 1 << 22  # values generated per step: bounds memory for the 2B shape


def build_config(
    shape: str | Mapping[str, Any] = "tiny",
    mode: str = "offline",
    linear_class: str | None = None,
    dtype: str = "bfloat16",
    family: str | None = None,
    use_rms_norm: bool = False,
) -> dict[str, Any]:
    """The config.json dict ``write_checkpoint`` writes (the keys of the family's real repos).

    ``shape`` is a name from SHAPES or a dict of config.json overrides applied to
    ``SHAPES[shape.get("base", "tiny")]``. vocab_size defaults to the tokenizer size rounded
    up to a multiple of 64. ``family`` (see ``architecture.FAMILIES``; default: the named
    shape's in SHAPE_FAMILIES, else "bitnet-b1.58"): "bitnet-b1.58" is
    shaped as microsoft/bitnet-b1.58-2B-4T, "llama-bitnet" as tiiuae/Falcon3-*-1.58bit
    (untied head, quantization_config without linear_class, which means bitlinear),
    "1bitllm-bitnet" as 1bitLLM/bitnet_b1_58-large (float16 latent weights, no
    quantization_config; ``mode`` and ``linear_class`` do not apply). ``use_rms_norm`` sets
    quantization_config.use_rms_norm (an RMSNorm inside every BitLinear; not for 1bitLLM).
    """
    if isinstance(shape, str):
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")
        overrides: dict[str, Any] = dict(SHAPES[shape])
    else:
        overrides = dict(shape)
        base = overrides.pop("base", "tiny")
        if base not in SHAPES:
            raise ValueError(f"unknown base shape {base!r}")
        overrides = {**SHAPES[base], **overrides}
    if family is None:
        base = shape if isinstance(shape, str) else shape.get("base", "tiny")
        family = SHAPE_FAMILIES.get(str(base), BITNET_B158)
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    if mode not in ("offline", "online"):
        raise ValueError(f"mode must be 'offline' or 'online', got {mode!r}")
    if linear_class not in (None, "bitlinear", "autobitlinear"):
        raise ValueError(f"linear_class must be 'bitlinear' or 'autobitlinear': {linear_class!r}")
    if dtype not in ("bfloat16", "float32", "float16"):
        raise ValueError(f"dtype must be 'bfloat16', 'float16' or 'float32', got {dtype!r}")

    ids = tokenizer_special_ids()
    n_tok = tokenizer_size()
    vocab = overrides.pop("vocab_size", -(-n_tok // 64) * 64)
    if vocab < n_tok:
        raise ValueError(f"vocab_size {vocab} is smaller than the tokenizer ({n_tok} tokens)")
    cfg: dict[str, Any] = {
        "architectures": ["BitNetForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": ids[BOS],
        "eos_token_id": ids[EOS],
        "hidden_act": "relu2",
        "hidden_size": 0,
        "initializer_range": 0.02,
        "intermediate_size": 0,
        "max_position_embeddings": 4096,
        "model_type": "bitnet",
        "num_attention_heads": 0,
        "num_hidden_layers": 0,
        "num_key_value_heads": 0,
        "rms_norm_eps": 1e-05,
        "rope_theta": 500000.0,
        "tie_word_embeddings": True,
        "torch_dtype": dtype,
        "use_cache": True,
        "vocab_size": vocab,
    }
    quant: dict[str, Any] = {"quant_method": "bitnet", "quantization_mode": mode}
    if family == BITNET_B158:
        quant["linear_class"] = linear_class or "autobitlinear"
    elif family == LLAMA_BITNET:
        cfg.update(_LLAMA_BITNET_KEYS)
        quant = {"modules_to_not_convert": ["lm_head"], **quant}
        if linear_class is not None:
            quant["linear_class"] = linear_class
        if mode == "online":
            quant["quantization_mode"] = mode
    else:
        cfg.update(_1BITLLM_KEYS)
        quant = {}
    if use_rms_norm:
        if not quant:
            raise ValueError(f"use_rms_norm needs a quantization_config, which {family} lacks")
        quant["use_rms_norm"] = True
    if quant:
        cfg["quantization_config"] = quant
    cfg.update(overrides)
    parsed = ModelConfig.from_dict(cfg)
    if parsed.packed_weights:
        widths = {
            "hidden_size": parsed.hidden_size,
            "k/v width": parsed.num_key_value_heads * parsed.head_dim,
            "intermediate_size": parsed.intermediate_size,
        }
        for what, n in widths.items():
            if n % 4:
                raise ValueError(f"{what} {n} must be a multiple of 4 for packed weights")
    return cfg


def write_checkpoint(
    out_dir: str | Path,
    *,
    shape: str | Mapping[str, Any] = "tiny",
    mode: str = "offline",
    linear_class: str | None = None,
    shards: int = 1,
    seed: int = 0,
    dtype: str = "bfloat16",
    tokenizer: bool = True,
    progress: bool = False,
    family: str | None = None,
    use_rms_norm: bool = False,
) -> Path:
    """Write a random checkpoint directory of ``family`` (see ``build_config``); its path.

    Packed checkpoints store uint8 ternary weights + weight_scale (``mode="offline"``, and
    bitlinear ``"online"``, which transformers also loads packed); autobitlinear ``"online"``
    and 1bitLLM store float master weights (``dtype``) quantized at load. ``linear_class``
    defaults to autobitlinear for 2B-4T, as in the real checkpoint (weight_scale is a
    multiplier, about mean|W|); with "bitlinear" (the llama-bitnet default) it is the divisor
    1/mean|W|. ``dtype`` is also used for embeddings, norms, the head and weight_scale (1bitLLM
    ships float16). ``shards > 1`` writes model-0000k-of-0000n.safetensors + index.
    ``use_rms_norm`` adds each linear's input norm, ``<linear>.rms_norm.weight``.
    """
    cfg = build_config(shape, mode, linear_class, dtype, family, use_rms_norm)
    config = ModelConfig.from_dict(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("model*.safetensors"), out / "model.safetensors.index.json"]:
        stale.unlink(missing_ok=True)

    write_json(out / "config.json", cfg)
    ids = tokenizer_special_ids()
    write_json(
        out / "generation_config.json",
        {
            "bos_token_id": ids[BOS],
            "do_sample": True,
            "eos_token_id": [ids[EOS], ids[EOT]],
            "max_length": cfg["max_position_embeddings"],
            "temperature": 0.6,
            "top_p": 0.9,
        },
    )
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (out / name).unlink(missing_ok=True)
    if tokenizer:
        (out / "tokenizer.json").write_text(tokenizer_json(), encoding="utf-8")
        write_json(out / "tokenizer_config.json", _tokenizer_config(cfg))
        write_json(out / "special_tokens_map.json", {"bos_token": BOS, "eos_token": EOT})

    tensors = _tensor_specs(config, seed, dtype)
    groups = _split_shards(tensors, shards)
    meta = {"format": "pt"}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(s.nbytes for _, s in tensors), unit="B", unit_scale=True)
    if len(groups) == 1:
        write_safetensors(out / "model.safetensors", _tracked(groups[0], bar), meta)
    else:
        weight_map: dict[str, str] = {}
        for k, group in enumerate(groups, 1):
            fname = f"model-{k:05d}-of-{len(groups):05d}.safetensors"
            write_safetensors(out / fname, _tracked(group, bar), meta)
            weight_map.update(dict.fromkeys((n for n, _ in group), fname))
        index = {
            "metadata": {"total_size": sum(s.nbytes for _, s in tensors)},
            "weight_map": dict(sorted(weight_map.items())),
        }
        write_json(out / "model.safetensors.index.json", index)
    if bar is not None:
        bar.close()
    return out


def write_gguf(out_file: str | Path, *, ggml_type: str = "tq2_0", **checkpoint: Any) -> Path:
    """A random checkpoint (``write_checkpoint``'s keywords) as one GGUF file of ``ggml_type``.

    Written through ``bitnet convert --to gguf`` (gguf_export), so the file is what a user's
    conversion gives; TQ types need rows of a multiple of 256, I2_S tensors of 128.
    """
    import tempfile

    from ..gguf_export import export_gguf

    with tempfile.TemporaryDirectory() as tmp:
        src = write_checkpoint(Path(tmp) / "model", **checkpoint)
        return export_gguf(src, out_file, ggml_type)


def _tokenizer_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return tokenizer_config(cfg, tokenizer_special_ids())


def tokenizer_config(cfg: Mapping[str, Any], ids: Mapping[str, int]) -> dict[str, Any]:
    """tokenizer_config.json as 2B-4T's (chat template, special tokens) for ``ids``."""
    return {
        "added_tokens_decoder": {
            str(i): {
                "content": tok,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for tok, i in sorted(ids.items(), key=lambda kv: kv[1])
        },
        "bos_token": BOS,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": True,
        "eos_token": EOT,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": cfg["max_position_embeddings"],
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON."""
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _rng(seed: int, name: str) -> np.random.Generator:
    # One stream per tensor: values depend only on (seed, name), not on order or sharding.
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _row_chunks(shape: tuple[int, ...]) -> Iterator[tuple[int, int]]:
    rows = shape[0]
    cols = int(np.prod(shape[1:], dtype=np.int64))
    step = max(1, _CHUNK_ELEMENTS // max(cols, 1))
    for r in range(0, rows, step):
        yield min(step, rows - r), cols


def _float_spec(
    name: str,
    seed: int,
    shape: tuple[int, ...],
    dtype: str,
    sample: Callable[[np.random.Generator, int], np.ndarray],
) -> TensorSpec:
    st_dtype = _ST_DTYPES[dtype]

    def chunks() -> Iterator[np.ndarray]:
        rng = _rng(seed, name)
        for rows, cols in _row_chunks(shape):
            x = sample(rng, rows * cols).astype(np.float32, copy=False)
            yield _stored(x, st_dtype)

    return TensorSpec(st_dtype, shape, chunks)


_ST_DTYPES = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}


def _stored(x: np.ndarray, st_dtype: str) -> np.ndarray:
    if st_dtype == "BF16":
        return f32_to_bf16(x)
    return x.astype(np.float16) if st_dtype == "F16" else x


def _const_spec(value: float, dtype: str) -> TensorSpec:
    st_dtype = _ST_DTYPES[dtype]
    return TensorSpec.of(_stored(np.array([value], dtype=np.float32), st_dtype), st_dtype)


# Byte value for each of the 81 combinations of four 2-bit codes in {0, 1, 2}: drawing
# uniform integers below 81 gives uniform ternary weights without materialising them.
_PACKED_LUT = np.array(
    [a | (b << 2) | (c << 4) | (d << 6) for a, b, c, d in itertools.product(range(3), repeat=4)],
    dtype=np.uint8,
)


def _packed_spec(name: str, seed: int, shape: tuple[int, ...]) -> TensorSpec:
    def chunks() -> Iterator[np.ndarray]:
        rng = _rng(seed, name)
        for rows, cols in _row_chunks(shape):
            yield _PACKED_LUT[rng.integers(0, 81, rows * cols, dtype=np.uint8)]

    return TensorSpec("U8", shape, chunks)


def _tensor_specs(config: ModelConfig, seed: int, dtype: str) -> list[tuple[str, TensorSpec]]:
    h, i, V = config.hidden_size, config.intermediate_size, config.vocab_size
    q_out = config.num_attention_heads * config.head_dim
    kv_out = config.num_key_value_heads * config.head_dim
    packed = config.packed_weights
    arch = config.architecture
    # Embedding scale chosen so final logits have a standard deviation of about 3.
    emb_std = 3.0 / np.sqrt(h)

    def normal(std: float) -> Callable[[np.random.Generator, int], np.ndarray]:
        return lambda rng, n: rng.standard_normal(n, dtype=np.float32) * np.float32(std)

    def norm_weight(rng: np.random.Generator, n: int) -> np.ndarray:
        return np.float32(1.0) + rng.standard_normal(n, dtype=np.float32) * np.float32(0.1)

    specs: list[tuple[str, TensorSpec]] = []

    def add_float(name: str, shape: tuple[int, ...], sample: Any) -> None:
        specs.append((name, _float_spec(name, seed, shape, dtype, sample)))

    add_float("model.embed_tokens.weight", (V, h), normal(emb_std))
    linears = [
        ("self_attn.q_proj", q_out, h),
        ("self_attn.k_proj", kv_out, h),
        ("self_attn.v_proj", kv_out, h),
        ("self_attn.o_proj", h, q_out),
        ("mlp.gate_proj", i, h),
        ("mlp.up_proj", i, h),
        ("mlp.down_proj", h, i),
    ]
    for layer in range(config.num_hidden_layers):
        p = f"model.layers.{layer}."
        add_float(p + "input_layernorm.weight", (h,), norm_weight)
        for lin, out_f, in_f in linears:
            name = p + lin
            # Latent weights ~ 1/sqrt(in) keep every BitLinear output at unit scale.
            jitter = float(_rng(seed, name + ".scale").uniform(0.8, 1.25))
            mean_abs = jitter / np.sqrt(in_f)
            if packed:
                specs.append(
                    (name + ".weight", _packed_spec(name + ".weight", seed, (out_f // 4, in_f)))
                )
                scale = 1.0 / mean_abs if config.weight_scale_divides else mean_abs
                specs.append((name + ".weight_scale", _const_spec(scale, dtype)))
            else:
                add_float(name + ".weight", (out_f, in_f), normal(mean_abs * np.sqrt(np.pi / 2)))
            if arch.linear_norm is not None:
                add_float(f"{name}.{arch.linear_norm}", (in_f,), norm_weight)
            if lin == "self_attn.o_proj" and arch.attn_sub_norm is not None:
                add_float(p + arch.attn_sub_norm, (h,), norm_weight)
            if lin == "mlp.down_proj" and arch.ffn_sub_norm is not None:
                add_float(p + arch.ffn_sub_norm, (i,), norm_weight)
        add_float(p + "post_attention_layernorm.weight", (h,), norm_weight)
    add_float("model.norm.weight", (h,), norm_weight)
    if not config.tie_word_embeddings:
        add_float("lm_head.weight", (V, h), normal(emb_std))
    return specs


def _split_shards(
    tensors: Sequence[tuple[str, TensorSpec]], shards: int
) -> list[list[tuple[str, TensorSpec]]]:
    if shards < 1 or shards > len(tensors):
        raise ValueError(f"shards must be between 1 and {len(tensors)}, got {shards}")
    target = sum(s.nbytes for _, s in tensors) / shards
    groups: list[list[tuple[str, TensorSpec]]] = [[]]
    size = 0
    for idx, item in enumerate(tensors):
        must_open = len(tensors) - idx <= shards - len(groups)
        if groups[-1] and len(groups) < shards and (size >= target or must_open):
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += item[1].nbytes
    return groups


def _tracked(group: list[tuple[str, TensorSpec]], bar: Any) -> dict[str, TensorSpec]:
    if bar is None:
        return dict(group)

    def wrap(spec: TensorSpec) -> TensorSpec:
        def chunks() -> Iterator[np.ndarray]:
            for c in spec.chunks():
                yield c
                bar.update(c.nbytes)

        return TensorSpec(spec.dtype, spec.shape, chunks)

    return {n: wrap(s) for n, s in group}
