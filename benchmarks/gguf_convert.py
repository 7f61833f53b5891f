"""Convert a BitNet b1.58 checkpoint to a float GGUF for llama.cpp's "bitnet" architecture.

Each ternary linear is written dequantized, w_q * m, where m is the per-tensor multiplier the
reference applies (weight_scale for autobitlinear, 1 / weight_scale for packed bitlinear, the
absmean for master weights). Every 256-weight block then holds only 0 and +-m, so
llama-quantize's TQ2_0 / TQ1_0 (block scale = max |w|) reproduce the ternary weights exactly,
up to the f16 rounding of m. Written as f16 by default so that the block scale TQ stores is
the very value in the file.

The tensor names, metadata keys and the rope type follow llama.cpp's LLM_ARCH_BITNET (NEOX
rope, i.e. HF rotate_half: no q/k permutation). llama.cpp always uses token_embd as the
output head for this architecture, so only tied checkpoints convert.

    python benchmarks/gguf_convert.py CHECKPOINT_DIR OUT.gguf [--outtype f16|bf16|f32]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ARCH = "bitnet"
_LINEARS = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_NORMS = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.attn_sub_norm": "attn_sub_norm",
    "mlp.ffn_sub_norm": "ffn_sub_norm",
}


def ternary_multiplier(scale: float, mode: str) -> np.float32:
    """The float the reference multiplies x_q . w_q / s_x by (linear_ternary's scale, mode)."""
    if mode == "divide":
        return np.float32(np.float32(1.0) / np.float32(scale))
    return np.float32(scale)


def _tensor_plan(ckpt: Any, outtype: str) -> Iterator[tuple[str, Callable[[], np.ndarray]]]:
    """(gguf name, producer) in file order; producers run one at a time to bound memory."""
    from bitnet_backend.checkpoints.ternary import f32_to_bf16, linear_ternary

    def floats(a: np.ndarray) -> np.ndarray:
        if outtype == "f32":
            return np.ascontiguousarray(a, dtype=np.float32)
        if outtype == "f16":
            return np.ascontiguousarray(a, dtype=np.float16)
        return f32_to_bf16(a)

    def embedding() -> np.ndarray:
        ref = ckpt.tensor("model.embed_tokens.weight")
        if outtype != "f32" and ref.dtype == "BF16":
            return np.ascontiguousarray(ref.data)  # exact copy; quantized to Q6_K later anyway
        if outtype != "f32":
            return f32_to_bf16(ref.to_float32())
        return np.ascontiguousarray(ref.to_float32())

    def norm(name: str) -> Callable[[], np.ndarray]:
        return lambda: np.ascontiguousarray(ckpt.tensor(name).to_float32(), dtype=np.float32)

    def linear(prefix: str) -> Callable[[], np.ndarray]:
        def make() -> np.ndarray:
            w_q, scale, mode = linear_ternary(ckpt, prefix)
            return floats(w_q.astype(np.float32) * ternary_multiplier(scale, mode))

        return make

    yield "token_embd.weight", embedding
    yield "output_norm.weight", norm("model.norm.weight")
    for i in range(ckpt.config.num_hidden_layers):
        hf = f"model.layers.{i}"
        for src, dst in _NORMS.items():
            yield f"blk.{i}.{dst}.weight", norm(f"{hf}.{src}.weight")
        for src, dst in _LINEARS.items():
            yield f"blk.{i}.{dst}.weight", linear(f"{hf}.{src}")


def _shape_and_dtype(ckpt: Any, name: str, outtype: str) -> tuple[tuple[int, ...], Any, Any]:
    import gguf

    c = ckpt.config
    h, inter = c.hidden_size, c.intermediate_size
    q, kv = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
    shapes = {
        "attn_q": (q, h),
        "attn_k": (kv, h),
        "attn_v": (kv, h),
        "attn_output": (h, q),
        "ffn_gate": (inter, h),
        "ffn_up": (inter, h),
        "ffn_down": (h, inter),
        "attn_sub_norm": (q,),
        "ffn_sub_norm": (inter,),
    }
    if name == "token_embd.weight":
        shape: tuple[int, ...] = (c.vocab_size, h)
        if outtype == "f32":
            return shape, np.dtype(np.float32), None
        return shape, np.dtype(np.uint16), gguf.GGMLQuantizationType.BF16
    kind = name.split(".")[-2]
    if kind in _LINEARS.values():
        shape = shapes[kind]
        if outtype == "f32":
            return shape, np.dtype(np.float32), None
        if outtype == "f16":
            return shape, np.dtype(np.float16), None
        return shape, np.dtype(np.uint16), gguf.GGMLQuantizationType.BF16
    return shapes.get(kind, (h,)), np.dtype(np.float32), None


def _add_metadata(writer: Any, ckpt: Any, outtype: str) -> None:
    import gguf

    c = ckpt.config
    writer.add_name(ckpt.path.name)
    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_block_count(c.num_hidden_layers)
    writer.add_head_count(c.num_attention_heads)
    writer.add_head_count_kv(c.num_key_value_heads)
    writer.add_rope_freq_base(float(c.rope_theta))
    writer.add_layer_norm_rms_eps(float(c.rms_norm_eps))
    # As llama.cpp's own converter writes for this architecture (a no-op scaling).
    writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    writer.add_rope_scaling_factor(1.0)
    writer.add_vocab_size(c.vocab_size)
    ftype = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "bf16": gguf.LlamaFileType.MOSTLY_BF16,
    }[outtype]
    writer.add_file_type(ftype)
    _add_vocab(writer, ckpt)


