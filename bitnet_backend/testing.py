"""Random BitNet b1.58 checkpoints in the exact on-disk format of microsoft/bitnet-b1.58-2B-4T.

``write_checkpoint`` writes config.json, generation_config.json, a small byte-level BPE
tokenizer (llama-3 style special tokens, a chat template shaped like 2B-4T's) and safetensors
(one file or shards + index) with random weights whose logits are far from uniform. The same
seed always gives the same files. ``write_hub_cache`` lays a checkpoint out as a
huggingface_hub cache entry, so hub ids can be loaded offline.

    python -m bitnet_backend.testing --shape 2b-4t OUT_DIR
    python -m bitnet_backend.testing --family llama-bitnet --set hidden_size=256 \
        --set intermediate_size=512 --gguf tq2_0 OUT.gguf
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import os
import re
import shutil
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .architecture import BITNET_B158, FAMILIES, LLAMA_BITNET
from .checkpoints.gguf_ternary import TERNARY_TYPES
from .checkpoints.safetensors_file import TensorSpec, write_safetensors
from .checkpoints.ternary import f32_to_bf16
from .config import ModelConfig
from .errors import BitnetError

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
BOS, EOS, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
# The chat template of microsoft/bitnet-b1.58-2B-4T.
CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = message['role'] | capitalize + ': '+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}"
)
# llama-3's pre-tokenizer split pattern.
_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_BPE_VOCAB = 509  # + 3 special tokens = 512
_CHUNK_ELEMENTS = 1 << 22  # values generated per step: bounds memory for the 2B shape

_CORPUS = """\
The sun rose slowly over the quiet valley, and the farmers walked out to their fields.
A small river ran past the old mill, where children played in the shallow water.
In the morning the market opened early. People bought bread, cheese, apples and fresh fish.
She asked him whether he had finished the report, and he said that it would be ready soon.
The library was full of students reading books about history, science and mathematics.
Computers process information by following instructions written in programming languages.
A function takes some input, does a little work, and returns a result to the caller.
Good software is tested carefully, because small mistakes can cause large problems later.
The weather today is cloudy with a chance of rain in the afternoon and strong winds tonight.
Please remember to bring your umbrella, your keys and your phone when you leave the house.
The cat sat on the warm windowsill and watched the birds in the garden below.
Our team meets every Monday to discuss progress, plan the week and answer questions.
Water boils at one hundred degrees Celsius at sea level, but at a lower temperature on a mountain.
The train to the city leaves at eight o'clock and arrives a little after nine.
He opened the window to let in the fresh air, then sat down to write a long letter.
Language models predict the next word in a sentence from the words that came before it.
Music, painting and poetry have helped people express their feelings for thousands of years.
The recipe needs two cups of flour, one egg, a spoon of sugar and a pinch of salt.
When you travel abroad, it is useful to learn a few words of the local language.
The museum is open from ten in the morning until six in the evening, except on holidays.
I think that we should start the meeting now, because everyone is already here.
What time is it? It's almost noon, so let's have lunch together in the park.
They've been working on the new bridge for two years, and it'll be finished next spring.
Thank you very much for your help. You're welcome, it was a pleasure to assist you.
Can you tell me how to get to the station? Walk straight ahead and turn left at the bank.
The answer to the question is simple: read the instructions first, then try again.
User: Hello, who are you?
Assistant: I am a helpful assistant. How can I help you today?
User: Write a short poem about the sea.
Assistant: The sea is wide, the sea is deep, it sings the sailors off to sleep.
Numbers such as 12, 345, 2024 and 3.14 appear in many kinds of text and tables.
"""
_SUBJECTS = ["The teacher", "A young girl", "My neighbour", "The old man", "Our doctor", "Everyone"]
_VERBS = ["reads", "writes", "likes", "finds", "remembers", "explains", "builds", "shares"]
_OBJECTS = [
    "a good story",
    "the new computer",
    "simple answers",
    "the morning news",
    "a small garden",
    "the history of science",
]
_ENDINGS = ["every day.", "with great care.", "at home.", "before dinner.", "in the library."]


def corpus() -> list[str]:
    """The built-in English text the test tokenizer is trained on (deterministic)."""
    lines = _CORPUS.splitlines()
    generated = [
        f"{s} {v} {o} {e}"
        for s, v, o, e in itertools.product(_SUBJECTS, _VERBS, _OBJECTS, _ENDINGS)
    ]
    return lines + generated[::7]


@functools.lru_cache(maxsize=1)
def tokenizer_json() -> str:
    """The test tokenizer: ``train_tokenizer_json`` on the built-in corpus."""
    return train_tokenizer_json(corpus(), _BPE_VOCAB)


def train_tokenizer_json(lines: Iterable[str], bpe_vocab: int) -> str:
    """A byte-level BPE tokenizer.json with llama-3 special tokens appended after the BPE vocab.

    Every UTF-8 string round-trips (the 256 byte symbols are in the alphabet); encoding adds
    <|begin_of_text|> like llama-3's TemplateProcessing.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_vocab,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer)
    tok.add_special_tokens([BOS, EOS, EOT])
    bos = tok.token_to_id(BOS)
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{BOS} $A",
                pair=f"{BOS} $A {BOS}:1 $B:1",
                special_tokens=[(BOS, bos)],
            ),
        ]
    )
    return str(tok.to_str(pretty=True))


