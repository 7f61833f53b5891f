"""GGUF files (llama.cpp / bitnet.cpp) read into the tensors of a Hugging Face checkpoint.

``read_gguf`` maps the file read-only (the ``gguf`` package's reader) and returns what
``checkpoints.hf.load_checkpoint`` builds a ``Checkpoint`` from: a config.json dict made from
the ``<arch>.*`` metadata, a tokenizer.json rebuilt from the vocabulary, and the tensors under
their Hugging Face names. Float tensors (embedding, head, norms in F32 / F16 / BF16) stay views
on the mapping; Q8_0 / Q6_K tables are dequantized to float32; ternary linears (TQ1_0, TQ2_0,
I2_S) become packed uint8 + a multiplying weight_scale, which loses nothing; they are decoded
when a backend reads them, so no second copy stays in memory. docs/formats.md
describes the architectures and types read here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..architecture import BITNET_1BITLLM, BITNET_B158, LLAMA_BITNET, architecture
from ..errors import CheckpointError, UnsupportedModelError
from ..user_cache import user_cache_dir
from . import gguf_ternary
from .gguf_vocab import VocabError, tokenizer_json
from .ternary import pack_ternary

# general.architecture -> (family, activation). bitnet.cpp named 2B-4T's arch "bitnet-25"
# before "bitnet-b1.58"; llama.cpp's "bitnet" is the 1bitLLM graph (SiLU with sub-norms).
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "bitnet-b1.58": (BITNET_B158, "relu2"),
    "bitnet-25": (BITNET_B158, "relu2"),
    "bitnet": (BITNET_1BITLLM, "silu"),
    "llama": (LLAMA_BITNET, "silu"),
}
# The config.json architectures entry of each family.
HF_CLASSES = {
    BITNET_B158: ("BitNetForCausalLM", "bitnet"),
    BITNET_1BITLLM: ("BitnetForCausalLM", "llama"),
    LLAMA_BITNET: ("LlamaForCausalLM", "llama"),
}
# One tensor-name table: GGUF name (after "blk.N.") -> Hugging Face name (after
# "model.layers.N."). Sub-norms take the family's names (Architecture).
LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
}
LINEAR_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
# ggml type ids of the float and table types read here.
F32, F16, Q8_0, Q6_K, BF16 = 0, 1, 8, 14, 30
_FLOAT_TYPES = {F32: ("F32", "<f4", 4), F16: ("F16", "<f2", 2), BF16: ("BF16", "<u2", 2)}
_TABLE_TYPES = {Q8_0: "Q8_0", Q6_K: "Q6_K"}


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor of a GGUF file: its type id, numpy-order shape and its bytes (a view)."""

    name: str
    ggml_type: int
    shape: tuple[int, ...]
    data: np.ndarray


@dataclass
class GGUFContents:
    """A GGUF file as the parts of a Hugging Face checkpoint."""

    config: dict[str, Any]
    # name -> (dtype, shape, array or a function that decodes it)
    tensors: dict[str, tuple[str, tuple[int, ...], np.ndarray | Callable[[], np.ndarray]]]
    tokenizer_file: Path
    tokenizer_config: dict[str, Any]
    eos_token_ids: tuple[int, ...]


def find_gguf(directory: Path) -> Path | None:
    """The one *.gguf file of a directory without config.json (None when it has none)."""
    found = sorted(directory.glob("*.gguf"))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise CheckpointError(directory, f"holds several GGUF files ({names}): pass one of them")
    return found[0] if found else None


