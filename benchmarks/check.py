"""Is the GGUF conversion faithful? llama.cpp vs this engine on a small generated checkpoint.

llama.cpp's "bitnet" architecture is not exactly BitNet b1.58 2B-4T: its FFN is
silu(gate) * up where 2B-4T uses relu(gate)^2 * up. Its f32 path does not quantize
activations; its TQ2_0 / TQ1_0 path quantizes them to int8 per 256-block (per token when the
row is 256 wide, as here). Its CPU flash attention (on by default) rounds through f16; the
check turns it off and keeps the KV cache in f32. Four parts:

1. Weights. Every ternary tensor of the TQ2_0 and TQ1_0 files dequantizes exactly to the
   f16 GGUF's values: the block scale is the per-tensor multiplier, the codes are w_q.
2. Zero FFN, llama.cpp vs the engine directly. The same checkpoint with every gate_proj
   weight 0 makes both FFNs exactly zero (silu(0) = relu(0)^2 = 0). llama.cpp TQ2_0 (token
   embedding kept f32) and the engine (f32 head) then compute the same math: same greedy
   tokens, logits equal to float rounding (~1e-6) unless an int8 rounding tie flips.
   Covers the embedding, norms, q/k/v/o layout, GQA, rope type and theta, attn_sub_norm,
   the weight scale and the tied head.
3. Full model, float. A NumPy forward of the reference math with llama.cpp's differences
   switchable: with silu and float activations it must match llama.cpp on the f32 GGUF to
   float rounding (covers gate/up/down and ffn_sub_norm); with relu^2 and int8 activations
   it must agree with the engine (the NumPy forward is not bit-exact: loose tolerance).
4. Recorded, not asserted: the default TQ2_0 (Q6_K head) vs the f32 GGUF, and llama.cpp vs
   the engine on the full model, where the two architectures really differ.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

CHECK_SHAPE = {
    # Dimensions multiple of 256 so every tensor takes TQ2_0 / TQ1_0 / Q6_K without fallback.
    "base": "small",
    "hidden_size": 256,
    "intermediate_size": 768,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
PROMPT_LEN = 24
N_GEN = 16
N_PROMPTS = 4


# --- NumPy forward of the reference math ------------------------------------------------


def _rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    var = np.mean(x.astype(np.float64) ** 2, axis=-1, keepdims=True)
    return (x / np.sqrt(var + eps)).astype(np.float32) * w


def _act_quant_matmul(x: np.ndarray, w_q: np.ndarray, mult: np.float32) -> np.ndarray:
    amax = np.maximum(np.abs(x).max(axis=-1, keepdims=True), np.float32(1e-5))
    s = (np.float32(1.0) / amax).astype(np.float32) * np.float32(127)
    x_q = np.clip(np.rint(x * s), -128, 127)
    acc = x_q.astype(np.float64) @ w_q.T.astype(np.float64)  # exact integer sums
    return (acc.astype(np.float32) / s) * mult


def _rope_neox(x: np.ndarray, theta: float) -> np.ndarray:
    n, _, d = x.shape
    inv = 1.0 / (theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
    ang = np.arange(n, dtype=np.float64)[:, None] * inv[None, :]
    cos = np.cos(ang)[:, None, :]
    sin = np.sin(ang)[:, None, :]
    x1, x2 = x[..., : d // 2].astype(np.float64), x[..., d // 2 :].astype(np.float64)
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(np.float32)


def numpy_forward(ckpt: Any, ids: list[int], *, act: str, act_quant: bool) -> np.ndarray:
    """Logits [len(ids), vocab] of the forward of docs/formats.md#forward, activation switchable."""
    from gguf_convert import ternary_multiplier

    from bitnet_backend.checkpoints.ternary import linear_ternary

    c = ckpt.config
    eps = float(c.rms_norm_eps)
    nh, nkv, d = c.num_attention_heads, c.num_key_value_heads, c.head_dim

    def lin(prefix: str, x: np.ndarray) -> np.ndarray:
        w_q, scale, mode = linear_ternary(ckpt, prefix)
        mult = ternary_multiplier(scale, mode)
        if act_quant:
            return _act_quant_matmul(x, w_q, mult)
        return x @ (w_q.astype(np.float32) * mult).T

    def norm(name: str, x: np.ndarray) -> np.ndarray:
        return _rms_norm(x, ckpt.tensor(name).to_float32(), eps)

    embed = ckpt.tensor("model.embed_tokens.weight").to_float32()
    h = embed[np.asarray(ids)]
    n = len(ids)
    mask = np.triu(np.full((n, n), -np.inf, dtype=np.float32), k=1)
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}"
        a = norm(f"{p}.input_layernorm.weight", h)
        q = _rope_neox(lin(f"{p}.self_attn.q_proj", a).reshape(n, nh, d), c.rope_theta)
        k = _rope_neox(lin(f"{p}.self_attn.k_proj", a).reshape(n, nkv, d), c.rope_theta)
        v = lin(f"{p}.self_attn.v_proj", a).reshape(n, nkv, d)
        rep = nh // nkv
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) / np.float32(np.sqrt(d)) + mask
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = scores / scores.sum(axis=-1, keepdims=True)
        o = np.einsum("hqk,khd->qhd", probs, v).reshape(n, nh * d).astype(np.float32)
        h = h + lin(f"{p}.self_attn.o_proj", norm(f"{p}.self_attn.attn_sub_norm.weight", o))
        m = norm(f"{p}.post_attention_layernorm.weight", h)
        g = lin(f"{p}.mlp.gate_proj", m)
        g = np.square(np.maximum(g, 0)) if act == "relu2" else g / (1 + np.exp(-g))
        u = g * lin(f"{p}.mlp.up_proj", m)
        h = h + lin(f"{p}.mlp.down_proj", norm(f"{p}.mlp.ffn_sub_norm.weight", u))
    return norm("model.norm.weight", h) @ embed.T


