"""``bitnet convert SRC OUT.gguf --to gguf``: a Hugging Face checkpoint as a GGUF file.

The ternary linears are written in a ternary GGUF type (TQ2_0 or TQ1_0 for llama.cpp, I2_S for
bitnet.cpp) with their exact codes and one multiplier per tensor, so loading the file back
gives the logits of the source checkpoint (TQ stores the multiplier as float16: exact for the
bf16 scales of autobitlinear checkpoints, within 2**-11 relative otherwise). The embedding,
an untied head and the norms keep their dtype (norms as F32). The tokenizer (byte-level BPE)
and chat template go into the metadata. Names and metadata follow llama.cpp for each family
(checkpoints/gguf.py holds the shared tables).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .architecture import BITNET_1BITLLM, BITNET_B158, LLAMA_BITNET
from .backends.cpu_format import LAYOUT_KEY
from .checkpoints import gguf_ternary
from .checkpoints.gguf import GLOBAL_NAMES, LAYER_NAMES, LINEAR_NAMES, permute_rows
from .checkpoints.gguf_vocab import VocabError, vocab_metadata
from .checkpoints.hf import Checkpoint, TensorRef, load_checkpoint
from .checkpoints.ternary import linear_ternary
from .errors import CheckpointError, InvalidParameterError, UnsupportedModelError

GGUF_TYPES = tuple(gguf_ternary.TERNARY_TYPES)
# general.architecture written for each family (what llama.cpp / bitnet.cpp load it as).
GGUF_ARCH = {BITNET_B158: "bitnet-b1.58", BITNET_1BITLLM: "bitnet", LLAMA_BITNET: "llama"}
# general.file_type: llama.cpp's LLAMA_FTYPE_MOSTLY_TQ1_0 / TQ2_0, bitnet.cpp's I2_S.
_FILE_TYPES = {"tq1_0": 36, "tq2_0": 37, "i2_s": 40}
_FLOAT_GGML = {"F32": 0, "F16": 1, "BF16": 30}


def export_gguf(
    source: str | Path,
    out_file: str | Path,
    ggml_type: str = "tq2_0",
    *,
    embedding_type: str | None = None,
) -> Path:
    """Write checkpoint directory ``source`` to the GGUF file ``out_file``; returns its path.

    ``embedding_type="q8_0"`` stores the token embedding as Q8_0 (about half the bytes of
    bf16, not lossless); by default it keeps its dtype.
    """
    if embedding_type not in (None, "q8_0"):
        raise InvalidParameterError(f"embedding_type must be 'q8_0' or None: {embedding_type!r}")
    if ggml_type not in gguf_ternary.TERNARY_TYPES:
        raise InvalidParameterError(f"--type must be one of {', '.join(GGUF_TYPES)}")
    try:
        import gguf
    except ImportError:
        raise InvalidParameterError(
            "writing GGUF needs the gguf package: pip install 'bitnet-backend[gguf]'"
        ) from None
    out = Path(out_file)
    ckpt = load_checkpoint(source)
    try:
        if not ckpt.path.is_dir():
            raise InvalidParameterError(f"{ckpt.path} is already a GGUF file")
        if LAYOUT_KEY in ckpt.config.extra:
            raise InvalidParameterError(
                f"{ckpt.path} is in the engine's kernel layout: convert the original checkpoint"
            )
        writer = gguf.GGUFWriter(out, GGUF_ARCH[ckpt.config.architecture.family])
        _write_metadata(writer, ckpt, ggml_type)
        _add_tensors(writer, ckpt, ggml_type, gguf, embedding_type)
        out.parent.mkdir(parents=True, exist_ok=True)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    finally:
        ckpt.close()
    return out


def _write_metadata(writer: Any, ckpt: Checkpoint, ggml_type: str) -> None:
    c = ckpt.config
    arch = GGUF_ARCH[c.architecture.family]
    writer.add_name(ckpt.path.name)
    writer.add_file_type(_FILE_TYPES[ggml_type])
    writer.add_quantization_version(2)
    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_block_count(c.num_hidden_layers)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_head_count(c.num_attention_heads)
    writer.add_head_count_kv(c.num_key_value_heads)
    writer.add_key_length(c.head_dim)
    writer.add_value_length(c.head_dim)
    writer.add_rope_dimension_count(c.head_dim)
    writer.add_rope_freq_base(c.rope_theta)
    if c.architecture.linear_norm is not None:
        raise UnsupportedModelError(
            ckpt.path, "quantization_config.use_rms_norm has no GGUF form (norms inside linears)"
        )
    if c.rope_scaling is not None:
        if c.rope_scaling.rope_type != "linear":
            raise UnsupportedModelError(
                ckpt.path, f"rope_type {c.rope_scaling.rope_type!r} is not written to GGUF"
            )
        from gguf import RopeScalingType

        writer.add_rope_scaling_type(RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(c.rope_scaling.factor)
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    writer.add_uint32(f"{arch}.vocab_size", c.vocab_size)
    try:
        vocab = vocab_metadata(ckpt.tokenizer_file.read_text(encoding="utf-8"), c.vocab_size)
    except (VocabError, KeyError, ValueError) as exc:
        raise UnsupportedModelError(
            ckpt.tokenizer_file, f"cannot write its vocabulary: {exc}"
        ) from None
    writer.add_tokenizer_model(vocab["tokenizer.ggml.model"])
    writer.add_token_list(vocab["tokenizer.ggml.tokens"])
    writer.add_token_types(vocab["tokenizer.ggml.token_type"])
    if "tokenizer.ggml.scores" in vocab:  # SentencePiece: merges follow from the scores
        writer.add_token_scores(vocab["tokenizer.ggml.scores"])
    else:
        writer.add_tokenizer_pre(vocab["tokenizer.ggml.pre"])
        writer.add_token_merges(vocab["tokenizer.ggml.merges"])
    if c.bos_token_id is not None:
        writer.add_bos_token_id(c.bos_token_id)
    eos = list(dict.fromkeys((*c.eos_token_ids, *ckpt.eos_token_ids)))
    if eos:
        writer.add_eos_token_id(eos[0])
    if len(eos) > 1:
        # llama.cpp stops on eot as well: 2B-4T ends a turn with <|eot_id|>.
        writer.add_eot_token_id(eos[-1])
    if c.pad_token_id is not None:
        writer.add_pad_token_id(c.pad_token_id)
    writer.add_add_bos_token(bool(ckpt.tokenizer_config.get("add_bos_token", True)))
    template = ckpt.tokenizer_config.get("chat_template")
    if isinstance(template, str):
        writer.add_chat_template(template)


def _add_tensors(
    writer: Any, ckpt: Checkpoint, ggml_type: str, gguf: Any, embedding_type: str | None
) -> None:
    c = ckpt.config
    hf_to_gguf = {hf: g for g, hf in GLOBAL_NAMES.items()}
    embedding = ckpt.tensor("model.embed_tokens.weight")
    if embedding_type == "q8_0":
        q8 = gguf.GGMLQuantizationType.Q8_0
        data = gguf.quants.quantize(embedding.to_float32(), q8)
        writer.add_tensor(hf_to_gguf[embedding.name], data, raw_dtype=q8)
    else:
        _add_float_table(writer, hf_to_gguf[embedding.name], embedding, gguf)
    if not c.tie_word_embeddings:
        _add_float_table(writer, "output.weight", ckpt.tensor("lm_head.weight"), gguf)
    writer.add_tensor(
        hf_to_gguf["model.norm.weight"], ckpt.tensor("model.norm.weight").to_float32()
    )
    arch = c.architecture
    layer_names = {hf: g for g, hf in LAYER_NAMES.items()}
    if arch.attn_sub_norm is not None:
        layer_names[arch.attn_sub_norm] = "attn_sub_norm.weight"
    if arch.ffn_sub_norm is not None:
        layer_names[arch.ffn_sub_norm] = "ffn_sub_norm.weight"
    type_id = gguf_ternary.TERNARY_TYPES[ggml_type]
    widths = {
        "attn_q": c.num_attention_heads * c.head_dim,
        "attn_k": c.num_key_value_heads * c.head_dim,
        "attn_v": c.num_key_value_heads * c.head_dim,
        "attn_output": c.hidden_size,
        "ffn_gate": c.intermediate_size,
        "ffn_up": c.intermediate_size,
        "ffn_down": c.hidden_size,
    }
    for layer in range(c.num_hidden_layers):
        p, blk = f"model.layers.{layer}.", f"blk.{layer}."
        for hf, g in layer_names.items():
            writer.add_tensor(blk + g, ckpt.tensor(p + hf).to_float32())
        for g, hf in LINEAR_NAMES.items():
            w_q, scale, mode = linear_ternary(ckpt, p + hf)
            w_q = w_q[: widths[g]]
            multiplier = np.float32(1.0) / np.float32(scale) if mode == "divide" else scale
            if c.architecture.family == LLAMA_BITNET and g in ("attn_q", "attn_k"):
                heads = c.num_attention_heads if g == "attn_q" else c.num_key_value_heads
                w_q = permute_rows(w_q, heads)
            try:
                data = gguf_ternary.encode(w_q, float(multiplier), type_id)
            except gguf_ternary.TernaryFormatError as exc:
                raise UnsupportedModelError(ckpt.path, f"{p + hf}: {exc}") from None
            if type_id == gguf_ternary.I2_S:
                # Not a type the gguf package knows: written as raw bytes with its type id.
                writer.add_tensor(blk + g + ".weight", data.view(np.int8), w_q.shape, type_id)
            else:
                qtype = gguf.GGMLQuantizationType(type_id)
                writer.add_tensor(blk + g + ".weight", data, raw_dtype=qtype)


def _add_float_table(writer: Any, name: str, ref: TensorRef, gguf: Any) -> None:
    """Add a float table in its own dtype (BF16 bit for bit)."""
    if ref.dtype not in _FLOAT_GGML:
        raise CheckpointError(ref.file, f"{ref.name}: {ref.dtype} is not a float dtype")
    data = np.ascontiguousarray(ref.data)
    if ref.dtype == "BF16":
        writer.add_tensor(name, data.view(np.uint8), raw_dtype=gguf.GGMLQuantizationType.BF16)
    else:
        writer.add_tensor(name, data)