def special_ids(tokenizer: str) -> dict[str, int]:
    """Special token -> id in a tokenizer.json text."""
    added = json.loads(tokenizer)["added_tokens"]
    return {t["content"]: int(t["id"]) for t in added}


def _special_ids() -> dict[str, int]:
    return special_ids(tokenizer_json())


def tokenizer_size() -> int:
    """Number of tokens of the test tokenizer (BPE vocab + special tokens)."""
    return max(_special_ids().values()) + 1


def build_config(
    shape: str | Mapping[str, Any] = "tiny",
    mode: str = "offline",
    linear_class: str | None = None,
    dtype: str = "bfloat16",
    family: str | None = None,
) -> dict[str, Any]:
    """The config.json dict ``write_checkpoint`` writes (the keys of the family's real repos).

    ``shape`` is a name from SHAPES or a dict of config.json overrides applied to
    ``SHAPES[shape.get("base", "tiny")]``. vocab_size defaults to the tokenizer size rounded
    up to a multiple of 64. ``family`` (see ``architecture.FAMILIES``; default: the named
    shape's in SHAPE_FAMILIES, else "bitnet-b1.58"): "bitnet-b1.58" is
    shaped as microsoft/bitnet-b1.58-2B-4T, "llama-bitnet" as tiiuae/Falcon3-*-1.58bit
    (untied head, quantization_config without linear_class, which means bitlinear),
    "1bitllm-bitnet" as 1bitLLM/bitnet_b1_58-large (float16 latent weights, no
    quantization_config; ``mode`` and ``linear_class`` do not apply).
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

    ids = _special_ids()
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
) -> Path:
    """Write a random checkpoint directory of ``family`` (see ``build_config``); its path.

    Packed checkpoints store uint8 ternary weights + weight_scale (``mode="offline"``, and
    bitlinear ``"online"``, which transformers also loads packed); autobitlinear ``"online"``
    and 1bitLLM store float master weights (``dtype``) quantized at load. ``linear_class``
    defaults to autobitlinear for 2B-4T, as in the real checkpoint (weight_scale is a
    multiplier, about mean|W|); with "bitlinear" (the llama-bitnet default) it is the divisor
    1/mean|W|. ``dtype`` is also used for embeddings, norms, the head and weight_scale (1bitLLM
    ships float16). ``shards > 1`` writes model-0000k-of-0000n.safetensors + index.
    """
    cfg = build_config(shape, mode, linear_class, dtype, family)
    config = ModelConfig.from_dict(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("model*.safetensors"), out / "model.safetensors.index.json"]:
        stale.unlink(missing_ok=True)

    write_json(out / "config.json", cfg)
    ids = _special_ids()
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

    from .gguf_export import export_gguf

    with tempfile.TemporaryDirectory() as tmp:
        src = write_checkpoint(Path(tmp) / "model", **checkpoint)
        return export_gguf(src, out_file, ggml_type)


def _tokenizer_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return tokenizer_config(cfg, _special_ids())


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


_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def write_hub_cache(
    cache_dir: str | Path, repo_id: str, checkpoint_dir: str | Path, revision: str = "main"
) -> Path:
    """Store ``checkpoint_dir`` in a huggingface_hub cache as ``repo_id`` at ``revision``.

    ``cache_dir`` is the hub cache (``$HF_HUB_CACHE``, by default ``$HF_HOME/hub``). Writes
    ``models--owner--name/{blobs,snapshots/<commit>,refs/<revision>}`` as huggingface_hub
    does (snapshot files are relative symlinks to content-addressed blobs) and returns the
    snapshot directory.
    """
    owner_name = repo_id.split("/")
    if len(owner_name) != 2 or not all(owner_name):
        raise ValueError(f"repo_id must look like 'owner/name', got {repo_id!r}")
    storage = Path(cache_dir) / f"models--{owner_name[0]}--{owner_name[1]}"
    blobs = storage / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in Path(checkpoint_dir).iterdir() if p.is_file())
    digests: dict[str, str] = {}
    for f in files:
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        digests[f.name] = h.hexdigest()
        blob = blobs / digests[f.name]
        if not blob.exists():
            shutil.copyfile(f, blob)
    if _COMMIT.match(revision):
        commit = revision
    else:
        listing = "".join(f"{n}\0{d}\n" for n, d in digests.items())
        commit = hashlib.sha1(listing.encode(), usedforsecurity=False).hexdigest()
        ref = storage / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    snapshot = storage / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, digest in digests.items():
        link = snapshot / name
        if link.is_symlink() or link.exists():
            link.unlink()
        try:
            link.symlink_to(Path("..") / ".." / "blobs" / digest)
        except OSError:
            # Filesystems without symlinks: huggingface_hub then stores plain copies too.
            shutil.copyfile(blobs / digest, link)
    return snapshot


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m bitnet_backend.testing``."""
    parser = argparse.ArgumentParser(
        prog="python -m bitnet_backend.testing",
        description="Write a random BitNet b1.58 checkpoint in the Hugging Face format "
        "(random weights: for tests and benchmarks, its text is noise).",
    )
    parser.add_argument("out", type=Path, help="output directory")
    parser.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        default="tiny",
        help="model dimensions; 2b-4t is those of microsoft/bitnet-b1.58-2B-4T "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--mode",
        choices=["offline", "online"],
        default="offline",
        help="offline: packed ternary weights with scales, as published checkpoints store "
        "them; online: float master weights quantized at load (default: %(default)s)",
    )
    parser.add_argument(
        "--linear-class",
        choices=["bitlinear", "autobitlinear"],
        default=None,
        help="quantization_config.linear_class written to config.json (default: autobitlinear)",
    )
    parser.add_argument(
        "--dtype",
        choices=sorted(_ST_DTYPES),
        default="bfloat16",
        help="type of the float tensors (default: %(default)s)",
    )
    parser.add_argument(
        "--family",
        choices=FAMILIES,
        default=None,
        help="model family whose on-disk format to write (default: bitnet-b1.58, or the "
        "shape's own family)",
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=1,
        help="number of safetensors files, with an index when > 1 (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random weights (default: %(default)s)"
    )
    parser.add_argument(
        "--gguf",
        choices=tuple(TERNARY_TYPES),
        default=None,
        help="write one GGUF file of this ternary type, OUT being the file (default: a "
        "Hugging Face directory)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config.json field (VALUE is JSON), e.g. --set num_hidden_layers=4; "
        "may be repeated (default: none)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write a random checkpoint (see ``--help``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    shape: str | dict[str, Any] = args.shape
    if args.set:
        overrides: dict[str, Any] = {"base": args.shape}
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                parser.error(f"--set expects KEY=VALUE, got {item!r}")
            try:
                overrides[key] = json.loads(value)
            except json.JSONDecodeError:
                overrides[key] = value
        shape = overrides
    if args.gguf:
        try:
            out = write_gguf(
                args.out,
                ggml_type=args.gguf,
                shape=shape,
                mode=args.mode,
                linear_class=args.linear_class,
                seed=args.seed,
                dtype=args.dtype,
                family=args.family,
            )
        except (ValueError, BitnetError) as exc:
            parser.error(str(exc))
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
        return 0
    try:
        out = write_checkpoint(
            args.out,
            shape=shape,
            mode=args.mode,
            linear_class=args.linear_class,
            shards=args.shards,
            seed=args.seed,
            dtype=args.dtype,
            progress=sys.stderr.isatty(),
            family=args.family,
        )
    except ValueError as exc:
        parser.error(str(exc))
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"wrote {out} ({total / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