# --- comparison helpers ----------------------------------------------------------------


def compare(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """max |a-b|, relative RMS of the difference, and the argmax agreement per position."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    return {
        "max_abs": float(np.abs(diff).max()),
        "rel_rms": float(np.sqrt((diff**2).mean() / (b.astype(np.float64) ** 2).mean())),
        "argmax": float((a.argmax(-1) == b.argmax(-1)).mean()),
    }


def engine_run(
    ckpt_dir: Path, ids: list[int], n_gen: int, **options: Any
) -> tuple[np.ndarray, list[int], dict[str, Any]]:
    """All-position logits and greedy tokens from the engine; also the options used."""
    from bitnet_backend.backends.cpu import BACKEND
    from bitnet_backend.checkpoints.hf import load_checkpoint
    from bitnet_backend.errors import InvalidParameterError
    from bitnet_backend.sampling import SamplingParams

    ckpt = load_checkpoint(ckpt_dir)
    try:
        eng = BACKEND.load(ckpt, n_threads=1, **options)
    except InvalidParameterError:
        options = {}
        eng = BACKEND.load(ckpt, n_threads=1)
    logits = eng.logits(ids)
    s = eng.new_session(len(ids) + n_gen + 1)
    s.eval(ids)
    greedy = SamplingParams(temperature=0)
    out: list[int] = []
    for g in range(n_gen):
        tok = s.sample(greedy)
        out.append(tok)
        if g + 1 < n_gen:
            s.eval([tok])
    eng.close()
    ckpt.close()
    return np.asarray(logits), out, options


def write_zero_gate_copy(src: Path, dst: Path) -> Path:
    """A copy of checkpoint ``src`` whose gate_proj weights are all 0 (packed code 1)."""
    from bitnet_backend.checkpoints.hf import load_checkpoint
    from bitnet_backend.checkpoints.safetensors_file import TensorSpec, write_safetensors

    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors*"))
    ckpt = load_checkpoint(src)
    try:
        if len({ref.file for ref in ckpt.tensors.values()}) != 1:
            raise ValueError("the check expects a single-file checkpoint")
        specs: dict[str, TensorSpec] = {}
        for name, ref in ckpt.tensors.items():
            arr = np.array(ref.data)
            if name.endswith("mlp.gate_proj.weight"):
                if ref.dtype != "U8":
                    raise ValueError("the check expects packed ternary weights")
                arr[...] = 0b01010101  # four codes w+1 = 1, i.e. w = 0
            specs[name] = TensorSpec.of(arr, ref.dtype)
    finally:
        ckpt.close()
    write_safetensors(dst / "model.safetensors", specs, metadata={"format": "pt"})
    return dst


def ternary_tensors_exact(quantized: Path, reference: Path) -> dict[str, Any]:
    """Max |dequant(quantized) - reference| over the ternary tensors (0.0 when exact)."""
    import gguf

    ref = {t.name: t for t in gguf.GGUFReader(reference).tensors}
    worst, count, types = 0.0, 0, set()
    for t in gguf.GGUFReader(quantized).tensors:
        if t.tensor_type.name not in ("TQ1_0", "TQ2_0"):
            continue
        r = ref[t.name]
        got = gguf.quants.dequantize(t.data, t.tensor_type)
        want = gguf.quants.dequantize(r.data, r.tensor_type)
        worst = max(worst, float(np.abs(got.astype(np.float64) - want).max()))
        count += 1
        types.add(t.tensor_type.name)
    return {"tensors": count, "types": sorted(types), "max_abs": worst}


def run_check(cache: Path, lc: Any, logits_tool: Path, log: Any = print) -> dict[str, Any]:
    """Run the comparisons; return the figures and an overall ``passed`` flag."""
    import gguf_convert
    import llamacpp

    from bitnet_backend.checkpoints.hf import load_checkpoint
    from bitnet_backend.testing import write_checkpoint

    root = cache / "check"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    full = write_checkpoint(root / "model", shape=CHECK_SHAPE, seed=7)
    zero = write_zero_gate_copy(full, root / "model-zero-ffn")
    ckpt = load_checkpoint(full)
    vocab = ckpt.config.vocab_size
    bos = ckpt.config.bos_token_id or 0
    prompts = [
        [bos] + [int(t) for t in np.random.default_rng(seed).integers(0, vocab, PROMPT_LEN - 1)]
        for seed in range(N_PROMPTS)
    ]
    ids, zero_prompts = prompts[0], prompts

    def llama(model: Path, prompt: list[int] | None = None) -> tuple[np.ndarray, list[int]]:
        return llamacpp.logits(
            logits_tool,
            model,
            prompt or ids,
            n_gen=N_GEN,
            threads=1,
            out_file=root / "logits.bin",
        )

    def gguf_files(src: Path, tag: str, embd_f32: bool) -> dict[str, Path]:
        files = {
            "f32": gguf_convert.convert(src, root / f"{tag}.f32.gguf", "f32"),
            "f16": gguf_convert.convert(src, root / f"{tag}.f16.gguf", "f16"),
        }
        extra = ["--token-embedding-type", "f32"] if embd_f32 else []
        for qtype in ("TQ2_0", "TQ1_0"):
            out = root / f"{tag}.{qtype.lower()}.gguf"
            files[qtype] = llamacpp.quantize(lc, files["f16"], out, qtype, threads=1, extra=extra)
        return files

    results: dict[str, Any] = {"prompt_len": PROMPT_LEN, "n_gen": N_GEN, "shape": CHECK_SHAPE}
    results["prompts"] = prompts
    checks: dict[str, bool] = {}
    full_files = gguf_files(full, "full", embd_f32=False)

    # 1. ternary weights survive llama-quantize exactly.
    for qtype in ("TQ2_0", "TQ1_0"):
        r = ternary_tensors_exact(full_files[qtype], full_files["f16"])
        results[f"weights_{qtype.lower()}_vs_f16"] = r
        checks[f"weights {qtype} exact"] = r["tensors"] > 0 and r["max_abs"] == 0.0
        log(f"  {qtype}: {r['tensors']} ternary tensors, max |dequant - f16| = {r['max_abs']}")

    # 2. zero FFN: llama.cpp TQ2_0 (f32 embedding) vs the engine (f32 head), directly, on a
    # few prompts. Logits agree to float rounding unless an int8 rounding tie flips somewhere;
    # a flip shows as agreement up to one position and a small difference from it on.
    zero_files = gguf_files(zero, "zero-ffn", embd_f32=True)
    per_prompt = []
    for p, prompt in enumerate(zero_prompts):
        zl, zt = llama(zero_files["TQ2_0"], prompt)
        el, et, used = engine_run(zero, prompt, N_GEN, lm_head="f32")
        off = np.abs(el - zl).max(-1) > 1e-4
        r = {**compare(el, zl), "tokens_equal": zt == et}
        r["first_position_off_by_1e-4"] = int(np.argmax(off)) if off.any() else None
        r["engine_options"] = used
        per_prompt.append(r)
        log(_fmt(f"zero FFN, prompt {p}, engine vs llama.cpp TQ2_0", r))
    results["zero_ffn_engine_vs_llamacpp_tq2_0"] = per_prompt
    checks["zero FFN: same greedy tokens"] = all(r["tokens_equal"] for r in per_prompt)
    checks["zero FFN: logits close"] = all(
        r["argmax"] >= 0.95 and r["rel_rms"] <= 0.05 for r in per_prompt
    )
    checks["zero FFN: a prompt agrees to 1e-4 everywhere"] = any(
        r["max_abs"] <= 1e-4 for r in per_prompt
    )

    # 3. full model against the NumPy forward, each side with its own FFN and activations.
    fl, ft = llama(full_files["f32"])
    ref_llama = numpy_forward(ckpt, ids, act="silu", act_quant=False)
    r = compare(fl, ref_llama)
    results["llamacpp_f32_vs_numpy_silu_float"] = r
    checks["llama.cpp f32 = NumPy silu"] = r["argmax"] == 1.0 and r["max_abs"] <= 1e-3
    log(_fmt("full, llama.cpp f32 vs NumPy (silu, float)", r))
    el, et, _ = engine_run(full, ids, N_GEN)
    ref_ours = numpy_forward(ckpt, ids, act="relu2", act_quant=True)
    r = compare(el, ref_ours)
    results["engine_vs_numpy_relu2_int8"] = r
    checks["engine ~ NumPy relu2"] = r["argmax"] >= 0.95 and r["rel_rms"] <= 0.05
    log(_fmt("full, engine vs NumPy (relu2, int8)", r))
    ckpt.close()

    # 4. recorded only.
    ql, qt = llama(full_files["TQ2_0"])
    r = {**compare(ql, fl), "tokens_equal": qt == ft}
    results["info_llamacpp_tq2_0_q6k_head_vs_f32"] = r
    log(_fmt("(info) full, llama.cpp TQ2_0 + Q6_K head vs f32", r))
    r = {**compare(fl, el), "tokens_equal": ft == et}
    results["info_llamacpp_vs_engine_full_model"] = r
    log(_fmt("(info) full, llama.cpp f32 (silu) vs engine (relu2)", r))

    results["checks"] = checks
    results["passed"] = all(checks.values())
    for name, ok in checks.items():
        log(f"  [{'ok' if ok else 'FAIL'}] {name}")
    return results


def _fmt(label: str, r: dict[str, Any]) -> str:
    text = f"  {label}: max|diff| {r['max_abs']:.3g}, rel RMS {r['rel_rms']:.3g}"
    text += f", argmax {r['argmax']:.0%}"
    if "tokens_equal" in r:
        text += f", greedy tokens {'equal' if r['tokens_equal'] else 'differ'}"
    if "first_position_off_by_1e-4" in r:
        first = r["first_position_off_by_1e-4"]
        text += ", all positions within 1e-4" if first is None else f", off from position {first}"
    return text
