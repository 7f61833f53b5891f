"""Every ternary model family against its transformers model, on both backends.

Llama-architecture checkpoints (LlamaForCausalLM + quant_method bitnet, as Falcon3-*-1.58bit,
Falcon-E and HF1BitLLM/Llama3-8B-1.58 are written: packed bitlinear, untied bf16 lm_head,
SiLU, no sub-norms) run against transformers' LlamaForCausalLM with its bitnet quantizer.
1bitLLM's bitnet_b1_58 has no transformers class: its forward (1bitLLM's modeling_bitnet.py and
utils_quant.py) is transformers' BitNetForCausalLM with hidden_act silu, the sub-norms
renamed, and an online AutoBitLinear (per-tensor absmean weights, per-token absmax
activations), so that model, loaded from a renamed copy of the checkpoint, is its oracle.
Tolerances are those of tests/test_oracle_reference.py.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from backends import greedy
from oracle import check_loose, check_strict, oracle_greedy, oracle_logits, prompt_ids

from bitnet_backend.architecture import BITNET_1BITLLM, LLAMA_BITNET
from bitnet_backend.backend import Engine
from bitnet_backend.checkpoints.hf import Checkpoint, load_checkpoint
from bitnet_backend.checkpoints.safetensors_file import (
    SafetensorsFile,
    TensorSpec,
    write_safetensors,
)
from bitnet_backend.config import ModelConfig
from bitnet_backend.errors import CheckpointError, UnsupportedModelError

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}
CHECKPOINTS: dict[str, dict[str, Any]] = {
    # Falcon3 / Falcon-E / Llama3-8B-1.58: bitlinear, weight_scale divides.
    "llama-bitlinear": {"family": LLAMA_BITNET},
    # head_dim from config.json, not hidden_size / heads (q width 128 != hidden 64).
    "llama-head-dim": {"family": LLAMA_BITNET, "shape": {"head_dim": 32}, "seed": 1},
    "llama-autobitlinear": {"family": LLAMA_BITNET, "linear_class": "autobitlinear", "seed": 2},
    "llama-online": {
        "family": LLAMA_BITNET,
        "linear_class": "autobitlinear",
        "mode": "online",
        "seed": 3,
    },
    "1bitllm": {"family": BITNET_1BITLLM, "dtype": "float16"},
    # quantization_config.use_rms_norm: an RMSNorm (own weight) inside every BitLinear.
    "llama-rms-norm": {"family": LLAMA_BITNET, "use_rms_norm": True, "seed": 10},
    # ... with AutoBitLinear's multiplying scale and 2B-4T's sub-norms.
    "bitnet-rms-norm": {"family": "bitnet-b1.58", "use_rms_norm": True, "seed": 5},
    # Llama 3.1's rope scaling; original_max_position_embeddings 64 puts the tiny head's
    # frequencies in all three bands (kept, interpolated, divided by factor).
    "llama-rope-llama3": {
        "family": LLAMA_BITNET,
        "shape": {"rope_scaling": LLAMA3_ROPE, "rope_theta": 500000.0},
        "seed": 8,
    },
    "llama-rope-linear": {
        "family": LLAMA_BITNET,
        "shape": {"rope_scaling": {"rope_type": "linear", "factor": 2.0}},
        "seed": 7,
    },
}
BACKENDS = ["reference", "cpu"]
LOAD_OPTIONS: dict[str, dict[str, Any]] = {"reference": {}, "cpu": {"lm_head": "f32"}}


def backend_module(name: str) -> Any:
    if name == "cpu":
        pytest.importorskip("bitnet_backend._engine")
        from bitnet_backend.backends import cpu

        return cpu
    from bitnet_backend.backends import reference

    return reference


def as_transformers_bitnet(src: Path, out: Path) -> Path:
    """A 1bitLLM checkpoint rewritten as the BitNetForCausalLM that computes its forward."""
    out.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            shutil.copy(f, out / f.name)
    cfg = json.loads((src / "config.json").read_text())
    cfg.update(
        architectures=["BitNetForCausalLM"],
        model_type="bitnet",
        quantization_config={
            "quant_method": "bitnet",
            "linear_class": "autobitlinear",
            "quantization_mode": "online",
        },
    )
    (out / "config.json").write_text(json.dumps(cfg))
    renames = {"inner_attn_ln": "attn_sub_norm", "ffn_layernorm": "ffn_sub_norm"}
    with SafetensorsFile(src / "model.safetensors") as st:
        tensors = {}
        for name in st.tensors:
            new = name
            for old, repl in renames.items():
                new = new.replace(old, repl)
            tensors[new] = np.array(st.array(name))
        write_safetensors(out / "model.safetensors", tensors, {"format": "pt"})
    return out


@pytest.fixture(scope="module")
def paths(
    make_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], tuple[Path, Path]]:
    """``paths(name) -> (checkpoint dir, oracle dir)``."""
    oracles: dict[str, Path] = {}

    def get(name: str) -> tuple[Path, Path]:
        path = make_checkpoint(**CHECKPOINTS[name])
        if name not in oracles:
            oracles[name] = (
                as_transformers_bitnet(path, tmp_path_factory.mktemp("oracle") / "model")
                if CHECKPOINTS[name]["family"] == BITNET_1BITLLM
                else path
            )
        return path, oracles[name]

    return get


@pytest.fixture(scope="module")
def engine_for(
    paths: Callable[[str], tuple[Path, Path]],
) -> Iterator[Callable[[str, str], tuple[Path, Checkpoint, Engine]]]:
    """``engine_for(backend, name) -> (oracle dir, Checkpoint, Engine)``, loaded once."""
    loaded: dict[tuple[str, str], tuple[Path, Checkpoint, Engine]] = {}

    def get(backend: str, name: str) -> tuple[Path, Checkpoint, Engine]:
        if (backend, name) not in loaded:
            path, oracle = paths(name)
            ckpt = load_checkpoint(path)
            engine = backend_module(backend).BACKEND.load(
                ckpt, n_threads=2, **LOAD_OPTIONS[backend]
            )
            loaded[backend, name] = (oracle, ckpt, engine)
        return loaded[backend, name]

    yield get
    for _, ckpt, engine in loaded.values():
        engine.close()
        ckpt.close()


def short_prompts(ckpt: Checkpoint) -> list[list[int]]:
    c = ckpt.config
    return [prompt_ids(c.vocab_size, 8, seed=s, bos=c.bos_token_id) for s in range(3)]


@pytest.mark.parametrize("name", CHECKPOINTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_family_logits_match_transformers(engine_for, backend, name):
    oracle, ckpt, engine = engine_for(backend, name)
    for ids in short_prompts(ckpt):
        check_strict(engine.logits(ids), oracle_logits(oracle, ids), oracle, ids)
    c = ckpt.config
    prompts = [prompt_ids(c.vocab_size, 64, seed=s, bos=c.bos_token_id) for s in (10, 11)]
    got = np.concatenate([engine.logits(ids) for ids in prompts])
    want = np.concatenate([oracle_logits(oracle, ids) for ids in prompts])
    check_loose(got, want)


@pytest.mark.parametrize("name", CHECKPOINTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_family_greedy_tokens_match_transformers_generate(engine_for, backend, name):
    oracle, ckpt, engine = engine_for(backend, name)
    prompt = prompt_ids(ckpt.config.vocab_size, 6, seed=20, bos=ckpt.config.bos_token_id)
    assert greedy(engine, prompt, 24) == oracle_greedy(oracle, prompt, 24)


@pytest.mark.parametrize("head", ["int8", "q4"])
def test_untied_float_head_is_served_quantized_with_exact_top_logits(engine_for, head):
    pytest.importorskip("bitnet_backend._engine")
    from bitnet_backend.backends import cpu

    oracle, ckpt, _ = engine_for("reference", "llama-bitlinear")
    assert not ckpt.config.tie_word_embeddings
    engine = cpu.BACKEND.load(ckpt, n_threads=2, lm_head=head)
    try:
        ids = prompt_ids(ckpt.config.vocab_size, 8, seed=30, bos=ckpt.config.bos_token_id)
        got, want = engine.logits(ids), oracle_logits(oracle, ids)
        top = np.argsort(-want, axis=-1)[:, :4]
        # The few largest logits are recomputed in float32 from lm_head.weight.
        np.testing.assert_allclose(
            np.take_along_axis(got, top, -1), np.take_along_axis(want, top, -1), atol=1e-3
        )
        prompt = ids[:5]
        assert greedy(engine, prompt, 16) == oracle_greedy(oracle, prompt, 16)
    finally:
        engine.close()


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_cpu_and_reference_agree_on_every_family(engine_for, name):
    _, ckpt, ref = engine_for("reference", name)
    _, _, cpu = engine_for("cpu", name)
    for ids in short_prompts(ckpt):
        check_strict(cpu.logits(ids), ref.logits(ids))
    ids = short_prompts(ckpt)[0]
    np.testing.assert_allclose(cpu.hidden_states(ids), ref.hidden_states(ids), atol=1e-4)


def test_family_configs_describe_their_architecture(paths):
    llama = load_checkpoint(paths("llama-head-dim")[0])
    arch = llama.config.architecture
    assert (arch.family, arch.activation, arch.sub_norms) == (LLAMA_BITNET, "silu", ())
    assert llama.config.head_dim == 32 and llama.config.weight_scale_divides
    assert not any("sub_norm" in name for name in llama.tensors)
    llama.close()
    onebit = load_checkpoint(paths("1bitllm")[0])
    arch = onebit.config.architecture
    assert (arch.family, arch.activation) == (BITNET_1BITLLM, "silu")
    assert arch.sub_norms == ("self_attn.inner_attn_ln.weight", "mlp.ffn_layernorm.weight")
    assert not onebit.config.packed_weights
    assert onebit.tensor("model.layers.0.mlp.up_proj.weight").dtype == "F16"
    onebit.close()


# -- one rule for the weight scale, checked against what transformers builds ------------------


@pytest.mark.parametrize("linear_class", ["bitlinear", "autobitlinear"])
@pytest.mark.parametrize("mode", ["offline", "online"])
def test_weight_scale_rule_is_the_linear_transformers_builds(linear_class, mode):
    import torch
    from transformers import BitNetQuantConfig
    from transformers.integrations.bitnet import (
        AutoBitLinear,
        BitLinear,
        replace_with_bitnet_linear,
    )

    quant = BitNetQuantConfig(linear_class=linear_class, quantization_mode=mode)
    built = replace_with_bitnet_linear(
        torch.nn.Sequential(torch.nn.Linear(8, 8, bias=False)), quantization_config=quant
    )[0]
    config = ModelConfig.from_dict(
        {
            "architectures": ["LlamaForCausalLM"],
            "hidden_size": 8,
            "intermediate_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "vocab_size": 32,
            "quantization_config": quant.to_dict(),
        }
    )
    if isinstance(built, BitLinear):
        # Packed uint8 weights; forward divides by weight_scale.
        assert config.packed_weights and config.weight_scale_divides
    else:
        assert isinstance(built, AutoBitLinear)
        assert config.packed_weights == (not built.online_quant)
        assert not config.weight_scale_divides


# -- configs the engine cannot run are refused, naming the file and the reason ----------------


def _llama_config(**changes: Any) -> dict[str, Any]:
    from bitnet_backend.testing import build_config

    cfg = build_config(family=LLAMA_BITNET)
    cfg.update(changes)
    return cfg


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"hidden_act": "gelu"}, "hidden_act 'gelu'"),
        (
            {"quantization_config": {"quant_method": "bitnet", "modules_to_not_convert": ["mlp"]}},
            "modules_to_not_convert",
        ),
        ({"quantization_config": {"quant_method": "gptq"}}, "not a ternary model"),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 2.0}}, "rope_type 'yarn'"),
    ],
)
def test_unsupported_family_configs_are_refused(changes, reason):
    with pytest.raises(UnsupportedModelError, match=reason) as info:
        ModelConfig.from_dict(_llama_config(**changes), "x/config.json")
    assert info.value.path == "x/config.json"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"rope_scaling": {"rope_type": "linear", "factor": -2.0}}, "rope_scaling.factor"),
        ({"rope_scaling": {"rope_type": "linear"}}, "rope_scaling.factor"),
        (
            {"rope_parameters": {**LLAMA3_ROPE, "high_freq_factor": 0.5}},
            "rope_parameters.high_freq_factor",
        ),
        (
            {"rope_scaling": {**LLAMA3_ROPE, "original_max_position_embeddings": "8k"}},
            "rope_scaling.original_max_position_embeddings",
        ),
        ({"rope_scaling": [1, 2]}, "'rope_scaling' must be an object"),
        (
            {"quantization_config": {"quant_method": "bitnet", "use_rms_norm": "yes"}},
            "quantization_config.use_rms_norm",
        ),
        (
            {"quantization_config": {"quant_method": "bitnet", "rms_norm_eps": float("nan")}},
            "quantization_config.rms_norm_eps",
        ),
    ],
)
def test_malformed_rope_and_linear_norm_fields_are_named(changes, field):
    with pytest.raises(CheckpointError, match=re.escape(field)):
        ModelConfig.from_dict(_llama_config(**changes), "x/config.json")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, "rope_type 'dynamic'"),
        ({"rope_parameters": {"rope_type": "longrope"}}, "rope_parameters.rope_type"),
        ({"partial_rotary_factor": 0.5}, "partial_rotary_factor"),
    ],
)
def test_unsupported_rope_kinds_are_refused_naming_the_field(changes, reason):
    with pytest.raises(UnsupportedModelError, match=re.escape(reason)):
        ModelConfig.from_dict(_llama_config(**changes), "x/config.json")


def test_transformers_5_rope_parameters_are_read_like_rope_scaling():
    old = ModelConfig.from_dict(_llama_config(rope_scaling=LLAMA3_ROPE, rope_theta=1e4))
    new = ModelConfig.from_dict(
        _llama_config(rope_parameters={**LLAMA3_ROPE, "rope_theta": 1e4}, rope_theta=None)
    )
    assert old.rope_scaling == new.rope_scaling and old.rope_scaling is not None
    assert old.rope_scaling.original_max_position_embeddings == 64
    assert old.rope_theta == new.rope_theta == 1e4


def test_missing_linear_norm_names_the_tensor(paths, tmp_path):
    src = paths("llama-rms-norm")[0]
    dst = tmp_path / "model"
    shutil.copytree(src, dst)
    gone = "model.layers.1.mlp.down_proj.rms_norm.weight"
    with SafetensorsFile(src / "model.safetensors") as st:
        kept = {
            n: TensorSpec.of(np.array(st.array(n)), info.dtype)
            for n, info in st.tensors.items()
            if n != gone
        }
    write_safetensors(dst / "model.safetensors", kept, {"format": "pt"})
    with pytest.raises(CheckpointError, match=re.escape(gone)):
        load_checkpoint(dst)


def test_use_rms_norm_configs_describe_their_linear_norms(paths):
    with load_checkpoint(paths("llama-rms-norm")[0]) as ckpt:
        c = ckpt.config
        assert c.architecture.linear_norm == "rms_norm.weight" and c.linear_norm_eps == 1e-6
        norm = ckpt.tensor("model.layers.0.self_attn.o_proj.rms_norm.weight")
        assert norm.shape == (c.num_attention_heads * c.head_dim,)
        plain = ModelConfig.from_dict(_llama_config())
        # q, k, v, gate, up read hidden_size values; o the heads; down intermediate_size.
        per_layer = 5 * c.hidden_size + norm.shape[0] + c.intermediate_size
        assert c.parameter_count - plain.parameter_count == c.num_hidden_layers * per_layer


def test_missing_family_sub_norm_names_the_tensor(paths, tmp_path):
    src = paths("1bitllm")[0]
    dst = tmp_path / "model"
    shutil.copytree(src, dst)
    with SafetensorsFile(src / "model.safetensors") as st:
        kept = {n: np.array(st.array(n)) for n in st.tensors if "inner_attn_ln" not in n}
    write_safetensors(dst / "model.safetensors", kept, {"format": "pt"})
    with pytest.raises(CheckpointError, match=r"self_attn\.inner_attn_ln\.weight"):
        load_checkpoint(dst)


@pytest.mark.parametrize(
    ("name", "family", "fmt"),
    [
        ("llama-head-dim", LLAMA_BITNET, "safetensors, packed 2-bit linears (bitlinear, offline)"),
        ("1bitllm", BITNET_1BITLLM, "safetensors, float16 linears (autobitlinear, online)"),
    ],
)
def test_bitnet_info_shows_family_format_shapes_and_weight_bytes(paths, capsys, name, family, fmt):
    from bitnet_backend.cli import main

    assert main(["info", str(paths(name)[0]), "--backend", "cpu", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["family"], info["format"]) == (family, fmt)
    with load_checkpoint(paths(name)[0]) as ckpt:
        c = ckpt.config
    assert info["attention"] == (
        f"{c.num_attention_heads} heads ({c.num_key_value_heads} kv) x {c.head_dim}"
    )
    assert info["intermediate_size"] == c.intermediate_size
    assert info["engine"]["weight_bytes"] > 0
    scale = "divide" if name == "llama-head-dim" else "multiply"
    assert (info["activation"], info["weight_scale"]) == ("silu", scale)
    assert (info["linear_norm"], info["rope_scaling"]) == ("none", "none")


def test_bitnet_info_names_the_linear_norm_and_rope_scaling(paths, capsys):
    from bitnet_backend.cli import main

    for name, key, value in [
        ("llama-rms-norm", "linear_norm", "rms_norm.weight"),
        ("llama-rope-llama3", "rope_scaling", "llama3 x8"),
    ]:
        assert main(["info", str(paths(name)[0]), "--backend", "reference", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[key] == value


# -- cpu and reference over every config combination the loader accepts ----------------------

COMBINATIONS = [
    {"family": family, "linear_class": linear_class, "mode": mode}
    for family in ("bitnet-b1.58", LLAMA_BITNET)
    for linear_class in ("bitlinear", "autobitlinear")
    for mode in ("offline", "online")
] + [
    {"family": BITNET_1BITLLM, "dtype": "float16"},
    {"family": LLAMA_BITNET, "linear_class": "autobitlinear", "mode": "online"}
    | {"use_rms_norm": True},
]


@pytest.mark.parametrize("combo", COMBINATIONS, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_cpu_matches_reference_for_every_accepted_combination(make_checkpoint, combo):
    pytest.importorskip("bitnet_backend._engine")
    from bitnet_backend.backends import cpu, reference

    with load_checkpoint(make_checkpoint(**combo, seed=7)) as ckpt:
        c = ckpt.config
        ref = reference.BACKEND.load(ckpt, n_threads=1)
        fast = cpu.BACKEND.load(ckpt, n_threads=2, lm_head="f32")
        try:
            ids = prompt_ids(c.vocab_size, 48, seed=8, bos=c.bos_token_id)
            check_loose(fast.logits(ids), ref.logits(ids))
            check_strict(fast.logits(ids[:6]), ref.logits(ids[:6]))
        finally:
            fast.close()
            ref.close()


@pytest.mark.parametrize(
    ("shape", "params"), [("falcon3-3b", 3_227_655_168), ("llama3-8b", 8_030_261_248)]
)
def test_benchmark_shapes_are_written_as_their_family(shape, params):
    from bitnet_backend.testing import build_config

    config = ModelConfig.from_dict(build_config(shape))
    assert config.architecture.family == LLAMA_BITNET and not config.tie_word_embeddings
    # Meta's published count for Llama-3-8B; Falcon3-3B's from its config.
    assert config.parameter_count == params


@pytest.mark.parametrize("name", ["llama-head-dim", "1bitllm", "llama-rms-norm"])
def test_converted_family_checkpoint_gives_the_same_logits(paths, tmp_path, name):
    pytest.importorskip("bitnet_backend._engine")
    from bitnet_backend.backends import cpu
    from bitnet_backend.convert import convert

    src = paths(name)[0]
    out = convert(src, tmp_path / "converted", lm_head="int8")
    with load_checkpoint(src) as a, load_checkpoint(out) as b:
        want = cpu.BACKEND.load(a, n_threads=2, lm_head="int8")
        got = cpu.BACKEND.load(b, n_threads=2)
        try:
            ids = prompt_ids(a.config.vocab_size, 16, seed=9, bos=a.config.bos_token_id)
            np.testing.assert_array_equal(got.logits(ids), want.logits(ids))
        finally:
            got.close()
            want.close()


def test_reference_silu_is_within_two_ulp_of_torch():
    import torch

    from bitnet_backend.backends.reference import ffn_activation

    g = (np.random.default_rng(0).standard_normal(100_000) * 4).astype(np.float32)
    got = ffn_activation("silu", g)
    want = torch.nn.functional.silu(torch.from_numpy(g)).numpy()
    # torch's vectorized exp (SLEEF, 1 ulp) is not correctly rounded; ours is.
    ulps = np.abs(got.view(np.int32).astype(np.int64) - want.view(np.int32))
    assert ulps.max() <= 2 and np.mean(ulps == 0) > 0.9


def test_batched_steps_of_a_use_rms_norm_model_equal_each_sequence_alone(engine_for):
    """Each part of a fused matrix quantizes its own normed rows: rows of other sequences in
    the step (prefill-sized and decode-sized steps) change nothing."""
    _, ckpt, engine = engine_for("cpu", "llama-rms-norm")
    vocab = ckpt.config.vocab_size
    prompts = [prompt_ids(vocab, n, seed=40 + n) for n in (1, 7, 19, 3, 12)]
    batched = [engine.new_session(64) for _ in prompts]
    alone = [engine.new_session(64) for _ in prompts]
    engine.eval_batch(list(zip(batched, prompts, strict=True)))
    for step in range(4):
        for i, session in enumerate(alone):
            session.eval(prompts[i] if step == 0 else [step + i])
            np.testing.assert_array_equal(batched[i].last_logits(), session.last_logits())
        engine.eval_batch([(s, [step + 1 + i]) for i, s in enumerate(batched)])
    for session in batched + alone:
        session.close()