def open_gguf(path: Path) -> tuple[dict[str, Any], dict[str, GGUFTensor]]:
    """(metadata, tensors by GGUF name) of a file; CheckpointError naming what is wrong."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise CheckpointError(
            path, "reading GGUF needs the gguf package: pip install 'bitnet-backend[gguf]'"
        ) from None

    class _Reader(GGUFReader):
        # The package's reader knows only upstream ggml types; bitnet.cpp's I2_S (36) would
        # stop it. Tensor records are built here from the parsed tensor-info fields instead.
        def _build_tensors(self, start_offs: int, fields: list[Any]) -> None:
            self.raw_tensors: list[tuple[str, int, tuple[int, ...], int]] = []
            for field in fields:
                _len, name, _n_dims, dims, raw_type, offset = field.parts
                shape = tuple(int(d) for d in reversed(dims.tolist()))
                self.raw_tensors.append(
                    (
                        bytes(name).decode("utf-8"),
                        int(raw_type[0]),
                        shape,
                        start_offs + int(offset[0]),
                    )
                )

    try:
        reader = _Reader(path, "r")
    except (ValueError, IndexError, OSError, UnicodeDecodeError, KeyError) as exc:
        raise CheckpointError(path, f"not a readable GGUF file: {exc}") from None
    meta: dict[str, Any] = {}
    try:
        for key, field in reader.fields.items():
            if not key.startswith("GGUF."):
                meta[key] = field.contents()
    except (UnicodeDecodeError, ValueError, IndexError) as exc:
        raise CheckpointError(path, f"malformed GGUF metadata: {exc}") from None
    data = reader.data
    tensors: dict[str, GGUFTensor] = {}
    for name, ggml_type, shape, offset in reader.raw_tensors:
        nbytes = _nbytes(path, name, ggml_type, shape)
        if offset + nbytes > data.size:
            raise CheckpointError(
                path, f"tensor {name!r} is truncated: needs {nbytes} bytes at offset {offset}"
            )
        tensors[name] = GGUFTensor(name, ggml_type, shape, data[offset : offset + nbytes])
    return meta, tensors


def read_gguf(path: Path) -> GGUFContents:
    """Read a GGUF file into Hugging Face checkpoint parts (see the module docstring)."""
    meta, gtensors = open_gguf(path)
    arch_name = meta.get("general.architecture")
    if arch_name not in ARCHITECTURES:
        raise UnsupportedModelError(
            path,
            f"unknown GGUF architecture {arch_name!r}: supported are {', '.join(ARCHITECTURES)}",
        )
    family, activation = ARCHITECTURES[arch_name]
    config = _config(path, meta, arch_name, family, activation, gtensors)
    arch = architecture(family, activation)
    sub_norms = {
        "attn_sub_norm.weight": arch.attn_sub_norm,
        "ffn_sub_norm.weight": arch.ffn_sub_norm,
    }
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]

    tensors: dict[str, tuple[str, tuple[int, ...], np.ndarray | Callable[[], np.ndarray]]] = {}
    for gname, t in gtensors.items():
        if gname in GLOBAL_NAMES:
            tensors[GLOBAL_NAMES[gname]] = _float_tensor(path, t)
            continue
        if gname == "rope_freqs.weight":
            # llama.cpp's form of Llama 3.1's rope scaling: per-frequency divisors.
            raise UnsupportedModelError(
                path, "tensor 'rope_freqs.weight' (rope frequency factors) is not supported"
            )
        parts = gname.split(".", 2)
        if len(parts) != 3 or parts[0] != "blk" or not parts[1].isdigit():
            continue
        prefix, rest = f"model.layers.{parts[1]}.", parts[2]
        if rest in LAYER_NAMES:
            tensors[prefix + LAYER_NAMES[rest]] = _float_tensor(path, t)
        elif rest in sub_norms and sub_norms[rest] is not None:
            tensors[prefix + str(sub_norms[rest])] = _float_tensor(path, t)
        elif rest.endswith(".weight") and rest[: -len(".weight")] in LINEAR_NAMES:
            role = rest[: -len(".weight")]
            # llama.cpp's converter permutes q/k rows for its NORM rope; undone at decode.
            permuted = arch_name == "llama" and role in ("attn_q", "attn_k")
            n_head = heads if role == "attn_q" else kv_heads
            scale = _ternary_check(path, t)
            hf = prefix + LINEAR_NAMES[role]
            packed_shape = (t.shape[0] // 4, t.shape[1])
            tensors[hf + ".weight"] = (
                "U8",
                packed_shape,
                _packed_decoder(path, t, permuted, n_head),
            )
            tensors[hf + ".weight_scale"] = ("F32", (1,), np.array([scale], dtype=np.float32))

    try:
        tokenizer_text = tokenizer_json(meta)
    except VocabError as exc:
        raise UnsupportedModelError(path, str(exc)) from None
    tokens = meta["tokenizer.ggml.tokens"]
    for key in ("bos", "eos", "eot", "padding"):
        tid = meta.get(f"tokenizer.ggml.{key}_token_id")
        if tid is not None and not 0 <= int(tid) < len(tokens):
            raise CheckpointError(
                path, f"tokenizer.ggml.{key}_token_id {tid} is not in the {len(tokens)} tokens"
            )
    tok_cfg: dict[str, Any] = {
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", True))
    }
    if config.get("bos_token_id") is not None:
        tok_cfg["bos_token"] = tokens[config["bos_token_id"]]
    eos_ids = tuple(
        int(meta[k])
        for k in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id")
        if meta.get(k) is not None
    )
    if eos_ids:
        tok_cfg["eos_token"] = tokens[eos_ids[-1]]
    if meta.get("tokenizer.chat_template"):
        tok_cfg["chat_template"] = meta["tokenizer.chat_template"]
    return GGUFContents(
        config, tensors, _cache_tokenizer(tokenizer_text), tok_cfg, tuple(dict.fromkeys(eos_ids))
    )


def unpermute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's q/k row permutation (per head: interleaved pairs -> halves)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row permutation for the llama arch (the inverse of unpermute_rows)."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _config(
    path: Path,
    meta: dict[str, Any],
    arch_name: str,
    family: str,
    activation: str,
    tensors: dict[str, GGUFTensor],
) -> dict[str, Any]:
    def key(name: str, default: Any = None) -> Any:
        return meta.get(f"{arch_name}.{name}", default)

    def required(name: str) -> int:
        v = key(name)
        if not isinstance(v, (int, np.integer)) or int(v) <= 0:
            raise CheckpointError(path, f"metadata {arch_name}.{name} is missing or invalid")
        return int(v)

    hidden, heads = required("embedding_length"), required("attention.head_count")
    embd = tensors.get("token_embd.weight")
    if embd is None:
        raise CheckpointError(path, "tensor 'token_embd.weight' is missing")
    vocab = int(key("vocab_size") or embd.shape[0])
    cls, model_type = HF_CLASSES[family]
    cfg: dict[str, Any] = {
        "architectures": [cls],
        "model_type": model_type,
        "hidden_act": activation,
        "hidden_size": hidden,
        "intermediate_size": required("feed_forward_length"),
        "num_hidden_layers": required("block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": int(key("attention.head_count_kv") or heads),
        "head_dim": int(
            key("attention.key_length") or key("rope.dimension_count") or hidden // heads
        ),
        "vocab_size": vocab,
        "rms_norm_eps": float(key("attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": float(key("rope.freq_base", 10000.0)),
        "rope_scaling": _rope_scaling(path, arch_name, key),
        "max_position_embeddings": int(key("context_length", 4096)),
        "tie_word_embeddings": "output.weight" not in tensors,
        "bos_token_id": _opt_int(meta.get("tokenizer.ggml.bos_token_id")),
        "eos_token_id": _opt_int(meta.get("tokenizer.ggml.eos_token_id")),
        "pad_token_id": _opt_int(meta.get("tokenizer.ggml.padding_token_id")),
        "torch_dtype": "bfloat16",
        # Every ternary GGUF type stores codes and a multiplier: AutoBitLinear's math.
        "quantization_config": {
            "quant_method": "bitnet",
            "linear_class": "autobitlinear",
            "quantization_mode": "offline",
        },
        "gguf": {
            "architecture": arch_name,
            "file_type": _opt_int(meta.get("general.file_type")),
            "tensor_types": _type_counts(tensors),
        },
    }
    return cfg


def _rope_scaling(
    path: Path, arch_name: str, key: Callable[[str, Any], Any]
) -> dict[str, Any] | None:
    """config.json's rope_scaling for ``<arch>.rope.scaling.*`` (None for plain RoPE)."""
    kind = key("rope.scaling.type", "none")
    if kind == "none":
        return None
    if kind != "linear":
        raise UnsupportedModelError(
            path, f"metadata {arch_name}.rope.scaling.type {kind!r} is not supported"
        )
    factor = key("rope.scaling.factor", 1.0)
    if not isinstance(factor, (int, float, np.floating)) or not 0 < float(factor) < np.inf:
        raise CheckpointError(path, f"metadata {arch_name}.rope.scaling.factor {factor!r}")
    return {"rope_type": "linear", "factor": float(factor)}


