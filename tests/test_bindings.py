"""The extension's Python surface: enums named as `info` spells them, widths taken from the
engine, engine exceptions translated, test hooks apart, and one resolver for BITNET_ISA and
every "auto" choice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bitnet_backend.checkpoints.hf import load_checkpoint
from bitnet_backend.errors import InvalidParameterError

_engine = pytest.importorskip("bitnet_backend._engine")
from bitnet_backend.backends.cpu import (  # noqa: E402
    BACKEND,
    HEAD_IN_CACHE_BYTES,
    resolve_choices,
)

IDS = [5, 17, 99, 3, 250]


@pytest.fixture(scope="module")
def ckpt_dir(make_checkpoint: Callable[..., Path]) -> Path:
    return make_checkpoint(shape={"hidden_size": 96, "intermediate_size": 200}, seed=3)


def test_enum_members_are_spelled_as_the_load_options() -> None:
    assert set(_engine.HeadKind.__members__) == {"int8", "q6", "q4", "f32"}
    assert set(_engine.KVType.__members__) == {"f32", "bf16"}
    assert set(_engine.WeightLayout.__members__) == {"i2_r16", "i1_r16"}
    assert set(_engine.Output.__members__) == {"none", "last", "all", "hidden"}


@pytest.mark.parametrize(
    ("lm_head", "kv_cache", "layout"), [("q6", "bf16", "i1_r16"), ("f32", "f32", "i2_r16")]
)
def test_info_reports_the_engine_enums_by_name(
    ckpt_dir: Path, lm_head: str, kv_cache: str, layout: str
) -> None:
    engine = BACKEND.load(
        load_checkpoint(ckpt_dir),
        n_threads=1,
        lm_head=lm_head,
        kv_cache=kv_cache,
        weight_layout=layout,
    )
    native = engine._model
    assert native.lm_head == _engine.HeadKind.__members__[lm_head]
    assert native.kv_cache == _engine.KVType.__members__[kv_cache]
    assert native.weight_layout == _engine.WeightLayout.__members__[layout]
    info = engine.info
    assert (info["lm_head"], info["kv_dtype"], info["weight_format"]) == (lm_head, kv_cache, layout)


def test_session_outputs_take_their_width_from_the_engine(ckpt_dir: Path) -> None:
    ckpt = load_checkpoint(ckpt_dir)
    engine = BACKEND.load(ckpt, n_threads=1, lm_head="f32")
    vocab, hidden = ckpt.config.vocab_size, ckpt.config.hidden_size
    assert (engine._model.vocab_size, engine._model.hidden_size) == (vocab, hidden)
    ids = np.asarray(IDS, dtype=np.int32)
    out = _engine.Output
    session = _engine.Session(engine._model, 16)
    assert session.eval(ids, out.all).shape == (len(IDS), vocab)
    assert session.eval(ids[:2], out.hidden).shape == (2, hidden)
    assert session.eval(ids[:1], out.last) is None
    assert session.last_logits().shape == (vocab,)
    with pytest.raises(TypeError):
        session.eval(ids[:1], "all")  # mode strings no longer cross the boundary


def test_kernel_hooks_live_in_the_testing_submodule() -> None:
    for name in ("kernel_gemm", "kernel_quantize", "kernel_head_logits", "kernel_bench"):
        assert hasattr(_engine.testing, name)
        assert not hasattr(_engine, name)


def _tiny_config() -> object:
    config = _engine.ModelConfig()
    for name, value in {
        "hidden_size": 8,
        "intermediate_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "head_dim": 4,
        "vocab_size": 4,
        "max_position_embeddings": 8,
        "rope_inv_freq": [1.0, 0.01],
    }.items():
        setattr(config, name, value)
    return config


def test_a_buffer_of_the_wrong_size_raises_the_translated_checkpoint_error() -> None:
    tensors = {"model.norm.weight": ("F32", (8,), np.zeros(7, dtype=np.float32))}
    with pytest.raises(_engine.CheckpointContentError, match=r"model\.norm\.weight") as exc:
        _engine.Model(_tiny_config(), tensors, 1)
    assert isinstance(exc.value, ValueError)


def test_the_config_crosses_as_one_struct_named_like_ours(ckpt_dir: Path) -> None:
    from bitnet_backend.backends.native_config import native_config

    with load_checkpoint(ckpt_dir) as ckpt:
        ours = ckpt.config
        native = native_config(_engine, ours)
        engine = BACKEND.load(ckpt, n_threads=1)
        kept = engine._model.config
        engine.close()
    for name in ("hidden_size", "num_hidden_layers", "num_key_value_heads", "head_dim"):
        assert getattr(native, name) == getattr(ours, name) == getattr(kept, name)
    assert native.activation.name == ours.architecture.activation == "relu2"
    assert native.weight_scale.name == "multiply"  # 2B-4T's autobitlinear
    assert native.attn_sub_norm == ours.architecture.attn_sub_norm
    assert native.linear_norm == "" and len(kept.rope_inv_freq) == ours.head_dim // 2
    assert set(_engine.Activation.__members__) == {"relu2", "silu"}
    assert set(_engine.WeightScale.__members__) == {"divide", "multiply"}


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("num_key_value_heads", 3, "num_key_value_heads must divide"),
        ("head_dim", 3, "head_dim"),
        ("rope_inv_freq", [1.0], "rope_inv_freq must hold"),
        ("rope_inv_freq", [1.0, float("nan")], "rope_inv_freq values"),
        ("linear_norm_eps", 0.0, "linear_norm_eps"),
    ],
)
def test_a_config_the_engine_cannot_run_names_the_field(field, value, reason) -> None:
    config = _tiny_config()
    setattr(config, field, value)
    with pytest.raises(ValueError, match=f"ModelConfig.{reason}"):
        _engine.Model(config, {}, 1)


def test_bitnet_isa_is_resolved_once_and_reported(
    ckpt_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BITNET_ISA", "ref")
    choices = resolve_choices(None, 2)
    # The 6-bit head is only the default where the AVX-512 kernels run.
    assert choices == resolve_choices("ref", 2)
    assert (choices.isa, choices.lm_head, choices.weight_layout) == ("ref", "int8", "i2_r16")
    info = BACKEND.load(load_checkpoint(ckpt_dir), n_threads=2).info
    assert (info["isa"], info["lm_head"], info["weight_format"]) == ("ref", "int8", "i2_r16")


def test_an_unknown_bitnet_isa_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BITNET_ISA", "sse9")
    with pytest.raises(InvalidParameterError, match="sse9"):
        resolve_choices()


def test_without_an_override_auto_is_the_best_isa_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BITNET_ISA", raising=False)
    assert resolve_choices().isa == _engine.best_isa()
    assert _engine.best_isa() in _engine.available_isas()


@pytest.mark.parametrize("isa", _engine.available_isas())
def test_auto_choices_follow_the_isa_and_threads(isa: str) -> None:
    streamed = HEAD_IN_CACHE_BYTES + 1
    assert resolve_choices(isa, 1, head_bytes=streamed).lm_head == "int8"
    six_bit = "q6" if isa == "avx512" else "int8"
    assert resolve_choices(isa, 2, head_bytes=streamed).lm_head == six_bit
    assert resolve_choices(isa, 2).lm_head == six_bit  # a head of unknown size
    assert resolve_choices(isa, 2, head_bytes=HEAD_IN_CACHE_BYTES).lm_head == "int8"
    assert resolve_choices(isa, 2, stored_head="q4").lm_head == "q4"
    assert resolve_choices(isa, 2, lm_head="f32").lm_head == "f32"
    dense = isa == "avx512" and _engine.base3_uses_vbmi()
    assert resolve_choices(isa, 2, favour_decode=True).weight_layout == (
        "i1_r16" if dense else "i2_r16"
    )
    assert resolve_choices(isa, 1, favour_decode=True).weight_layout == "i2_r16"
    assert resolve_choices(isa, 2).weight_layout == "i2_r16"