def _add_vocab(writer: Any, ckpt: Any) -> None:
    """The byte-level BPE vocabulary, padded to vocab_size as llama.cpp's converter pads."""
    import gguf

    tok = json.loads(Path(ckpt.tokenizer_file).read_text())
    model = tok["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"only byte-level BPE tokenizers convert, not {model.get('type')}")
    n = ckpt.config.vocab_size
    tokens: list[str | None] = [None] * n
    types = [gguf.TokenType.UNUSED] * n
    for text, idx in model["vocab"].items():
        if idx < n:
            tokens[idx] = text
            types[idx] = gguf.TokenType.NORMAL
    for added in tok.get("added_tokens", []):
        idx = added["id"]
        if idx < n:
            tokens[idx] = added["content"]
            types[idx] = (
                gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
            )
    names = [t if t is not None else f"[PAD{i}]" for i, t in enumerate(tokens)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("llama-bpe")  # llama-3's split pattern
    writer.add_token_list(names)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    bos = ckpt.config.bos_token_id
    if bos is not None:
        writer.add_bos_token_id(int(bos))
    if ckpt.eos_token_ids:
        writer.add_eos_token_id(int(ckpt.eos_token_ids[0]))
    writer.add_add_bos_token(True)
    template = ckpt.tokenizer_config.get("chat_template")
    if isinstance(template, str):
        writer.add_chat_template(template)


def convert(checkpoint_dir: Path, out: Path, outtype: str = "f16") -> Path:
    """Write ``out`` (atomically) from the checkpoint at ``checkpoint_dir``."""
    import gguf

    from bitnet_backend.checkpoints.hf import load_checkpoint

    if outtype not in ("f16", "bf16", "f32"):
        raise ValueError(f"outtype must be f16, bf16 or f32, not {outtype!r}")
    ckpt = load_checkpoint(checkpoint_dir)
    try:
        if not ckpt.config.tie_word_embeddings:
            raise ValueError("llama.cpp's bitnet architecture only supports tied embeddings")
        tmp = out.with_name(out.name + ".tmp")
        writer = gguf.GGUFWriter(tmp, ARCH)
        _add_metadata(writer, ckpt, outtype)
        plan = list(_tensor_plan(ckpt, outtype))
        for name, _ in plan:
            shape, dtype, raw = _shape_and_dtype(ckpt, name, outtype)
            nbytes = int(np.prod(shape)) * dtype.itemsize
            writer.add_tensor_info(name, shape, dtype, nbytes, raw_dtype=raw)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for name, make in plan:
            arr = make()
            shape, dtype, _ = _shape_and_dtype(ckpt, name, outtype)
            if arr.shape != shape or arr.dtype != dtype:
                raise AssertionError(
                    f"{name}: got {arr.shape} {arr.dtype}, planned {shape} {dtype}"
                )
            writer.write_tensor_data(arr)
        writer.close()
        tmp.rename(out)
    finally:
        ckpt.close()
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line entry: convert one checkpoint."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--outtype", choices=("f16", "bf16", "f32"), default="f16")
    args = p.parse_args(argv)
    convert(args.checkpoint, args.out, args.outtype)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