def _type_counts(tensors: dict[str, GGUFTensor]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in tensors.values():
        name = type_name(t.ggml_type)
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def type_name(ggml_type: int) -> str:
    """The ggml name of a type id (I2_S included; ``type<id>`` for unknown ones)."""
    if ggml_type in gguf_ternary.TYPE_NAMES:
        return gguf_ternary.TYPE_NAMES[ggml_type]
    if ggml_type in _FLOAT_TYPES:
        return _FLOAT_TYPES[ggml_type][0]
    return _TABLE_TYPES.get(ggml_type, f"type{ggml_type}")


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _nbytes(path: Path, name: str, ggml_type: int, shape: tuple[int, ...]) -> int:
    n = int(np.prod(shape, dtype=np.int64))
    if ggml_type == gguf_ternary.I2_S:
        return gguf_ternary.i2s_nbytes(n)
    if ggml_type in _FLOAT_TYPES:
        return n * _FLOAT_TYPES[ggml_type][2]
    import gguf

    try:
        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise UnsupportedModelError(
            path, f"tensor {name!r} has unsupported ggml type {type_name(ggml_type)}"
        ) from None
    if shape[-1] % block:
        raise CheckpointError(path, f"tensor {name!r}: row of {shape[-1]} is not whole blocks")
    return n // block * size


def _float_tensor(path: Path, t: GGUFTensor) -> tuple[str, tuple[int, ...], np.ndarray]:
    if t.ggml_type in _FLOAT_TYPES:
        dtype, np_dtype, _ = _FLOAT_TYPES[t.ggml_type]
        return dtype, t.shape, t.data.view(np_dtype).reshape(t.shape)
    if t.ggml_type in _TABLE_TYPES:
        import gguf

        qtype = gguf.GGMLQuantizationType(t.ggml_type)
        values = gguf.quants.dequantize(t.data.reshape(t.shape[0], -1), qtype)
        return "F32", t.shape, np.ascontiguousarray(values, dtype=np.float32).reshape(t.shape)
    raise UnsupportedModelError(
        path,
        f"tensor {t.name!r} has type {type_name(t.ggml_type)}, expected F32/F16/BF16/Q8_0/Q6_K",
    )


def _ternary_check(path: Path, t: GGUFTensor) -> float:
    """The multiplier of a ternary linear; UnsupportedModelError for any other tensor."""
    if t.ggml_type not in gguf_ternary.TYPE_NAMES or len(t.shape) != 2 or t.shape[0] % 4:
        raise UnsupportedModelError(
            path,
            f"tensor {t.name!r} has type {type_name(t.ggml_type)}: linears must be TQ1_0, "
            "TQ2_0 or I2_S",
        )
    try:
        return gguf_ternary.multiplier(t.data, (t.shape[0], t.shape[1]), t.ggml_type)
    except gguf_ternary.TernaryFormatError as exc:
        raise UnsupportedModelError(path, f"tensor {t.name!r}: {exc}") from None


def _packed_decoder(
    path: Path, t: GGUFTensor, permuted: bool, n_head: int
) -> Callable[[], np.ndarray]:
    """A function giving the linear as packed uint8 (decoded on each call, not kept)."""

    def decode() -> np.ndarray:
        try:
            w_q, _ = gguf_ternary.decode(t.data, (t.shape[0], t.shape[1]), t.ggml_type)
        except gguf_ternary.TernaryFormatError as exc:
            raise UnsupportedModelError(path, f"tensor {t.name!r}: {exc}") from None
        return pack_ternary(unpermute_rows(w_q, n_head) if permuted else w_q)

    return decode


def _cache_tokenizer(text: str) -> Path:
    """tokenizer.json written once per content under the user cache (the tokenizer loads files)."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
    out = user_cache_dir() / "bitnet_backend" / "gguf-tokenizers" / digest / "tokenizer.json"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    return out
